//! One MSRP connection of a worker, in two halves: [`ConnState`] (the
//! protocol side: the parser over what was read, the frame arriving on it,
//! its output queue, its timers and its [`Phase`]) and the driver's
//! `Socket` (`engine/socket.rs`: the stream and its TLS/WebSocket layer,
//! seen here as a [`LayerView`]). No engine in here: the relay decides
//! what to read, queue and close.

mod layer;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use msrp_core::Parser;
use rustc_hash::FxHashSet as HashSet;

use crate::config::Config;
use crate::forward::Forward;
use crate::transport::Kind;

pub use crate::stream::Stream;
pub use layer::LayerView;

/// Queued output, whether the relay made it for this peer, and whether it
/// ends an MSRP frame (a WebSocket message ends with it, RFC 7977 §5).
struct Piece {
    data: Bytes,
    own: bool,
    end: bool,
}

/// Where a connection is in its life. One value instead of the flags it
/// replaces (connected, eof, closing), so impossible mixes cannot be
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A non-blocking connect to a next hop is in progress: nothing is read
    /// or written yet.
    Dialling,
    /// TCP is up; the TLS handshake (or, as a client, the server's first
    /// record) has not confirmed the session yet.
    Handshaking,
    Open,
    /// The peer sent its last byte: what it sent is still parsed, then the
    /// connection closes; `flushing`: after what is queued for it is
    /// written (a client that half-closed still gets its 200s and REPORTs).
    Draining {
        flushing: bool,
    },
    /// The relay ends the connection once its output queue is flushed.
    Closing,
}

/// State of the frame currently arriving on a connection.
pub enum Incoming {
    /// Between frames.
    Idle,
    Forward(Box<Forward>),
    /// The frame is not forwarded: swallow it up to its end-line.
    Discard,
    /// The request waits for its next hop's name to resolve; nothing more
    /// is parsed from this connection meanwhile.
    Resolving(Box<crate::forward::Parked>),
}

/// The protocol side of one connection (what the sans-IO core will own,
/// docs/RELAY-CORE.md).
pub struct ConnState {
    /// The transport spoken (the listener's, or `tls` for `msrps://` next
    /// hops the relay dialled).
    pub kind: Kind,
    /// What the TLS/WebSocket layer holds, as the driver last saw it.
    pub layer: LayerView,
    /// For a link to another worker: that worker's index.
    pub link: Option<usize>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Set for connections the relay opened (with `tls_name`, the key of
    /// the reuse map).
    pub outbound: Option<SocketAddr>,
    /// The name a dialled TLS next hop's certificate was verified for.
    pub tls_name: Option<String>,
    pub phase: Phase,
    /// Read and not yet parsed.
    pub rbuf: BytesMut,
    pub parser: Parser,
    /// Bytes waiting to be written, in order.
    out: VecDeque<Piece>,
    out_bytes: usize,
    /// Of those (and the deferred ones), bytes of frames the relay made for
    /// this peer (responses, REPORTs) rather than forwarded from others.
    own_bytes: usize,
    /// Complete frames (responses, REPORTs) that wait for the chunk being
    /// streamed into this connection to end.
    deferred: VecDeque<Piece>,
    pub incoming: Incoming,
    /// Queued bytes wait for the end of this loop pass to be written.
    pub dirty: bool,
    /// Message-IDs this sender must not send more of (413 downstream).
    pub rejected: HashSet<Bytes>,
    pub opened: Instant,
    /// Last time bytes moved in either direction.
    pub last_active: Instant,
    /// When the frame arriving began (its first byte read), or its head
    /// completed; `frame_timeout` counts from it.
    pub frame_mark: Instant,
    /// Last time bytes were read from the peer (a body must keep moving).
    pub last_read: Instant,
    /// Since when output ready to write has waited without a byte written
    /// (`None`: nothing ready): a peer that stops reading is found by this.
    stalled_since: Option<Instant>,
    /// A complete frame head arrived (RFC 4976 §6.1 first-request rule).
    pub got_frame: bool,
    /// Largest message this peer may send (0: no limit): `max_message_size`
    /// or the script's `msrp_set_max_message_size()`.
    pub max_message: u64,
    /// Not read until then (a sender past a refused chunk's slack).
    pub read_paused_until: Option<Instant>,
    /// Slot in the connection listing (RPC), if any.
    pub listed: Option<u32>,
    /// Read-rate limit (`max_read_rate`, `msrp_set_read_rate()`), and
    /// whether the connection waits for it to refill (listed to be woken).
    pub read_rate: Option<crate::rate::TokenBucket>,
    pub rate_waiting: bool,
    /// AUTHs with credentials answered 401/403 since the last 2xx.
    pub auth_failures: u32,
}

impl ConnState {
    /// A TCP connection: accepted (`outbound` is `None`), or being dialled
    /// to `outbound`.
    pub fn new(
        peer: SocketAddr,
        local: SocketAddr,
        outbound: Option<SocketAddr>,
        cfg: &Config,
        now: Instant,
    ) -> ConnState {
        ConnState::with_link(peer, local, outbound, None, cfg, now)
    }

