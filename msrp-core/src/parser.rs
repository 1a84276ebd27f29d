//! Incremental, zero-copy MSRP frame parser (RFC 4975 §9).
//!
//! The parser is fed from a [`BytesMut`] that the caller fills with socket
//! reads. It consumes bytes from the front of that buffer and produces, for
//! every frame, one [`Event::Head`], zero or more [`Event::Body`] pieces and
//! one [`Event::End`]. Bodies are streamed: MSRP has no Content-Length, a
//! body ends where `CRLF "-------" transact-id flag CRLF` appears
//! (RFC 4975 §9 `end-line`), so the parser only ever holds back the bytes that
//! could be the start of that end-line.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use memchr::memmem;

use crate::head::{FrameHead, Header, StartLine};
use crate::syntax::{
    is_text_byte, is_token_char, is_transaction_id, parse_3digit, trim_ws, DASHES,
};

/// Size limits protecting the relay from unbounded buffering of heads.
/// Bodies are never buffered, so they need no limit here.
///
/// A limit is enforced as soon as the buffered bytes prove it exceeded (a
/// line without its LF yet is known to be at least one byte longer), not
/// only once the line is complete. When a line would break both
/// `max_line` and `max_head`, the error is the one for the limit that a
/// byte-by-byte reader crosses first, i.e. the smaller of `max_line` and
/// the room `max_head` leaves after the earlier lines; on a tie
/// [`ParseError::LineTooLong`] wins. This makes the error independent of
/// how the input is split into reads. The blank line and the end-line of a
/// body-less frame are not counted against either limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest start line or header line, CRLF included.
    pub max_line: usize,
    /// Largest head: start line plus all header lines (CRLFs included).
    pub max_head: usize,
    /// Most header fields in one frame.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 16384,
            max_head: 65536,
            max_headers: 64,
        }
    }
}

/// The continuation flag that closes a frame (RFC 4975 §9
/// `continuation-flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndFlag {
    /// `$`: last chunk of the message.
    Complete,
    /// `+`: more chunks of the message follow.
    Continued,
    /// `#`: the sender aborted the message.
    Aborted,
}

impl EndFlag {
    /// The wire byte of the flag.
    pub fn as_byte(self) -> u8 {
        match self {
            EndFlag::Complete => b'$',
            EndFlag::Continued => b'+',
            EndFlag::Aborted => b'#',
        }
    }

    /// Parses a wire byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'$' => Some(EndFlag::Complete),
            b'+' => Some(EndFlag::Continued),
            b'#' => Some(EndFlag::Aborted),
            _ => None,
        }
    }
}

/// One parser output.
#[derive(Debug)]
pub enum Event {
    /// Start line and headers of a new frame.
    Head(FrameHead),
    /// A non-empty piece of the frame's body (never includes the CRLF that
    /// precedes the end-line).
    Body(Bytes),
    /// The end-line of the frame, with its continuation flag.
    End(EndFlag),
}

/// Why a byte stream is not valid MSRP. After an error the parser keeps
/// returning it: the stream cannot be resynchronised (there is no length
/// field to skip by), so the caller must close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A start line or header line (CRLF included) exceeds `Limits::max_line`.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// The head exceeds `Limits::max_head`.
    #[error("frame head larger than {limit} bytes")]
    HeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The frame has more than `Limits::max_headers` header fields.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// The start line is not `MSRP SP transact-id SP (method / status)`.
    #[error("malformed start line: {0}")]
    BadStartLine(String),
    /// The transaction identifier violates RFC 4975 §9 `ident`.
    #[error("invalid transaction identifier")]
    BadTransactionId,
    /// A response's status code is not three digits in 100..=999.
    #[error("invalid status code: {0}")]
    BadStatusCode(String),
    /// A header line is malformed.
    #[error("malformed header field: {0}")]
    BadHeader(String),
    /// A line ends in a bare LF; RFC 4975 §9 requires CRLF.
    #[error("line not terminated by CRLF")]
    BadLineEnding,
    /// An end-line in the head does not match `"-------" transact-id flag`
    /// of the frame.
    #[error("malformed end-line")]
    BadEndLine,
}

