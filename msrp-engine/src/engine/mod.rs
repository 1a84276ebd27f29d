//! The relay engine of one MSRP worker process: a single-threaded mio event
//! loop over the module's own listening sockets and connections, the
//! driver of the sans-IO core [`Relay`] (docs/RELAY-CORE.md): it owns the
//! sockets ([`Socket`](crate::conn::Socket): stream and TLS/WebSocket
//! layer), reads into the relay, runs `event_route[msrp:frame-in]` once
//! per incoming frame (through [`Host`], between `Relay::on_head` and
//! `Relay::script_done`), writes what the relay queued, and does what the
//! relay asks of it ([`crate::relay::Io`]: connect, name lookups).
//! Reads and writes are in [`wire`] and [`output`].
//!
//! Layering: the engine imports the relay and its parts; none of them
//! imports the engine. `wire`, `output`, `sweep`, ... are `impl Engine`
//! blocks split by topic.
//!
//! Memory per stream is bounded: reads are at most
//! [`READ_CHUNK`](crate::config::READ_CHUNK) bytes, the parser and the
//! chunker never hold a body, and a destination whose output queue passes
//! the high watermark stops its sources from being read (TCP flow control
//! then slows the senders) until it drains below the low watermark.

mod dial;
mod gauges;
mod handshake;
mod linger;
mod links;
mod output;
mod reload;
mod resolve;
mod socket;
mod sweep;
mod wire;

pub use crate::relay::DialError;

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
use crate::conn::ConnState;
use crate::connid::ConnId;
use crate::io::ReadPool;
use crate::relay::Relay;
use crate::script::FrameCtx;
use crate::stats::StatsSink;
use crate::transport::tls::TlsContext;
use crate::transport::Kind;
use crate::txtable::TxTable;
use socket::Socket;
use wire::register;

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
    /// Peers hold `connections` open to this worker now: shared with the
    /// other workers (Kamailio: a counter per worker in shm) for
    /// [`Host::least_load`].
    fn publish_load(&mut self, _connections: u64) {}
    /// The worker holding the fewest such connections and how many, as
    /// last published; `None` with one worker (see [`crate::balance`]).
    fn least_load(&self) -> Option<(usize, u64)> {
        None
    }
    /// Wakes worker `w`'s loop (Kamailio: its transaction-timer eventfd):
    /// it looks at the listeners again.
    fn wake_worker(&mut self, _w: usize) {}
}

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
    /// The socket of each connection of `relay` (a closed connection's
    /// until the end of the step that closed it, see `finish_closed`).
    sockets: HashMap<ConnId, Socket>,
    /// TLS contexts (`tls:`/`wss:` listeners, `msrps://` next hops).
    tls: Option<Arc<TlsContext>>,
    /// The host's TLS generation `tls` was built for ([`reload`]).
    tls_gen: u64,
    /// Connections that used their turn with data left: they go on in the
    /// next loop pass.
    yielded: Vec<ConnId>,
    /// This worker's share of the gauges as last published ([`gauges`]).
    gauges: [i64; gauges::N_GAUGES],
    read_pool: ReadPool,
    cfg: &'static Config,
    host: H,
    last_sweep: Instant,
    /// WebSocket connections the relay closed, drained until their peer
    /// closes too (see `linger`).
    lingering: Vec<linger::Lingering>,
    /// Next-hop name lookups, off the loop.
    dns: crate::dns::Dns,
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
            relay: Relay::new(cfg, table, stats, seed, first as u64, Instant::now()),
            sockets: HashMap::default(),
            tls: None,
            tls_gen: 0,
            yielded: Vec::new(),
            gauges: [0; gauges::N_GAUGES],
            read_pool: ReadPool::default(),
            cfg,
            host,
            last_sweep: Instant::now(),
            lingering: Vec::new(),
            dns: crate::dns::Dns::new(&cfg.dns),
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
        self.relay.worker = worker;
        for (w, s) in links {
            let t = self.relay.alloc_id();
            self.poll.registry().register(
                &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(
                    &s,
                ))),
                token(t),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.relay
                .conns
                .insert(t, ConnState::link(w, self.cfg, self.relay.now));
            self.sockets.insert(t, Socket::link(s));
            self.relay.links.insert(w, t);
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
                self.relay.throttle_timeout(POLL_TIMEOUT, Instant::now())
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
            self.relay.now = Instant::now();
            for ev in events.iter() {
                let t = conn_id(ev.token());
                if ev.token() == WAKE {
                    self.guarded(t, |s| {
                        s.on_timer();
                        s.balance_accepts();
                    });
                } else if ev.token() == DNS {
                    self.guarded(t, |s| s.on_dns());
                } else if ev.token().0 < self.listeners.len() {
                    self.guarded(t, |s| s.accept(ev.token().0));
                } else {
                    if ev.is_writable() {
                        self.guarded(t, |s| s.on_writable(t));
                    }
                    if ev.is_read_closed() || ev.is_error() {
                        if let Some(sock) = self.sockets.get_mut(&t) {
                            sock.peer_shut = true;
                        }
                    }
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        self.guarded(t, |s| s.drive(t));
                    }
                }
            }
            for t in again {
                self.relay.sched.wake(t);
            }
            self.relay.wake_throttled();
            self.settle();
            self.relay.now = Instant::now();
            self.housekeeping(self.relay.now);
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
            self.drive_links_with_input();
        }
    }

    /// Timers of the loop: transaction expiry, RFC 4976 §6.1 / §6.5
    /// connection timers, connection-map expiry.
    fn housekeeping(&mut self, now: Instant) {
        if self.relay.tracker.table().poll_expired() {
            self.guarded(conn_id(WAKE), |s| s.on_timer());
        }
        self.guarded(conn_id(WAKE), |s| {
            let (relay, mut io) = s.split();
            relay.handle_timeout(now, &mut io);
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
            let (relay, mut io) = self.split();
            relay.sweep(now, &mut io);
            self.finish_closed();
            self.refresh_gauges();
            self.balance_accepts();
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
        let (relay, mut io) = self.split();
        relay.table_expired(&mut io);
    }

    /// The relay core, and the driver's side of what it asks
    /// ([`crate::relay::Io`]) borrowed from the other fields.
    fn split(&mut self) -> (&mut Relay, dial::Wires<'_>) {
        let io = dial::Wires {
            poll: &self.poll,
            sockets: &mut self.sockets,
            tls: self.tls.as_ref(),
            dns: &mut self.dns,
            cfg: self.cfg,
        };
        (&mut self.relay, io)
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
        self.finish_closed();
    }

    /// Tears a connection down and fixes everything that referred to it.
    fn close(&mut self, t: ConnId, why: &str) {
        let (relay, mut io) = self.split();
        relay.close(t, why, &mut io);
        self.finish_closed();
    }

    /// Closes the sockets of the connections the relay closed (its
    /// goodbye written, a WebSocket left to linger), and hands the
    /// sessions that ended with them to the host.
    fn finish_closed(&mut self) {
        let closed = self.relay.take_closed();
        if closed.is_empty() {
            return;
        }
        for (t, c) in closed {
            let Some(mut sock) = self.sockets.remove(&t) else {
                continue;
            };
            self.closed += 1;
            let _ =
                self.poll
                    .registry()
                    .deregister(&mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(
                        &sock.stream,
                    )));
            sock.goodbye();
            self.linger(&c, &sock);
        }
        self.sessions_ended();
    }
}
