//! Incremental, zero-copy MSRP frame parser (RFC 4975 §9).
//!
//! The parser is fed from a [`BytesMut`] that the caller fills with socket
//! reads. It consumes bytes from the front of that buffer and produces, for
//! every frame, one [`Event::Head`], zero or more [`Event::Body`] pieces and
//! one [`Event::End`]. Bodies are streamed: MSRP has no Content-Length, a
//! body ends where `CRLF "-------" transact-id flag CRLF` appears
//! (RFC 4975 §9 `end-line`), so the parser only ever holds back the bytes that
//! could be the start of that end-line.

use bytes::{Bytes, BytesMut};
use memchr::memmem;

use crate::head::FrameHead;
use crate::syntax::TID_MAX;

mod end_line;
mod head_scan;
mod quick;

pub use quick::QuickResponse;

use end_line::{end_line_len, match_end_line, partial_suffix, EndMatch};
use head_scan::{build_head, scan_line, HeadScan, HeadStep};

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

/// `CRLF "-------"`, what every body's end starts with: one finder for
/// every frame (a finder of `CRLF "-------" tid` per frame cost an
/// allocation and the finder's set-up for each message); the tid after a
/// hit is checked by [`match_end_line`].
const END_DELIM: &[u8] = b"\r\n-------";

static END_FINDER: std::sync::LazyLock<memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memmem::Finder::new(END_DELIM));

/// Where the body of frame `tid` ends in `buf` (the bytes after its head),
/// when its end-line (flag and CRLF included) is complete in `buf`: the
/// body's length and the end-line's flag. As [`Parser`] reads it, an
/// end-line at the very start is an empty body written without the CRLF
/// before the end-line.
pub fn find_body_end(buf: &[u8], tid: &[u8]) -> Option<(usize, EndFlag)> {
    if let EndMatch::Valid(flag) = match_end_line(buf, tid) {
        return Some((0, flag));
    }
    let mut from = 0;
    while let Some(rel) = END_FINDER.find(&buf[from..]) {
        let at = from + rel;
        match match_end_line(&buf[at + 2..], tid) {
            EndMatch::Valid(flag) => return Some((at, flag)),
            EndMatch::Incomplete => return None,
            EndMatch::Invalid => from = at + 1,
        }
    }
    None
}

#[derive(Debug)]
struct BodyScan {
    /// No body byte has been examined yet (see the tolerance in `body`).
    at_start: bool,
}

/// A transaction ID kept inline (at most 32 bytes, RFC 4975 §9 `ident`):
/// the parser holds the current frame's tid for its end-line without a
/// reference to the frame's buffer (two reference-count updates per frame
/// less, on the per-message path).
#[derive(Debug, Clone, Copy)]
struct Tid {
    len: u8,
    bytes: [u8; TID_MAX],
}

impl Tid {
    fn new(tid: &[u8]) -> Self {
        // the head scan accepted it as `transact-id`: at most TID_MAX bytes
        let len = tid.len().min(TID_MAX);
        let mut bytes = [0; TID_MAX];
        bytes[..len].copy_from_slice(&tid[..len]);
        Tid {
            len: len as u8,
            bytes,
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

#[derive(Debug)]
enum State {
    Head(HeadScan),
    /// A body-less frame's end-line was consumed with its head.
    PendingEnd(EndFlag),
    Body(BodyScan),
}

/// Incremental MSRP frame parser; see the module documentation.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    error: Option<ParseError>,
    /// Transaction id of the frame whose Head was emitted and whose End was
    /// not yet emitted.
    tid: Option<Tid>,
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
    pub fn current_transaction_id(&self) -> Option<&[u8]> {
        self.tid.as_ref().map(Tid::as_slice)
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
                    self.tid = Some(Tid::new(&head.transaction_id));
                    self.state = match end {
                        Some(flag) => State::PendingEnd(flag),
                        None => State::Body(BodyScan { at_start: true }),
                    };
                    return Ok(Some(Event::Head(head)));
                }
            }
        }
    }

    fn body(&mut self, buf: &mut BytesMut) -> Option<Event> {
        let (State::Body(scan), Some(tid)) = (&mut self.state, self.tid) else {
            return None;
        };
        let tid = tid.as_slice();
        if buf.is_empty() {
            return None;
        }
        if scan.at_start {
            // Tolerance: an empty body is sometimes written as the blank line
            // directly followed by the end-line, omitting the CRLF that
            // RFC 4975 §9 puts between data and end-line.
            match match_end_line(buf, tid) {
                EndMatch::Valid(flag) => {
                    let _ = buf.split_to(end_line_len(tid));
                    return Some(self.finish(flag));
                }
                EndMatch::Incomplete => return None,
                EndMatch::Invalid => scan.at_start = false,
            }
        }
        let mut from = 0;
        loop {
            match END_FINDER.find(&buf[from..]) {
                Some(rel) => {
                    let at = from + rel;
                    match match_end_line(&buf[at + 2..], tid) {
                        EndMatch::Valid(flag) => {
                            if at > 0 {
                                return Some(Event::Body(buf.split_to(at).freeze()));
                            }
                            let _ = buf.split_to(2 + end_line_len(tid));
                            return Some(self.finish(flag));
                        }
                        EndMatch::Incomplete => {
                            // Keep the candidate end-line (at most
                            // delim_len + 3 bytes) until it can be decided.
                            return (at > 0).then(|| Event::Body(buf.split_to(at).freeze()));
                        }
                        // RFC 4975 §9: only a complete end-line of this
                        // frame's tid ends the body; anything else is
                        // content. Keep scanning after it.
                        EndMatch::Invalid => from = at + 1,
                    }
                }
                None => {
                    // Hold back only a tail that could begin the delimiter
                    // (a longer start of an end-line holds a whole
                    // END_DELIM, which the finder would have found).
                    let keep = partial_suffix(&buf[from..], END_DELIM);
                    debug_assert!(keep < END_DELIM.len());
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
