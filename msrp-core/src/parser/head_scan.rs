//! The head of a frame, line by line: the start line, header lines, and
//! the blank line or end-line that ends the head (RFC 4975 §9), validated
//! as bytes arrive, with errors that do not depend on how the input was
//! split into reads.

use std::ops::Range;

use bytes::Bytes;

use super::end_line::{match_end_line, EndMatch};
use super::{EndFlag, Limits, ParseError};
use crate::head::{FrameHead, StartLine};
use crate::syntax::{is_text_byte, is_token_char, is_transaction_id, parse_3digit, trim_ws};

/// Start line parsed into offsets relative to the frame's first byte.
#[derive(Debug, Clone)]
pub(super) enum StartKind {
    Request {
        method: Range<usize>,
    },
    Response {
        code: u16,
        comment: Option<Range<usize>>,
    },
}

#[derive(Debug, Clone)]
pub(super) struct ParsedStart {
    pub(super) tid: Range<usize>,
    pub(super) kind: StartKind,
}

/// Progress through the head of a frame. All offsets are relative to the
/// front of the caller's buffer, where the frame starts.
#[derive(Debug, Default)]
pub(super) struct HeadScan {
    /// Some bytes of this frame have been seen.
    pub(super) started: bool,
    /// Start of the first line not yet validated.
    scanned: usize,
    /// Bytes of the current line already searched for LF, so that a line
    /// arriving byte by byte is not rescanned quadratically.
    searched: usize,
    start: Option<ParsedStart>,
    /// Name and value of each header line.
    headers: Vec<(Range<usize>, Range<usize>)>,
}

/// Room for the header lines of most frames at once (a SEND has To-Path,
/// From-Path, Message-ID, Byte-Range, Content-Type and the report
/// headers): one allocation per head where growing from empty took two.
/// Not kept from frame to frame, which would hold it for every idle
/// connection.
const HEADERS_ROOM: usize = 8;

/// Result of validating one line of a head.
pub(super) enum HeadStep {
    /// Line consumed into the scan; continue with the next.
    Continue,
    /// Head finished; terminator line of this length follows the head.
    Done {
        head_len: usize,
        term_len: usize,
        end: Option<EndFlag>,
    },
}

