//! A request being forwarded (RFC 4976 §6.4): the state that outlives its
//! head while the body streams through, and the frames forwarding needs
//! besides the request itself (responses passed back, 408 to the previous
//! hop). No engine in here.

use std::collections::VecDeque;

use crate::connid::ConnId;
use bytes::{Bytes, BytesMut};
use msrp_core::build::{self, ChunkHeads};
use msrp_core::{ByteRange, ChunkEvent, Chunker, EndFlag, FrameHead, StartLine};

use crate::link::record;

use crate::script::{Dst, OwnAnswer};
use crate::tid::TidGen;
use crate::tracker::{InId, Return};

/// What the script chose for a request it relays.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub dst: Option<Dst>,
    pub flags: u32,
    /// The script answered the request itself.
    pub replied: bool,
    /// Body length, when the body was complete before the route ran.
    pub known_len: Option<u64>,
}

/// A request whose next hop's host name is being resolved (see
/// [`crate::dns`]): its connection is not read further (the body stays
/// unparsed in the read buffer) until the answer is back, then it is
/// forwarded as if it had just arrived, the script not run again.
pub struct Parked {
    pub head: FrameHead,
    pub route: Route,
    /// The name it waits for, and its ticket with the resolver (a reused
    /// connection token does not take another request's answer).
    pub name: String,
    pub ticket: u64,
}

pub struct Forward {
    /// `None` once the next hop failed: the rest of the frame is swallowed
    /// (a SEND chunk still arriving is answered 413 instead of its 200, see
    /// [`refusal`](Self::refusal)).
    pub dest: Option<ConnId>,
    /// Why the request fails before anything is forwarded (its chunk is
    /// failed once the frame is the connection's incoming one).
    pub fail_at_start: Option<crate::txtable::Cause>,
    /// Body bytes this chunk may carry within the connection's
    /// `max_message_size` (`None`: no limit).
    pub size_left: Option<u64>,
    /// The outgoing request is a REPORT (not tracked: no responses).
    pub is_report: bool,
    /// Everything of the outgoing chunk heads but tid and Byte-Range.
    pub heads: ChunkHeads,
    /// Where the heads and end-lines of the outgoing chunks are rendered
    /// (see [`Forward::arena`]).
    pub arena: BytesMut,
    pub has_body: bool,
    pub chunker: Chunker,
    /// Outgoing events not yet written (waiting for the destination).
    pub pending: VecDeque<ChunkEvent>,
    /// Transaction ID of the open outgoing chunk (the destination's stream
    /// slot is held while it is `Some`).
    pub cur_tid: Option<Bytes>,
    /// The incoming chunk's end-line has been parsed.
    pub finished: bool,
    /// Byte-Range start of the incoming chunk (1 when it had none).
    pub in_start: u64,
    /// Body bytes queued to the next hop, and outgoing chunks completed.
    pub sent: u64,
    pub chunks_done: u32,
    /// The incoming SEND chunk (sender's transaction) this forwards.
    pub in_id: Option<InId>,
    /// For non-SEND requests: the way their response goes back.
    pub ret: Return,
    /// Handed over a link by another worker: answers go back over it
    /// (`Some(answer_timeout)`, see `Origin::Link`).
    pub via_link: Option<bool>,
    /// The relay's own answer to the previous hop: its 200, sent when the
    /// incoming chunk is complete (RFC 4976 §6.4.1, Failure-Report "yes"),
    /// or the 413 it gets instead when the chunk is refused while still
    /// arriving ([`Output::Refuse`](crate::tracker::Output)), for "yes" and
    /// "partial" (RFC 4975 §7.1.4: "partial" gets an error response on
    /// failure); `None` for "no" or when the script answered.
    pub answer: Option<OwnAnswer>,
    /// Body bytes of the incoming chunk read when it was refused, and how
    /// many more the relay reads before it closes the connection (see
    /// [`refusal_slack`]).
    pub refused_at: Option<(u64, u64)>,
    /// The relay already stopped reading the refused chunk once for
    /// [`REFUSAL_PAUSE`].
    pub refusal_paused: bool,
    /// A SEND going over a link to another worker: its chunks go as
    /// [records](crate::link::record) for that connection there.
    pub link_target: Option<LinkTarget>,
    /// A chunk another worker handed over as records: its head as it goes
    /// out (its tid is `ret.src_tid`), written instead of one rendered here.
    pub link_head: Option<Bytes>,
}

