//! Reads, writes and connections: accepting, connecting, driving the parser
//! over what a connection read, output queues and their watermarks.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use mio::{Interest, Poll};
use msrp_core::{Event, ParseError};

use super::socket::Socket;
use super::{token, Engine, Host};
use crate::balance;
use crate::connid::ConnId;
use crate::relay::{Accepted, BodyCheck, EofAction, ReadGate, Step};
use crate::stats::Stat;
use crate::transport::{Got, Kind, Layer, LayerError, WsPolicy};

/// Reads of one connection before it yields to the others (1 MiB).
const READS_PER_TURN: usize = 4;

/// What one read of a connection gave.
enum Read {
    Data,
    /// Bytes, and the socket had no more then (see
    /// [`crate::io::ReadPool::last_read_short`]): no read until the next
    /// event or wake-up.
    Short,
    /// Nothing to read now.
    Empty,
    /// The connection is gone (closed here).
    Gone,
}

impl<H: Host> Engine<H> {
    /// Whether this worker takes the next new connection (see
    /// [`crate::balance`]), `after` connections into this readiness event.
    /// Its count is shared first: the others compare with it. A worker
    /// that stops part-way leaves the rest of the backlog to the least
    /// loaded one, which may have handled its own readiness event already:
    /// it is woken.
    fn accept_turn(&mut self, after: usize) -> bool {
        let mine = self.relay.accepted_open();
        self.host.publish_load(mine);
        match self.host.least_load() {
            Some((w, least)) if !balance::accept_turn(mine, least) => {
                if after > 0 {
                    self.host.wake_worker(w);
                }
                false
            }
            _ => true,
        }
    }

    /// Whether no worker has room for a new connection: this one is full
    /// and the least loaded one holds as many accepted connections as this
    /// one (the dials and links beside them are taken to be alike). With
    /// one worker, whether this one is full.
    fn all_full(&self) -> bool {
        let full = self.relay.conns.len() >= self.cfg.max_connections;
        match self.host.least_load() {
            Some((_, least)) => full && least >= self.relay.accepted_open(),
            None => full,
        }
    }

    /// Once a second with several workers, and when another worker wakes
    /// this one: this worker's count is shared again (connections closed
    /// since it last accepted), and its listeners are looked at. A worker
    /// that declined new connections counts on the least loaded one to
    /// take them, but the least loaded may have handled its readiness
    /// event before connections closed elsewhere made it so; then nobody
    /// would take them until the next arrival.
    pub(super) fn balance_accepts(&mut self) {
        if self.host.least_load().is_none() {
            return;
        }
        for idx in 0..self.listeners.len() {
            self.accept(idx);
        }
    }

