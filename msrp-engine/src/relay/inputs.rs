//! What happens to a connection's socket, as inputs of the relay: a peer
//! connected ([`Relay::accepted`]), a dial ended ([`Relay::dialled`]),
//! bytes were read ([`Relay::read`]), the TLS/WebSocket layer moved
//! ([`Relay::layer_seen`]), the peer sent its last byte
//! ([`Relay::peer_closed`]), a write turn begins ([`Relay::write_turn`]).
//! The driver reports; the connection's state (`conn.rs` [`Phase`]) is
//! changed only here.
//!
//! [`Phase`]: crate::conn::Phase

use std::net::SocketAddr;
use std::time::Instant;

use super::{Io, Relay};
use crate::conn::{ConnState, LayerView};
use crate::connid::ConnId;
use crate::stats::Stat;
use crate::transport::Kind;

/// A connection a peer opened to one of the relay's listeners.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    pub peer: SocketAddr,
    /// The relay's address it came to.
    pub local: SocketAddr,
    /// The listener's transport.
    pub kind: Kind,
    /// The TLS/WebSocket layer the driver made for it.
    pub layer: LayerView,
}

impl Relay {
    /// The peer `a.peer` opened connection `t` at `now`: counted, listed,
    /// its read-rate limit set (`max_read_rate`). RFC 4976 §6.1's
    /// first-request timer starts now.
    pub fn accepted(&mut self, t: ConnId, a: Accepted, now: Instant) {
        log::debug!(
            "accepted connection {} from {} on {}:{}",
            t.0,
            a.peer,
            a.kind.name(),
            a.local
        );
        self.stats.add(Stat::ConnectionsAccepted, 1);
        self.stats.add(Stat::ConnectionsActive, 1);
        let mut c = ConnState::new(a.peer, a.local, None, self.cfg, now).layered(a.kind, a.layer);
        c.listed = self.stats.conn_opened(t.0, a.peer, a.local, false, a.kind);
        self.conns.insert(t, c);
        self.accepted_open += 1;
        if self.cfg.max_read_rate > 0 {
            self.set_read_rate(t, self.cfg.max_read_rate);
        }
    }

    /// The non-blocking connect of `t` (a next hop the relay dialled)
    /// ended: `Ok`, TCP is up and what waited for it is written (data may
    /// already wait to be read, so `t` is woken too); `Err`, the
    /// connection closes and the requests that waited for it get their
    /// REPORTs (RFC 4976 §6.4.1, next hop unreachable). Returns whether
    /// `t` is up (false: closed, [`Relay::take_closed`] has it).
    pub fn dialled(&mut self, t: ConnId, result: std::io::Result<()>, io: &mut dyn Io) -> bool {
        let Some(c) = self.conns.get_mut(&t) else {
            return false;
        };
        if c.is_connected() {
            return true;
        }
        match result {
            Ok(()) => {
                c.connected();
                log::debug!("connected to next hop {} (connection {})", c.peer, t.0);
                self.sched.wake(t);
                true
            }
            Err(e) => {
                log::warn!("connect to next hop {} failed: {e}", c.peer);
                self.close(t, "connect failed", io);
                false
            }
        }
    }

    /// `n` bytes were read from `t`'s socket into `ConnState::rbuf` at
    /// `now` (MSRP bytes, after the TLS/WebSocket layer; the driver reads
    /// into the buffer itself to save a copy, [`Relay::received`] is the
    /// copying form): counted, charged to its read-rate limit, and
    /// between frames the start of the next one (`frame_timeout`).
    pub fn read(&mut self, t: ConnId, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        self.stats.add(Stat::BytesIn, n as i64);
        if let Some(c) = self.conns.get_mut(&t) {
            c.note_read(now);
            if let Some(b) = c.read_rate.as_mut() {
                b.take(n);
            }
        }
    }

    /// The driver saw `t`'s TLS/WebSocket layer again (after a read): a
    /// confirmed session opens the connection; what the layer owes the
    /// peer (handshake records, pongs, a close), and output that waited
    /// for the handshake to end, is written at the end of the loop pass.
    pub fn layer_seen(&mut self, t: ConnId, layer: LayerView) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        let done = c.layer.handshaking && !layer.handshaking;
        c.layer_seen(layer);
        if done {
            log::debug!("TLS established with {} (connection {})", c.peer, t.0);
        }
        if layer.backlogged || done {
            self.mark_dirty(t);
        }
    }

    /// The peer of `t` sent its last byte (EOF on the socket). What it
    /// sent before is still parsed; then [`Relay::read_gate`] answers
    /// `Eof` and [`Relay::on_eof`] says what ends.
    pub fn peer_closed(&mut self, t: ConnId) {
        if let Some(c) = self.conns.get_mut(&t) {
            c.peer_closed();
        }
    }

    /// The driver is about to write `t`'s queue: whether it may (TCP is
    /// up). Either way `t` is no longer listed as having bytes to write.
    pub fn write_turn(&mut self, t: ConnId) -> bool {
        self.conns.get_mut(&t).is_some_and(|c| {
            c.dirty = false;
            c.is_connected()
        })
    }
}
