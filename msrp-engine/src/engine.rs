//! The relay engine of one MSRP worker process: a single-threaded mio event
//! loop over the module's own listening sockets and connections.
//!
//! Per incoming frame it runs `event_route[msrp:frame-in]` once (through
//! [`Host`]), then carries out what the script decided: replies go back on the
//! incoming connection; `msrp_relay()` forwards a request to the next To-Path
//! hop (RFC 4976 §6.4), streaming the body as it arrives and re-chunking SEND
//! bodies to `msrp_max_chunk_size`, or routes a response to a non-SEND
//! request back to the connection and transaction it answers.
//!
//! Memory per stream is bounded: reads are at most [`READ_CHUNK`](crate::config::READ_CHUNK) bytes, the
//! parser and the chunker never hold a body, and a destination whose output
//! queue passes the high watermark stops its sources from being read (TCP
//! flow control then slows the senders) until it drains below the low
//! watermark.
//!
//! Fairness (RFC 4975 §7.1.1): a connection carries one outgoing chunk at a
//! time; at every chunk boundary the connection goes to the next waiting
//! source, and responses queued for it go out first.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use msrp_core::{Event, ParseError, Parser};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::config::Config;
use super::forward::Forward;
use super::io::ReadPool;
use super::script::FrameCtx;
use super::stats::{Stat, StatsSink};
use super::tid::TidGen;
use super::transactions::Transactions;
use super::txtable::{Cause, TxTable};

/// What the engine needs from its host (Kamailio): running the event route.
pub trait Host {
    /// Runs `event_route[msrp:frame-in]` for the frame and returns it with the
    /// script's recorded actions.
    fn run_route(&mut self, ctx: FrameCtx) -> FrameCtx;
    /// Called once per loop pass (Kamailio: `cfg_update()`).
    fn tick(&mut self);
}

/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;
/// A connection's output queue may reach this many high watermarks before
/// the relay gives up on the peer.
const OUT_QUEUE_LIMIT_FACTOR: usize = 64;
/// Poll timeout: also the period of `Host::tick` and of transaction expiry.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// State of the frame currently arriving on a connection.
pub(super) enum Incoming {
    /// Between frames.
    Idle,
    Forward(Box<Forward>),
    /// The frame is not forwarded: swallow it up to its end-line.
    Discard,
}

/// Why a connection is not being read right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Blocked {
    No,
    /// Another source holds the destination's stream slot.
    OnSlot(Token),
    /// The destination's output queue is above the high watermark.
    OnDrain(Token),
    /// The destination has too many unanswered requests of the relay's.
    OnWindow(Token),
}

pub(super) struct Conn {
    stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    /// Set for connections the relay opened (key of the reuse map).
    outbound: Option<SocketAddr>,
    connected: bool,
    pub(super) rbuf: BytesMut,
    parser: Parser,
    eof: bool,
    /// Bytes waiting to be written, in order.
    out: VecDeque<Bytes>,
    out_bytes: usize,
    /// Complete frames (responses) that wait for the chunk being streamed
    /// into this connection to end.
    deferred: VecDeque<Bytes>,
    /// Source that holds (or has been handed) this connection's stream slot.
    pub(super) stream_owner: Option<Token>,
    pub(super) slot_waiters: VecDeque<Token>,
    pub(super) drain_waiters: Vec<Token>,
    /// Sources waiting for this next hop to answer (request window).
    pub(super) window_waiters: Vec<Token>,
    pub(super) incoming: Incoming,
    pub(super) blocked: Blocked,
    /// Close as soon as the output queue is flushed.
    closing: bool,
    /// Queued bytes wait for the end of this loop pass to be written.
    dirty: bool,
    /// Message-IDs this sender must not send more of (413 downstream).
    pub(super) rejected: HashSet<Bytes>,
    opened: Instant,
    /// Last time bytes moved in either direction.
    last_active: Instant,
    /// A complete frame head arrived (RFC 4976 §6.1 first-request rule).
    pub(super) got_frame: bool,
    /// Slot in the connection listing (RPC), if any.
    listed: Option<u32>,
}

