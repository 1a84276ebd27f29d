//! Frame heads: the event route runs once per incoming frame (the driver
//! runs it between [`Relay::on_head`] and [`Relay::script_done`]), then the
//! relay carries out what the script decided — replies, forwarding a
//! request to its next hop (RFC 4976 §6.4), passing a response back.

use std::collections::VecDeque;
use std::time::Instant;

use crate::connid::ConnId;
use bytes::{Buf, Bytes};
use msrp_core::build::ChunkHeads;
use msrp_core::{ByteRange, Chunker, FailureReport, FrameHead, Header};

use super::resolve::{NoDest, Unreachable};
use super::{Io, Relay};
use crate::conn::Incoming;
use crate::forward::{self, Forward, LinkTarget, Route};
use crate::report::{self, ReportOrder};
use crate::route::{self, Bound, Hop, NotForwarded, Plan, Request};
use crate::script::{self, Actions, Dst, FrameCtx};
use crate::stats::Stat;
use crate::tracker::{Answer, InTx, Return};
use crate::txtable::Cause;

/// The connection a request goes out on, and the ID of the connection on
/// the other worker when that is a link.
pub(super) type Out = (ConnId, Option<i64>);

impl Relay {
    /// A frame head arrived on `t` at `now`. Returns the frame for
    /// `event_route[msrp:frame-in]` (the driver runs it once, then hands
    /// it to [`Relay::script_done`]); `None` when the relay handled the
    /// frame itself.
    pub fn on_head(
        &mut self,
        t: ConnId,
        head: FrameHead,
        now: Instant,
        io: &mut dyn Io,
    ) -> Option<FrameCtx> {
        self.now = now;
        self.head_seen(t, now);
        let send = head.is_request() && head.method() == Some(b"SEND");
        crate::cmap::with(|m| m.frame_in(t.0 as i64, send));
        // Responses to the relay's own SEND chunks are the relay's business
        // (RFC 4976 §6.4.1: never forwarded): consumed here without running
        // the script, which would otherwise run once per chunk.
        if !head.is_request() && self.tracker.is_own_chunk(t, &head.transaction_id) {
            self.on_response(t, &head, false, io);
            self.set_incoming(t, Incoming::Discard);
            return None;
        }
        if head.is_request() && self.conns.get(&t).is_some_and(|c| c.link.is_some()) {
            let next = self.on_link_request(t, &head);
            self.set_incoming(t, next);
            return None;
        }
        self.frame_ctx(t, head)
    }

    /// The event route ran for the frame arriving on `t`: carry out the
    /// script's decisions.
    pub fn script_done(&mut self, t: ConnId, ctx: FrameCtx, io: &mut dyn Io) {
        let known_len = ctx.body_complete.then_some(ctx.body.len() as u64);
        let FrameCtx { head, actions, .. } = ctx;
        if let Some(rate) = actions.read_rate {
            self.set_read_rate(t, rate);
        }
        if let (Some(n), Some(c)) = (actions.max_message_size, self.conns.get_mut(&t)) {
            c.max_message = n;
        }
        let replied = self.send_replies(t, &head, &actions);
        self.count_auth_failures(t, &head, &actions);
        let next = if !head.is_request() {
            self.on_response(t, &head, actions.relay, io);
            Incoming::Discard
        } else if actions.relay {
            let route = Route {
                dst: actions.dst,
                flags: actions.relay_flags,
                replied,
                known_len,
            };
            self.relay_request(t, &head, route, io)
        } else {
            Incoming::Discard
        };
        self.set_incoming(t, next);
        self.fail_at_start(t, io);
    }

    fn set_incoming(&mut self, t: ConnId, incoming: Incoming) {
        if let Some(c) = self.conns.get_mut(&t) {
            c.incoming = incoming;
        }
    }

    /// The frame as the script sees it, with the whole body when it is
    /// already here; counts the frame.
    fn frame_ctx(&mut self, t: ConnId, head: FrameHead) -> Option<FrameCtx> {
        let c = self.conns.get_mut(&t)?;
        c.got_frame = true;
        let mut ctx = FrameCtx::new(head, t.conid(), c.peer, c.local).over(c.kind);
        if !ctx.head.has_body {
            ctx.body_complete = true;
        } else if let Some((body, flag)) = route::complete_body(&c.rbuf, &ctx.head.transaction_id) {
            ctx.body = body;
            ctx.body_complete = true;
            ctx.end_flag = flag;
        }
        if ctx.head.is_request() {
            self.stats.add(Stat::RequestsIn, 1);
            self.stats.add(Stat::request_in(ctx.head.method()), 1);
        } else {
            self.stats.add(Stat::RepliesIn, 1);
        }
        Some(ctx)
    }

