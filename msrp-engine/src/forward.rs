//! Forwarding requests (RFC 4976 §6.4): the event route per frame head, the
//! decision it records, and the streaming of a request to its next hop as
//! outgoing chunks of at most `msrp_max_chunk_size` bytes.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};

use bytes::Bytes;
use mio::Token;
use msrp_core::build::{self, ChunkHeads};
use msrp_core::{ByteRange, ChunkEvent, Chunker, FailureReport, FrameHead, MsrpUri};

use super::engine::{Blocked, Conn, Engine, Host, Incoming};
use super::script::{self, Dst, FrameCtx};
use super::stats::Stat;
use super::transactions::{InTx, Outstanding};
use super::txtable::Cause;

/// A request being forwarded: the state that outlives its head.
pub(super) struct Forward {
    /// `None` once the next hop failed: the rest of the frame is swallowed
    /// (and still answered, RFC 4976 §6.4.1: a 200 means "received").
    pub(super) dest: Option<Token>,
    /// The outgoing request is a REPORT (not tracked: no responses).
    is_report: bool,
    /// Everything of the outgoing chunk heads but tid and Byte-Range.
    heads: ChunkHeads,
    pub(super) has_body: bool,
    pub(super) chunker: Chunker,
    /// Outgoing events not yet written (waiting for the destination).
    pub(super) pending: VecDeque<ChunkEvent>,
    /// Transaction ID of the open outgoing chunk (the destination's stream
    /// slot is held while it is `Some`).
    pub(super) cur_tid: Option<Bytes>,
    /// The incoming chunk's end-line has been parsed.
    pub(super) finished: bool,
    /// Byte-Range start of the incoming chunk (1 when it had none).
    in_start: u64,
    /// Body bytes queued to the next hop, and outgoing chunks completed.
    sent: u64,
    chunks_done: u32,
    /// The incoming SEND chunk (sender's transaction) this forwards.
    pub(super) in_id: Option<u64>,
    /// For non-SEND requests: the way their response goes back.
    src_tid: Bytes,
    src_from_path: Vec<Bytes>,
    relay_uri: Bytes,
    /// The relay's own 200 to the previous hop, sent when the incoming chunk
    /// is complete (RFC 4976 §6.4.1).
    auto_reply: Option<Bytes>,
}

impl Forward {
    /// The end-line that closes outgoing chunk `tid` with `flag`.
    fn end_of(&self, tid: &[u8], flag: msrp_core::EndFlag) -> Bytes {
        if self.has_body {
            build::body_end(tid, flag)
        } else {
            build::end_line(tid, flag)
        }
    }
}

/// What the script chose for a request it relays.
pub(super) struct Route {
    dst: Option<Dst>,
    flags: u32,
}

