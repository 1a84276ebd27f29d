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
//! Memory per stream is bounded: reads are at most [`READ_CHUNK`] bytes, the
//! parser and the chunker never hold a body, and a destination whose output
//! queue passes the high watermark stops its sources from being read (TCP
//! flow control then slows the senders) until it drains below the low
//! watermark.
//!
//! Fairness (RFC 4975 §7.1.1): a connection carries one outgoing chunk at a
//! time; at every chunk boundary the connection goes to the next waiting
//! source, and responses queued for it go out first.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use msrp_core::{
    build, ChunkEvent, Chunker, EndFlag, Event, FailureReport, FrameHead, Header, MsrpUri,
    ParseError, Parser, StartLine,
};

use super::config::{Config, READ_CHUNK};
use super::script::{self, FrameCtx};
use super::tid::TidGen;
use crate::{log_dbg, log_err, log_info, log_warn};

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
/// Poll timeout: also the period of `Host::tick` and of transaction expiry.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// A request being forwarded: the state that outlives its head.
struct Forward {
    dest: Token,
    method: Bytes,
    to_path: Vec<Bytes>,
    from_path: Vec<Bytes>,
    /// Headers other than To-Path/From-Path, as received.
    others: Vec<Header>,
    has_body: bool,
    chunker: Chunker,
    /// Outgoing events not yet written (waiting for the destination).
    pending: VecDeque<ChunkEvent>,
    /// Transaction ID of the open outgoing chunk (the destination's stream
    /// slot is held while it is `Some`).
    cur_tid: Option<Bytes>,
    /// The incoming chunk's end-line has been parsed.
    finished: bool,
    /// For the transaction table.
    is_send: bool,
    failure_report: FailureReport,
    src_tid: Bytes,
    src_from_path: Vec<Bytes>,
    relay_uri: Bytes,
    /// The relay's own 200 to the previous hop, sent when the incoming chunk
    /// is complete (RFC 4976 §6.4.1).
    auto_reply: Option<Bytes>,
}

/// State of the frame currently arriving on a connection.
enum Incoming {
    /// Between frames.
    Idle,
    Forward(Box<Forward>),
    /// The frame is not forwarded: swallow it up to its end-line.
    Discard,
}

/// Why a connection is not being read right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    No,
    /// Another source holds the destination's stream slot.
    OnSlot(Token),
    /// The destination's output queue is above the high watermark.
    OnDrain(Token),
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    /// Set for connections the relay opened (key of the reuse map).
    outbound: Option<SocketAddr>,
    connected: bool,
    rbuf: BytesMut,
    parser: Parser,
    eof: bool,
    /// Bytes waiting to be written, in order.
    out: VecDeque<Bytes>,
    out_bytes: usize,
    /// Complete frames (responses) that wait for the chunk being streamed
    /// into this connection to end.
    deferred: VecDeque<Bytes>,
    /// Source that holds (or has been handed) this connection's stream slot.
    stream_owner: Option<Token>,
    slot_waiters: VecDeque<Token>,
    drain_waiters: Vec<Token>,
    incoming: Incoming,
    blocked: Blocked,
    /// Close as soon as the output queue is flushed.
    closing: bool,
}

/// What a forwarded request's transaction is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxKind {
    /// An outgoing SEND chunk: the relay consumes its response itself.
    Chunk(FailureReport),
    /// Any other request: its response goes back to the source.
    PassBack,
}

/// A request forwarded by this worker and not yet answered.
struct Outstanding {
    kind: TxKind,
    src: Token,
    src_tid: Bytes,
    /// From-Path of the request as received (the way back).
    src_from_path: Vec<Bytes>,
    /// The relay's own URI (first To-Path URI of the request as received).
    relay_uri: Bytes,
    /// Set once the request's last byte is queued to the next hop.
    deadline: Option<Instant>,
}