pub struct Engine<H: Host> {
    poll: Poll,
    listeners: Vec<(TcpListener, SocketAddr)>,
    pub(super) conns: HashMap<Token, Conn>,
    next_token: usize,
    outbound: HashMap<SocketAddr, Token>,
    pub(super) tx: Transactions,
    pub(super) table: Box<dyn TxTable>,
    pub(super) stats: Box<dyn StatsSink>,
    pub(super) ready: VecDeque<Token>,
    /// Connections with queued bytes not yet written.
    dirty: Vec<Token>,
    pub(super) tids: TidGen,
    read_pool: ReadPool,
    pub(super) cfg: &'static Config,
    pub(super) host: H,
}

/// Token of the transaction timer's wake-up descriptor.
const WAKE: Token = Token(usize::MAX);

impl<H: Host> Engine<H> {
    pub fn new(
        cfg: &'static Config,
        listeners: Vec<std::net::TcpListener>,
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
        for (i, l) in listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let addr = l.local_addr()?;
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, Token(i), Interest::READABLE)?;
            ls.push((l, addr));
        }
        let first = ls.len();
        Ok(Engine {
            poll,
            listeners: ls,
            conns: HashMap::default(),
            next_token: first,
            outbound: HashMap::default(),
            tx: Transactions::default(),
            table,
            stats,
            ready: VecDeque::new(),
            dirty: Vec::new(),
            tids: TidGen::new(seed),
            read_pool: ReadPool::default(),
            cfg,
            host,
        })
    }

    /// Runs the loop forever (the worker process's life).
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut last_sweep = Instant::now();
        loop {
            self.host.tick();
            match self.poll.poll(&mut events, Some(POLL_TIMEOUT)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                let t = ev.token();
                if t == WAKE {
                    self.guarded(t, |s| s.on_timer_wakeup());
                    continue;
                }
                if t.0 < self.listeners.len() {
                    self.guarded(t, |s| s.accept(t.0));
                    continue;
                }
                if ev.is_writable() {
                    self.guarded(t, |s| s.on_writable(t));
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.guarded(t, |s| s.drive(t));
                }
            }
            // Woken sources and pending writes, until both settle (a write
            // can wake sources, a source can queue writes).
            while !self.ready.is_empty() || !self.dirty.is_empty() {
                while let Some(t) = self.ready.pop_front() {
                    self.guarded(t, |s| {
                        if let Some(c) = s.conns.get_mut(&t) {
                            c.blocked = Blocked::No;
                        }
                        s.drive(t)
                    });
                }
                for t in std::mem::take(&mut self.dirty) {
                    self.guarded(t, |s| s.flush(t));
                }
            }
            let now = Instant::now();
            self.expire_local(now);
            if now.duration_since(last_sweep) >= Duration::from_secs(1) {
                last_sweep = now;
                self.sweep_idle(now);
                super::cmap::with(|m| m.expire(now));
            }
        }
    }

    /// RFC 4976 §6.1: a new connection must send its first request within
    /// `first_request_timeout`; §6.5: idle connections MAY be closed
    /// (`idle_timeout`).
    fn sweep_idle(&mut self, now: Instant) {
        let first = self.cfg.first_request_timeout;
        let idle = self.cfg.idle_timeout;
        let mut close = Vec::new();
        for (t, c) in &self.conns {
            if !first.is_zero()
                && c.outbound.is_none()
                && !c.got_frame
                && now.duration_since(c.opened) > first
            {
                close.push((*t, c.peer, "no request within first_request_timeout"));
            } else if !idle.is_zero()
                && now.duration_since(c.last_active) > idle
                && c.out.is_empty()
                && c.stream_owner.is_none()
                && matches!(c.incoming, Incoming::Idle)
            {
                close.push((*t, c.peer, "idle_timeout"));
            }
        }
        for (t, peer, why) in close {
            log::info!("closing connection {} with {peer}: {why}", t.0);
            self.close(t, why);
        }
    }

    /// Runs one step for connection `t`; a panic (a bug) costs only that
    /// connection, never the worker and its other sessions.
    fn guarded(&mut self, t: Token, f: impl FnOnce(&mut Self)) {
        if catch_unwind(AssertUnwindSafe(|| f(self))).is_err() {
            log::error!(
                "internal error (panic) while handling connection {}; closing it",
                t.0
            );
            let _ = catch_unwind(AssertUnwindSafe(|| self.close(t, "internal error")));
        }
    }

    fn alloc_token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    fn new_conn(
        stream: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        outbound: Option<SocketAddr>,
        cfg: &Config,
    ) -> Conn {
        super::net::tune(&stream, cfg);
        Conn {
            stream,
            peer,
            local,
            outbound,
            connected: outbound.is_none(),
            rbuf: BytesMut::new(),
            parser: Parser::new(cfg.limits),
            eof: false,
            out: VecDeque::new(),
            out_bytes: 0,
            deferred: VecDeque::new(),
            stream_owner: None,
            slot_waiters: VecDeque::new(),
            drain_waiters: Vec::new(),
            window_waiters: Vec::new(),
            incoming: Incoming::Idle,
            blocked: Blocked::No,
            closing: false,
            dirty: false,
            rejected: HashSet::default(),
            opened: Instant::now(),
            last_active: Instant::now(),
            got_frame: false,
            listed: None,
        }
    }

    fn accept(&mut self, idx: usize) {
        loop {
            let (stream, peer) = match self.listeners[idx].0.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("accept on {} failed: {e}", self.listeners[idx].1);
                    return;
                }
            };
            if self.conns.len() >= self.cfg.max_connections {
                log::warn!(
                    "refusing connection from {peer}: max_connections ({}) reached",
                    self.cfg.max_connections
                );
                continue;
            }
            let stream: TcpStream = stream.into();
            let local = stream.local_addr().unwrap_or(self.listeners[idx].1);
            let t = self.alloc_token();
            let mut c = Self::new_conn(stream, peer, local, None, self.cfg);
            if let Err(e) = self.poll.registry().register(
                &mut SourceFd(&c.stream.as_raw_fd()),
                t,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::error!("cannot register connection from {peer}: {e}");
                continue;
            }
            log::debug!("accepted connection {} from {peer} on {local}", t.0);
            self.stats.add(Stat::ConnectionsAccepted, 1);
            self.stats.add(Stat::ConnectionsActive, 1);
            c.listed = self.stats.conn_opened(t.0 as u64, peer, local, false);
            self.conns.insert(t, c);
        }
    }

    /// Writes pending outgoing events, parses what is buffered, then reads
    /// more, until the connection would block, is blocked by flow control,
    /// or is gone.
    fn drive(&mut self, t: Token) {
        loop {
            // 1. events from buffered bytes
            loop {
                if !self.pump(t) {
                    return;
                }
                let Some(c) = self.conns.get_mut(&t) else {
                    return;
                };
                if c.blocked != Blocked::No {
                    return;
                }
                match c.parser.next(&mut c.rbuf) {
                    Ok(Some(ev)) => self.on_event(t, ev),
                    Ok(None) => break,
                    Err(e) => {
                        self.on_parse_error(t, e);
                        return;
                    }
                }
            }
            // 2. more bytes from the socket
            let Some(c) = self.conns.get_mut(&t) else {
                return;
            };
            if c.eof {
                self.on_eof(t);
                return;
            }
            if !c.connected {
                return;
            }
            let r = self.read_pool.read(&c.stream, &mut c.rbuf);
            let mut stop = false;
            let mut n = 0;
            match r {
                Ok(0) => c.eof = true,
                Ok(got) => n = got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stop = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let peer = c.peer;
                    log::info!("connection {} with {peer}: read error: {e}", t.0);
                    self.close(t, "read error");
                    return;
                }
            }
            if n > 0 {
                self.stats.add(Stat::BytesIn, n as i64);
                c.last_active = Instant::now();
            }
            if n == 0 && stop {
                return;
            }
        }
    }

    fn on_parse_error(&mut self, t: Token, e: ParseError) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        log::warn!(
            "malformed MSRP from peer {} (connection {}): {e}; closing the connection",
            c.peer,
            t.0
        );
        c.rbuf.clear();
        self.stats.add(Stat::ParseErrors, 1);
        self.close(t, "malformed input");
    }

    fn on_eof(&mut self, t: Token) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        if c.parser.in_frame() {
            log::warn!(
                "peer {} closed connection {} in the middle of a frame (truncated)",
                c.peer,
                t.0
            );
        } else {
            log::debug!("peer {} closed connection {}", c.peer, t.0);
        }
        self.close(t, "closed by peer");
    }

    fn on_event(&mut self, t: Token, ev: Event) {
        match ev {
            Event::Head(head) => self.on_head(t, head),
            Event::Body(bytes) => {
                let Some(c) = self.conns.get_mut(&t) else {
                    return;
                };
                if let Incoming::Forward(f) = &mut c.incoming {
                    f.chunker.body(bytes, &mut f.pending);
                    self.note_received(t);
                }
            }
            Event::End(flag) => {
                let Some(c) = self.conns.get_mut(&t) else {
                    return;
                };
                match &mut c.incoming {
                    Incoming::Forward(f) => {
                        f.chunker.end(flag, &mut f.pending);
                        f.finished = true;
                    }
                    _ => c.incoming = Incoming::Idle,
                }
            }
        }
    }

    /// The live outbound connection to `addr`, if any.
    /// Like Kamailio's TCP layer, a connection the peer opened to us counts
    /// too (a client behind NAT is reachable only over it).
    pub(super) fn existing_connection(&self, addr: SocketAddr) -> Option<Token> {
        self.outbound
            .get(&addr)
            .copied()
            .filter(|t| self.conns.get(t).is_some_and(|c| !c.closing))
            .or_else(|| {
                self.conns
                    .iter()
                    .find(|(_, c)| c.outbound.is_none() && c.peer == addr && !c.closing)
                    .map(|(t, _)| *t)
            })
    }

    /// Existing connection to `addr`, or a new non-blocking connect.
    pub(super) fn connection_to(&mut self, addr: SocketAddr) -> io::Result<Token> {
        if let Some(t) = self.existing_connection(addr) {
            return Ok(t);
        }
        let stream: TcpStream = mio::net::TcpStream::connect(addr)?.into();
        let t = self.alloc_token();
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut c = Self::new_conn(stream, addr, local, Some(addr), self.cfg);
        self.poll.registry().register(
            &mut SourceFd(&c.stream.as_raw_fd()),
            t,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        log::debug!("connecting to next hop {addr} (connection {})", t.0);
        self.stats.add(Stat::ConnectionsOpened, 1);
        self.stats.add(Stat::ConnectionsActive, 1);
        c.listed = self.stats.conn_opened(t.0 as u64, addr, local, true);
        self.conns.insert(t, c);
        self.outbound.insert(addr, t);
        Ok(t)
    }

    /// Queues bytes of the chunk being streamed into `dest`.
    pub(super) fn push_stream(&mut self, dest: Token, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.enqueue(dest, b);
    }

    /// Appends to `dest`'s output queue and writes what the socket takes.
    fn enqueue(&mut self, dest: Token, b: Bytes) {
        if let Some(d) = self.conns.get_mut(&dest) {
            d.out_bytes += b.len();
            d.out.push_back(b);
            self.mark_dirty(dest);
        }
    }

    /// `t` has bytes to write at the end of this loop pass (one vectored
    /// write for everything queued meanwhile, not one per piece).
    fn mark_dirty(&mut self, t: Token) {
        if let Some(c) = self.conns.get_mut(&t) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(t);
            }
        }
    }

    /// Queues a complete frame (a response) for `dest`: right away, or after
    /// the chunk currently being streamed into it.
    pub(super) fn push_frame(&mut self, dest: Token, frame: Bytes) {
        let Some(d) = self.conns.get(&dest) else {
            return;
        };
        let streaming = d.stream_owner.is_some_and(|o| {
            matches!(
                self.conns.get(&o).map(|c| &c.incoming),
                Some(Incoming::Forward(f)) if f.cur_tid.is_some() && f.dest == Some(dest)
            )
        });
        if !streaming {
            self.enqueue(dest, frame);
        } else if let Some(d) = self.conns.get_mut(&dest) {
            d.deferred.push_back(frame);
        }
    }

    /// Source `src` ended a chunk into `dest`: let deferred frames out, then
    /// hand the stream slot to the next waiting source.
    pub(super) fn release_slot(&mut self, dest: Token, src: Token) {
        let Some(d) = self.conns.get_mut(&dest) else {
            return;
        };
        if d.stream_owner != Some(src) {
            return;
        }
        d.stream_owner = None;
        while let Some(f) = d.deferred.pop_front() {
            d.out_bytes += f.len();
            d.out.push_back(f);
        }
        while let Some(w) = d.slot_waiters.pop_front() {
            if w == src {
                continue;
            }
            d.stream_owner = Some(w);
            self.ready.push_back(w);
            break;
        }
        self.mark_dirty(dest);
    }

    /// Pauses `src` while `dest` has more than the high watermark queued.
    pub(super) fn check_backpressure(&mut self, src: Token, dest: Token) -> bool {
        let high = self.cfg.queue_high;
        let Some(d) = self.conns.get_mut(&dest) else {
            return false;
        };
        if d.out_bytes <= high {
            return false;
        }
        if !d.drain_waiters.contains(&src) {
            d.drain_waiters.push(src);
        }
        if let Some(c) = self.conns.get_mut(&src) {
            c.blocked = Blocked::OnDrain(dest);
        }
        true
    }

    fn on_writable(&mut self, t: Token) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        if !c.connected {
            match c.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    let peer = c.peer;
                    log::warn!("connect to next hop {peer} failed: {e}");
                    self.close(t, "connect failed");
                    return;
                }
            }
            match c.stream.peer_addr() {
                Ok(_) => {
                    c.connected = true;
                    log::debug!("connected to next hop {} (connection {})", c.peer, t.0);
                    // data may already be waiting to be read
                    self.ready.push_back(t);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    let peer = c.peer;
                    log::warn!("connect to next hop {peer} failed: {e}");
                    self.close(t, "connect failed");
                    return;
                }
            }
        }
        self.flush(t);
    }

    /// Writes as much of the output queue as the socket takes.
    fn flush(&mut self, t: Token) {
        let low = self.cfg.queue_low;
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        c.dirty = false;
        if !c.connected {
            return;
        }
        while !c.out.is_empty() {
            let slices: Vec<IoSlice<'_>> = c
                .out
                .iter()
                .take(MAX_IOV)
                .map(|b| IoSlice::new(b))
                .collect();
            match c.stream.write_vectored(&slices) {
                Ok(0) => break,
                Ok(mut n) => {
                    self.stats.add(Stat::BytesOut, n as i64);
                    c.out_bytes -= n;
                    c.last_active = Instant::now();
                    while n > 0 {
                        let Some(front) = c.out.front_mut() else {
                            break;
                        };
                        if front.len() <= n {
                            n -= front.len();
                            c.out.pop_front();
                        } else {
                            front.advance(n);
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let peer = c.peer;
                    log::info!("connection {} with {peer}: write error: {e}", t.0);
                    self.close(t, "write error");
                    return;
                }
            }
        }
        if c.out_bytes <= low && !c.drain_waiters.is_empty() {
            self.ready.extend(c.drain_waiters.drain(..));
        }
        if c.closing && c.out.is_empty() {
            self.close(t, "flushed");
        } else if c.out_bytes > self.cfg.queue_high * OUT_QUEUE_LIMIT_FACTOR {
            // Sources are paused above the high watermark, so only frames the
            // relay itself produced for this peer (responses, REPORTs) pile
            // up here: the peer does not read.
            let peer = c.peer;
            log::warn!(
                "peer {peer} does not read: {} bytes queued for connection {}; closing it",
                c.out_bytes,
                t.0
            );
            self.close(t, "peer not reading");
        }
    }

    /// Tears a connection down and fixes everything that referred to it.
    pub(super) fn close(&mut self, t: Token, why: &str) {
        let Some(mut c) = self.conns.remove(&t) else {
            return;
        };
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&c.stream.as_raw_fd()));
        if let Some(key) = c.outbound {
            if self.outbound.get(&key) == Some(&t) {
                self.outbound.remove(&key);
            }
        }
        log::debug!("connection {} with {} closed: {why}", t.0, c.peer);
        self.stats.add(Stat::ConnectionsActive, -1);
        if let Some(slot) = c.listed {
            self.stats.conn_closed(slot);
        }
        super::cmap::with(|m| m.remove_connection(t.0 as i64));
        // A chunk this connection was streaming downstream is cut: abort it
        // there with '#' (RFC 4975 §7.1) so the next hop resynchronises.
        if let Incoming::Forward(f) = std::mem::replace(&mut c.incoming, Incoming::Idle) {
            let in_id = f.in_id;
            self.abort_forward(t, f);
            if let Some(id) = in_id {
                self.in_tx_received_all(id);
            }
        }
        // Sources that were waiting for this connection.
        let mut wake = Vec::new();
        for (tok, other) in self.conns.iter_mut() {
            if matches!(other.blocked,
                Blocked::OnSlot(d) | Blocked::OnDrain(d) | Blocked::OnWindow(d) if d == t)
            {
                other.blocked = Blocked::No;
                wake.push(*tok);
            }
        }
        self.ready.extend(wake);
        // Requests sent on this connection will get no response; sources
        // still sending into it stop (and their senders get REPORTs).
        let cause = if c.connected {
            Cause::NextHopClosed
        } else {
            Cause::Unreachable
        };
        self.next_hop_lost(t, cause);
    }
}
