//! What another worker hands over its link to this one: SEND chunks as
//! [records](crate::link::record), other requests as MSRP text with a
//! [`crate::forward::LINK_CONID`] header, and the answers to what this
//! worker handed over.

use std::collections::VecDeque;

use bytes::Bytes;
use msrp_core::build::ChunkHeads;
use msrp_core::{Chunker, FailureReport, FrameHead, Header};

use super::{Io, Relay};
use crate::conn::Incoming;
use crate::connid::ConnId;
use crate::forward::{self, Forward};
use crate::link::record::{self, Record};
use crate::script;
use crate::tracker::{Answer, Return};
use crate::txtable::Cause;

/// What a request handed over a link is, besides its head.
struct Handed {
    /// Its transaction ID (the other worker's: answers go back with it).
    tid: Bytes,
    heads: ChunkHeads,
    has_body: bool,
    is_report: bool,
    /// Byte-Range start of the chunk (1 when it had none).
    in_start: u64,
    /// Answers go back as records (a SEND chunk).
    as_record: bool,
    answer_timeout: bool,
    src_from_path: Vec<Bytes>,
}

impl Relay {
    /// The connection `target` names on this worker, if it is still
    /// there (and no link).
    fn link_target(&self, target: Option<u64>) -> Option<ConnId> {
        target
            .map(ConnId)
            .filter(|d| self.conns.get(d).is_some_and(|c| c.link.is_none()))
    }

    /// A request another worker handed over link `t` as MSRP text: it is
    /// delivered to the connection its `Relay-Conid` header names, as it is
    /// (the other worker ran the script and rewrote the paths), and its
    /// answers go back over the link. No 200 and no REPORT of this
    /// worker's: the other worker answers and reports for the sender.
    pub(super) fn on_link_request(&mut self, t: ConnId, head: &FrameHead) -> Incoming {
        let target = head
            .header(forward::LINK_CONID)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let is_report = head.method() == Some(b"REPORT");
        let is_send = head.method() == Some(b"SEND");
        let Some(dest) = self.link_target(target) else {
            self.link_target_gone(t, &head.transaction_id);
            if is_send {
                let rec = record::answer(&head.transaction_id, 481);
                self.push_frame(t, rec, self.now);
            } else if !is_report {
                if let Ok(r) = script::reply_frame(head, 481, b"Session Does Not Exist", b"") {
                    self.push_frame(t, r, self.now);
                }
            }
            return Incoming::Discard;
        };
        let others: Vec<Header> = head
            .other_headers()
            .filter(|h| !h.is(forward::LINK_CONID))
            .collect();
        let from = head.from_path().unwrap_or_default();
        let heads = ChunkHeads::new(
            Bytes::copy_from_slice(head.method().unwrap_or(b"SEND")),
            head.to_path().unwrap_or_default(),
            from.clone(),
            others,
            head.has_body,
        );
        let answer_timeout =
            !is_send || head.failure_report().unwrap_or(FailureReport::Yes) == FailureReport::Yes;
        let range = head.byte_range().ok().flatten();
        link_forward(
            t,
            dest,
            Handed {
                tid: head.transaction_id.clone(),
                heads,
                has_body: head.has_body,
                is_report,
                in_start: range.map_or(1, |r| r.start),
                as_record: is_send,
                answer_timeout,
                src_from_path: from,
            },
        )
    }

    fn link_target_gone(&self, t: ConnId, tid: &[u8]) {
        let w = self.conns.get(&t).and_then(|c| c.link).unwrap_or(0);
        log::info!(
            "request {} from MSRP worker {w}: its session's connection is gone",
            String::from_utf8_lossy(tid)
        );
    }

