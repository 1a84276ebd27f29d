//! The sans-IO relay core (docs/RELAY-CORE.md): the protocol side of
//! every connection ([`ConnState`]), the transaction tracker and the
//! scheduler, and every decision of a frame — the next parse step, whether
//! a source is held back by its destination's queue (RFC 4975 §7.1.1
//! leaves flow control to the transport: a paused source is simply not
//! read), what an EOF means, frame heads and routing (`frames.rs`,
//! RFC 4976 §6.4), re-chunking (`pump.rs`), REPORTs and closes
//! (`close.rs`), limits and timers. No socket, no clock, no `mio`: the time
//! comes in with the input, and what it needs of the driver is [`Io`], so
//! all of it is tested in memory (`relay/tests.rs`, `relay/flows.rs`).
//!
//! The driver ([`Engine`](crate::engine::Engine)) owns the sockets and the
//! loop; it feeds the relay, runs the script between [`Relay::on_head`]
//! and [`Relay::script_done`], and writes what the relay queued.

use std::time::Instant;

use bytes::Bytes;
use msrp_core::{EndFlag, Event, ParseError};
use rustc_hash::FxHashMap as HashMap;

use crate::config::Config;
use crate::conn::{ConnState, Incoming};
use crate::connid::ConnId;
use crate::link::record::{self, Record};
use crate::sched::Scheduler;
use crate::stats::StatsSink;
use crate::tid::TidGen;
use crate::tracker::Tracker;
use crate::txtable::TxTable;

mod authfail;
mod close;
mod dial;
mod frames;
mod inputs;
mod limits;
mod link;
mod link_flow;
mod pump;
mod resolve;
mod throttle;
mod transmit;

pub use close::FIRST_REQUEST_LATE;
pub use dial::{DialError, Dialled, Io};
pub use inputs::Accepted;
pub use resolve::{NoDest, Unreachable};

/// A connection's output queue may reach this many high watermarks before
/// the relay gives up on the peer.
const OUT_QUEUE_LIMIT_FACTOR: usize = 64;

/// The next thing to do with what a connection has read.
#[derive(Debug)]
pub enum Step {
    /// A parse event to handle.
    Event(Event),
    /// A record from another worker over a link, between its frames
    /// (driver: [`Relay::on_record`]).
    Record(Record),
    /// A next hop's 200 to one of the relay's own chunks was taken without
    /// the parser (see [`Relay::quick_answer`]); the driver calls
    /// [`Relay::apply_outputs`] (a request window may have opened).
    Answered,
    /// Everything read is handled: read more.
    NeedBytes,
    /// Not now: it waits for the scheduler (a stream slot, a destination
    /// to drain, a request window), for its own answers to be read, or for
    /// a name lookup; or it is gone.
    Wait,
    /// Malformed input (RFC 4975 §7.3 has no answer for a broken frame):
    /// the driver closes the connection.
    Malformed(ParseError),
}

/// Whether a connection's socket may be read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadGate {
    Read,
    /// Not now (connecting, closing, paused).
    Skip,
    /// The peer already sent its last byte: handle the EOF.
    Eof,
    /// No such connection.
    Gone,
}

/// What the peer closing its side means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EofAction {
    /// Mid-frame: the frame is truncated; close.
    Truncated,
    /// Between frames, with answers queued for a client: write them, then
    /// close.
    HalfClosed,
    /// Nothing left to do: close.
    Closed,
}

/// What a body piece of a forwarded request leaves to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCheck {
    Fine,
    /// The message was refused (413): count the slack the sender may still
    /// send.
    Refused,
    /// Past `max_message_size`.
    TooLarge,
}