/// Why a request is not forwarded.
pub(super) enum NotForwarded {
    /// Answer the previous hop with this code (unless it asked for no
    /// responses).
    Respond(u16, &'static str),
    /// Nothing to answer (not a request the relay can route).
    Silently,
}

impl<H: Host> Engine<H> {
    /// A frame head arrived on `t`: run the event route once, then carry out
    /// the script's decisions.
    pub(super) fn on_head(&mut self, t: Token, head: FrameHead) {
        // Responses to the relay's own SEND chunks are the relay's business
        // (RFC 4976 §6.4.1: never forwarded): consumed here without running
        // the script, which would otherwise run once per chunk.
        if !head.is_request() && self.is_own_chunk_response(t, &head) {
            self.on_response(t, &head, false);
            if let Some(c) = self.conns.get_mut(&t) {
                c.incoming = Incoming::Discard;
            }
            return;
        }
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        c.got_frame = true;
        let mut ctx = FrameCtx::new(head, t.0 as i64, c.peer, c.local);
        // Give the script the body when it is already here in full.
        if ctx.head.has_body {
            let mut pat = b"\r\n-------".to_vec();
            pat.extend_from_slice(&ctx.head.transaction_id);
            if let Some(p) = memchr::memmem::find(&c.rbuf, &pat) {
                ctx.body = Bytes::copy_from_slice(&c.rbuf[..p]);
                ctx.body_complete = true;
                ctx.end_flag = c.rbuf.get(p + pat.len()).copied().unwrap_or(b'$');
            } else if c.rbuf.starts_with(&pat[2..]) {
                ctx.body_complete = true;
                ctx.end_flag = c.rbuf.get(pat.len() - 2).copied().unwrap_or(b'$');
            }
        } else {
            ctx.body_complete = true;
        }
        if ctx.head.is_request() {
            self.stats.add(Stat::RequestsIn, 1);
            self.stats.add(Stat::request_in(ctx.head.method()), 1);
        } else {
            self.stats.add(Stat::RepliesIn, 1);
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
                log::debug!(
                    "not sending the script's 200 for a SEND with Failure-Report {}",
                    fr.as_str()
                );
                continue;
            }
            self.stats.add(Stat::RepliesSent, 1);
            self.push_frame(t, r);
        }
        if !head.is_request() {
            self.on_response(t, &head, actions.relay);
        } else if actions.relay {
            let route = Route {
                dst: actions.dst,
                flags: actions.relay_flags,
            };
            match self.forward_request(t, &head, known_len, replied, route) {
                Ok(f) => {
                    self.stats.add(Stat::RequestsForwarded, 1);
                    if let Some(c) = self.conns.get_mut(&t) {
                        c.incoming = Incoming::Forward(Box::new(f));
                    }
                    return;
                }
                Err(NotForwarded::Respond(code, text))
                    if !replied && fr != FailureReport::No && head.method() != Some(b"REPORT") =>
                {
                    if let Ok(r) = script::reply_frame(&head, code, text.as_bytes(), b"") {
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
    /// transaction ID (one per outgoing chunk).
    fn forward_request(
        &mut self,
        t: Token,
        head: &FrameHead,
        known_len: Option<u64>,
        replied: bool,
        route: Route,
    ) -> Result<Forward, NotForwarded> {
        let peer = self
            .conns
            .get(&t)
            .map(|c| c.peer)
            .ok_or(NotForwarded::Silently)?;
        let is_send = head.method() == Some(b"SEND");
        let (to, from) = match (head.to_path(), head.from_path()) {
            (Ok(to), Ok(from)) => (to, from),
            (Err(e), _) | (_, Err(e)) => {
                log::warn!("not relaying request from {peer}: {e}");
                return Err(NotForwarded::Respond(400, "Bad Request"));
            }
        };
        // RFC 4975 §7.3: a request the relay cannot make sense of gets 400.
        let (range, fr) = if is_send {
            match (head.byte_range(), head.failure_report()) {
                (Ok(r), Ok(fr)) => (r, fr),
                (Err(e), _) | (_, Err(e)) => {
                    log::warn!("not relaying SEND from {peer}: {e}");
                    return Err(NotForwarded::Respond(400, "Bad Request"));
                }
            }
        } else {
            (None, FailureReport::Yes)
        };
        let message_id = head.message_id().cloned().unwrap_or_default();
        if is_send && self.rejected(t, &message_id) {
            // RFC 4975 §10: after a 413 the sender must not send more chunks.
            return Err(NotForwarded::Respond(413, "Message Too Large"));
        }
        let relay_uri = to[0].clone();
        // RFC 4976 §6.4.1: the first To-Path URI must be the relay's own.
        if !self.is_own_uri(&relay_uri) {
            log::warn!(
                "not relaying request from {peer}: first To-Path URI {} is not this relay",
                String::from_utf8_lossy(&relay_uri)
            );
            if is_send && fr == FailureReport::Yes {
                self.send_report(
                    t,
                    &from,
                    &relay_uri,
                    &message_id,
                    range.map(|r| ByteRange {
                        end: Some(r.start.saturating_sub(1)),
                        ..r
                    }),
                    481,
                    "Not This Relay",
                    Cause::NotOwnUri,
                );
            }
            return Err(NotForwarded::Respond(481, "Not This Relay"));
        }
        let Some((to_path, from_path)) = msrp_core::path::forward(&to, &from, &relay_uri) else {
            log::warn!("not relaying request from {peer}: To-Path has no next hop");
            return Err(NotForwarded::Respond(400, "Bad Request"));
        };
        let no_new = route.flags & script::RELAY_FLAG_NO_NEW_CONNECTION != 0;
        let dest = match route.dst {
            // msrp_cmap_lookup(): the client's own connection
            Some(Dst::Connection(conid)) => {
                let tok = Token(conid as usize);
                if self.conns.contains_key(&tok) {
                    Ok(tok)
                } else {
                    Err("its connection is gone".to_string())
                }
            }
            Some(Dst::Addr(addr)) => self.next_hop(addr, no_new),
            None => resolve(&to_path[0]).and_then(|addr| self.next_hop(addr, no_new)),
        };
        let dest = match dest {
            Ok(d) => Some(d),
            Err(e) => {
                log::warn!(
                    "next hop {} of a request from {peer} unreachable: {e}",
                    String::from_utf8_lossy(&to_path[0])
                );
                if !is_send {
                    return Err(NotForwarded::Respond(408, "Request Timeout"));
                }
                None
            }
        };
        let method = Bytes::copy_from_slice(head.method().unwrap_or(b"SEND"));
        let chunker = if is_send {
            Chunker::new(range, self.cfg.max_chunk_size, known_len)
        } else {
            Chunker::new(None, 0, None)
        };
        let in_id = is_send.then(|| {
            self.new_in_tx(InTx::new(
                t,
                head.transaction_id.clone(),
                from.clone(),
                relay_uri.clone(),
                message_id.clone(),
                fr,
                range,
            ))
        });
        if dest.is_none() {
            if let Some(id) = in_id {
                self.report(id, 408, "Next Hop Unreachable", Cause::Unreachable);
            }
        }
        // The relay's own 200 for "yes" (RFC 4976 §6.4.1), unless the script
        // already answered.
        let auto_reply = (is_send && fr == FailureReport::Yes && !replied)
            .then(|| script::reply_frame(head, 200, b"OK", b"").ok())
            .flatten();
        Ok(Forward {
            dest,
            is_report: method.as_ref() == b"REPORT",
            heads: ChunkHeads::new(
                method,
                to_path,
                from_path,
                head.other_headers().cloned().collect(),
                head.has_body,
            ),
            has_body: head.has_body,
            chunker,
            pending: VecDeque::new(),
            cur_tid: None,
            finished: false,
            in_start: range.map_or(1, |r| r.start),
            sent: 0,
            chunks_done: 0,
            in_id,
            src_tid: head.transaction_id.clone(),
            src_from_path: from,
            relay_uri,
            auto_reply,
        })
    }

    /// Connection to `addr`: reused, or opened unless `no_new`.
    fn next_hop(&mut self, addr: SocketAddr, no_new: bool) -> Result<Token, String> {
        if no_new {
            return self
                .existing_connection(addr)
                .ok_or_else(|| format!("no connection to {addr} (relay flag 1)"));
        }
        self.connection_to(addr)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))
    }

    /// Whether `uri` names this relay: its port is one the relay listens on
    /// and its host is the listening address (any, for a wildcard listener)
    /// or an `alias`. A host name is accepted by port alone when no alias is
    /// configured.
    fn is_own_uri(&self, uri: &[u8]) -> bool {
        let Ok(u) = MsrpUri::parse(uri) else {
            return false;
        };
        let port = u.port_or_default();
        let host = match &u.host {
            msrp_core::Host::Ipv4(a) => a.to_string(),
            msrp_core::Host::Ipv6(a) => a.to_string(),
            msrp_core::Host::Name(n) => n.to_ascii_lowercase(),
        };
        let aliases = &self.cfg.aliases;
        let hostport = format!("{host}:{port}");
        if aliases.iter().any(|a| *a == host || *a == hostport) {
            return true;
        }
        // the authority this relay hands out in Use-Path
        if let Some(u) = &self.cfg.use_path_addr {
            let u = u
                .trim_start_matches("msrp://")
                .trim_start_matches("msrps://")
                .to_ascii_lowercase();
            if u == hostport || (u == host && port == msrp_core::uri::DEFAULT_PORT) {
                return true;
            }
        }
        self.cfg.listen.iter().any(|l| {
            l.port() == port
                && match &u.host {
                    msrp_core::Host::Ipv4(a) => {
                        l.ip().is_unspecified() || l.ip() == std::net::IpAddr::V4(*a)
                    }
                    msrp_core::Host::Ipv6(a) => {
                        l.ip().is_unspecified() || l.ip() == std::net::IpAddr::V6(*a)
                    }
                    msrp_core::Host::Name(n) => {
                        aliases.is_empty()
                            || (n.eq_ignore_ascii_case("localhost") && l.ip().is_loopback())
                    }
                }
        })
    }

    /// The forward state of `t`, if it is forwarding a frame.
    pub(super) fn fwd_mut(&mut self, t: Token) -> Option<&mut Forward> {
        match self.conns.get_mut(&t) {
            Some(Conn {
                incoming: Incoming::Forward(f),
                ..
            }) => Some(f),
            _ => None,
        }
    }

    /// Writes the pending outgoing events of the frame `t` is forwarding, as
    /// far as the destination allows. Returns false when `t` must wait (or is
    /// gone).
    pub(super) fn pump(&mut self, t: Token) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(&t) else {
                return false;
            };
            let Incoming::Forward(f) = &mut c.incoming else {
                return true;
            };
            let Some(ev) = f.pending.pop_front() else {
                if f.finished {
                    let reply = f.auto_reply.take();
                    let in_id = f.in_id;
                    c.incoming = Incoming::Idle;
                    if let Some(r) = reply {
                        self.stats.add(Stat::RepliesSent, 1);
                        self.push_frame(t, r);
                    }
                    if let Some(id) = in_id {
                        self.in_tx_received_all(id);
                    }
                }
                return true;
            };
            let Some(dest) = f.dest else {
                continue; // next hop failed: swallow
            };
            if !self.conns.contains_key(&dest) {
                if let Some(f) = self.fwd_mut(t) {
                    f.dest = None;
                }
                continue;
            }
            match ev {
                ChunkEvent::Start(range) => {
                    // RFC 4975 has no window, but the relay keeps state per
                    // request it sends: a next hop that stops answering
                    // stops getting more (until answers or timeouts).
                    if self.window_full(dest) {
                        if let Some(d) = self.conns.get_mut(&dest) {
                            if !d.window_waiters.contains(&t) {
                                d.window_waiters.push(t);
                            }
                        }
                        if let Some(c) = self.conns.get_mut(&t) {
                            c.blocked = Blocked::OnWindow(dest);
                            if let Incoming::Forward(f) = &mut c.incoming {
                                f.pending.push_front(ChunkEvent::Start(range));
                            }
                        }
                        return false;
                    }
                    let owner = self.conns.get(&dest).and_then(|d| d.stream_owner);
                    if owner.is_some_and(|o| o != t) {
                        if let Some(d) = self.conns.get_mut(&dest) {
                            if !d.slot_waiters.contains(&t) {
                                d.slot_waiters.push_back(t);
                            }
                        }
                        if let Some(c) = self.conns.get_mut(&t) {
                            c.blocked = Blocked::OnSlot(dest);
                            if let Incoming::Forward(f) = &mut c.incoming {
                                f.pending.push_front(ChunkEvent::Start(range));
                            }
                        }
                        return false;
                    }
                    if let Some(d) = self.conns.get_mut(&dest) {
                        d.stream_owner = Some(t);
                    }
                    let in_id = self.fwd_mut(t).and_then(|f| f.in_id);
                    let tid = match in_id.and_then(|id| self.partial_tid(id, dest)) {
                        Some(tid) => tid,
                        None => self.tids.next_tid(),
                    };
                    let Some(c) = self.conns.get_mut(&t) else {
                        return false;
                    };
                    let peer = c.peer;
                    let Incoming::Forward(f) = &mut c.incoming else {
                        return false;
                    };
                    let head = f.heads.render(&tid, range);
                    let extra = range.is_some() && f.chunks_done > 0;
                    f.cur_tid = Some(tid.clone());
                    let o = match f.in_id {
                        Some(id) => Outstanding::chunk(t, id),
                        None => Outstanding::pass_back(
                            t,
                            f.src_tid.clone(),
                            f.src_from_path.clone(),
                            f.relay_uri.clone(),
                        ),
                    };
                    let is_report = f.is_report;
                    let start = range.map_or(f.in_start, |r| r.start);
                    if !is_report {
                        self.track(dest, tid, o, peer, start);
                    }
                    self.stats.add(Stat::ChunksOut, 1);
                    if extra {
                        self.stats.add(Stat::ChunksSplit, 1);
                    }
                    self.push_stream(dest, head);
                }
                ChunkEvent::Body(b) => {
                    if let Some(f) = self.fwd_mut(t) {
                        f.sent += b.len() as u64;
                    }
                    self.push_stream(dest, b);
                    if self.check_backpressure(t, dest) {
                        return false;
                    }
                }
                ChunkEvent::End(flag) => {
                    let Some(f) = self.fwd_mut(t) else {
                        return false;
                    };
                    let Some(tid) = f.cur_tid.take() else {
                        continue;
                    };
                    f.chunks_done += 1;
                    let end = f.end_of(&tid, flag);
                    self.push_stream(dest, end);
                    self.arm(dest, tid);
                    self.release_slot(dest, t);
                }
            }
        }
    }

