//! An in-memory driver of the relay core ([`Relay`]): connections without
//! sockets, a clock the caller moves, writes as large as the caller lets
//! each peer take. It does with the relay's answers what the mio driver
//! (`engine/wire.rs`, `engine/output.rs`) does, so routing, re-chunking,
//! REPORTs and back-pressure are tested (and fuzzed) without a socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msrp_core::{EndFlag, Event};
use rustc_hash::FxHashMap as HashMap;

use crate::config::Config;
use crate::conn::LayerView;
use crate::connid::ConnId;
use crate::dns::Answer;
use crate::engine::Host;
use crate::relay::{Accepted, BodyCheck, DialError, Dialled, EofAction, Io, ReadGate, Relay, Step};
use crate::route::NextHop;
use crate::transport::Kind;

/// The relay's requests to the driver: dials succeed (the connection
/// then waits for [`Fake::connected`]), names never resolve by themselves.
#[derive(Default)]
pub struct FakeIo {
    /// Connections the relay dialled, in order.
    pub dialled: Vec<(ConnId, NextHop)>,
    /// Names the relay asked to resolve, with the connection waiting.
    pub resolving: Vec<(String, ConnId)>,
    /// Dials fail (connect() refused at once).
    pub refuse_dials: bool,
}

impl Io for FakeIo {
    fn connect(&mut self, id: ConnId, hop: &NextHop) -> Result<Dialled, DialError> {
        if self.refuse_dials {
            return Err(DialError::NoConnection(hop.clone()));
        }
        self.dialled.push((id, hop.clone()));
        Ok(Dialled {
            local: SocketAddr::from(([127, 0, 0, 1], 40000 + id.0 as u16)),
            kind: Kind::Tcp,
            layer: LayerView::NONE,
        })
    }

    fn lookup(&mut self, _name: &str, _now: Instant) -> Option<Answer> {
        None
    }

    fn resolve(&mut self, name: &str, conn: ConnId, _now: Instant) -> u64 {
        self.resolving.push((name.to_string(), conn));
        self.resolving.len() as u64
    }

    fn recv_buffer(&self, _id: ConnId) -> usize {
        0
    }
}

/// What a [`Fake`] shows each written piece to, instead of keeping it.
pub type Tap = Box<dyn FnMut(ConnId, &Bytes)>;

/// The relay, its fake sockets and the clock.
pub struct Fake<H: Host> {
    pub relay: Relay,
    pub io: FakeIo,
    pub host: H,
    pub now: Instant,
    /// What each connection's peer received.
    pub wire: HashMap<ConnId, BytesMut>,
    /// Bytes each peer takes per write turn (absent: all).
    pub takes: HashMap<ConnId, usize>,
    /// Instead of keeping what the peers receive in [`Fake::wire`], show
    /// each written piece to this (a benchmark that only needs the heads).
    pub tap: Option<Tap>,
    last_sweep: Instant,
}

impl<H: Host> Fake<H> {
    pub fn new(cfg: &'static Config, host: H) -> Fake<H> {
        let now = Instant::now();
        let relay = Relay::new(
            cfg,
            Box::<super::MemTable>::default(),
            Box::new(super::NoStats),
            7,
            1,
            now,
        );
        Fake {
            relay,
            io: FakeIo::default(),
            host,
            now,
            wire: HashMap::default(),
            tap: None,
            takes: HashMap::default(),
            last_sweep: now,
        }
    }

    /// A connection a peer at `peer` opened to the relay.
    pub fn accept(&mut self, peer: SocketAddr) -> ConnId {
        let t = self.relay.alloc_id();
        let a = Accepted {
            peer,
            local: SocketAddr::from(([127, 0, 0, 1], 2855)),
            kind: Kind::Tcp,
            layer: LayerView::NONE,
        };
        self.relay.accepted(t, a, self.now);
        t
    }

    /// A dialled connection's connect completed (as
    /// `Engine::on_writable`): what waited for it is written.
    pub fn connected(&mut self, t: ConnId) {
        if self.relay.dialled(t, Ok(()), &mut self.io) {
            self.flush(t);
        }
        self.settle();
    }

    /// A dialled connection's connect failed (refused, unreachable).
    pub fn connect_failed(&mut self, t: ConnId) {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        self.relay.dialled(t, Err(refused), &mut self.io);
        self.relay.take_closed();
        self.settle();
    }

    /// [`Fake::feed`] of bytes already in a buffer, appended to `t`'s
    /// unparsed bytes without a copy when there are none (as a socket read
    /// into the engine's pooled buffers).
    pub fn feed_buf(&mut self, t: ConnId, bytes: BytesMut) {
        self.relay.now = self.now;
        let n = bytes.len();
        if let Some(c) = self.relay.conns.get_mut(&t) {
            c.rbuf.unsplit(bytes);
        }
        self.relay.read(t, n, self.now);
        self.drive(t);
        self.settle();
    }

    /// `bytes` arrive on `t`; the relay handles them and everything it
    /// wakes, and writes what it queued.
    pub fn feed(&mut self, t: ConnId, bytes: &[u8]) {
        self.relay.now = self.now;
        self.relay.received(t, bytes, self.now);
        self.drive(t);
        self.settle();
    }