pub struct Relay {
    pub conns: HashMap<ConnId, ConnState>,
    pub tracker: Tracker,
    pub sched: Scheduler,
    /// Connections with queued bytes not yet written.
    dirty: Vec<ConnId>,
    cfg: &'static Config,
    pub stats: Box<dyn StatsSink>,
    tids: TidGen,
    /// Connections the relay opened, by next hop (reuse).
    pub outbound: HashMap<crate::route::NextHop, ConnId>,
    /// This worker's index, and its links to the other workers (by their
    /// index): requests for a session another worker holds go over them.
    pub worker: usize,
    pub links: HashMap<usize, ConnId>,
    /// The next connection ID (listeners take the first ones).
    next_id: u64,
    /// Connections not read until their read-rate bucket refills, with the
    /// time it will have ([`throttle`]).
    pub rate_waits: Vec<(Instant, ConnId)>,
    /// The time of the input being handled (the driver's clock, read once
    /// per loop pass: transaction deadlines and activity times are at most
    /// one pass early).
    pub now: Instant,
    /// Connections closed ([`Relay::close`]) whose sockets the driver has
    /// yet to close, with their last state.
    closed: Vec<(ConnId, ConnState)>,
    /// The answer being handed to the requests that waited for it.
    dns_fresh: Option<(String, crate::dns::Answer)>,
    /// Open connections peers opened to this worker (not the relay's own
    /// dials, not links): what [`crate::balance`] compares.
    accepted_open: u64,
    /// Pauses per connection across links (`relay/link_flow.rs`).
    link_flow: link_flow::LinkFlow,
}

impl Relay {
    /// Open connections peers opened to this worker.
    pub fn accepted_open(&self) -> u64 {
        self.accepted_open
    }

    /// A relay whose connection IDs start at `first_id`, counting into
    /// `stats`, with transaction IDs drawn from `seed`.
    pub fn new(
        cfg: &'static Config,
        table: Box<dyn TxTable>,
        stats: Box<dyn StatsSink>,
        seed: u64,
        first_id: u64,
        now: Instant,
    ) -> Relay {
        Relay {
            conns: HashMap::default(),
            accepted_open: 0,
            link_flow: Default::default(),
            tracker: Tracker::new(table, cfg.transaction_timeout),
            sched: Scheduler::default(),
            dirty: Vec::new(),
            cfg,
            stats,
            tids: TidGen::new(seed),
            outbound: HashMap::default(),
            worker: 0,
            links: HashMap::default(),
            next_id: first_id,
            rate_waits: Vec::new(),
            now,
            closed: Vec::new(),
            dns_fresh: None,
        }
    }

