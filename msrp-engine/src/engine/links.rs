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
        let ready = self.links_where(RingLink::before_sleep);
        self.yielded.extend(ready);
    }

    fn links_where(&self, f: impl Fn(&RingLink) -> bool) -> Vec<crate::connid::ConnId> {
        self.ring_links()
            .filter(|(_, r)| f(r))
            .map(|(t, _)| t)
            .collect()
    }

    /// The wait returned: the links do not sleep any more.
    pub(super) fn links_after_sleep(&self) {
        for (_, r) in self.ring_links() {
            r.after_sleep();
        }
    }

    /// While the loop settles (sources woken by writes, writes by
    /// sources, possibly for long when a link's reader keeps up), links
    /// with bytes from the other worker are read too: its answers and
    /// pauses (`relay/link_flow.rs`) must not wait for the next poll, or
    /// a worker streaming into a link would not see the other ask it to
    /// pause a connection for as long as the stream flows.
    pub(super) fn drive_links_with_input(&mut self) {
        for t in self.links_where(RingLink::has_input) {
            self.guarded(t, |s| s.drive(t));
        }
    }
}
