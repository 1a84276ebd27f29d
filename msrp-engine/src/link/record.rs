//! Records on a link between workers, between its MSRP frames.
//!
//! A SEND chunk for a session another worker (Y) holds is rendered by the
//! worker that ran the script (X) for the final hop, with X's transaction
//! ID, and handed over as records: [`Record::Start`] (the connection it is
//! for on Y, the tid, the head as it goes out), [`Record::Body`] pieces,
//! [`Record::End`] (the end-line's flag). Y appends them to the
//! connection's output queue without parsing or rendering anything (its
//! stream slot and watermarks still apply). What comes back is only what
//! X's tracker needs: [`Record::Answer`], the tid and the next hop's status
//! code (RFC 4976 §6.4.1: responses to a relay's own SEND chunks are
//! consumed by it, never forwarded), or [`Record::Failed`], the tid and
//! why it failed at Y (timeout, connection closed), so X REPORTs as it
//! does for a next hop of its own. Other requests (REPORT, NICKNAME, ...)
//! still go as MSRP text with a `Relay-Conid` header and their responses
//! come back as frames (their paths and headers are passed back).
//!
//! A record starts with [`MARK`], a byte no MSRP frame starts with (every
//! frame begins with `MSRP`, RFC 4975 §9), and is read only between frames:
//! `MARK`, kind (1 byte), payload length (4 bytes, little endian), payload.
//! The reader takes whole records only; a record split over several reads
//! (or the ring's wrap) waits in the read buffer for the rest, so the
//! writer keeps records far below the ring's size ([`MAX_BODY`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use msrp_core::EndFlag;

use crate::txtable::Cause;

/// First byte of every record.
pub const MARK: u8 = 0x01;
/// Bytes before a record's payload.
const HEADER: usize = 6;
const KIND_ANSWER: u8 = 1;
const KIND_START: u8 = 2;
const KIND_BODY: u8 = 3;
const KIND_END: u8 = 4;
const KIND_FAILED: u8 = 5;
const KIND_PAUSE: u8 = 6;
const KIND_RESUME: u8 = 7;
/// Most body bytes in one [`Record::Body`] (a longer piece goes as
/// several): a record is read whole, and rings are 512 KiB.
pub const MAX_BODY: usize = 64 * 1024;
/// Start flags.
const HAS_BODY: u8 = 1;
const ANSWER_TIMEOUT: u8 = 2;
/// Bytes of a Start payload before its tid.
const START_FIXED: usize = 8 + 1 + 1;

/// A record read from a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The next hop answered `code` to chunk `tid` the reader's worker
    /// handed over (a 408 when the owner timed it out or lost the next
    /// hop).
    Answer { tid: Bytes, code: u16 },
    /// A chunk for connection `target` of the reader's worker begins:
    /// `head` is its head as it goes out (with `tid`), `has_body` says
    /// which end-line closes it (RFC 4975 §7.1: a body-less frame's has no
    /// CRLF before it); `answer_timeout`: a missing response is a failure
    /// to answer (Failure-Report "yes").
    Start {
        target: u64,
        has_body: bool,
        answer_timeout: bool,
        tid: Bytes,
        head: Bytes,
    },
    /// Chunk `tid` the reader's worker handed over failed without an
    /// answer (no response within transaction_timeout, its connection
    /// closed): that worker fails it for `cause`, as for a next hop of its
    /// own (RFC 4976 §6.4.1).
    Failed { tid: Bytes, cause: Cause },
    /// Body bytes of the chunk begun.
    Body(Bytes),
    /// The chunk ends with this flag.
    End(EndFlag),
    /// Connection `target` of the writer's worker is over its high
    /// watermark: the writer takes in what is already under way for it,
    /// but the reader starts no more chunks for it until [`Record::Resume`]
    /// (so one slow connection does not hold back the link's others).
    Pause { target: u64 },
    /// Connection `target` drained (or is gone): chunks for it may go on.
    Resume { target: u64 },
}

/// A record that cannot be understood (a bug in the other worker: both
/// run the same code). It is consumed, so the link goes on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("unknown link record kind {0}")]
    UnknownKind(u8),
    #[error("link answer record of {0} bytes (at least 3)")]
    ShortAnswer(usize),
    #[error("link chunk start record of {0} bytes, too short for its tid")]
    ShortStart(usize),
    #[error("link chunk end record without a valid flag")]
    BadEnd,
    #[error("link failure record without a tid or a known cause")]
    BadFailed,
    #[error("link pause/resume record of {0} bytes (8)")]
    BadFlow(usize),
}

/// Longest transaction ID a record carries (tids are far shorter: the
/// relay's own are [`crate::tid::TID_LEN`] characters).
pub const MAX_TID: usize = u16::MAX as usize - 2;

fn header(kind: u8, len: usize, extra: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(HEADER + extra);
    b.put_u8(MARK);
    b.put_u8(kind);
    b.put_u32_le(u32::try_from(len).unwrap_or(u32::MAX));
    b
}

/// The record of answer `code` to chunk `tid` (cut at [`MAX_TID`]).
pub fn answer(tid: &[u8], code: u16) -> Bytes {
    let tid = &tid[..tid.len().min(MAX_TID)];
    let len = 2 + tid.len();
    let mut b = header(KIND_ANSWER, len, len);
    b.put_u16_le(code);
    b.put_slice(tid);
    b.freeze()
}

