//! The loop's side of the links to other workers ([`crate::ring`]): a
//! link whose last read found its ring empty says, before the worker
//! waits, that it sleeps, so the peer's next write wakes it.

use super::{Engine, Host};
use crate::conn::Stream;
use crate::ring::RingLink;

impl<H: Host> Engine<H> {
    fn ring_links(&self) -> impl Iterator<Item = (crate::connid::ConnId, &RingLink)> {
        self.relay
            .links
            .values()
            .filter_map(|t| match self.sockets.get(t).map(|s| &s.stream) {
                Some(Stream::Ring(r)) => Some((*t, r)),
                _ => None,
            })
    }

    /// Before the loop waits for events: a link whose ring got bytes since
    /// its last (empty) read is driven in this pass instead, as no wake
    /// will come for them.
    pub(super) fn links_before_sleep(&mut self) {
        let ready: Vec<_> = self
            .ring_links()
            .filter(|(_, r)| r.before_sleep())
            .map(|(t, _)| t)
            .collect();
        self.yielded.extend(ready);
    }

    /// The wait returned: the links do not sleep any more.
    pub(super) fn links_after_sleep(&self) {
        for (_, r) in self.ring_links() {
            r.after_sleep();
        }
    }
}
