//! Encoders for MSRP frames (RFC 4975 §9). Output is byte-exact wire
//! format; nothing here validates semantics (callers pass parsed values).

use bytes::{BufMut, Bytes, BytesMut};

use crate::head::Header;
use crate::parser::EndFlag;
use crate::syntax::DASHES;

mod chunk_heads;
pub use chunk_heads::ChunkHeads;

/// Whether `tid` is a valid `transact-id` (RFC 4975 §9 `ident`, see the
/// crate's parser for the accepted length range 3..=32).
pub fn is_valid_transaction_id(tid: &[u8]) -> bool {
    crate::syntax::is_transaction_id(tid)
}

fn put_path(out: &mut BytesMut, name: &[u8], uris: &[Bytes]) {
    out.put_slice(name);
    out.put_slice(b": ");
    for (i, u) in uris.iter().enumerate() {
        if i > 0 {
            out.put_u8(b' ');
        }
        out.put_slice(u);
    }
    out.put_slice(b"\r\n");
}

fn put_headers(out: &mut BytesMut, to_path: &[Bytes], from_path: &[Bytes], other: &[Header]) {
    // RFC 4975 §9 / §7.1: To-Path and From-Path come first, in this order.
    put_path(out, b"To-Path", to_path);
    put_path(out, b"From-Path", from_path);
    for h in other {
        put_header(out, h);
    }
}

fn put_header(out: &mut BytesMut, h: &Header) {
    out.put_slice(&h.name);
    out.put_slice(b": ");
    out.put_slice(&h.value);
    out.put_slice(b"\r\n");
}

/// Length of a head's lines: `MSRP tid` and `line` (method, or code and
/// comment) on the start line, the path lines and `other`. Buffers are
/// given exactly what goes into them: `Bytes` made from a buffer with room
/// left takes one more allocation (a shared header), one made from a full
/// one none.
fn head_len(
    tid: &[u8],
    line: usize,
    to_path: &[Bytes],
    from_path: &[Bytes],
    other: &[Header],
) -> usize {
    let path = |uris: &[Bytes]| {
        uris.iter()
            .map(|u| u.len() + 1)
            .sum::<usize>()
            .saturating_sub(1)
    };
    5 + tid.len()
        + 1
        + line
        + 2
        + "To-Path: \r\n".len()
        + path(to_path)
        + "From-Path: \r\n".len()
        + path(from_path)
        + other.iter().map(Header::line_len).sum::<usize>()
}

/// Length of `-------tid flag CRLF`.
fn end_line_len(tid: &[u8]) -> usize {
    DASHES.len() + tid.len() + 3
}

/// `MSRP tid METHOD CRLF`, To-Path, From-Path, then `other` verbatim; when
/// `has_body`, the blank line that opens the body section is appended.
pub fn request_head(
    tid: &[u8],
    method: &[u8],
    to_path: &[Bytes],
    from_path: &[Bytes],
    other: &[Header],
    has_body: bool,
) -> BytesMut {
    let len = head_len(tid, method.len(), to_path, from_path, other) + 2 * usize::from(has_body);
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(b"MSRP ");
    out.put_slice(tid);
    out.put_u8(b' ');
    out.put_slice(method);
    out.put_slice(b"\r\n");
    put_headers(&mut out, to_path, from_path, other);
    if has_body {
        out.put_slice(b"\r\n");
    }
    out
}

/// Length of [`put_range_line`]'s line.
fn range_line_len(r: &crate::ByteRange) -> usize {
    let digits = |v: u64| v.checked_ilog10().map_or(1, |d| d as usize + 1);
    "Byte-Range: -/\r\n".len()
        + digits(r.start)
        + r.end.map_or(1, digits)
        + r.total.map_or(1, digits)
}

/// "Byte-Range: " start "-" end "/" total CRLF, 19 digits each.
const WIDEST_RANGE_LINE: usize = 12 + 3 * 19 + 2 + 2;