    /// Accepts on listener `idx` until its backlog is empty, or until this
    /// worker holds more than its share of the connections.
    pub(super) fn accept(&mut self, idx: usize) {
        for n in 0.. {
            if !self.accept_turn(n) {
                return;
            }
            // The workers share the listeners: a full worker leaves new
            // connections to the others (accepting only to close them, it
            // would win every race and refuse while others have room),
            // unless they are all full: then it refuses them below.
            if self.relay.conns.len() >= self.cfg.max_connections && !self.all_full() {
                log::debug!(
                    "max_connections ({}) reached: leaving new connections on {} to the other workers",
                    self.cfg.max_connections,
                    self.listeners[idx].1
                );
                return;
            }
            let (stream, peer) = match self.listeners[idx].0.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("accept on {} failed: {e}", self.listeners[idx].1);
                    return;
                }
            };
            if self.relay.conns.len() >= self.cfg.max_connections {
                log::warn!(
                    "refusing connection from {peer}: max_connections ({}) reached",
                    self.cfg.max_connections
                );
                continue;
            }
            let stream: TcpStream = stream.into();
            let (_, addr, kind) = &self.listeners[idx];
            let (kind, local) = (*kind, stream.local_addr().unwrap_or(*addr));
            let layer = match self.accept_layer(idx, kind) {
                Ok(l) => l,
                Err(e) => {
                    log::error!(
                        "refusing connection from {peer} on {}:{local}: {e}",
                        kind.name()
                    );
                    continue;
                }
            };
            let t = self.relay.alloc_id();
            if let Err(e) = register(&self.poll, &stream, t) {
                log::error!("cannot register connection from {peer}: {e}");
                continue;
            }
            let sock = Socket::tcp(stream, self.cfg).layered(layer);
            let a = Accepted {
                peer,
                local,
                kind,
                layer: sock.view(),
            };
            self.sockets.insert(t, sock);
            self.relay.accepted(t, a, self.relay.now);
        }
    }

    /// The TLS/WebSocket layer of a connection accepted on listener `idx`
    /// (of `kind`; its TLS policy is the one of `cfg.listen[idx]`).
    fn accept_layer(&self, idx: usize, kind: Kind) -> Result<Option<Layer>, String> {
        let tls = match (kind.tls(), &self.tls) {
            (false, _) => None,
            (true, Some(ctx)) => Some(ctx.accept(idx)?),
            (true, None) => return Err("TLS is not configured".to_string()),
        };
        let ws = WsPolicy {
            origins: &self.cfg.ws_origins,
            max_message: self.cfg.ws_max_message,
        };
        Ok(Layer::accepted(kind, tls, ws))
    }

    /// Parses and handles what connection `t` has, reading more as needed,
    /// until the socket has nothing more, `t` waits for a destination, or
    /// is gone.
    ///
    /// A connection that still has data after [`READS_PER_TURN`] reads
    /// yields to the others and goes on in the next loop pass: a fast
    /// sender cannot keep the worker to itself, and a second source gets to
    /// wait for a shared destination's stream slot, so chunks interleave
    /// (RFC 4975 §7.1.1).
    pub(super) fn drive(&mut self, t: ConnId) {
        let mut reads = 0;
        let mut drained = false;
        loop {
            if !self.drain_parsed(t) || drained {
                return;
            }
            if reads == READS_PER_TURN {
                self.yielded.push(t);
                return;
            }
            match self.read_some(t) {
                Read::Data => reads += 1,
                Read::Short => drained = true,
                Read::Empty | Read::Gone => return,
            }
        }
    }

    /// Handles the events in what `t` has read; false when `t` must wait
    /// or is gone.
    fn drain_parsed(&mut self, t: ConnId) -> bool {
        loop {
            if !self.relay.pump(t) {
                return false;
            }
            match self.relay.next_event(t) {
                Step::Event(ev) => self.on_event(t, ev),
                Step::Record(r) => {
                    let (relay, mut io) = self.split();
                    relay.on_record(t, r, &mut io);
                }
                Step::Answered => {
                    let (relay, mut io) = self.split();
                    relay.apply_outputs(&mut io);
                }
                Step::NeedBytes => return true,
                Step::Wait => return false,
                Step::Malformed(e) => {
                    self.on_parse_error(t, e);
                    return false;
                }
            }
        }
    }

    /// One read of `t`'s socket.
    fn read_some(&mut self, t: ConnId) -> Read {
        match self.relay.read_gate(t) {
            ReadGate::Read => {}
            ReadGate::Skip => return Read::Empty,
            ReadGate::Eof => {
                self.on_eof(t);
                return Read::Gone;
            }
            ReadGate::Gone => return Read::Gone,
        }
        let Some(sock) = self.sockets.get(&t) else {
            return Read::Gone;
        };
        let layered = sock.layer.is_some();
        let max = self.relay.read_allowance(t);
        if max == 0 {
            return Read::Empty;
        }
        if layered {
            return self.read_layered(t, max);
        }
        let (Some(c), Some(sock)) = (self.relay.conns.get_mut(&t), self.sockets.get(&t)) else {
            return Read::Gone;
        };
        let (r, peer_shut) = (
            self.read_pool.read_at_most(&sock.stream, &mut c.rbuf, max),
            sock.peer_shut,
        );
        match r {
            Ok(0) => self.relay.peer_closed(t),
            Ok(n) => {
                self.relay.read(t, n, self.relay.now);
                if self.read_pool.last_read_short() && !peer_shut {
                    return Read::Short;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Read::Empty,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let peer = c.peer;
                log::info!("connection {} with {peer}: read error: {e}", t.0);
                self.close(t, "read error");
                return Read::Gone;
            }
        }
        Read::Data
    }

    /// [`Engine::read_some`] through a TLS/WebSocket layer, of at most
    /// `max` socket bytes. What the layer
    /// owes the peer (handshake records, pongs, a close) is written at the
    /// end of the loop pass.
    fn read_layered(&mut self, t: ConnId, max: usize) -> Read {
        let (Some(c), Some(sock)) = (self.relay.conns.get_mut(&t), self.sockets.get_mut(&t)) else {
            return Read::Gone;
        };
        let Some(layer) = sock.layer.as_deref_mut() else {
            return Read::Empty;
        };
        let r = layer.read(&sock.stream, &mut self.read_pool, &mut c.rbuf, max);
        let (peer, kind) = (c.peer, c.kind);
        // as for a plain socket (`read_some`): a short recv emptied the
        // receive queue, so the EAGAIN read after it is skipped (records
        // or frames cut by it wait in the layer for the next event); not
        // when the peer's end (close_notify, a WebSocket close) came with
        // data: only the next read reports it, and no event will come
        let short = self.read_pool.last_read_short() && !sock.peer_shut && !layer.ended();
        self.relay.layer_seen(t, sock.view());
        match r {
            Ok(Got::Data(n)) => {
                self.relay.read(t, n, self.relay.now);
                if short {
                    return Read::Short;
                }
                Read::Data
            }
            Ok(Got::Eof) => {
                self.relay.peer_closed(t);
                self.note_handshake_failure(
                    t,
                    "the peer closed the connection before it completed",
                );
                Read::Data
            }
            Ok(Got::WouldBlock) => Read::Empty,
            Err(LayerError::Handshake(e)) => {
                let why = e.to_string();
                if !self.note_handshake_failure(t, &why) {
                    self.relay.stats.add(Stat::TlsHandshakeFailures, 1);
                    log::warn!(
                        "{} connection {} with {peer}: TLS handshake failed: {why}; closing it",
                        kind.name(),
                        t.0
                    );
                }
                self.close(t, "transport error");
                Read::Gone
            }
            Err(e) => {
                let stat = match &e {
                    LayerError::Handshake(_) => None,
                    LayerError::Tls(_) => Some(Stat::TlsErrors),
                    LayerError::Ws(_) => Some(Stat::WsProtocolErrors),
                    LayerError::Io(_) => None,
                };
                if let Some(s) = stat {
                    self.relay.stats.add(s, 1);
                }
                log::warn!(
                    "{} connection {} with {peer}: {e}; closing it",
                    kind.name(),
                    t.0
                );
                self.close(t, "transport error");
                Read::Gone
            }
        }
    }

    fn on_parse_error(&mut self, t: ConnId, e: ParseError) {
        let Some(c) = self.relay.conns.get_mut(&t) else {
            return;
        };
        log::warn!(
            "malformed MSRP from peer {} (connection {}): {e}; closing the connection",
            c.peer,
            t.0
        );
        c.rbuf.clear();
        self.relay.stats.add(Stat::ParseErrors, 1);
        self.close(t, "malformed input");
    }

    /// The peer will send nothing more ([`Relay::on_eof`] says what that
    /// means).
    fn on_eof(&mut self, t: ConnId) {
        match self.relay.on_eof(t) {
            Some(EofAction::HalfClosed) => self.mark_dirty(t),
            Some(EofAction::Truncated | EofAction::Closed) => self.close(t, "closed by peer"),
            None => {}
        }
    }

    fn on_event(&mut self, t: ConnId, ev: Event) {
        match ev {
            Event::Head(head) => {
                let now = self.relay.now;
                let (relay, mut io) = self.split();
                let Some(ctx) = relay.on_head(t, head, now, &mut io) else {
                    return;
                };
                let ctx = self.host.run_route(ctx);
                let (relay, mut io) = self.split();
                relay.script_done(t, ctx, &mut io);
            }
            Event::Body(bytes) => {
                crate::cmap::with(|m| m.body_in(t.0 as i64, bytes.len()));
                let (relay, mut io) = self.split();
                match relay.body(t, bytes) {
                    BodyCheck::Fine => {}
                    BodyCheck::Refused => {
                        relay.check_refused(t, &mut io);
                    }
                    BodyCheck::TooLarge => relay.too_large(t, &mut io),
                }
            }
            Event::End(flag) => {
                let complete = flag == msrp_core::EndFlag::Complete;
                crate::cmap::with(|m| m.end_in(t.0 as i64, complete));
                self.relay.end(t, flag, self.relay.now);
            }
        }
    }
}

/// Registers connection `t`'s socket with the loop.
pub(super) fn register(poll: &Poll, stream: &TcpStream, t: ConnId) -> io::Result<()> {
    poll.registry().register(
        &mut SourceFd(&stream.as_raw_fd()),
        token(t),
        Interest::READABLE | Interest::WRITABLE,
    )
}