    /// A record from the worker at the other end of link `t`.
    ///
    /// A chunk (Start, Body, End) becomes the link's incoming frame as a
    /// text request would, but with its head as the other worker rendered
    /// it: it is streamed to its connection under the same stream slot and
    /// watermark rules ([`Relay::pump`]) and its answer goes back as a
    /// record. An answer ends the transaction of a chunk this worker handed
    /// over, as a response read on the next hop's connection would
    /// ([`Relay::on_response`]; RFC 4976 §6.4.1).
    pub fn on_record(&mut self, t: ConnId, rec: Record, io: &mut dyn Io) {
        match rec {
            Record::Start {
                target,
                has_body,
                answer_timeout,
                tid,
                head,
            } => {
                let next = match self.link_target(Some(target)) {
                    Some(dest) => {
                        let mut f = link_forward(
                            t,
                            dest,
                            Handed {
                                tid,
                                // (only is_send() of these is read)
                                heads: ChunkHeads::new(
                                    Bytes::from_static(b"SEND"),
                                    Vec::new(),
                                    Vec::new(),
                                    Vec::new(),
                                    has_body,
                                ),
                                has_body,
                                is_report: false,
                                in_start: 1,
                                as_record: true,
                                answer_timeout,
                                src_from_path: Vec::new(),
                            },
                        );
                        if let Incoming::Forward(f) = &mut f {
                            f.link_head = Some(head);
                        }
                        f
                    }
                    None => {
                        self.link_target_gone(t, &tid);
                        self.push_frame(t, record::answer(&tid, 481), self.now);
                        Incoming::Discard
                    }
                };
                if let Some(c) = self.conns.get_mut(&t) {
                    c.incoming = next;
                }
            }
            Record::Body(b) => {
                // (no size limit or refusal on a link: the other worker
                // applied them)
                self.body(t, b);
            }
            Record::End(flag) => self.end(t, flag, self.now),
            Record::Answer { tid, code } => self.on_link_answer(t, tid, code, io),
            Record::Pause { target } => self.on_link_flow(t, target, true),
            Record::Resume { target } => self.on_link_flow(t, target, false),
            Record::Failed { tid, cause } => {
                if !self.tracker.on_failed(t, &tid, cause) {
                    log::info!(
                        "failure ({}) over a link for unknown transaction {}: dropped",
                        cause.name(),
                        String::from_utf8_lossy(&tid)
                    );
                }
                self.apply_outputs(io);
            }
        }
    }

    /// The connection a chunk handed over as records was for is lost
    /// before the chunk started (it waited for the stream slot or the
    /// request window): not tracked yet, it is failed back here, or the
    /// other worker would wait for its timeout.
    pub(super) fn link_chunk_unsent(&mut self, t: ConnId, cause: Cause) {
        let Some(f) = self.fwd_mut(t) else {
            return;
        };
        if f.link_head.take().is_none() {
            return;
        }
        let (src, tid) = (f.ret.src, f.ret.src_tid.clone());
        self.push_frame(src, record::failed(&tid, cause), self.now);
    }

    fn on_link_answer(&mut self, t: ConnId, tid: Bytes, code: u16, io: &mut dyn Io) {
        match self.tracker.on_response(t, &tid, code) {
            Answer::OwnChunk => {}
            Answer::Unknown => log::info!(
                "answer {code} over a link for unknown transaction {}: dropped",
                String::from_utf8_lossy(&tid)
            ),
            // only SEND chunks are answered with records
            Answer::PassBack(_) | Answer::Link(_) => log::error!(
                "answer {code} over a link for request {}, not a SEND chunk: dropped",
                String::from_utf8_lossy(&tid)
            ),
        }
        self.apply_outputs(io);
    }
}

/// The forwarding state of a request handed over link `t` for `dest`.
fn link_forward(t: ConnId, dest: ConnId, h: Handed) -> Incoming {
    Incoming::Forward(Box::new(Forward {
        dest: Some(dest),
        fail_at_start: None,
        size_left: None,
        is_report: h.is_report,
        heads: h.heads,
        has_body: h.has_body,
        chunker: Chunker::new(None, 0, None),
        pending: VecDeque::new(),
        cur_tid: None,
        finished: false,
        in_start: h.in_start,
        sent: 0,
        chunks_done: 0,
        in_id: None,
        ret: Return {
            src: t,
            src_tid: h.tid,
            src_from_path: h.src_from_path,
            relay_uri: Bytes::new(),
            as_record: h.as_record,
        },
        via_link: Some(h.answer_timeout),
        answer: None,
        refused_at: None,
        refusal_paused: false,
        arena: bytes::BytesMut::new(),
        link_target: None,
        link_head: None,
    }))
}

#[cfg(test)]
mod tests;