pub struct Engine<H: Host> {
    poll: Poll,
    listeners: Vec<(TcpListener, SocketAddr)>,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    outbound: HashMap<SocketAddr, Token>,
    outstanding: HashMap<(Token, Bytes), Outstanding>,
    /// Deadlines in the order they were set (the timeout is constant).
    deadlines: VecDeque<(Instant, Token, Bytes)>,
    ready: VecDeque<Token>,
    tids: TidGen,
    cfg: &'static Config,
    host: H,
}

impl<H: Host> Engine<H> {
    pub fn new(
        cfg: &'static Config,
        listeners: Vec<std::net::TcpListener>,
        host: H,
        seed: u64,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
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
            conns: HashMap::new(),
            next_token: first,
            outbound: HashMap::new(),
            outstanding: HashMap::new(),
            deadlines: VecDeque::new(),
            ready: VecDeque::new(),
            tids: TidGen::new(seed),
            cfg,
            host,
        })
    }

    /// Runs the loop forever (the worker process's life).
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            self.host.tick();
            match self.poll.poll(&mut events, Some(POLL_TIMEOUT)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                let t = ev.token();
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
            while let Some(t) = self.ready.pop_front() {
                self.guarded(t, |s| {
                    if let Some(c) = s.conns.get_mut(&t) {
                        c.blocked = Blocked::No;
                    }
                    s.drive(t)
                });
            }
            self.expire(Instant::now());
        }
    }

    /// Runs one step for connection `t`; a panic (a bug) costs only that
    /// connection, never the worker and its other sessions.
    fn guarded(&mut self, t: Token, f: impl FnOnce(&mut Self)) {
        if catch_unwind(AssertUnwindSafe(|| f(self))).is_err() {
            log_err!(
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
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            parser: Parser::new(cfg.limits),
            eof: false,
            out: VecDeque::new(),
            out_bytes: 0,
            deferred: VecDeque::new(),
            stream_owner: None,
            slot_waiters: VecDeque::new(),
            drain_waiters: Vec::new(),
            incoming: Incoming::Idle,
            blocked: Blocked::No,
            closing: false,
        }
    }

    fn accept(&mut self, idx: usize) {
        loop {
            let (stream, peer) = match self.listeners[idx].0.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log_err!("accept on {} failed: {e}", self.listeners[idx].1);
                    return;
                }
            };
            if self.conns.len() >= self.cfg.max_connections {
                log_warn!(
                    "refusing connection from {peer}: max_connections ({}) reached",
                    self.cfg.max_connections
                );
                continue;
            }
            let local = stream.local_addr().unwrap_or(self.listeners[idx].1);
            let t = self.alloc_token();
            let mut c = Self::new_conn(stream, peer, local, None, self.cfg);
            if let Err(e) = self.poll.registry().register(
                &mut c.stream,
                t,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log_err!("cannot register connection from {peer}: {e}");
                continue;
            }
            log_dbg!("accepted connection {} from {peer} on {local}", t.0);
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
            let len = c.rbuf.len();
            c.rbuf.resize(len + READ_CHUNK, 0);
            let r = c.stream.read(&mut c.rbuf[len..]);
            match r {
                Ok(0) => {
                    c.rbuf.truncate(len);
                    c.eof = true;
                }
                Ok(n) => c.rbuf.truncate(len + n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.rbuf.truncate(len);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => c.rbuf.truncate(len),
                Err(e) => {
                    c.rbuf.truncate(len);
                    let peer = c.peer;
                    log_info!("connection {} with {peer}: read error: {e}", t.0);
                    self.close(t, "read error");
                    return;
                }
            }
        }
    }

    fn on_parse_error(&mut self, t: Token, e: ParseError) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        log_warn!(
            "malformed MSRP from peer {} (connection {}): {e}; closing the connection",
            c.peer,
            t.0
        );
        c.rbuf.clear();
        self.close(t, "malformed input");
    }

    fn on_eof(&mut self, t: Token) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        if c.parser.in_frame() {
            log_warn!(
                "peer {} closed connection {} in the middle of a frame (truncated)",
                c.peer,
                t.0
            );
        } else {
            log_dbg!("peer {} closed connection {}", c.peer, t.0);
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

    /// Writes the pending outgoing events of the frame `t` is forwarding, as
    /// far as the destination allows. Returns false when `t` must wait (or is
    /// gone).
    fn pump(&mut self, t: Token) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(&t) else {
                return false;
            };
            let Incoming::Forward(f) = &mut c.incoming else {
                return true;
            };
            let dest = f.dest;
            let Some(ev) = f.pending.pop_front() else {
                if f.finished {
                    let reply = f.auto_reply.take();
                    c.incoming = Incoming::Idle;
                    if let Some(r) = reply {
                        self.push_frame(t, r);
                    }
                }
                return true;
            };
            let Some(d) = self.conns.get_mut(&dest) else {
                // destination gone: the rest of the frame is dropped
                if let Some(c) = self.conns.get_mut(&t) {
                    c.incoming = Incoming::Discard;
                }
                return true;
            };
            match ev {
                ChunkEvent::Start(range) => {
                    if d.stream_owner.is_some_and(|o| o != t) {
                        if !d.slot_waiters.contains(&t) {
                            d.slot_waiters.push_back(t);
                        }
                        if let Some(Conn {
                            incoming: Incoming::Forward(f),
                            blocked,
                            ..
                        }) = self.conns.get_mut(&t)
                        {
                            f.pending.push_front(ChunkEvent::Start(range));
                            *blocked = Blocked::OnSlot(dest);
                        }
                        return false;
                    }
                    d.stream_owner = Some(t);
                    let tid = self.tids.next_tid();
                    let Some(Conn {
                        incoming: Incoming::Forward(f),
                        ..
                    }) = self.conns.get_mut(&t)
                    else {
                        return false;
                    };
                    let head = chunk_head(f, &tid, range);
                    let kind = if f.is_send {
                        TxKind::Chunk(f.failure_report)
                    } else {
                        TxKind::PassBack
                    };
                    let wants_response = f.method.as_ref() != b"REPORT"
                        && !(f.is_send && f.failure_report == FailureReport::No);
                    if wants_response {
                        let o = Outstanding {
                            kind,
                            src: t,
                            src_tid: f.src_tid.clone(),
                            src_from_path: f.src_from_path.clone(),
                            relay_uri: f.relay_uri.clone(),
                            deadline: None,
                        };
                        self.outstanding.insert((dest, tid.clone()), o);
                    }
                    if let Some(Conn {
                        incoming: Incoming::Forward(f),
                        ..
                    }) = self.conns.get_mut(&t)
                    {
                        f.cur_tid = Some(tid);
                    }
                    self.push_stream(dest, head);
                }
                ChunkEvent::Body(b) => {
                    self.push_stream(dest, b);
                    if self.check_backpressure(t, dest) {
                        return false;
                    }
                }
                ChunkEvent::End(flag) => {
                    let Some(Conn {
                        incoming: Incoming::Forward(f),
                        ..
                    }) = self.conns.get_mut(&t)
                    else {
                        return false;
                    };
                    let Some(tid) = f.cur_tid.take() else {
                        continue;
                    };
                    let end = if f.has_body {
                        build::body_end(&tid, flag)
                    } else {
                        build::end_line(&tid, flag)
                    };
                    self.push_stream(dest, end);
                    self.arm_deadline(dest, tid);
                    self.release_slot(dest, t);
                }
            }
        }
    }

    fn arm_deadline(&mut self, dest: Token, tid: Bytes) {
        let key = (dest, tid);
        if let Some(o) = self.outstanding.get_mut(&key) {
            let at = Instant::now() + self.cfg.transaction_timeout;
            o.deadline = Some(at);
            self.deadlines.push_back((at, key.0, key.1));
        }
    }

    /// Transactions without a response within `transaction_timeout`.
    fn expire(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.deadlines.front() {
            if *at > now {
                break;
            }
            let Some((at, dest, tid)) = self.deadlines.pop_front() else {
                break;
            };
            let key = (dest, tid);
            if self.outstanding.get(&key).and_then(|o| o.deadline) != Some(at) {
                continue; // answered meanwhile
            }
            if let Some(o) = self.outstanding.remove(&key) {
                log_info!(
                    "no response within {}s for transaction {} (from {}) on connection {}",
                    self.cfg.transaction_timeout.as_secs(),
                    String::from_utf8_lossy(&key.1),
                    String::from_utf8_lossy(&o.src_tid),
                    key.0 .0
                );
            }
        }
    }

    fn on_head(&mut self, t: Token, head: FrameHead) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        let mut ctx = FrameCtx::new(head, t.0 as i64, c.peer, c.local);
        // Give the script the body when it is already here in full.
        if ctx.head.has_body {
            let mut pat = b"\r\n-------".to_vec();
            pat.extend_from_slice(&ctx.head.transaction_id);
            if let Some(p) = memchr::memmem::find(&c.rbuf, &pat) {
                ctx.body = Bytes::copy_from_slice(&c.rbuf[..p]);
                ctx.body_complete = true;
            } else if c.rbuf.starts_with(&pat[2..]) {
                ctx.body_complete = true;
            }
        } else {
            ctx.body_complete = true;
        }
        let ctx = self.host.run_route(ctx);
        let known_len = ctx.body_complete.then_some(ctx.body.len() as u64);
        let FrameCtx { head, actions, .. } = ctx;
        let is_send = head.method() == Some(b"SEND");
        let fr = if is_send {
            head.failure_report().unwrap_or(FailureReport::Yes)
        } else {
            FailureReport::Yes
        };
        let replied = !actions.replies.is_empty();
        for (code, r) in actions.replies {
            // RFC 4975 §7.1.4 (applied per hop): no 200 for "no"/"partial".
            if is_send && code == 200 && fr != FailureReport::Yes {
                log_dbg!(
                    "not sending the script's 200 for a SEND with Failure-Report {}",
                    fr.as_str()
                );
                continue;
            }
            self.push_frame(t, r);
        }
        if !head.is_request() {
            self.on_response(t, &head, actions.relay);
        } else if actions.relay {
            match self.forward_request(t, &head, known_len, replied) {
                Ok(f) => {
                    if let Some(c) = self.conns.get_mut(&t) {
                        c.incoming = Incoming::Forward(Box::new(f));
                    }
                    return;
                }
                Err(Some(code)) if !replied && fr != FailureReport::No => {
                    if let Ok(r) = script::reply_frame(&head, code, b"Bad Request", b"") {
                        self.push_frame(t, r);
                    }
                }
                Err(_) => {}
            }
        }
        if let Some(c) = self.conns.get_mut(&t) {
            c.incoming = Incoming::Discard;
        }
    }

    /// RFC 4976 §6.4: the relay's URI moves from the head of To-Path to the
    /// head of From-Path; the request goes to the next To-Path hop under a new
    /// transaction ID (one per outgoing chunk). Returns `None` when the frame
    /// is not forwarded.
    fn forward_request(
        &mut self,
        t: Token,
        head: &FrameHead,
        known_len: Option<u64>,
        replied: bool,
    ) -> Result<Forward, Option<u16>> {
        let peer = self.conns.get(&t).map(|c| c.peer).ok_or(None)?;
        let is_send = head.method() == Some(b"SEND");
        if is_send {
            // RFC 4975 §7.3: a request the relay cannot make sense of gets 400.
            if let Err(e) = head.byte_range().and(head.failure_report()) {
                log_warn!("not relaying SEND from {peer}: {e}");
                return Err(Some(400));
            }
        }
        let (to, from) = match (head.to_path(), head.from_path()) {
            (Ok(to), Ok(from)) => (to, from),
            (Err(e), _) | (_, Err(e)) => {
                log_warn!("not relaying request from {peer}: {e}");
                return Err(Some(400));
            }
        };
        let Some((to_path, from_path)) = msrp_core::path::forward(&to, &from, &to[0]) else {
            log_warn!("not relaying request from {peer}: To-Path has no next hop");
            return Err(None);
        };
        let addr = match resolve(&to_path[0]) {
            Ok(a) => a,
            Err(e) => {
                log_warn!(
                    "not relaying request from {peer}: next hop {}: {e}",
                    String::from_utf8_lossy(&to_path[0])
                );
                return Err(None);
            }
        };
        let dest = match self.connection_to(addr) {
            Ok(d) => d,
            Err(e) => {
                log_warn!("cannot connect to next hop {addr}: {e}");
                return Err(None);
            }
        };
        let method = Bytes::copy_from_slice(head.method().unwrap_or(b"SEND"));
        let failure_report = if is_send {
            head.failure_report().unwrap_or(FailureReport::Yes)
        } else {
            FailureReport::Yes
        };
        let chunker = if is_send {
            // validated above
            let range = head.byte_range().ok().flatten();
            Chunker::new(range, self.cfg.max_chunk_size, known_len)
        } else {
            Chunker::new(None, 0, None)
        };
        // The relay's own 200 for "yes" (RFC 4976 §6.4.1), unless the script
        // already answered.
        let auto_reply = (is_send && failure_report == FailureReport::Yes && !replied)
            .then(|| script::reply_frame(head, 200, b"OK", b"").ok())
            .flatten();
        Ok(Forward {
            dest,
            method,
            to_path,
            from_path,
            others: head.other_headers().cloned().collect(),
            has_body: head.has_body,
            chunker,
            pending: VecDeque::new(),
            cur_tid: None,
            finished: false,
            is_send,
            failure_report,
            src_tid: head.transaction_id.clone(),
            src_from_path: from,
            relay_uri: to[0].clone(),
            auto_reply,
        })
    }

    /// A response arrived on `t`. Responses to the relay's own SEND chunks
    /// are consumed here (RFC 4976 §6.4.1: downstream responses to a SEND are
    /// not forwarded); a response to another request goes back to the
    /// connection and transaction it answers when the script called
    /// `msrp_relay()`.
    fn on_response(&mut self, t: Token, head: &FrameHead, relay: bool) {
        let key = (t, head.transaction_id.clone());
        let kind = match self.outstanding.get(&key) {
            Some(o) => o.kind,
            None => {
                log_info!(
                    "response {} for unknown transaction {} on connection {}: dropped",
                    head.status_code().unwrap_or(0),
                    String::from_utf8_lossy(&head.transaction_id),
                    t.0
                );
                return;
            }
        };
        let code = head.status_code().unwrap_or(0);
        match kind {
            TxKind::Chunk(_) => {
                self.outstanding.remove(&key);
                if code != 200 {
                    log_info!(
                        "next hop answered {code} to chunk {} (connection {})",
                        String::from_utf8_lossy(&head.transaction_id),
                        t.0
                    );
                }
            }
            TxKind::PassBack if relay => {
                if let Some(o) = self.outstanding.remove(&key) {
                    self.pass_back(head, o);
                }
            }
            TxKind::PassBack => {}
        }
    }

    /// Sends a response back with the original transaction ID.
    fn pass_back(&mut self, head: &FrameHead, o: Outstanding) {
        if !self.conns.contains_key(&o.src) {
            // RFC 4976 §6.4.3: the return connection is gone: discard silently.
            log_dbg!("response for a connection that is gone: dropped");
            return;
        }
        let (code, comment) = match &head.start {
            StartLine::Response { code, comment } => (*code, comment.clone()),
            StartLine::Request { .. } => return,
        };
        let rto = head.to_path().unwrap_or_default();
        let rfrom = head.from_path().unwrap_or_default();
        let (to_path, from_path) = match msrp_core::path::forward(&rto, &rfrom, &o.relay_uri) {
            Some(p) if rto.len() >= 2 => p,
            _ => {
                let mut f = vec![o.relay_uri.clone()];
                f.extend(rfrom);
                (o.src_from_path.clone(), f)
            }
        };
        let others: Vec<_> = head.other_headers().cloned().collect();
        let mut frame = build::response_head(
            &o.src_tid,
            code,
            comment.as_deref(),
            &to_path,
            &from_path,
            &others,
        );
        frame.extend_from_slice(&build::end_line(&o.src_tid, EndFlag::Complete));
        self.push_frame(o.src, frame.freeze());
    }

    /// Existing connection to `addr`, or a new non-blocking connect.
    fn connection_to(&mut self, addr: SocketAddr) -> io::Result<Token> {
        if let Some(t) = self.outbound.get(&addr) {
            if self.conns.get(t).is_some_and(|c| !c.closing) {
                return Ok(*t);
            }
        }
        let stream = TcpStream::connect(addr)?;
        let t = self.alloc_token();
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut c = Self::new_conn(stream, addr, local, Some(addr), self.cfg);
        self.poll
            .registry()
            .register(&mut c.stream, t, Interest::READABLE | Interest::WRITABLE)?;
        log_dbg!("connecting to next hop {addr} (connection {})", t.0);
        self.conns.insert(t, c);
        self.outbound.insert(addr, t);
        Ok(t)
    }

    /// Queues bytes of the chunk being streamed into `dest`.
    fn push_stream(&mut self, dest: Token, b: Bytes) {
        if b.is_empty() {
            return;
        }
        if let Some(d) = self.conns.get_mut(&dest) {
            d.out_bytes += b.len();
            d.out.push_back(b);
            self.flush(dest);
        }
    }

    /// Queues a complete frame (a response) for `dest`: right away, or after
    /// the chunk currently being streamed into it.
    fn push_frame(&mut self, dest: Token, frame: Bytes) {
        let Some(d) = self.conns.get_mut(&dest) else {
            return;
        };
        let streaming = d.stream_owner.is_some_and(|o| {
            matches!(
                self.conns.get(&o).map(|c| &c.incoming),
                Some(Incoming::Forward(f)) if f.cur_tid.is_some() && f.dest == dest
            )
        });
        let Some(d) = self.conns.get_mut(&dest) else {
            return;
        };
        if streaming {
            d.deferred.push_back(frame);
        } else {
            d.out_bytes += frame.len();
            d.out.push_back(frame);
            self.flush(dest);
        }
    }

    /// Source `src` ended a chunk into `dest`: let deferred frames out, then
    /// hand the stream slot to the next waiting source.
    fn release_slot(&mut self, dest: Token, src: Token) {
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
        self.flush(dest);
    }

    /// Pauses `src` while `dest` has more than the high watermark queued.
    fn check_backpressure(&mut self, src: Token, dest: Token) -> bool {
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
                    log_warn!("connect to next hop {peer} failed: {e}");
                    self.close(t, "connect failed");
                    return;
                }
            }
            match c.stream.peer_addr() {
                Ok(_) => {
                    c.connected = true;
                    log_dbg!("connected to next hop {} (connection {})", c.peer, t.0);
                    // data may already be waiting to be read
                    self.ready.push_back(t);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    let peer = c.peer;
                    log_warn!("connect to next hop {peer} failed: {e}");
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
                    c.out_bytes -= n;
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
                    log_info!("connection {} with {peer}: write error: {e}", t.0);
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
        }
    }

    /// Tears a connection down and fixes everything that referred to it.
    fn close(&mut self, t: Token, why: &str) {
        let Some(mut c) = self.conns.remove(&t) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        if let Some(key) = c.outbound {
            if self.outbound.get(&key) == Some(&t) {
                self.outbound.remove(&key);
            }
        }
        log_dbg!("connection {} with {} closed: {why}", t.0, c.peer);
        // A chunk this connection was streaming downstream is cut: abort it
        // there with '#' (RFC 4975 §7.1) so the next hop resynchronises.
        if let Incoming::Forward(f) = std::mem::replace(&mut c.incoming, Incoming::Idle) {
            if let Some(tid) = &f.cur_tid {
                let end = if f.has_body {
                    build::body_end(tid, EndFlag::Aborted)
                } else {
                    build::end_line(tid, EndFlag::Aborted)
                };
                self.push_stream(f.dest, end);
            }
            if let Some(d) = self.conns.get_mut(&f.dest) {
                d.slot_waiters.retain(|w| *w != t);
                d.drain_waiters.retain(|w| *w != t);
            }
            // releases the slot whether held or only handed over
            self.release_slot(f.dest, t);
        }
        // Sources that were feeding or waiting for this connection.
        let mut wake = Vec::new();
        for (tok, other) in self.conns.iter_mut() {
            if matches!(&other.incoming, Incoming::Forward(f) if f.dest == t) {
                other.incoming = Incoming::Discard;
            }
            if matches!(other.blocked, Blocked::OnSlot(d) | Blocked::OnDrain(d) if d == t) {
                other.blocked = Blocked::No;
                wake.push(*tok);
            }
        }
        self.ready.extend(wake);
        // Transactions forwarded on this connection will get no response.
        let before = self.outstanding.len();
        self.outstanding.retain(|(dest, _), _| *dest != t);
        let lost = before - self.outstanding.len();
        if lost > 0 {
            log_info!(
                "next hop {} closed with {lost} transaction(s) outstanding",
                c.peer
            );
        }
    }
}