impl ParseError {
    /// The MSRP status code that describes this error: always 400
    /// ("the request was unintelligible", RFC 4975 §7.3 / §10). MSRP has no
    /// code for an oversized head: 413 means "stop sending this message"
    /// (RFC 4975 §7.1.1) and is a per-message decision of the receiver, not
    /// a syntax verdict. Whether a response can be sent at all depends on
    /// the caller knowing the frame's transaction id and paths; usually the
    /// only safe reaction is closing the connection.
    pub fn response_code(&self) -> u16 {
        400
    }
}

/// Outcome of matching `"-------" tid flag CRLF` at the front of some bytes.
#[derive(Debug, PartialEq, Eq)]
enum EndMatch {
    /// The bytes are a valid end-line for this tid.
    Valid(EndFlag),
    /// All bytes available so far agree with an end-line; more are needed.
    Incomplete,
    /// Not an end-line for this tid.
    Invalid,
}

/// Length of `"-------" tid flag CRLF`.
fn end_line_len(tid: &[u8]) -> usize {
    DASHES.len() + tid.len() + 3
}

fn match_end_line(data: &[u8], tid: &[u8]) -> EndMatch {
    let prefix = DASHES.len() + tid.len();
    let expected = DASHES.iter().chain(tid.iter());
    if data.iter().zip(expected).any(|(a, b)| a != b) {
        return EndMatch::Invalid;
    }
    match data.get(prefix) {
        None => return EndMatch::Incomplete,
        Some(&b) => {
            if EndFlag::from_byte(b).is_none() {
                return EndMatch::Invalid;
            }
        }
    }
    match (data.get(prefix + 1), data.get(prefix + 2)) {
        (None, _) => EndMatch::Incomplete,
        (Some(b'\r'), None) => EndMatch::Incomplete,
        (Some(b'\r'), Some(b'\n')) => match EndFlag::from_byte(data[prefix]) {
            Some(flag) => EndMatch::Valid(flag),
            None => EndMatch::Invalid,
        },
        _ => EndMatch::Invalid,
    }
}

/// Start line parsed into offsets relative to the frame's first byte.
#[derive(Debug, Clone)]
enum StartKind {
    Request {
        method: Range<usize>,
    },
    Response {
        code: u16,
        comment: Option<Range<usize>>,
    },
}

#[derive(Debug, Clone)]
struct ParsedStart {
    tid: Range<usize>,
    kind: StartKind,
}

/// Progress through the head of a frame. All offsets are relative to the
/// front of the caller's buffer, where the frame starts.
#[derive(Debug, Default)]
struct HeadScan {
    /// Some bytes of this frame have been seen.
    started: bool,
    /// Start of the first line not yet validated.
    scanned: usize,
    /// Bytes of the current line already searched for LF, so that a line
    /// arriving byte by byte is not rescanned quadratically.
    searched: usize,
    start: Option<ParsedStart>,
    /// Tid bytes copied out of the buffer, for end-line matching.
    tid: Vec<u8>,
    headers: Vec<(Range<usize>, Range<usize>)>,
}

#[derive(Debug)]
struct BodyScan {
    /// Finds `CRLF "-------" tid`.
    finder: memmem::Finder<'static>,
    /// The frame's tid.
    tid: Bytes,
    /// No body byte has been examined yet (see the tolerance in `body`).
    at_start: bool,
}

#[derive(Debug)]
enum State {
    Head(HeadScan),
    /// A body-less frame's end-line was consumed with its head.
    PendingEnd(EndFlag),
    /// Boxed: the memmem finder is a few hundred bytes.
    Body(Box<BodyScan>),
}

/// Incremental MSRP frame parser; see the module documentation.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    error: Option<ParseError>,
    /// Transaction id of the frame whose Head was emitted and whose End was
    /// not yet emitted.
    tid: Option<Bytes>,
}

/// Result of validating one line of a head.
enum HeadStep {
    /// Line consumed into the scan; continue with the next.
    Continue,
    /// Head finished; terminator line of this length follows the head.
    Done {
        head_len: usize,
        term_len: usize,
        end: Option<EndFlag>,
    },
}

impl Parser {
    /// A parser in its initial state (expecting the first byte of a frame).
    pub fn new(limits: Limits) -> Self {
        Parser {
            limits,
            state: State::Head(HeadScan::default()),
            error: None,
            tid: None,
        }
    }

    /// True between the first byte of a frame and its End event, so that a
    /// connection closing here has truncated a frame.
    pub fn in_frame(&self) -> bool {
        match &self.state {
            State::Head(scan) => scan.started,
            State::PendingEnd(_) | State::Body(_) => true,
        }
    }