/// The connection on another worker a SEND goes to over a link.
#[derive(Debug, Clone, Copy)]
pub struct LinkTarget {
    pub conid: u64,
    /// Failure-Report "yes": the owner answers a timeout (408).
    pub answer_timeout: bool,
}

/// Size of the buffers the heads and end-lines of a re-chunked request
/// share (about a dozen of each: a head of a 16 KiB chunk is a few hundred
/// bytes).
const ARENA: usize = 4096;

/// The buffer the next head or end-line of a forward is rendered into,
/// after `chunks_done` outgoing chunks. The first chunk's go into buffers
/// of their own (most requests go out as one chunk); once the request is
/// re-chunked, into shared [`ARENA`]-byte buffers: each 16 KiB chunk of a
/// large SEND cost an allocation and a free for its head and another for
/// its end-line. A buffer lives until the last piece rendered into it is
/// written, which the output watermarks bound.
fn arena(kept: &mut BytesMut, chunks_done: u32) -> &mut BytesMut {
    if chunks_done == 0 {
        kept.clear();
    } else if kept.capacity() < ARENA / 4 {
        *kept = BytesMut::with_capacity(ARENA);
    }
    kept
}

/// How long the relay stops reading a sender that passed the slack of a
/// refused chunk: time for a sender that honours the 413 to react (its
/// bytes in flight meanwhile are bounded by the TCP buffers, since the
/// relay does not read them); after it, the sender gets one more slack.
pub const REFUSAL_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Bytes of a refused chunk the relay still reads (and discards) after its
/// 413: what a sender that stops at the 413 can still have in flight, its
/// send buffer and the relay's receive buffer (`rcvbuf`, SO_RCVBUF as
/// Linux reports it), counted twice, and at least 16 MiB. Past it the
/// relay stops reading the sender for [`REFUSAL_PAUSE`] (a sender on a fast
/// link writes more than that before the 413 reaches it), then allows one
/// more slack; a sender that keeps writing beyond that has its connection
/// closed rather than hundreds of MiB read for nothing.
pub fn refusal_slack(rcvbuf: usize) -> u64 {
    (2 * rcvbuf as u64).max(16 * 1024 * 1024)
}

impl Forward {
    /// Bytes of a refused chunk read since its refusal beyond its slack, if
    /// any.
    pub fn past_refusal(&self) -> Option<u64> {
        let (at, slack) = self.refused_at?;
        let after = self.chunker.consumed().saturating_sub(at);
        (after > slack).then_some(after)
    }
}

impl Forward {
    /// The head of outgoing chunk `tid` (as a Start record for a link).
    pub fn head_of(&self, tid: &Bytes, range: Option<ByteRange>) -> Bytes {
        let head = self.heads.render(tid, range);
        match self.link_target {
            Some(l) => record::start(l.conid, self.has_body, l.answer_timeout, tid, &head),
            None => head,
        }
    }

    /// The head of outgoing chunk `tid` (see [`arena`]; a Start record for
    /// a link).
    pub fn chunk_head(&mut self, tid: &Bytes, range: Option<ByteRange>) -> Bytes {
        if self.link_target.is_some() {
            return self.head_of(tid, range);
        }
        let arena = arena(&mut self.arena, self.chunks_done);
        self.heads.render_in(arena, tid, range)
    }

    /// [`end_of`](Self::end_of) for the regular end of the open outgoing
    /// chunk (see [`arena`]; an End record for a link).
    pub fn chunk_end(&mut self, tid: &[u8], flag: EndFlag) -> Bytes {
        if self.link_target.is_some() {
            return record::end(flag);
        }
        let arena = arena(&mut self.arena, self.chunks_done);
        if self.has_body {
            build::body_end_in(arena, tid, flag)
        } else {
            build::end_line_in(arena, tid, flag)
        }
    }

    /// The end-line that closes outgoing chunk `tid` with `flag` (an End
    /// record for a link).
    pub fn end_of(&self, tid: &[u8], flag: EndFlag) -> Bytes {
        if self.link_target.is_some() {
            record::end(flag)
        } else if self.has_body {
            build::body_end(tid, flag)
        } else {
            build::end_line(tid, flag)
        }
    }

