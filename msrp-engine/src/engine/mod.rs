//! The relay engine of one MSRP worker process: a single-threaded mio event
//! loop over the module's own listening sockets and connections. It wires
//! I/O to the parts that decide:
//!
//! * [`ConnState`](crate::conn::ConnState): one connection's parser, output
//!   queue and [`Phase`](crate::conn::Phase); [`Socket`](crate::conn::Socket):
//!   its stream and TLS/WebSocket layer;
//! * [`Scheduler`]: stream slots, drain and window waiting (fairness, flow
//!   control);
//! * [`Tracker`]: forwarded transactions and the REPORTs they owe;
//! * [`route`](crate::route) and [`forward`](crate::forward): what a request
//!   carries, where it goes, what an aborted one leaves behind.
//!
//! Per incoming frame the engine runs `event_route[msrp:frame-in]` once
//! (through [`Host`]), then carries out what the script decided
//! ([`frames`]); a forwarded body is streamed as it arrives and re-chunked
//! to `msrp_max_chunk_size` ([`pump`]); reads and writes are in [`wire`].
//!
//! Layering: the engine imports those parts; none of them imports the
//! engine. `frames`, `pump` and `wire` are `impl Engine` blocks split by
//! topic.
//!
//! Memory per stream is bounded: reads are at most
//! [`READ_CHUNK`](crate::config::READ_CHUNK) bytes, the parser and the
//! chunker never hold a body, and a destination whose output queue passes
//! the high watermark stops its sources from being read (TCP flow control
//! then slows the senders) until it drains below the low watermark.

mod authfail;
mod dial;
mod frames;
mod gauges;
mod handshake;
mod limits;
mod linger;
mod links;
mod output;
mod pump;
mod reload;
mod resolve;
mod sweep;
mod throttle;
mod wire;

pub use dial::DialError;

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustc_hash::FxHashMap as HashMap;

use crate::config::Config;
use crate::conn::{ConnState, Incoming, Socket};
use crate::connid::ConnId;
use crate::io::ReadPool;
use crate::relay::Relay;
use crate::report::ReportOrder;
use crate::script::FrameCtx;
use crate::stats::{Stat, StatsSink};
use crate::tid::TidGen;
use crate::tracker::Output;
use crate::transport::tls::TlsContext;
use crate::transport::Kind;
use crate::txtable::{Cause, Event, TxTable};

/// What the engine needs from its host (Kamailio): running the event route.
pub trait Host {
    /// Runs `event_route[msrp:frame-in]` for the frame and returns it with the
    /// script's recorded actions.
    fn run_route(&mut self, ctx: FrameCtx) -> FrameCtx;
    /// Called once per loop pass (Kamailio: `cfg_update()`).
    fn tick(&mut self);
    /// Many connections closed: hand the allocator's free memory back to
    /// the system (Kamailio: glibc `malloc_trim`, which needs `unsafe`).
    fn release_memory(&mut self) {}
    /// A session of the connection map ended (expired, its connection
    /// closed, the relay stops): Kamailio runs
    /// `event_route[msrp:session-end]` with its values.
    fn session_end(&mut self, _ended: crate::acct::Ended) {}
    /// The host's TLS generation: when it changes, the engine reads the
    /// certificate files again (Kamailio: RPC `msrp_relay.tls_reload`
    /// counts it up in shm). Read once per loop pass: keep it cheap.
    fn tls_generation(&self) -> u64 {
        0
    }
}

/// Why a connection without a first request is closed (RFC 4976 §6.1).
const FIRST_REQUEST_LATE: &str = "no request within first_request_timeout";
/// After this many connections closed, the next sweep gives memory back
/// (`Engine::give_back_memory`).
const GIVE_BACK_AFTER: usize = 1024;

/// Poll timeout: also the period of `Host::tick` and of transaction expiry.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Token of the transaction timer's wake-up descriptor.
const WAKE: Token = Token(usize::MAX);
/// Token of the resolver thread's waker (answers are back).
const DNS: Token = Token(usize::MAX - 1);

/// The mio token of connection `t` (listeners take the first tokens, so
/// connection IDs start after them).
fn token(t: ConnId) -> Token {
    Token(t.0 as usize)
}

/// The connection (or listener, `WAKE`, `DNS`) a mio token stands for.
fn conn_id(t: Token) -> ConnId {
    ConnId(t.0 as u64)
}