/// Validates the next complete line of the head, or checks what can already
/// be decided about a partial one. `Ok(None)` means more input is needed.
///
/// The checks run in the same order whether a line is complete or not, and
/// every check on a partial line is one that the complete line would fail
/// too, so the error reported does not depend on how the input was split
/// into reads.
pub(super) fn scan_line(
    scan: &mut HeadScan,
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<HeadStep>, ParseError> {
    let line_start = scan.scanned;
    let rest = &buf[line_start..];
    if rest.is_empty() {
        return Ok(None);
    }
    let skip = scan.searched.min(rest.len());
    let nl = memchr::memchr(b'\n', &rest[skip..]).map(|p| p + skip);
    scan.searched = rest.len();
    // the tid, for the end-line of a body-less frame
    let tid = scan.start.as_ref().map_or(&[][..], |s| &buf[s.tid.clone()]);
    if let Some(decided) = first_bytes(scan, tid, rest, nl, line_start, limits)? {
        return Ok(decided);
    }
    // Lower bound of the line's length, LF included.
    let min_len = nl.map_or(rest.len() + 1, |p| p + 1);
    check_line_size(min_len, line_start, limits)?;
    let Some(nl) = nl else {
        return Ok(None);
    };
    // RFC 4975 §9: every line ends with CRLF; a bare LF is a syntax error.
    if nl == 0 || rest[nl - 1] != b'\r' {
        return Err(ParseError::BadLineEnding);
    }
    let text = &rest[..nl - 1];
    if scan.start.is_none() {
        scan.start = Some(parse_start_line(text, line_start)?);
    } else {
        if scan.headers.capacity() == 0 {
            scan.headers.reserve_exact(HEADERS_ROOM);
        }
        scan.headers.push(parse_header(text, line_start)?);
    }
    scan.scanned = line_start + nl + 1;
    scan.searched = 0;
    Ok(Some(HeadStep::Continue))
}

/// What the first bytes of a line (`rest`, its LF at `nl` if here) decide
/// before its size is checked: `Some(step)` for a line that ends the head
/// (or may: `Some(None)` waits for more), `None` for a start or header
/// line to validate.
fn first_bytes(
    scan: &HeadScan,
    tid: &[u8],
    rest: &[u8],
    nl: Option<usize>,
    line_start: usize,
    limits: &Limits,
) -> Result<Option<Option<HeadStep>>, ParseError> {
    if scan.start.is_none() {
        // Reject a non-MSRP stream (HTTP, TLS to a plain port, ...) without
        // waiting for a line end. RFC 4975 §9: pMSRP = %x4D.53.52.50.
        let n = rest.len().min(5);
        if rest[..n] != b"MSRP "[..n] {
            return Err(ParseError::BadStartLine("protocol is not MSRP".into()));
        }
    } else if rest[0] == b'-' {
        // Header names start with ALPHA (RFC 4975 §9 `hname`), so a dash
        // opens the end-line of a body-less frame. It is at most 42 bytes,
        // so it needs no limit checks: a mismatch shows up first.
        let line = &rest[..nl.map_or(rest.len(), |p| p + 1)];
        return match (match_end_line(line, tid), nl) {
            (EndMatch::Valid(flag), Some(_)) => Ok(Some(Some(HeadStep::Done {
                head_len: line_start,
                term_len: line.len(),
                end: Some(flag),
            }))),
            (EndMatch::Incomplete, None) => Ok(Some(None)),
            _ => Err(ParseError::BadEndLine),
        };
    } else if rest.starts_with(b"\r\n") {
        // The blank line: a body section follows (RFC 4975 §9).
        return Ok(Some(Some(HeadStep::Done {
            head_len: line_start,
            term_len: 2,
            end: None,
        })));
    } else if rest == b"\r" {
        // Possibly the blank line; not counted against the head limits.
        return Ok(Some(None));
    } else if scan.headers.len() >= limits.max_headers {
        return Err(ParseError::TooManyHeaders {
            limit: limits.max_headers,
        });
    }
    Ok(None)
}

/// Both size limits cap the length of a line: `max_line` directly,
/// `max_head` through the room the earlier lines left. Whichever cap is
/// smaller is the one a byte-by-byte reader crosses first, so that is the
/// error reported, however much of the line is buffered (on a tie the line
/// limit wins). Checking the limits one after the other instead would make
/// the error depend on the reads: a partial line can already exceed the
/// head room while its final length, not yet known, also exceeds
/// `max_line`. (Earlier lines fit in `max_head`; saturating only for
/// robustness.)
fn check_line_size(min_len: usize, line_start: usize, limits: &Limits) -> Result<(), ParseError> {
    let head_room = limits.max_head.saturating_sub(line_start);
    if min_len <= limits.max_line.min(head_room) {
        return Ok(());
    }
    Err(if limits.max_line <= head_room {
        ParseError::LineTooLong {
            limit: limits.max_line,
        }
    } else {
        ParseError::HeadTooLarge {
            limit: limits.max_head,
        }
    })
}

/// Parses `MSRP SP transact-id SP method` or
/// `MSRP SP transact-id SP status-code [SP comment]` (RFC 4975 §9); `base`
/// is the offset of `line` in the frame.
pub(super) fn parse_start_line(line: &[u8], base: usize) -> Result<ParsedStart, ParseError> {
    // RFC 4975 §9: pMSRP = %x4D.53.52.50, i.e. "MSRP" in capitals only.
    let Some(rest) = line.strip_prefix(b"MSRP ") else {
        return Err(ParseError::BadStartLine("protocol is not MSRP".into()));
    };
    let off = base + 5;
    let Some(sp) = memchr::memchr(b' ', rest) else {
        return Err(ParseError::BadStartLine(
            "missing method or status code".into(),
        ));
    };
    if !is_transaction_id(&rest[..sp]) {
        return Err(ParseError::BadTransactionId);
    }
    let tid = off..off + sp;
    let after = &rest[sp + 1..];
    let after_off = off + sp + 1;
    let Some(&first) = after.first() else {
        return Err(ParseError::BadStartLine(
            "missing method or status code".into(),
        ));
    };
    if first.is_ascii_digit() {
        let code_len = memchr::memchr(b' ', after).unwrap_or(after.len());
        let code = parse_3digit(&after[..code_len])
            .filter(|c| (100..=999).contains(c))
            .ok_or_else(|| {
                ParseError::BadStatusCode(String::from_utf8_lossy(&after[..code_len]).into_owned())
            })?;
        let comment_raw = after.get(code_len + 1..).unwrap_or(&[]);
        // comment = utf8text (RFC 4975 §9): no control characters.
        if !comment_raw.iter().all(|&b| is_text_byte(b)) {
            return Err(ParseError::BadStartLine(
                "control character in comment".into(),
            ));
        }
        let (a, b) = trim_ws(comment_raw);
        let comment_off = after_off + code_len + 1;
        let comment = (a < b).then(|| comment_off + a..comment_off + b);
        Ok(ParsedStart {
            tid,
            kind: StartKind::Response { code, comment },
        })
    } else {
        // method = 1*UPALPHA (RFC 4975 §9).
        if !after.iter().all(u8::is_ascii_uppercase) {
            return Err(ParseError::BadStartLine(format!(
                "bad method {}",
                after.escape_ascii()
            )));
        }
        Ok(ParsedStart {
            tid,
            kind: StartKind::Request {
                method: after_off..after_off + after.len(),
            },
        })
    }
}

/// Parses `hname ":" SP hval` (RFC 4975 §9), tolerating missing or extra
/// whitespace around the value; `base` is the offset of `line` in the frame.
pub(super) fn parse_header(
    line: &[u8],
    base: usize,
) -> Result<(Range<usize>, Range<usize>), ParseError> {
    let Some(colon) = memchr::memchr(b':', line) else {
        return Err(ParseError::BadHeader(format!(
            "missing colon in {}",
            line.escape_ascii()
        )));
    };
    let name = &line[..colon];
    // hname = ALPHA *token
    let name_ok =
        name.first().is_some_and(u8::is_ascii_alphabetic) && name.iter().all(|&b| is_token_char(b));
    if !name_ok {
        return Err(ParseError::BadHeader(format!(
            "bad header name {}",
            name.escape_ascii()
        )));
    }
    let value = &line[colon + 1..];
    if !value.iter().all(|&b| is_text_byte(b)) {
        return Err(ParseError::BadHeader(format!(
            "control character in {} value",
            String::from_utf8_lossy(name)
        )));
    }
    let (a, b) = trim_ws(value);
    let v_off = base + colon + 1;
    Ok((base..base + colon, v_off + a..v_off + b))
}

pub(super) fn build_head(
    scan: HeadScan,
    raw: Bytes,
    has_body: bool,
) -> Result<FrameHead, ParseError> {
    let Some(start) = scan.start else {
        // Unreachable: a head only completes after its start line.
        return Err(ParseError::BadStartLine("missing start line".into()));
    };
    let start_line = match start.kind {
        StartKind::Request { method } => StartLine::Request {
            method: raw.slice(method),
        },
        StartKind::Response { code, comment } => StartLine::Response {
            code,
            comment: comment.map(|r| raw.slice(r)),
        },
    };
    let tid = raw.slice(start.tid);
    Ok(FrameHead::new(raw, tid, start_line, scan.headers, has_body))
}