    /// The configuration the relay runs with.
    pub fn cfg(&self) -> &'static Config {
        self.cfg
    }

    /// A new connection ID.
    pub fn alloc_id(&mut self) -> ConnId {
        let t = ConnId(self.next_id);
        self.next_id += 1;
        t
    }

    /// The ID [`Relay::alloc_id`] gives next.
    fn peek_id(&self) -> ConnId {
        ConnId(self.next_id)
    }

    /// The connections closed since the last call, with their last state:
    /// the driver closes their sockets.
    pub fn take_closed(&mut self) -> Vec<(ConnId, ConnState)> {
        std::mem::take(&mut self.closed)
    }

    /// Appends bytes of the chunk being streamed into `dest` to its output
    /// queue (`end`: its end-line); they are written at the end of this
    /// loop pass.
    pub fn push_stream(&mut self, dest: ConnId, b: Bytes, end: bool, now: Instant) {
        if b.is_empty() {
            return;
        }
        if let Some(d) = self.conns.get_mut(&dest) {
            d.queue(b, end, now);
            self.mark_dirty(dest);
        }
    }

    /// Queues a complete frame (a response, a REPORT) for `dest`: right
    /// away, or after the chunk currently being streamed into it (RFC 4975
    /// §7.1: a frame never goes into the middle of another).
    pub fn push_frame(&mut self, dest: ConnId, frame: Bytes, now: Instant) {
        let streaming = self.sched.streaming(dest);
        let Some(d) = self.conns.get_mut(&dest) else {
            return;
        };
        if streaming {
            d.defer(frame);
        } else {
            d.queue_own(frame, now);
            self.mark_dirty(dest);
        }
    }

    /// `t` has bytes to write at the end of this loop pass (one vectored
    /// write for everything queued meanwhile, not one per piece).
    pub fn mark_dirty(&mut self, t: ConnId) {
        if let Some(c) = self.conns.get_mut(&t) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(t);
            }
        }
    }

    /// Whether connections have bytes to write.
    pub fn wants_write(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The connections with bytes to write, each once; the driver writes
    /// them (and clears `ConnState::dirty` as it does).
    pub fn take_dirty(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.dirty)
    }

    /// Gives back the memory of connections gone (after a wave of closes).
    pub fn shrink_to_fit(&mut self) {
        self.conns.shrink_to_fit();
        self.dirty.shrink_to_fit();
        self.outbound.shrink_to_fit();
        self.closed.shrink_to_fit();
        self.tracker.shrink_to_fit();
        self.sched.shrink_to_fit();
    }

    /// MSRP bytes arrived on `t` at `now` (after the TLS/WebSocket layer),
    /// for a driver that does not read into the connection's buffer itself.
    pub fn received(&mut self, t: ConnId, bytes: &[u8], now: Instant) {
        if let Some(c) = self.conns.get_mut(&t) {
            c.rbuf.extend_from_slice(bytes);
            self.read(t, bytes.len(), now);
        }
    }

    /// Whether `t`'s socket may be read now.
    pub fn read_gate(&self, t: ConnId) -> ReadGate {
        let Some(c) = self.conns.get(&t) else {
            return ReadGate::Gone;
        };
        if c.closing() || c.read_paused_until.is_some() {
            ReadGate::Skip
        } else if c.eof() {
            ReadGate::Eof
        } else if !c.is_connected() {
            ReadGate::Skip
        } else {
            ReadGate::Read
        }
    }

    /// The next parse step of `t` (after the driver pumped what `t` still
    /// had to send on): nothing while it waits, else the parser's next
    /// event over what was read.
    pub fn next_event(&mut self, t: ConnId) -> Step {
        if self.sched.blocked(t).is_some() {
            return Step::Wait;
        }
        if self.own_queue_full(t) {
            // its replies and REPORTs pile up: read no more requests
            // from it until it reads (or the stall timer closes it)
            self.sched.wait_drain(t, t);
            return Step::Wait;
        }
        let Some(c) = self.conns.get_mut(&t) else {
            return Step::Wait;
        };
        if matches!(c.incoming, Incoming::Resolving(_)) {
            // its request waits for a name: its body stays unparsed
            return Step::Wait;
        }
        while c.link.is_some() && !c.parser.in_frame() && record::starts(&c.rbuf) {
            match record::take(&mut c.rbuf) {
                Ok(Some(r)) => return Step::Record(r),
                Ok(None) => return Step::NeedBytes,
                // the other worker runs this same code: a bug, logged;
                // the record is skipped, the link goes on
                Err(e) => log::error!("link from MSRP worker {}: {e}", c.link.unwrap_or(0)),
            }
        }
        if self.quick_answer(t) {
            return Step::Answered;
        }
        let Some(c) = self.conns.get_mut(&t) else {
            return Step::Wait;
        };
        match c.parser.next(&mut c.rbuf) {
            Ok(Some(ev)) => Step::Event(ev),
            Ok(None) => Step::NeedBytes,
            Err(e) => Step::Malformed(e),
        }
    }

    /// Whether more than the high watermark of the relay's own answers to
    /// `t` (responses, REPORTs) wait for `t` to read them. Bytes forwarded
    /// to `t` do not count: their sources wait instead, and a peer that
    /// sends and receives a transfer at once keeps being read.
    pub fn own_queue_full(&self, t: ConnId) -> bool {
        // (links to other workers are always read: two workers waiting for
        // each other to read their answers would never go on)
        self.conns
            .get(&t)
            .is_some_and(|c| c.link.is_none() && c.own_queued() > self.cfg.queue_high)
    }

    /// Pauses `src` while `dest` has more than the high watermark queued;
    /// returns whether it did.
    pub fn hold_back(&mut self, src: ConnId, dest: ConnId) -> bool {
        let over = self
            .conns
            .get(&dest)
            .is_some_and(|d| d.queued() > self.cfg.queue_high);
        if over {
            self.sched.wait_drain(src, dest);
        }
        over
    }

    /// The peer of `t` will send nothing more. Mid-frame that truncates
    /// the frame; between frames a client may have half-closed: what is
    /// queued for it (the 200 for its last SEND, REPORTs) is still written,
    /// then the connection closes. A next hop the relay connected to is
    /// closed at once (its outstanding requests fail now, not at their
    /// timeout).
    pub fn on_eof(&mut self, t: ConnId) -> Option<EofAction> {
        let c = self.conns.get_mut(&t)?;
        if c.parser.in_frame() {
            log::warn!(
                "peer {} closed connection {} in the middle of a frame (truncated)",
                c.peer,
                t.0
            );
            Some(EofAction::Truncated)
        } else if c.queued() > 0 && c.outbound.is_none() {
            log::debug!(
                "peer {} half-closed connection {}: writing what is queued",
                c.peer,
                t.0
            );
            c.close_after_flush();
            Some(EofAction::HalfClosed)
        } else {
            log::debug!("peer {} closed connection {}", c.peer, t.0);
            Some(EofAction::Closed)
        }
    }

    /// The driver wrote what `t`'s socket took: the sources that waited
    /// for `t` to drain go on below the low watermark. `Some(why)`: close
    /// `t` (flushed after a half-close or the relay's goodbye, or a peer
    /// that does not read).
    pub fn after_write(&mut self, t: ConnId) -> Option<&'static str> {
        let c = self.conns.get(&t)?;
        let (queued, peer) = (c.queued(), c.peer);
        if c.closing() && queued == 0 {
            return Some("flushed");
        }
        if queued <= self.cfg.queue_low && self.sched.has_drain_waiters(t) {
            self.sched.drained(t);
        }
        if queued <= self.cfg.queue_low {
            self.link_resume(t);
        }
        if queued > self.cfg.queue_high * OUT_QUEUE_LIMIT_FACTOR {
            // Sources are paused above the high watermark, so only frames the
            // relay itself produced for this peer (responses, REPORTs) pile
            // up here: the peer does not read.
            log::warn!(
                "peer {peer} does not read: {queued} bytes queued for connection {}; closing it",
                t.0
            );
            return Some("peer not reading");
        }
        None
    }

    /// A frame head was parsed on `t` at `now`: the body's
    /// `frame_timeout` clock starts.
    pub fn head_seen(&mut self, t: ConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&t) {
            c.frame_mark = now;
        }
    }

    /// A piece of the body arriving on `t`: re-chunked when it is
    /// forwarded (the tracker counts the bytes for REPORT ranges, RFC 4975
    /// §7.1.2), dropped otherwise.
    pub fn body(&mut self, t: ConnId, bytes: Bytes) -> BodyCheck {
        let Some(f) = self.conns.get_mut(&t).and_then(|c| c.forward()) else {
            return BodyCheck::Fine;
        };
        f.chunker.body(bytes, &mut f.pending);
        let (id, n, refused) = (f.in_id, f.chunker.consumed(), f.refused_at);
        let over = f.size_left.is_some_and(|left| n > left);
        if let Some(id) = id {
            self.tracker.set_received(id, n);
        }
        if refused.is_some() {
            BodyCheck::Refused
        } else if over {
            BodyCheck::TooLarge
        } else {
            BodyCheck::Fine
        }
    }

    /// The end-line of the frame arriving on `t`, at `now`.
    pub fn end(&mut self, t: ConnId, flag: EndFlag, now: Instant) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        c.frame_mark = now;
        match &mut c.incoming {
            Incoming::Forward(f) => {
                f.chunker.end(flag, &mut f.pending);
                f.finished = true;
            }
            _ => c.incoming = Incoming::Idle,
        }
    }
}

#[cfg(test)]
mod flows;
#[cfg(test)]
mod tests;