    /// Sends the replies the script made; returns whether it made any.
    fn send_replies(&mut self, t: ConnId, head: &FrameHead, actions: &Actions) -> bool {
        let is_send = head.method() == Some(b"SEND");
        let fr = route::failure_report(head);
        for (code, r) in &actions.replies {
            // RFC 4975 §7.1.4: no 200 for "no"/"partial" (per hop).
            if is_send && *code == 200 && fr != FailureReport::Yes {
                log::debug!(
                    "not sending the script's 200 for a SEND with Failure-Report {}",
                    fr.as_str()
                );
                continue;
            }
            self.stats.add(Stat::RepliesSent, 1);
            self.push_frame(t, r.clone(), self.now);
        }
        !actions.replies.is_empty()
    }

    /// `msrp_relay()` for a request: forward it, or answer why not.
    pub(crate) fn relay_request(
        &mut self,
        t: ConnId,
        head: &FrameHead,
        route: Route,
        io: &mut dyn Io,
    ) -> Incoming {
        let replied = route.replied;
        match self.forward_request(t, head, route, io) {
            Ok(f) => {
                self.stats.add(Stat::RequestsForwarded, 1);
                return Incoming::Forward(Box::new(f));
            }
            Err(NotForwarded::Resolving(name)) => return self.park(t, head, route, name, io),
            Err(NotForwarded::Respond(code, text))
                if !replied
                    && route::failure_report(head) != FailureReport::No
                    && head.method() != Some(b"REPORT") =>
            {
                if let Ok(r) = script::reply_frame(head, code, text.as_bytes(), b"") {
                    self.push_frame(t, r, self.now);
                }
            }
            Err(_) => {}
        }
        Incoming::Discard
    }

    /// RFC 4976 §6.4: the relay's URI moves from the head of To-Path to the
    /// head of From-Path; the request goes to the next To-Path hop under a new
    /// transaction ID (one per outgoing chunk).
    fn forward_request(
        &mut self,
        t: ConnId,
        head: &FrameHead,
        route: Route,
        io: &mut dyn Io,
    ) -> Result<Forward, NotForwarded> {
        let peer = self
            .conns
            .get(&t)
            .map(|c| c.peer)
            .ok_or(NotForwarded::Silently)?;
        let req = Request::parse(head).map_err(|e| {
            log::warn!("not relaying request from {peer}: {e}");
            NotForwarded::Respond(400, "Bad Request")
        })?;
        if req.is_send && self.rejected(t, &req.message_id) {
            // RFC 4975 §10: after a 413 the sender must not send more chunks.
            return Err(NotForwarded::Respond(413, "Message Too Large"));
        }
        // RFC 4976 §6.4.1: the first To-Path URI must be the relay's own.
        if !route::is_own_uri(self.cfg, req.relay_uri()) {
            log::warn!(
                "not relaying request from {peer}: first To-Path URI {} is not this relay",
                String::from_utf8_lossy(req.relay_uri())
            );
            self.report_not_own_uri(t, &req);
            return Err(NotForwarded::Respond(481, "Not This Relay"));
        }
        let plan = self.plan(t, &req);
        let Some((to_path, from_path)) = plan.as_ref().and_then(|p| route::own_hops(&req, p.own))
        else {
            log::warn!("not relaying request from {peer}: To-Path has no next hop");
            return Err(NotForwarded::Respond(400, "Bad Request"));
        };
        let next_hop = to_path[0].clone();
        let mut heads = self.forward_heads(head, to_path, from_path, peer)?;
        let size = self.size_allowance(t, &req);
        let mut link_target = None;
        let dest = match size.map(|_| self.dest(plan.as_ref(), &route, io)) {
            Err(()) => Err(Cause::TooLarge),
            Ok(Ok((d, link_conid))) => {
                // a connection on another worker: over the link, with the
                // connection's ID there for the receiving worker (a SEND's
                // chunks as records, other requests as MSRP text)
                match link_conid {
                    Some(conid) if req.is_send => {
                        link_target = Some(LinkTarget {
                            conid: conid as u64,
                            answer_timeout: req.failure_report == FailureReport::Yes,
                        });
                    }
                    Some(conid) => heads.push_header(Header::new(
                        forward::LINK_CONID.as_bytes().to_vec(),
                        conid.to_string().into_bytes(),
                    )),
                    None => {}
                }
                Ok(d)
            }
            Ok(Err(NoDest::Resolving(name))) => return Err(NotForwarded::Resolving(name)),
            Ok(Err(NoDest::Unreachable(e))) => {
                log::warn!(
                    "next hop {} of a request from {peer} unreachable: {e}",
                    String::from_utf8_lossy(&next_hop)
                );
                if !req.is_send {
                    return Err(NotForwarded::Respond(408, "Request Timeout"));
                }
                Err(Cause::Unreachable)
            }
        };
        let mut f = self.new_forward(t, head, req, dest, heads, &route);
        f.size_left = size.ok().flatten();
        f.link_target = link_target;
        Ok(f)
    }