pub struct Engine<H: Host> {
    poll: Poll,
    listeners: Vec<(TcpListener, SocketAddr, Kind)>,
    /// The protocol side of every connection, the tracker and the
    /// scheduler: the sans-IO core the loop feeds.
    relay: Relay,
    /// The socket of each connection of `relay` (always both or neither).
    sockets: HashMap<ConnId, Socket>,
    next_id: u64,
    /// Connections the relay opened, by next hop (reuse).
    outbound: HashMap<crate::route::NextHop, ConnId>,
    /// TLS contexts (`tls:`/`wss:` listeners, `msrps://` next hops).
    tls: Option<Arc<TlsContext>>,
    /// The host's TLS generation `tls` was built for ([`reload`]).
    tls_gen: u64,
    stats: Box<dyn StatsSink>,
    /// Connections that used their turn with data left: they go on in the
    /// next loop pass.
    yielded: Vec<ConnId>,
    /// Connections not read until their read-rate bucket refills, with the
    /// time it will have ([`throttle`]).
    rate_waits: Vec<(Instant, ConnId)>,
    /// This worker's share of the gauges as last published ([`gauges`]).
    gauges: [i64; gauges::N_GAUGES],
    tids: TidGen,
    read_pool: ReadPool,
    cfg: &'static Config,
    host: H,
    /// The time this loop pass started: one clock read per pass, not one
    /// per read, chunk and timer (transaction deadlines and activity times
    /// are at most one pass early).
    now: Instant,
    last_sweep: Instant,
    /// This worker's index, and its links to the other workers (by their
    /// index): requests for a session another worker holds go over them.
    worker: usize,
    links: HashMap<usize, ConnId>,
    /// WebSocket connections the relay closed, drained until their peer
    /// closes too (see `linger`).
    lingering: Vec<linger::Lingering>,
    /// Next-hop name lookups, off the loop.
    dns: crate::dns::Dns,
    /// The answer being handed to the requests that waited for it.
    dns_fresh: Option<(String, crate::dns::Answer)>,
    /// Connections closed since memory was last given back, and that
    /// count at the last sweep.
    closed: usize,
    closed_at_sweep: usize,
}