    /// With the TLS/WebSocket layer of `kind` the driver made for it.
    pub fn layered(mut self, kind: Kind, layer: LayerView) -> ConnState {
        self.kind = kind;
        self.layer = layer;
        if self.phase == Phase::Open && !layer.confirmed {
            self.phase = Phase::Handshaking;
        }
        self
    }

    /// The link to worker `worker` (always connected).
    pub fn link(worker: usize, cfg: &Config, now: Instant) -> ConnState {
        let none = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut c = ConnState::with_link(none, none, None, Some(worker), cfg, now);
        c.got_frame = true;
        c.parser = Parser::new(crate::forward::link_limits(cfg.limits));
        c
    }

    fn with_link(
        peer: SocketAddr,
        local: SocketAddr,
        outbound: Option<SocketAddr>,
        link: Option<usize>,
        cfg: &Config,
        now: Instant,
    ) -> ConnState {
        ConnState {
            kind: Kind::Tcp,
            layer: LayerView::NONE,
            link,
            peer,
            local,
            outbound,
            tls_name: None,
            phase: if outbound.is_none() {
                Phase::Open
            } else {
                Phase::Dialling
            },
            rbuf: BytesMut::new(),
            parser: Parser::new(cfg.limits),
            out: VecDeque::new(),
            out_bytes: 0,
            own_bytes: 0,
            deferred: VecDeque::new(),
            incoming: Incoming::Idle,
            dirty: false,
            rejected: HashSet::default(),
            opened: now,
            last_active: now,
            frame_mark: now,
            last_read: now,
            stalled_since: None,
            got_frame: false,
            max_message: cfg.max_message_size,
            read_paused_until: None,
            listed: None,
            read_rate: None,
            rate_waiting: false,
            auth_failures: 0,
        }
    }

    /// The connect completed: TCP is up.
    pub fn connected(&mut self) {
        if self.phase == Phase::Dialling {
            self.phase = if self.layer.confirmed {
                Phase::Open
            } else {
                Phase::Handshaking
            };
        }
    }

    /// Whether TCP is up (the connect completed or it was accepted).
    pub fn is_connected(&self) -> bool {
        self.phase != Phase::Dialling
    }

    /// The peer sent its last byte (EOF).
    pub fn peer_closed(&mut self) {
        self.phase = match self.phase {
            Phase::Closing => Phase::Draining { flushing: true },
            Phase::Draining { flushing } => Phase::Draining { flushing },
            _ => Phase::Draining { flushing: false },
        };
    }

    /// Whether the peer sent its last byte.
    pub fn eof(&self) -> bool {
        matches!(self.phase, Phase::Draining { .. })
    }

    /// The relay ends the connection once what is queued is written.
    pub fn close_after_flush(&mut self) {
        self.phase = match self.phase {
            Phase::Draining { .. } => Phase::Draining { flushing: true },
            _ => Phase::Closing,
        };
    }

    /// Whether the connection closes once its queue is flushed.
    pub fn closing(&self) -> bool {
        matches!(
            self.phase,
            Phase::Closing | Phase::Draining { flushing: true }
        )
    }

    /// The driver saw the TLS/WebSocket layer again (after a read or a
    /// write): a confirmed handshake opens the connection.
    pub fn layer_seen(&mut self, layer: LayerView) {
        self.layer = layer;
        if self.phase == Phase::Handshaking && layer.confirmed {
            self.phase = Phase::Open;
        }
    }

    /// Bytes were read at `now`: between frames they start one.
    pub fn note_read(&mut self, now: Instant) {
        self.last_active = now;
        self.last_read = now;
        if !self.parser.in_frame() {
            self.frame_mark = now;
        }
    }