    /// Transaction id of the frame being parsed, from its Head event until
    /// its End event. (A body never fails to parse, so an error always
    /// concerns a head, whose id is not reported.)
    pub fn current_transaction_id(&self) -> Option<&Bytes> {
        self.tid.as_ref()
    }

    /// Consumes bytes from the front of `buf` and returns the next event.
    ///
    /// `Ok(None)` means more input is needed; `buf` then holds only the
    /// unconsumed tail, to which the caller appends further reads. Body
    /// events are zero-copy splits of `buf`. Per frame the order is Head,
    /// zero or more (non-empty) Body, End.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ParseError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = match &mut self.state {
            State::PendingEnd(flag) => {
                let flag = *flag;
                self.state = State::Head(HeadScan::default());
                self.tid = None;
                Ok(Some(Event::End(flag)))
            }
            State::Head(_) => self.head(buf),
            State::Body(_) => Ok(self.body(buf)),
        };
        if let Err(e) = &result {
            self.error = Some(e.clone());
        }
        result
    }

    fn head(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ParseError> {
        let limits = self.limits;
        let State::Head(scan) = &mut self.state else {
            return Ok(None);
        };
        if !buf.is_empty() {
            scan.started = true;
        }
        loop {
            match scan_line(scan, buf, &limits)? {
                None => return Ok(None),
                Some(HeadStep::Continue) => {}
                Some(HeadStep::Done {
                    head_len,
                    term_len,
                    end,
                }) => {
                    let scan = std::mem::take(scan);
                    let frame = buf.split_to(head_len + term_len).freeze();
                    let head = build_head(scan, frame.slice(..head_len), end.is_none())?;
                    self.tid = Some(head.transaction_id.clone());
                    self.state = match end {
                        Some(flag) => State::PendingEnd(flag),
                        None => {
                            let mut delim = b"\r\n".to_vec();
                            delim.extend_from_slice(DASHES);
                            delim.extend_from_slice(&head.transaction_id);
                            State::Body(Box::new(BodyScan {
                                finder: memmem::Finder::new(&delim).into_owned(),
                                tid: head.transaction_id.clone(),
                                at_start: true,
                            }))
                        }
                    };
                    return Ok(Some(Event::Head(head)));
                }
            }
        }
    }

    fn body(&mut self, buf: &mut BytesMut) -> Option<Event> {
        let State::Body(scan) = &mut self.state else {
            return None;
        };
        if buf.is_empty() {
            return None;
        }
        if scan.at_start {
            // Tolerance: an empty body is sometimes written as the blank line
            // directly followed by the end-line, omitting the CRLF that
            // RFC 4975 §9 puts between data and end-line.
            match match_end_line(buf, &scan.tid) {
                EndMatch::Valid(flag) => {
                    let _ = buf.split_to(end_line_len(&scan.tid));
                    return Some(self.finish(flag));
                }
                EndMatch::Incomplete => return None,
                EndMatch::Invalid => scan.at_start = false,
            }
        }
        let delim_len = scan.finder.needle().len();
        let mut from = 0;
        loop {
            match scan.finder.find(&buf[from..]) {
                Some(rel) => {
                    let at = from + rel;
                    match match_end_line(&buf[at + 2..], &scan.tid) {
                        EndMatch::Valid(flag) => {
                            if at > 0 {
                                return Some(Event::Body(buf.split_to(at).freeze()));
                            }
                            let _ = buf.split_to(2 + end_line_len(&scan.tid));
                            return Some(self.finish(flag));
                        }
                        EndMatch::Incomplete => {
                            // Keep the candidate end-line (at most
                            // delim_len + 3 bytes) until it can be decided.
                            return (at > 0).then(|| Event::Body(buf.split_to(at).freeze()));
                        }
                        // RFC 4975 §9: only a complete end-line ends the body;
                        // anything else is content. Keep scanning after it.
                        EndMatch::Invalid => from = at + 1,
                    }
                }
                None => {
                    // Hold back only a tail that could begin the delimiter.
                    let keep = partial_suffix(&buf[from..], scan.finder.needle());
                    debug_assert!(keep < delim_len);
                    let emit = buf.len() - keep;
                    return (emit > 0).then(|| Event::Body(buf.split_to(emit).freeze()));
                }
            }
        }
    }

    fn finish(&mut self, flag: EndFlag) -> Event {
        self.state = State::Head(HeadScan::default());
        self.tid = None;
        Event::End(flag)
    }
}