impl<H: Host> Engine<H> {
    pub fn new(
        cfg: &'static Config,
        listeners: Vec<(std::net::TcpListener, Kind)>,
        host: H,
        table: Box<dyn TxTable>,
        stats: Box<dyn StatsSink>,
        seed: u64,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        if let Some(fd) = table.wakeup_fd() {
            poll.registry()
                .register(&mut SourceFd(&fd), WAKE, Interest::READABLE)?;
        }
        let mut ls = Vec::new();
        for (i, (l, kind)) in listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let addr = l.local_addr()?;
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, Token(i), Interest::READABLE)?;
            ls.push((l, addr, kind));
        }
        let first = ls.len();
        Ok(Engine {
            poll,
            listeners: ls,
            relay: Relay::new(cfg, table),
            sockets: HashMap::default(),
            next_id: first as u64,
            outbound: HashMap::default(),
            tls: None,
            tls_gen: 0,
            stats,
            yielded: Vec::new(),
            rate_waits: Vec::new(),
            gauges: [0; gauges::N_GAUGES],
            tids: TidGen::new(seed),
            read_pool: ReadPool::default(),
            cfg,
            host,
            now: Instant::now(),
            last_sweep: Instant::now(),
            worker: 0,
            links: HashMap::default(),
            lingering: Vec::new(),
            dns: crate::dns::Dns::new(&cfg.dns),
            dns_fresh: None,
            closed: 0,
            closed_at_sweep: 0,
        })
    }

    /// This is worker `worker`; `links` are shared-memory rings to the
    /// other workers (made before fork, one per ordered pair; see
    /// [`crate::ring`]), by their index. A request for a session another
    /// worker holds goes over the link to it, with the session's connection
    /// in a `Relay-Conid` header; that worker delivers it without running
    /// the script, and passes the answers back.
    pub fn with_links(
        mut self,
        worker: usize,
        links: Vec<(usize, crate::ring::RingLink)>,
    ) -> io::Result<Self> {
        self.worker = worker;
        for (w, s) in links {
            let t = self.alloc_id();
            self.poll.registry().register(
                &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(
                    &s,
                ))),
                token(t),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.relay
                .conns
                .insert(t, ConnState::link(w, self.cfg, self.now));
            self.sockets.insert(t, Socket::link(s));
            self.links.insert(w, t);
        }
        Ok(self)
    }

    /// Serves `tls:`/`wss:` listeners and dials `msrps://` next hops with
    /// `ctx` (without it those connections are refused / unreachable).
    pub fn with_tls(mut self, ctx: Arc<TlsContext>) -> Self {
        self.tls = Some(ctx);
        self
    }

    /// Reads with the host's spare-capacity `recv` (see [`crate::io`]).
    pub fn with_spare_recv(mut self, recv: crate::io::SpareRecv) -> Self {
        self.read_pool = ReadPool::with_spare_recv(recv);
        self
    }

    /// Runs the loop forever (the worker process's life).
    pub fn run(&mut self) -> io::Result<()> {
        self.run_while(|| true)
    }

    /// Runs the loop while `go_on()` holds (checked once per pass, at least
    /// every 100 ms).
    pub fn run_while(&mut self, go_on: impl Fn() -> bool) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while go_on() {
            self.host.tick();
            self.links_before_sleep();
            let again = std::mem::take(&mut self.yielded);
            let timeout = if again.is_empty() {
                self.throttle_timeout(POLL_TIMEOUT)
            } else {
                Duration::ZERO
            };
            let polled = self.poll.poll(&mut events, Some(timeout));
            self.links_after_sleep();
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.yielded.extend(again);
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.now = Instant::now();
            for ev in events.iter() {
                let t = conn_id(ev.token());
                if ev.token() == WAKE {
                    self.guarded(t, |s| s.on_timer());
                } else if ev.token() == DNS {
                    self.guarded(t, |s| s.on_dns());
                } else if ev.token().0 < self.listeners.len() {
                    self.guarded(t, |s| s.accept(ev.token().0));
                } else {
                    if ev.is_writable() {
                        self.guarded(t, |s| s.on_writable(t));
                    }
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        self.guarded(t, |s| s.drive(t));
                    }
                }
            }
            for t in again {
                self.relay.sched.wake(t);
            }
            self.wake_throttled();
            self.settle();
            self.now = Instant::now();
            self.housekeeping(self.now);
        }
        Ok(())
    }

    /// Woken sources and pending writes, until both settle (a write can
    /// wake sources, a source can queue writes).
    fn settle(&mut self) {
        while self.relay.sched.has_ready() || self.relay.wants_write() {
            while let Some(t) = self.relay.sched.pop_ready() {
                self.guarded(t, |s| s.drive(t));
            }
            for t in self.relay.take_dirty() {
                self.guarded(t, |s| s.flush(t));
            }
        }
    }

    /// Timers of the loop: transaction expiry, RFC 4976 §6.1 / §6.5
    /// connection timers, connection-map expiry.
    fn housekeeping(&mut self, now: Instant) {
        if self.relay.tracker.table().poll_expired() {
            self.guarded(conn_id(WAKE), |s| s.on_timer());
        }
        self.guarded(conn_id(WAKE), |s| {
            s.relay.tracker.expire(now);
            s.apply_outputs();
        });
        if !self.lingering.is_empty() {
            self.drain_lingering(now);
        }
        if self.dns_due() {
            self.guarded(conn_id(DNS), |s| s.on_dns());
        }
        self.reload_tls_if_asked();
        if now.duration_since(self.last_sweep) >= Duration::from_secs(1) {
            self.last_sweep = now;
            self.sweep_idle(now);
            self.sweep_frames(now);
            self.resume_paused(now);
            crate::cmap::with(|m| {
                m.expire(now);
                m.publish();
            });
            self.refresh_gauges();
            self.give_back_memory();
        }
        // sessions expired now, or found expired by a look-up
        self.sessions_ended();
        self.settle();
    }

    /// Hands the sessions that ended to the host (the session-end route),
    /// outside the connection map (the script may look sessions up).
    fn sessions_ended(&mut self) {
        for e in crate::cmap::with(crate::cmap::Cmap::take_ended) {
            self.host.session_end(e);
        }
    }

    /// The relay stops: every session still open ends (reason shutdown).
    pub fn shutdown(&mut self) {
        crate::cmap::with(|m| m.end_all(crate::acct::EndReason::Shutdown));
        self.sessions_ended();
    }

    fn on_timer(&mut self) {
        self.relay.tracker.on_timer_wakeup();
        self.apply_outputs();
    }

    /// Carries out what the transaction tracker asks for.
    fn apply_outputs(&mut self) {
        while let Some(o) = self.relay.tracker.poll_output() {
            match o {
                Output::Report(r) => self.send_report(r),
                Output::Fail(r) => {
                    let frame = crate::forward::fail_frame(&r);
                    self.push_frame(r.src, frame);
                }
                Output::WindowOpen(dest) => self.relay.sched.window_open(dest),
                Output::Refuse {
                    src,
                    id,
                    message_id,
                } => self.refuse(src, id, message_id),
                Output::StopMessage {
                    src,
                    id,
                    message_id,
                } => {
                    if let Some(c) = self.relay.conns.get_mut(&src) {
                        c.rejected.insert(message_id);
                    }
                    let current = self.fwd_mut(src).is_some_and(|f| f.in_id == Some(id));
                    if current {
                        self.cut_forward(src);
                    }
                }
            }
        }
    }

    /// Queues a REPORT on its sender's connection; counts it, or counts it
    /// dropped when the connection is gone (RFC 4976 §6.4.3).
    fn send_report(&mut self, r: ReportOrder) {
        if !self.relay.conns.contains_key(&r.src) {
            self.relay.tracker.count(Event::ReportDropped);
            self.stats.add(Stat::ReportsDropped, 1);
            log::info!("REPORT {} dropped: the sender's connection is gone", r.code);
            return;
        }
        let tid = self.tids.next_tid();
        self.relay.tracker.count(Event::Report(r.cause));
        self.stats.add(Stat::ReportsSent, 1);
        self.stats.add(Stat::report(r.cause), 1);
        self.push_frame(r.src, r.frame(&tid));
    }

    /// Runs one step for connection `t`; a panic (a bug) costs only that
    /// connection, never the worker and its other sessions.
    fn guarded(&mut self, t: ConnId, f: impl FnOnce(&mut Self)) {
        if catch_unwind(AssertUnwindSafe(|| f(self))).is_err() {
            log::error!(
                "internal error (panic) while handling connection {}; closing it",
                t.0
            );
            let _ = catch_unwind(AssertUnwindSafe(|| self.close(t, "internal error")));
        }
    }

    fn alloc_id(&mut self) -> ConnId {
        let t = ConnId(self.next_id);
        self.next_id += 1;
        t
    }

    /// Tears a connection down and fixes everything that referred to it.
    fn close(&mut self, t: ConnId, why: &str) {
        let (Some(mut c), Some(mut sock)) = (self.relay.conns.remove(&t), self.sockets.remove(&t))
        else {
            return;
        };
        self.closed += 1;
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(
                &sock.stream,
            )));
        if let Some(addr) = c.outbound {
            let key = crate::route::NextHop {
                addr,
                tls: c.tls_name.take(),
            };
            if self.outbound.get(&key) == Some(&t) {
                self.outbound.remove(&key);
            }
        }
        sock.goodbye();
        self.linger(&c, &sock);
        log::debug!("connection {} with {} closed: {why}", t.0, c.peer);
        self.stats.add(Stat::ConnectionsActive, -1);
        if let Some(slot) = c.listed {
            self.stats.conn_closed(slot);
        }
        crate::cmap::with(|m| m.remove_connection(t.conid()));
        // A chunk this connection was streaming downstream is cut: abort it
        // there with '#' (RFC 4975 §7.1) so the next hop resynchronises.
        if let Incoming::Forward(f) = std::mem::replace(&mut c.incoming, Incoming::Idle) {
            let in_id = f.in_id;
            self.abort_forward(t, &f);
            if let Some(id) = in_id {
                self.relay.tracker.received_all(id, self.now);
            }
        }
        // Sources waiting for this connection go on (and find it gone).
        self.relay.sched.conn_closed(t);
        // Requests sent on this connection will get no response; sources
        // still sending into it stop (and their senders get REPORTs).
        let cause = if c.established() {
            Cause::NextHopClosed
        } else {
            Cause::Unreachable
        };
        self.next_hop_lost(t, cause);
        self.sessions_ended();
    }
}