/// Decimal digits of `v` (what `Display` writes), without the formatter.
fn put_u64(out: &mut BytesMut, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// `Byte-Range: start-end/total CRLF`.
fn put_range_line(out: &mut BytesMut, r: &crate::ByteRange) {
    out.put_slice(b"Byte-Range: ");
    put_range(out, r);
    out.put_slice(b"\r\n");
}

/// `start-end/total` with `*` for unknown values (as `ByteRange`'s Display).
fn put_range(out: &mut BytesMut, r: &crate::ByteRange) {
    put_u64(out, r.start);
    out.put_u8(b'-');
    match r.end {
        Some(e) => put_u64(out, e),
        None => out.put_u8(b'*'),
    }
    out.put_u8(b'/');
    match r.total {
        Some(t) => put_u64(out, t),
        None => out.put_u8(b'*'),
    }
}

/// `MSRP tid code [comment] CRLF` plus headers; no blank line, since
/// responses carry no body (RFC 4975 §7.2).
pub fn response_head(
    tid: &[u8],
    code: u16,
    comment: Option<&[u8]>,
    to_path: &[Bytes],
    from_path: &[Bytes],
    other: &[Header],
) -> BytesMut {
    // three digits, more only for a code over 999
    let line = 3.max(code.checked_ilog10().map_or(1, |d| d as usize + 1))
        + comment.map_or(0, |c| 1 + c.len());
    let mut out = BytesMut::with_capacity(head_len(tid, line, to_path, from_path, other));
    out.put_slice(b"MSRP ");
    out.put_slice(tid);
    out.put_u8(b' ');
    if code < 100 {
        out.put_slice(if code < 10 { b"00" } else { b"0" });
    }
    put_u64(&mut out, u64::from(code));
    if let Some(c) = comment {
        out.put_u8(b' ');
        out.put_slice(c);
    }
    out.put_slice(b"\r\n");
    put_headers(&mut out, to_path, from_path, other);
    out
}

fn put_end_line(out: &mut BytesMut, tid: &[u8], flag: EndFlag) {
    out.put_slice(DASHES);
    out.put_slice(tid);
    out.put_u8(flag.as_byte());
    out.put_slice(b"\r\n");
}

/// `-------tid flag CRLF`: closes a frame without body.
pub fn end_line(tid: &[u8], flag: EndFlag) -> Bytes {
    end_line_in(&mut BytesMut::new(), tid, flag)
}

/// `CRLF -------tid flag CRLF`: closes a body (one buffer: every
/// forwarded chunk ends with one).
pub fn body_end(tid: &[u8], flag: EndFlag) -> Bytes {
    body_end_in(&mut BytesMut::new(), tid, flag)
}

/// [`end_line`], written into `arena` and split off it (see
/// [`ChunkHeads::render_in`]).
pub fn end_line_in(arena: &mut BytesMut, tid: &[u8], flag: EndFlag) -> Bytes {
    arena.clear();
    let fresh = arena.capacity() == 0;
    arena.reserve(end_line_len(tid));
    put_end_line(arena, tid, flag);
    take_written(arena, fresh)
}

/// [`body_end`], written into `arena` and split off it (see
/// [`ChunkHeads::render_in`]).
pub fn body_end_in(arena: &mut BytesMut, tid: &[u8], flag: EndFlag) -> Bytes {
    arena.clear();
    let fresh = arena.capacity() == 0;
    arena.reserve(2 + end_line_len(tid));
    arena.put_slice(b"\r\n");
    put_end_line(arena, tid, flag);
    take_written(arena, fresh)
}

/// What was just written into `arena`: a buffer allocated for it alone
/// (`fresh`) is handed over whole, as a plain `Vec`-backed `Bytes` (split
/// off, it would need a shared header allocated too); else it is split
/// off, sharing the buffer.
fn take_written(arena: &mut BytesMut, fresh: bool) -> Bytes {
    if fresh {
        std::mem::take(arena).freeze()
    } else {
        arena.split().freeze()
    }
}

/// A complete response frame: [`response_head`] + [`end_line`] with `$`.
pub fn response_frame(
    tid: &[u8],
    code: u16,
    comment: Option<&[u8]>,
    to_path: &[Bytes],
    from_path: &[Bytes],
    other: &[Header],
) -> Bytes {
    let mut out = response_head(tid, code, comment, to_path, from_path, other);
    // (grown once: the relay's own error responses are rare)
    put_end_line(&mut out, tid, EndFlag::Complete);
    out.freeze()
}

/// An error REPORT a relay sends back to the original sender
/// (RFC 4976 §6.4.1; format RFC 4975 §7.1.2): To-Path is the From-Path of
/// the SEND as the relay received it, From-Path the relay's own URI;
/// Message-ID copied; `Byte-Range` (range-start and total from the SEND,
/// range-end from the bytes actually processed) and `Status`; no
/// Success-Report/Failure-Report headers and no body.
pub fn report_frame(
    tid: &[u8],
    to_path: &[Bytes],
    relay_uri: &Bytes,
    message_id: &[u8],
    byte_range: Option<crate::ByteRange>,
    status: &crate::Status,
) -> Bytes {
    let mut other = vec![Header::new(
        Bytes::from_static(b"Message-ID"),
        Bytes::copy_from_slice(message_id),
    )];
    if let Some(r) = byte_range {
        other.push(Header::new(
            Bytes::from_static(b"Byte-Range"),
            Bytes::from(r.to_string()),
        ));
    }
    other.push(Header::new(
        Bytes::from_static(b"Status"),
        Bytes::from(status.to_bytes()),
    ));
    let mut out = request_head(
        tid,
        b"REPORT",
        to_path,
        std::slice::from_ref(relay_uri),
        &other,
        false,
    );
    put_end_line(&mut out, tid, EndFlag::Complete);
    out.freeze()
}