    /// The next hop failed: the open chunk's `#` end-line (if a chunk is
    /// open), and the body still pending is dropped.
    pub fn cut(&mut self) -> Option<Bytes> {
        self.pending.retain(|e| !matches!(e, ChunkEvent::Body(_)));
        self.cur_tid
            .take()
            .map(|tid| self.end_of(&tid, EndFlag::Aborted))
    }

    /// The sender is gone mid-chunk (RFC 4975 §7.1: the message is
    /// aborted): what the next hop must get so it does not wait for the
    /// rest. An open outgoing chunk ends with `#`; between two outgoing
    /// chunks of a SEND an empty chunk carries the `#` (complete frame).
    pub fn abort(&self, tids: &mut TidGen) -> Option<Aborted> {
        if let Some(tid) = &self.cur_tid {
            return Some(Aborted::EndLine(self.end_of(tid, EndFlag::Aborted)));
        }
        if self.in_id.is_some() && !self.finished && self.chunks_done > 0 {
            let tid = tids.next_tid();
            let range = self.chunker.empty_range_at(self.sent);
            let mut frame = BytesMut::from(&self.head_of(&tid, range)[..]);
            frame.extend_from_slice(&self.end_of(&tid, EndFlag::Aborted));
            return Some(Aborted::Frame(frame.freeze()));
        }
        None
    }
}

/// What an aborted forward leaves for its next hop.
pub enum Aborted {
    /// Ends the chunk being streamed.
    EndLine(Bytes),
    /// A complete empty chunk.
    Frame(Bytes),
}

/// A 408 for the previous hop of a non-SEND request that cannot complete
/// downstream (RFC 4975 §7.1, RFC 4976 §6.4).
pub fn fail_frame(r: &Return) -> Bytes {
    build::response_frame(
        &r.src_tid,
        408,
        Some(b"Request Timeout"),
        &r.src_from_path,
        std::slice::from_ref(&r.relay_uri),
        &[],
    )
}

/// A next hop's response to a forwarded non-SEND request, passed back with
/// the original transaction ID (RFC 4976 §6.4.2): the relay's URI moves
/// from To-Path to From-Path as for a request.
pub fn pass_back_frame(head: &FrameHead, r: &Return) -> Option<Bytes> {
    let (code, comment) = match &head.start {
        StartLine::Response { code, comment } => (*code, comment.clone()),
        StartLine::Request { .. } => return None,
    };
    let rto = head.to_path().unwrap_or_default();
    let rfrom = head.from_path().unwrap_or_default();
    let (to_path, from_path) = match msrp_core::path::forward(&rto, &rfrom, &r.relay_uri) {
        Some(p) if rto.len() >= 2 => p,
        _ => {
            let mut f = vec![r.relay_uri.clone()];
            f.extend(rfrom);
            (r.src_from_path.clone(), f)
        }
    };
    let others: Vec<_> = head.other_headers().collect();
    let mut frame = build::response_head(
        &r.src_tid,
        code,
        comment.as_deref(),
        &to_path,
        &from_path,
        &others,
    );
    frame.extend_from_slice(&build::end_line(&r.src_tid, EndFlag::Complete));
    Some(frame.freeze())
}

/// A response to a request another worker handed over a link, passed back
/// over the link as it came but for the transaction ID (the other worker
/// does what RFC 4976 §6.4 asks with it).
pub fn link_answer_frame(head: &FrameHead, r: &Return) -> Option<Bytes> {
    let StartLine::Response { code, comment } = &head.start else {
        return None;
    };
    let to = head.to_path().unwrap_or_default();
    let from = head.from_path().unwrap_or_default();
    let others: Vec<_> = head.other_headers().collect();
    let mut frame =
        build::response_head(&r.src_tid, *code, comment.as_deref(), &to, &from, &others);
    frame.extend_from_slice(&build::end_line(&r.src_tid, EndFlag::Complete));
    Some(frame.freeze())
}

/// Header naming the session's connection on the receiving worker of a
/// request handed over a link (never seen outside the relay).
pub const LINK_CONID: &str = "Relay-Conid";

/// Limits for frames read from a link: the relay's own, with room for the
/// `Relay-Conid` header it adds to a request it checked against them.
pub fn link_limits(limits: msrp_core::Limits) -> msrp_core::Limits {
    // "Relay-Conid: " up to 20 digits CRLF
    let line = LINK_CONID.len() + 2 + 20 + 2;
    msrp_core::Limits {
        max_headers: limits.max_headers + 1,
        max_head: limits.max_head + line,
        max_line: limits.max_line.max(line),
    }
}
