//! Requests another worker hands over its link to this one (see
//! [`crate::forward::LINK_CONID`]).

use std::collections::VecDeque;

use bytes::Bytes;
use msrp_core::build::ChunkHeads;
use msrp_core::{Chunker, FailureReport, FrameHead, Header};

use super::Relay;
use crate::conn::Incoming;
use crate::connid::ConnId;
use crate::forward::{self, Forward};
use crate::script;
use crate::tracker::Return;

impl Relay {
    /// A request another worker handed over link `t`: it is delivered to
    /// the connection its `Relay-Conid` header names, as it is (the other
    /// worker ran the script and rewrote the paths), and its answers go
    /// back over the link. No 200 and no REPORT of this worker's: the
    /// other worker answers and reports for the sender.
    pub(super) fn on_link_request(&mut self, t: ConnId, head: &FrameHead) -> Incoming {
        let target = head
            .header(forward::LINK_CONID)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(ConnId)
            .filter(|d| self.conns.get(d).is_some_and(|c| c.link.is_none()));
        let is_report = head.method() == Some(b"REPORT");
        let Some(dest) = target else {
            log::info!(
                "request {} over a link: its session's connection is gone",
                String::from_utf8_lossy(&head.transaction_id)
            );
            if !is_report {
                if let Ok(r) = script::reply_frame(head, 481, b"Session Does Not Exist", b"") {
                    self.push_frame(t, r, self.now);
                }
            }
            return Incoming::Discard;
        };
        let others: Vec<Header> = head
            .other_headers()
            .filter(|h| !h.name.eq_ignore_ascii_case(forward::LINK_CONID.as_bytes()))
            .cloned()
            .collect();
        let from = head.from_path().unwrap_or_default();
        let heads = ChunkHeads::new(
            Bytes::copy_from_slice(head.method().unwrap_or(b"SEND")),
            head.to_path().unwrap_or_default(),
            from.clone(),
            others,
            head.has_body,
        );
        let answer_timeout = head.method() != Some(b"SEND")
            || head.failure_report().unwrap_or(FailureReport::Yes) == FailureReport::Yes;
        let range = head.byte_range().ok().flatten();
        Incoming::Forward(Box::new(Forward {
            dest: Some(dest),
            fail_at_start: None,
            size_left: None,
            is_report,
            heads,
            has_body: head.has_body,
            chunker: Chunker::new(None, 0, None),
            pending: VecDeque::new(),
            cur_tid: None,
            finished: false,
            in_start: range.map_or(1, |r| r.start),
            sent: 0,
            chunks_done: 0,
            in_id: None,
            ret: Return {
                src: t,
                src_tid: head.transaction_id.clone(),
                src_from_path: from,
                relay_uri: Bytes::new(),
            },
            via_link: Some(answer_timeout),
            answer: None,
            refused_at: None,
            refusal_paused: false,
            arena: bytes::BytesMut::new(),
        }))
    }
}