    /// The heads the request's chunks go out with (a client's own
    /// `Relay-Conid` dropped), checked before anything is dialled:
    /// re-chunking adds a Byte-Range, this relay's transaction IDs may be
    /// longer and From-Path gains its URI, so a head at the limits would
    /// leave beyond them (a link has room for its Relay-Conid).
    fn forward_heads(
        &self,
        head: &FrameHead,
        to_path: Vec<Bytes>,
        from_path: Vec<Bytes>,
        peer: std::net::SocketAddr,
    ) -> Result<ChunkHeads, NotForwarded> {
        // only this relay says which connection a link request is for
        let others: Vec<Header> = head
            .other_headers()
            .filter(|h| !h.is(forward::LINK_CONID))
            .collect();
        let method = match &head.start {
            msrp_core::StartLine::Request { method } => method.clone(),
            msrp_core::StartLine::Response { .. } => Bytes::from_static(b"SEND"),
        };
        let heads = ChunkHeads::new(method, to_path, from_path, others, head.has_body);
        if let Err(e) = heads.check(&self.cfg.limits, crate::tid::TID_LEN) {
            log::warn!(
                "not relaying request from {peer}: the head forwarded would break this \
                 relay's own limits ({e}; max_header_size {})",
                self.cfg.limits.max_head
            );
            return Err(NotForwarded::Respond(400, "Bad Request"));
        }
        Ok(heads)
    }

    /// RFC 4976 §6.4.1: a SEND whose first To-Path URI is not this relay's
    /// gets a REPORT when it asked for them.
    fn report_not_own_uri(&mut self, t: ConnId, req: &Request) {
        if !req.is_send || !report::wanted(req.failure_report, Cause::NotOwnUri) {
            return;
        }
        let (code, comment) = report::status(Cause::NotOwnUri, 0);
        self.send_report(ReportOrder {
            src: t,
            to_path: req.from.clone(),
            relay_uri: req.relay_uri().clone(),
            message_id: req.message_id.clone(),
            range: req.range.map(|r| ByteRange {
                end: Some(r.start.saturating_sub(1)),
                ..r
            }),
            code,
            comment,
            cause: Cause::NotOwnUri,
        });
    }

    /// The route of a request (RFC 4976 §6.4, see [`route::plan`]); `None`
    /// when To-Path has no next hop.
    fn plan(&self, t: ConnId, req: &Request) -> Option<Plan> {
        let now = self.now;
        let me = self.worker;
        // other workers' sessions exist only with other workers
        let others = !self.links.is_empty();
        route::plan(self.cfg, &req.to, t.conid(), |s| {
            crate::cmap::with(|m| match m.lookup(s, now) {
                Some(e) => Some(Bound::Here(e.conid)),
                None if !others => None,
                None => m
                    .find_elsewhere(s)
                    .filter(|(w, _)| *w != me)
                    .map(|(w, c)| Bound::Worker(w, c)),
            })
        })
        .ok()
    }

    /// The connection a request goes out on: the script's `msrp_set_dst()`
    /// address, a session's connection, or the next hop's address, dialled
    /// when need be; with the ID of the connection on the other worker when
    /// it goes over a link.
    fn dest(&mut self, plan: Option<&Plan>, route: &Route, io: &mut dyn Io) -> Result<Out, NoDest> {
        let no_new = route.flags & script::RELAY_FLAG_NO_NEW_CONNECTION != 0;
        match (route.dst, plan.map(|p| &p.hop)) {
            (Some(Dst::Addr(addr)), _) => self
                .next_hop(&route::NextHop::tcp(addr), no_new, io)
                .map(|d| (d, None))
                .map_err(NoDest::from),
            (None, Some(Hop::Session(conid))) => {
                let tok = ConnId::from_conid(*conid);
                if self.conns.contains_key(&tok) {
                    Ok((tok, None))
                } else {
                    Err(Unreachable::SessionGone.into())
                }
            }
            (None, Some(Hop::Remote(w, conid))) => self
                .links
                .get(w)
                .map(|l| (*l, Some(*conid)))
                .ok_or(NoDest::Unreachable(Unreachable::NoLink(*w))),
            // a host name is looked up off the loop (resolve.rs)
            (None, Some(Hop::Uri(uri))) => self.uri_hop(uri, no_new, io),
            (None, None) => Err(Unreachable::NoNextHop.into()),
        }
    }

