//! The parsed head of an MSRP frame: start line and header fields
//! (RFC 4975 §9 `msrp-req-or-resp` up to, not including, the body).

use std::ops::Range;

use bytes::Bytes;

pub use crate::headers::HeadError;
use crate::headers::{ByteRange, FailureReport, Status};

/// One header field, owned (what the relay forwards or builds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name exactly as received (compare case-insensitively).
    pub name: Bytes,
    /// Header value, trimmed of leading/trailing SP and HTAB.
    pub value: Bytes,
}

impl Header {
    /// Builds a header from anything convertible to [`Bytes`].
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Case-insensitive name comparison (RFC 4975 §9 header names are ABNF
    /// literals, hence case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// Length of the line the relay writes for it: `name ": " value CRLF`.
    pub fn line_len(&self) -> usize {
        self.name.len() + 2 + self.value.len() + 2
    }
}

/// One header field of a parsed head, borrowed from its raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// Header name exactly as received (compare case-insensitively).
    pub name: &'a [u8],
    /// Header value, trimmed of leading/trailing SP and HTAB.
    pub value: &'a [u8],
}

impl HeaderRef<'_> {
    /// Case-insensitive name comparison (see [`Header::is`]).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Where a header's name and value are in [`FrameHead::raw`].
pub(crate) type HeaderAt = (Range<usize>, Range<usize>);

/// The first line of a frame (RFC 4975 §9 `req-start` / `resp-start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `MSRP SP transact-id SP method CRLF`
    Request {
        /// The method, e.g. `SEND`, `REPORT`, `AUTH` (`1*UPALPHA`).
        method: Bytes,
    },
    /// `MSRP SP transact-id SP status-code [SP comment] CRLF`
    Response {
        /// Three-digit status code.
        code: u16,
        /// Optional reason phrase (`comment = utf8text`).
        comment: Option<Bytes>,
    },
}

/// Start line plus header fields of one frame.
#[derive(Debug, Clone)]
pub struct FrameHead {
    /// Start line and header lines exactly as received (each with its CRLF),
    /// without the blank line or end-line.
    pub raw: Bytes,
    /// The frame's transaction identifier.
    pub transaction_id: Bytes,
    /// Parsed start line.
    pub start: StartLine,
    /// Header fields in received order, as ranges of `raw`: a head's
    /// headers cost no reference count of their own (a `Bytes` per name and
    /// value was a clone and a drop each on every message); owned copies
    /// are made only for what is forwarded ([`FrameHead::other_headers`]).
    headers: Vec<HeaderAt>,
    /// Whether a blank line followed the headers (a body section follows).
    pub has_body: bool,
}

/// The URIs of a path header value, separated by whitespace (RFC 4975 §9:
/// `To-Path = "To-Path:" SP MSRP-URI *( SP MSRP-URI )`), without
/// collecting them.
pub fn path_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    value
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|t| !t.is_empty())
}

/// Splits a path header value on whitespace (see [`path_tokens`]).
/// Zero-copy.
pub(crate) fn split_path_value(value: &Bytes) -> Vec<Bytes> {
    path_tokens(value).map(|t| value.slice_ref(t)).collect()
}

impl FrameHead {
    /// A head over `raw` with header fields at the given ranges of it (the
    /// parser checked them).
    pub(crate) fn new(
        raw: Bytes,
        transaction_id: Bytes,
        start: StartLine,
        headers: Vec<HeaderAt>,
        has_body: bool,
    ) -> Self {
        FrameHead {
            raw,
            transaction_id,
            start,
            headers,
            has_body,
        }
    }

    /// Header fields in received order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> + Clone {
        self.headers.iter().map(|(n, v)| HeaderRef {
            name: &self.raw[n.clone()],
            value: &self.raw[v.clone()],
        })
    }

    /// `part` (a header value or other slice of this head) as `Bytes`
    /// sharing the head's buffer.
    pub fn bytes_of(&self, part: &[u8]) -> Bytes {
        self.raw.slice_ref(part)
    }

    /// True for requests, false for responses.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&[u8]> {
        match &self.start {
            StartLine::Request { method } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status_code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Value of the first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|h| h.is(name)).map(|h| h.value)
    }

    fn path(&self, name: &'static str) -> Result<Vec<Bytes>, HeadError> {
        let value = self.header(name).ok_or(HeadError::Missing(name))?;
        // each URI a slice of the head itself (no Bytes of the whole value)
        let uris: Vec<Bytes> = path_tokens(value).map(|t| self.bytes_of(t)).collect();
        if uris.is_empty() {
            // RFC 4975 §9: a path holds at least one MSRP-URI.
            return Err(HeadError::Invalid {
                header: name,
                reason: "empty path".into(),
            });
        }
        Ok(uris)
    }

    /// The To-Path URIs (unparsed tokens), at least one (RFC 4975 §7.1).
    pub fn to_path(&self) -> Result<Vec<Bytes>, HeadError> {
        self.path("To-Path")
    }

    /// The From-Path URIs (unparsed tokens), at least one (RFC 4975 §7.1).
    pub fn from_path(&self) -> Result<Vec<Bytes>, HeadError> {
        self.path("From-Path")
    }

    /// The Message-ID value, if present.
    pub fn message_id(&self) -> Option<&[u8]> {
        self.header("Message-ID")
    }

    /// The Byte-Range header (RFC 4975 §7.1.1), if present.
    pub fn byte_range(&self) -> Result<Option<ByteRange>, HeadError> {
        self.header("Byte-Range").map(ByteRange::parse).transpose()
    }

    /// The Failure-Report header; absent means `yes` (RFC 4975 §7.1.1).
    pub fn failure_report(&self) -> Result<FailureReport, HeadError> {
        match self.header("Failure-Report") {
            None => Ok(FailureReport::Yes),
            Some(v) => FailureReport::parse(v),
        }
    }

    /// The Success-Report header; absent means `no` (RFC 4975 §7.1.1).
    pub fn success_report(&self) -> Result<bool, HeadError> {
        match self.header("Success-Report") {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case(b"yes") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case(b"no") => Ok(false),
            Some(v) => Err(HeadError::Invalid {
                header: "Success-Report",
                reason: format!("expected yes or no, got {}", v.escape_ascii()),
            }),
        }
    }

    /// The Status header (RFC 4975 §7.1.2, carried by REPORT), if present.
    pub fn status(&self) -> Result<Option<Status>, HeadError> {
        self.header("Status").map(Status::parse).transpose()
    }

    /// Headers other than To-Path and From-Path, in received order. A relay
    /// uses these verbatim when it rewrites the paths of a frame it forwards
    /// (RFC 4976 §6.4).
    pub fn other_headers(&self) -> impl Iterator<Item = Header> + '_ {
        self.headers()
            .filter(|h| !h.is("To-Path") && !h.is("From-Path"))
            .map(|h| Header::new(self.bytes_of(h.name), self.bytes_of(h.value)))
    }
}
