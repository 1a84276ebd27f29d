//! What goes into and comes out of the [`Tracker`](super::Tracker).

use crate::connid::ConnId;
use bytes::Bytes;
use msrp_core::{ByteRange, FailureReport};

use crate::report::ReportOrder;
use crate::txtable::Cause;

/// Handle of an incoming SEND chunk.
pub type InId = u64;

/// The sender's transaction: one incoming SEND chunk.
#[derive(Debug, Clone)]
pub struct InTx {
    pub src: ConnId,
    pub src_tid: Bytes,
    /// From-Path as received: the REPORT's To-Path.
    pub src_from_path: Vec<Bytes>,
    pub relay_uri: Bytes,
    pub message_id: Bytes,
    pub failure_report: FailureReport,
    pub range: Option<ByteRange>,
}

/// Where the response to a forwarded non-SEND request goes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Return {
    pub src: ConnId,
    pub src_tid: Bytes,
    pub src_from_path: Vec<Bytes>,
    pub relay_uri: Bytes,
    /// A SEND chunk another worker handed over a link: its answer goes
    /// back as a [record](crate::link::record) (tid and code: that
    /// worker's tracker needs no more), not as a response frame.
    pub as_record: bool,
}

/// What a forwarded request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An outgoing chunk of an incoming SEND chunk: the relay consumes its
    /// response itself (RFC 4976 §6.4.1).
    Chunk(InId),
    /// Any other request: its response goes back. (Boxed, as in `Link`:
    /// the tracker moves its entries in and out of hash maps for every
    /// chunk, most of them `Chunk`s.)
    PassBack(Box<Return>),
    /// A request another worker handed over a link: its answer goes back
    /// over the link as it is (but for the transaction ID), without the
    /// script; a timeout is answered (408) only when `answer_timeout`
    /// (a SEND with Failure-Report "partial"/"no" is never answered on
    /// success, so its silence is no failure).
    Link {
        ret: Box<Return>,
        answer_timeout: bool,
    },
}

/// How a forwarded request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The next hop answered with this error code.
    Error(u16),
    /// No response within transaction_timeout.
    Timeout,
    /// The next hop's connection failed or closed.
    Lost(Cause),
}

/// What the engine must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this REPORT to the sender.
    Report(ReportOrder),
    /// A forwarded non-SEND request failed downstream: answer 408 to its
    /// sender (RFC 4975 §7.1, RFC 4976 §6.4).
    Fail(Return),
    /// A SEND chunk another worker handed over as records failed here
    /// for `cause` (no answer in time, its connection lost): that worker
    /// is told, and REPORTs as for a next hop of its own.
    LinkFailed { ret: Return, cause: Cause },
    /// The next hop has room in its request window again.
    WindowOpen(ConnId),
    /// Incoming chunk `id` failed while it is still arriving: the relay
    /// knows it drops it, so the sender gets an error response instead of
    /// the 200 (RFC 4975 §10: 413, stop sending this message), the rest of
    /// the chunk is not forwarded and no more of it is read than need be.
    Refuse {
        src: ConnId,
        id: InId,
        message_id: Bytes,
    },
    /// RFC 4975 §10 (413): the sender must not send more of this message;
    /// stop forwarding what it is sending of it.
    StopMessage {
        src: ConnId,
        id: InId,
        message_id: Bytes,
    },
}

/// A response, as far as the tracker is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It answered one of the relay's own chunks: consumed.
    OwnChunk,
    /// It answers a forwarded request whose response goes back this way.
    PassBack(Return),
    /// It answers a request another worker handed over a link.
    Link(Return),
    /// Nothing the relay sent.
    Unknown,
}

/// A transaction ID as the tracker's maps and queues hold it: inline and
/// `Copy` (RFC 4975 §9: at most 32 characters; the relay's own are 16, or
/// 22 in a "partial" group), so the entry of each forwarded chunk, its
/// deadline and publication queues and a response's look-up copy it
/// instead of counting references on the buffer the tid was cut from. A
/// longer ID keeps its first 32 bytes and its length, so it equals no
/// valid one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct TidKey {
    len: u8,
    bytes: [u8; 32],
}

impl TidKey {
    pub(super) fn new(tid: &[u8]) -> TidKey {
        let mut bytes = [0; 32];
        let n = tid.len().min(32);
        bytes[..n].copy_from_slice(&tid[..n]);
        TidKey {
            len: tid.len().min(usize::from(u8::MAX)) as u8,
            bytes,
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(32)]
    }
}