    /// The forwarding state of a request that goes to `dest` (an error: it
    /// fails at once for that cause, the body is swallowed and REPORTed).
    fn new_forward(
        &mut self,
        t: ConnId,
        head: &FrameHead,
        req: Request,
        dest: Result<ConnId, Cause>,
        heads: ChunkHeads,
        route: &Route,
    ) -> Forward {
        let fr = req.failure_report;
        let chunker = if req.is_send {
            Chunker::new(req.range, self.cfg.max_chunk_size, route.known_len)
        } else {
            Chunker::new(None, 0, None)
        };
        let ret = Return {
            src: t,
            src_tid: head.transaction_id.clone(),
            src_from_path: req.from.clone(),
            relay_uri: req.relay_uri().clone(),
            as_record: false,
        };
        let in_id = req.is_send.then(|| {
            self.tracker.begin_in(InTx {
                src: t,
                src_tid: ret.src_tid.clone(),
                src_from_path: req.from,
                relay_uri: ret.relay_uri.clone(),
                message_id: req.message_id,
                failure_report: fr,
                range: req.range,
            })
        });
        // The relay's own 200 for "yes" (RFC 4976 §6.4.1), unless the script
        // already answered.
        let answered = req.is_send && !route.replied;
        let answer = script::OwnAnswer::new(
            head,
            answered && fr == FailureReport::Yes,
            answered && fr != FailureReport::No,
        );
        Forward {
            dest: dest.ok(),
            fail_at_start: dest.err(),
            size_left: None,
            is_report: head.method() == Some(b"REPORT"),
            heads,
            has_body: head.has_body,
            chunker,
            pending: VecDeque::new(),
            cur_tid: None,
            finished: false,
            in_start: req.range.map_or(1, |r| r.start),
            sent: 0,
            chunks_done: 0,
            in_id,
            ret,
            via_link: None,
            answer,
            refused_at: None,
            refusal_paused: false,
            arena: bytes::BytesMut::new(),
            link_target: None,
            link_head: None,
        }
    }

    /// Whether the sender on `t` was told to stop sending this message.
    fn rejected(&self, t: ConnId, message_id: &Bytes) -> bool {
        self.conns
            .get(&t)
            .is_some_and(|c| c.rejected.contains(message_id))
    }

    /// Takes a next hop's 200 to one of the relay's own SEND chunks from
    /// the front of `t`'s read buffer without building a [`FrameHead`]:
    /// one per outgoing chunk of a re-chunked transfer. Only a frame the
    /// parser would read the same way ([`msrp_core::Parser::quick_response`])
    /// and that answers a chunk the relay sent on `t` (RFC 4976 §6.4.1: it
    /// ends there, never forwarded) is taken; anything else, other codes
    /// included (REPORTs, refusals), goes through the parser and
    /// [`Relay::on_head`]. Returns whether it took one.
    pub(super) fn quick_answer(&mut self, t: ConnId) -> bool {
        if !self.tracker.awaits(t) {
            return false;
        }
        let Some(c) = self.conns.get_mut(&t) else {
            return false;
        };
        let q = match c.parser.quick_response(&c.rbuf) {
            Some(q) if q.code == 200 => q,
            _ => return false,
        };
        if !self.tracker.own_chunk_ok(t, &c.rbuf[q.tid]) {
            return false;
        }
        // what the head and the end-line would have done: the frame
        // marks the connection alive (a response carries no session
        // accounting: `cmap` counts SEND frames only)
        c.frame_mark = self.now;
        c.rbuf.advance(q.len);
        true
    }

    /// A response arrived on `t`: the tracker ends the transaction it
    /// answers; a response to a forwarded non-SEND request goes back when
    /// the script called `msrp_relay()` (RFC 4976 §6.4.2).
    fn on_response(&mut self, t: ConnId, head: &FrameHead, relay: bool, io: &mut dyn Io) {
        let code = head.status_code().unwrap_or(0);
        let answer = self.tracker.on_response(t, &head.transaction_id, code);
        self.apply_outputs(io);
        match answer {
            Answer::OwnChunk => {}
            Answer::Unknown => log::info!(
                "response {code} for unknown transaction {} on connection {}: dropped",
                String::from_utf8_lossy(&head.transaction_id),
                t.0
            ),
            Answer::PassBack(r) if relay => {
                if !self.conns.contains_key(&r.src) {
                    // RFC 4976 §6.4.3: the return connection is gone.
                    log::debug!("response for a connection that is gone: dropped");
                } else if let Some(frame) = forward::pass_back_frame(head, &r) {
                    self.stats.add(Stat::RepliesForwarded, 1);
                    self.push_frame(r.src, frame, self.now);
                }
            }
            Answer::PassBack(_) => {}
            Answer::Link(r) if r.as_record => {
                let rec = crate::link::record::answer(&r.src_tid, code);
                self.push_frame(r.src, rec, self.now);
            }
            Answer::Link(r) => {
                if let Some(frame) = forward::link_answer_frame(head, &r) {
                    self.push_frame(r.src, frame, self.now);
                }
            }
        }
    }
}
