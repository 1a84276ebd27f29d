//! What the driver writes of a connection's output queue, and what it
//! reports back: the bytes that went out ([`Relay::wrote`]) and the end of
//! a write turn ([`Relay::write_done`]). The driver never changes a
//! [`ConnState`](crate::conn::ConnState) itself.

use std::time::Instant;

use bytes::Bytes;

use super::Relay;
use crate::conn::LayerView;
use crate::connid::ConnId;

impl Relay {
    /// Up to `max` pieces of `t`'s output queue, in order, for one
    /// vectored write (none when `t` is gone).
    pub fn transmit(&self, t: ConnId, max: usize) -> impl Iterator<Item = &Bytes> {
        self.conns
            .get(&t)
            .into_iter()
            .flat_map(move |c| c.transmit(max))
    }

    /// The front piece of `t`'s output queue, with whether it ends a
    /// frame (a WebSocket message ends there); an empty piece (never
    /// queued) is dropped.
    pub fn front(&mut self, t: ConnId) -> Option<(&Bytes, bool)> {
        let c = self.conns.get_mut(&t)?;
        while c.front().is_some_and(|(data, _)| data.is_empty()) {
            c.pop_empty();
        }
        c.front()
    }

    /// Whether `t` has nothing queued.
    pub fn out_empty(&self, t: ConnId) -> bool {
        self.conns.get(&t).is_none_or(|c| c.out_empty())
    }

    /// `n` bytes of the front of `t`'s output queue were written (or
    /// handed to its TLS/WebSocket layer).
    pub fn wrote(&mut self, t: ConnId, n: usize) {
        if let Some(c) = self.conns.get_mut(&t) {
            c.consume(n);
        }
    }

    /// A write turn of `t` ended at `now`: `socket_bytes` went to the
    /// socket (`None`: the write failed), and its layer is now `layer`.
    pub fn write_done(
        &mut self,
        t: ConnId,
        socket_bytes: Option<usize>,
        layer: LayerView,
        now: Instant,
    ) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        if let Some(n) = socket_bytes {
            c.note_written(n, layer.backlogged, now);
        }
        c.layer_seen(layer);
    }
}