/// The record that says chunk `tid` failed here for `cause` (tid cut at
/// [`MAX_TID`]).
pub fn failed(tid: &[u8], cause: Cause) -> Bytes {
    let tid = &tid[..tid.len().min(MAX_TID)];
    let len = 1 + tid.len();
    let mut b = header(KIND_FAILED, len, len);
    b.put_u8(cause as u8);
    b.put_slice(tid);
    b.freeze()
}

/// The record that begins chunk `tid` (at most 255 bytes) for connection
/// `target` of the other worker; `head` as it goes out.
pub fn start(target: u64, has_body: bool, answer_timeout: bool, tid: &[u8], head: &[u8]) -> Bytes {
    let tid = &tid[..tid.len().min(usize::from(u8::MAX))];
    let len = START_FIXED + tid.len() + head.len();
    let mut b = header(KIND_START, len, len);
    b.put_u64_le(target);
    let flags =
        if has_body { HAS_BODY } else { 0 } | if answer_timeout { ANSWER_TIMEOUT } else { 0 };
    b.put_u8(flags);
    b.put_u8(tid.len() as u8);
    b.put_slice(tid);
    b.put_slice(head);
    b.freeze()
}

/// The record that asks the other worker to start no more chunks for
/// connection `target` of this one (see [`Record::Pause`]).
pub fn pause(target: u64) -> Bytes {
    flow(KIND_PAUSE, target)
}

/// The record that lets chunks for connection `target` go on.
pub fn resume(target: u64) -> Bytes {
    flow(KIND_RESUME, target)
}

fn flow(kind: u8, target: u64) -> Bytes {
    let mut b = header(kind, 8, 8);
    b.put_u64_le(target);
    b.freeze()
}

/// Body bytes as records: a record header before each piece of at most
/// [`MAX_BODY`] bytes, each handed to `out` (the bytes themselves are not
/// copied).
pub fn body(mut b: Bytes, out: &mut impl FnMut(Bytes)) {
    while !b.is_empty() {
        let piece = b.split_to(b.len().min(MAX_BODY));
        out(header(KIND_BODY, piece.len(), 0).freeze());
        out(piece);
    }
}

/// The record that ends the chunk with `flag`.
pub fn end(flag: EndFlag) -> Bytes {
    const fn rec(flag: u8) -> [u8; HEADER + 1] {
        [MARK, KIND_END, 1, 0, 0, 0, flag]
    }
    static COMPLETE: [u8; HEADER + 1] = rec(b'$');
    static CONTINUED: [u8; HEADER + 1] = rec(b'+');
    static ABORTED: [u8; HEADER + 1] = rec(b'#');
    Bytes::from_static(match flag {
        EndFlag::Complete => &COMPLETE,
        EndFlag::Continued => &CONTINUED,
        EndFlag::Aborted => &ABORTED,
    })
}

/// Whether `buf` (read from a link, between frames) starts with a record.
pub fn starts(buf: &[u8]) -> bool {
    buf.first() == Some(&MARK)
}

/// Takes the record at the start of `buf` (which [`starts`] one):
/// `Ok(None)` while it is incomplete (nothing is taken).
pub fn take(buf: &mut BytesMut) -> Result<Option<Record>, RecordError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let kind = buf[1];
    let len = u32::from_le_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    buf.advance(HEADER);
    let payload = buf.split_to(len).freeze();
    decode(kind, payload).map(Some)
}

fn decode(kind: u8, mut p: Bytes) -> Result<Record, RecordError> {
    let len = p.len();
    match kind {
        KIND_BODY => Ok(Record::Body(p)),
        KIND_END => match p.first().copied().and_then(EndFlag::from_byte) {
            Some(flag) if len == 1 => Ok(Record::End(flag)),
            _ => Err(RecordError::BadEnd),
        },
        KIND_ANSWER if len >= 3 => {
            let code = p.get_u16_le();
            Ok(Record::Answer { tid: p, code })
        }
        KIND_ANSWER => Err(RecordError::ShortAnswer(len)),
        KIND_FAILED if len >= 2 => match Cause::ALL.get(usize::from(p.get_u8())) {
            Some(cause) => Ok(Record::Failed {
                tid: p,
                cause: *cause,
            }),
            None => Err(RecordError::BadFailed),
        },
        KIND_FAILED => Err(RecordError::BadFailed),
        KIND_START if len >= START_FIXED && len >= START_FIXED + usize::from(p[9]) => {
            let target = p.get_u64_le();
            let flags = p.get_u8();
            let tid_len = usize::from(p.get_u8());
            let tid = p.split_to(tid_len);
            Ok(Record::Start {
                target,
                has_body: flags & HAS_BODY != 0,
                answer_timeout: flags & ANSWER_TIMEOUT != 0,
                tid,
                head: p,
            })
        }
        KIND_START => Err(RecordError::ShortStart(len)),
        KIND_PAUSE if len == 8 => Ok(Record::Pause {
            target: p.get_u64_le(),
        }),
        KIND_RESUME if len == 8 => Ok(Record::Resume {
            target: p.get_u64_le(),
        }),
        KIND_PAUSE | KIND_RESUME => Err(RecordError::BadFlow(len)),
        k => Err(RecordError::UnknownKind(k)),
    }
}

#[cfg(test)]
mod tests;