    /// Stops forwarding what `t` is sending to a failed next hop: the open
    /// chunk is aborted with `#` (RFC 4975 §7.1), the rest is swallowed.
    pub(super) fn cut_forward(&mut self, t: Token) {
        let Some(Conn {
            incoming: Incoming::Forward(f),
            ..
        }) = self.conns.get_mut(&t)
        else {
            return;
        };
        let Some(dest) = f.dest.take() else {
            return;
        };
        let open = f
            .cur_tid
            .take()
            .map(|tid| f.end_of(&tid, msrp_core::EndFlag::Aborted));
        f.pending.retain(|e| !matches!(e, ChunkEvent::Body(_)));
        if let Some(end) = open {
            self.push_stream(dest, end);
        }
        self.leave_dest(dest, t);
    }

    /// `src` no longer feeds `dest`: it stops waiting for it and gives up
    /// its stream slot, held or only handed over.
    fn leave_dest(&mut self, dest: Token, src: Token) {
        if let Some(d) = self.conns.get_mut(&dest) {
            d.slot_waiters.retain(|w| *w != src);
            d.drain_waiters.retain(|w| *w != src);
        }
        self.release_slot(dest, src);
    }

    /// The sender of `f` is gone mid-chunk (RFC 4975 §7.1: the message is
    /// aborted): an open outgoing chunk ends with `#`; when the sender
    /// vanished between two outgoing chunks, an empty chunk carries the `#`,
    /// so the next hop does not wait for the rest.
    pub(super) fn abort_forward(&mut self, src: Token, f: Box<Forward>) {
        let Some(dest) = f.dest else {
            return;
        };
        if let Some(tid) = &f.cur_tid {
            self.push_stream(dest, f.end_of(tid, msrp_core::EndFlag::Aborted));
        } else if f.in_id.is_some() && !f.finished && f.chunks_done > 0 {
            let tid = self.tids.next_tid();
            let range = f.chunker.empty_range_at(f.sent);
            let mut frame = bytes::BytesMut::from(&f.heads.render(&tid, range)[..]);
            frame.extend_from_slice(&f.end_of(&tid, msrp_core::EndFlag::Aborted));
            self.push_frame(dest, frame.freeze());
        }
        self.leave_dest(dest, src);
    }

    /// Records how many bytes of its incoming chunk `t` has received.
    pub(super) fn note_received(&mut self, t: Token) {
        let Some(f) = self.fwd_mut(t) else {
            return;
        };
        if let Some(id) = f.in_id {
            let n = f.chunker.consumed();
            self.in_tx_set_received(id, n);
        }
    }
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