/// Length of the longest suffix of `hay` that is a proper prefix of
/// `needle` (which starts with CR).
fn partial_suffix(hay: &[u8], needle: &[u8]) -> usize {
    let window = hay.len().min(needle.len().saturating_sub(1));
    let tail = &hay[hay.len() - window..];
    memchr::memchr_iter(b'\r', tail)
        .find(|&p| needle.starts_with(&tail[p..]))
        .map_or(0, |p| window - p)
}

/// Validates the next complete line of the head, or checks what can already
/// be decided about a partial one. `Ok(None)` means more input is needed.
///
/// The checks run in the same order whether a line is complete or not, and
/// every check on a partial line is one that the complete line would fail
/// too, so the error reported does not depend on how the input was split
/// into reads.
fn scan_line(
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
    // Lower bound of the line's length, LF included.
    let min_len = nl.map_or(rest.len() + 1, |p| p + 1);

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
        return match (match_end_line(line, &scan.tid), nl) {
            (EndMatch::Valid(flag), Some(_)) => Ok(Some(HeadStep::Done {
                head_len: line_start,
                term_len: line.len(),
                end: Some(flag),
            })),
            (EndMatch::Incomplete, None) => Ok(None),
            _ => Err(ParseError::BadEndLine),
        };
    } else if rest.starts_with(b"\r\n") {
        // The blank line: a body section follows (RFC 4975 §9).
        return Ok(Some(HeadStep::Done {
            head_len: line_start,
            term_len: 2,
            end: None,
        }));
    } else if rest == b"\r" {
        // Possibly the blank line; not counted against the head limits.
        return Ok(None);
    } else if scan.headers.len() >= limits.max_headers {
        return Err(ParseError::TooManyHeaders {
            limit: limits.max_headers,
        });
    }
    // Both size limits cap the length of this line: `max_line` directly,
    // `max_head` through the room the earlier lines left. Whichever cap is
    // smaller is the one a byte-by-byte reader crosses first, so that is the
    // error reported, however much of the line is buffered (on a tie the
    // line limit wins). Checking the limits one after the other instead
    // would make the error depend on the reads: a partial line can already
    // exceed the head room while its final length, not yet known, also
    // exceeds `max_line`. (Earlier lines fit in `max_head`; saturating
    // only for robustness.)
    let head_room = limits.max_head.saturating_sub(line_start);
    if min_len > limits.max_line.min(head_room) {
        return Err(if limits.max_line <= head_room {
            ParseError::LineTooLong {
                limit: limits.max_line,
            }
        } else {
            ParseError::HeadTooLarge {
                limit: limits.max_head,
            }
        });
    }
    let Some(nl) = nl else {
        return Ok(None);
    };
    // RFC 4975 §9: every line ends with CRLF; a bare LF is a syntax error.
    if nl == 0 || rest[nl - 1] != b'\r' {
        return Err(ParseError::BadLineEnding);
    }
    let text = &rest[..nl - 1];
    if scan.start.is_none() {
        let start = parse_start_line(text, line_start)?;
        scan.tid = buf[start.tid.clone()].to_vec();
        scan.start = Some(start);
    } else {
        scan.headers.push(parse_header(text, line_start)?);
    }
    scan.scanned = line_start + nl + 1;
    scan.searched = 0;
    Ok(Some(HeadStep::Continue))
}

/// Parses `MSRP SP transact-id SP method` or
/// `MSRP SP transact-id SP status-code [SP comment]` (RFC 4975 §9); `base`
/// is the offset of `line` in the frame.
fn parse_start_line(line: &[u8], base: usize) -> Result<ParsedStart, ParseError> {
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
fn parse_header(line: &[u8], base: usize) -> Result<(Range<usize>, Range<usize>), ParseError> {
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

fn build_head(scan: HeadScan, raw: Bytes, has_body: bool) -> Result<FrameHead, ParseError> {
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
    Ok(FrameHead {
        transaction_id: raw.slice(start.tid),
        start: start_line,
        headers: scan
            .headers
            .into_iter()
            .map(|(n, v)| Header {
                name: raw.slice(n),
                value: raw.slice(v),
            })
            .collect(),
        has_body,
        raw,
    })
}
