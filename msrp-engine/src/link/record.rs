//! Records on a link between workers, between its MSRP frames.
//!
//! A request handed to another worker still goes as MSRP text (that
//! worker delivers it to the session's connection), but what comes back
//! for a SEND chunk is only what the sending worker's tracker needs: the
//! chunk's transaction ID and the next hop's status code (RFC 4976 §6.4.1:
//! responses to a relay's own SEND chunks are consumed by it, never
//! forwarded). So the owner writes a record, not a response frame, and the
//! sender takes it without the MSRP parser.
//!
//! A record starts with [`MARK`], a byte no MSRP frame starts with (every
//! frame begins with `MSRP`, RFC 4975 §9), and is read only between frames:
//! `MARK`, kind (1 byte), payload length (2 bytes, little endian), payload.
//! The reader takes whole records only; a record split over several reads
//! (or the ring's wrap) waits in the read buffer for the rest.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// First byte of every record.
pub const MARK: u8 = 0x01;
/// Bytes before a record's payload.
const HEADER: usize = 4;
const KIND_ANSWER: u8 = 1;

/// A record read from a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The next hop answered `code` to chunk `tid` the reader's worker
    /// handed over (a 408 when the owner timed it out or lost the next
    /// hop).
    Answer { tid: Bytes, code: u16 },
}

/// A record that cannot be understood (a bug in the other worker: both
/// run the same code). It is consumed, so the link goes on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("unknown link record kind {0}")]
    UnknownKind(u8),
    #[error("link answer record of {0} bytes (at least 3)")]
    ShortAnswer(usize),
}

/// Longest transaction ID a record carries (tids are far shorter: the
/// relay's own are [`crate::tid::TID_LEN`] characters).
pub const MAX_TID: usize = u16::MAX as usize - 2;

/// The record of answer `code` to chunk `tid` (cut at [`MAX_TID`]).
pub fn answer(tid: &[u8], code: u16) -> Bytes {
    let tid = &tid[..tid.len().min(MAX_TID)];
    let len = 2 + tid.len();
    let mut b = BytesMut::with_capacity(HEADER + len);
    b.put_u8(MARK);
    b.put_u8(KIND_ANSWER);
    b.put_u16_le(len as u16);
    b.put_u16_le(code);
    b.put_slice(tid);
    b.freeze()
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
    let len = usize::from(u16::from_le_bytes([buf[2], buf[3]]));
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    buf.advance(HEADER);
    let mut payload = buf.split_to(len);
    match kind {
        KIND_ANSWER if len >= 3 => {
            let code = payload.get_u16_le();
            Ok(Some(Record::Answer {
                tid: payload.freeze(),
                code,
            }))
        }
        KIND_ANSWER => Err(RecordError::ShortAnswer(len)),
        k => Err(RecordError::UnknownKind(k)),
    }
}

#[cfg(test)]
mod tests;