    /// The forwarding state of the frame arriving here, if it is forwarded.
    pub fn forward(&mut self) -> Option<&mut Forward> {
        match &mut self.incoming {
            Incoming::Forward(f) => Some(f),
            _ => None,
        }
    }

    /// Bytes queued for writing, deferred frames included (they count
    /// against the peer's share).
    pub fn queued(&self) -> usize {
        self.out_bytes + self.unread_replies()
    }

    /// Control answers of the TLS/WebSocket layer not taken yet.
    fn unread_replies(&self) -> usize {
        self.layer.replies
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || self.layer.backlogged
    }

    /// Appends bytes forwarded from another connection to the output queue
    /// (`end`: they end an MSRP frame).
    pub fn queue(&mut self, b: Bytes, end: bool, now: Instant) {
        self.push(
            Piece {
                data: b,
                own: false,
                end,
            },
            now,
        );
    }

    /// Appends a complete frame the relay made for this peer.
    pub fn queue_own(&mut self, b: Bytes, now: Instant) {
        self.push(
            Piece {
                data: b,
                own: true,
                end: true,
            },
            now,
        );
    }

    fn push(&mut self, p: Piece, now: Instant) {
        self.note_queued(now);
        self.count_in(&p);
        self.out.push_back(p);
    }

    fn count_in(&mut self, p: &Piece) {
        self.out_bytes += p.data.len();
        if p.own {
            self.own_bytes += p.data.len();
        }
    }

    /// Keeps a frame the relay made until the chunk being streamed here
    /// ends.
    pub fn defer(&mut self, b: Bytes) {
        let p = Piece {
            data: b,
            own: true,
            end: true,
        };
        self.count_in(&p);
        self.deferred.push_back(p);
    }

    /// Bytes of frames the relay made for this peer that it has not taken
    /// yet: a peer that does not read its answers shows here.
    pub fn own_queued(&self) -> usize {
        self.own_bytes + self.unread_replies()
    }

    fn note_queued(&mut self, now: Instant) {
        if self.stalled_since.is_none() {
            self.stalled_since = Some(now);
        }
    }

    /// How long queued output has waited without progress at `now`.
    pub fn stalled_for(&self, now: Instant) -> Option<std::time::Duration> {
        self.stalled_since.map(|s| now.saturating_duration_since(s))
    }

    /// The chunk being streamed here ended: deferred frames go next.
    pub fn release_deferred(&mut self, now: Instant) {
        if !self.deferred.is_empty() {
            self.note_queued(now);
            self.out.extend(self.deferred.drain(..));
        }
    }

    /// The transport is established: TCP connected and, over TLS, the
    /// handshake done.
    pub fn established(&self) -> bool {
        self.is_connected() && self.layer.confirmed
    }

    /// Up to `max` slices of the output queue, in order, for one vectored
    /// write.
    pub fn transmit(&self, max: usize) -> impl Iterator<Item = &Bytes> {
        self.out.iter().take(max).map(|p| &p.data)
    }

    /// The front of the output queue, with whether it ends a frame.
    pub fn front(&self) -> Option<(&Bytes, bool)> {
        self.out.front().map(|p| (&p.data, p.end))
    }

    /// Drops an empty piece at the front (never queued).
    pub fn pop_empty(&mut self) {
        if self.out.front().is_some_and(|p| p.data.is_empty()) {
            self.out.pop_front();
        }
    }

    pub fn out_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// `total` bytes were written at `now`; `backlog`: the layer still has
    /// bytes of its own to write.
    pub fn note_written(&mut self, total: usize, backlog: bool, now: Instant) {
        if total > 0 {
            self.last_active = now;
            self.stalled_since = Some(self.last_active);
        }
        if self.out.is_empty() && !backlog {
            // (deferred frames wait for a sender, not for this peer)
            self.stalled_since = None;
        }
    }

    /// `n` bytes of the front of the output queue were written (or handed
    /// to the TLS/WebSocket layer).
    pub fn consume(&mut self, mut n: usize) {
        self.out_bytes -= n;
        while n > 0 {
            let Some(front) = self.out.front_mut() else {
                break;
            };
            let take = front.data.len().min(n);
            if front.own {
                self.own_bytes -= take;
            }
            n -= take;
            if take == front.data.len() {
                self.out.pop_front();
            } else {
                front.data.advance(take);
            }
        }
    }
}

#[cfg(test)]
mod tests;