    /// The peer of `t` closed its side (as `Engine::read_some` and
    /// `Engine::drive`: what it sent before is handled, then its EOF).
    pub fn peer_closed(&mut self, t: ConnId) {
        self.relay.peer_closed(t);
        self.drive(t);
        if self.relay.read_gate(t) != ReadGate::Eof {
            self.settle();
            return;
        }
        match self.relay.on_eof(t) {
            Some(EofAction::HalfClosed) => self.relay.mark_dirty(t),
            Some(EofAction::Truncated | EofAction::Closed) => self.close(t, "closed by peer"),
            None => {}
        }
        self.settle();
    }

    /// The connection `t` fails (a socket error).
    pub fn close(&mut self, t: ConnId, why: &str) {
        self.relay.close(t, why, &mut self.io);
        self.relay.take_closed();
    }

    /// `ms` pass: the relay's timers run (the sweeps once a second).
    pub fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.relay.now = self.now;
        self.relay.handle_timeout(self.now, &mut self.io);
        if self.now.duration_since(self.last_sweep) >= Duration::from_secs(1) {
            self.last_sweep = self.now;
            for (t, _, why) in self.relay.idle_connections(self.now) {
                self.close(t, why);
            }
            self.relay.sweep(self.now, &mut self.io);
            self.relay.take_closed();
        }
        self.settle();
    }

    /// What the peer of `t` received so far (taken).
    pub fn take_wire(&mut self, t: ConnId) -> BytesMut {
        self.wire.remove(&t).unwrap_or_default()
    }

    /// Woken sources and pending writes, until both settle (as
    /// `Engine::settle`).
    pub fn settle(&mut self) {
        while self.relay.sched.has_ready() || self.relay.wants_write() {
            while let Some(t) = self.relay.sched.pop_ready() {
                self.drive(t);
            }
            for t in self.relay.take_dirty() {
                self.flush(t);
            }
        }
    }

    /// The parse steps of `t` until it needs bytes or waits (as
    /// `Engine::drain_parsed`).
    fn drive(&mut self, t: ConnId) {
        loop {
            if !self.relay.pump(t) {
                return;
            }
            match self.relay.next_event(t) {
                Step::Event(ev) => self.on_event(t, ev),
                Step::Record(r) => self.relay.on_record(t, r, &mut self.io),
                Step::Answered => self.relay.apply_outputs(&mut self.io),
                Step::NeedBytes | Step::Wait => return,
                Step::Malformed(_) => {
                    self.close(t, "malformed input");
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, t: ConnId, ev: Event) {
        match ev {
            Event::Head(head) => {
                let Some(ctx) = self.relay.on_head(t, head, self.now, &mut self.io) else {
                    return;
                };
                let ctx = self.host.run_route(ctx);
                self.relay.script_done(t, ctx, &mut self.io);
            }
            Event::Body(bytes) => match self.relay.body(t, bytes) {
                BodyCheck::Fine => {}
                BodyCheck::Refused => {
                    self.relay.check_refused(t, &mut self.io);
                }
                BodyCheck::TooLarge => self.relay.too_large(t, &mut self.io),
            },
            Event::End(flag) => self.relay.end(t, flag, self.now),
        }
        self.relay.take_closed();
    }

    /// One write turn of `t`: its peer takes what [`Fake::takes`] allows.
    fn flush(&mut self, t: ConnId) {
        if !self.relay.write_turn(t) {
            return;
        }
        let mut room = self.takes.get(&t).copied().unwrap_or(usize::MAX);
        let mut got: Vec<Bytes> = Vec::new();
        for b in self.relay.transmit(t, usize::MAX) {
            if room == 0 {
                break;
            }
            let n = b.len().min(room);
            got.push(b.slice(..n));
            room -= n;
        }
        let n: usize = got.iter().map(Bytes::len).sum();
        if let Some(tap) = self.tap.as_mut() {
            got.iter().for_each(|b| tap(t, b));
        } else {
            let w = self.wire.entry(t).or_default();
            for b in got {
                w.extend_from_slice(&b);
            }
        }
        self.relay.wrote(t, n);
        self.relay.write_done(t, Some(n), LayerView::NONE, self.now);
        if let Some(why) = self.relay.after_write(t) {
            self.close(t, why);
        }
    }
}

/// Splits the frames a peer received into (head, body, end flag).
pub fn frames(mut wire: BytesMut) -> Vec<(msrp_core::FrameHead, BytesMut, Option<EndFlag>)> {
    let mut p = msrp_core::Parser::new(msrp_core::Limits::default());
    let mut out: Vec<(msrp_core::FrameHead, BytesMut, Option<EndFlag>)> = Vec::new();
    while let Ok(Some(ev)) = p.next(&mut wire) {
        match ev {
            Event::Head(h) => out.push((h, BytesMut::new(), None)),
            Event::Body(b) => {
                if let Some(f) = out.last_mut() {
                    f.1.extend_from_slice(&b);
                }
            }
            Event::End(flag) => {
                if let Some(f) = out.last_mut() {
                    f.2 = Some(flag);
                }
            }
        }
    }
    out
}