/// Head of one outgoing chunk of a forwarded request.
fn chunk_head(f: &Forward, tid: &[u8], range: Option<msrp_core::ByteRange>) -> Bytes {
    let headers: Vec<Header> = match range {
        None => f.others.clone(),
        Some(r) => {
            let value = Bytes::from(r.to_string());
            let mut hs = Vec::with_capacity(f.others.len() + 1);
            let mut placed = false;
            for h in &f.others {
                if h.is("Byte-Range") {
                    if !placed {
                        hs.push(Header::new("Byte-Range", value.clone()));
                        placed = true;
                    }
                } else {
                    hs.push(h.clone());
                }
            }
            if !placed {
                // after Message-ID, where senders usually put it
                let at = hs
                    .iter()
                    .position(|h| h.is("Message-ID"))
                    .map_or(0, |p| p + 1);
                hs.insert(at, Header::new("Byte-Range", value));
            }
            hs
        }
    };
    build::request_head(
        tid,
        &f.method,
        &f.to_path,
        &f.from_path,
        &headers,
        f.has_body,
    )
    .freeze()
}

/// Socket address of a next-hop MSRP URI (RFC 4975 §6: host and port of the
/// URI; default port 2855). Names are resolved with the system resolver.
fn resolve(uri: &[u8]) -> Result<SocketAddr, String> {
    let u = MsrpUri::parse(uri).map_err(|e| e.to_string())?;
    if !u.transport.eq_ignore_ascii_case("tcp") {
        return Err(format!("transport {:?} not supported", u.transport));
    }
    let port = u.port_or_default();
    match &u.host {
        msrp_core::Host::Ipv4(a) => Ok(SocketAddr::from((*a, port))),
        msrp_core::Host::Ipv6(a) => Ok(SocketAddr::from((*a, port))),
        msrp_core::Host::Name(n) => (n.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {n}: {e}"))?
            .next()
            .ok_or_else(|| format!("{n} has no address")),
    }
}
