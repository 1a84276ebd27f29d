//! Typed values of the MSRP header fields a relay interprets
//! (RFC 4975 §7.1.1, §7.1.2, §9).

use std::fmt;

use bytes::Bytes;

use crate::syntax::{parse_3digit, parse_u64, trim_ws};

/// Errors of the semantic accessors of [`FrameHead`] and of the typed header
/// value parsers in this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// A mandatory header field is absent.
    #[error("missing mandatory header {0}")]
    Missing(&'static str),
    /// A header field is present but its value is malformed.
    #[error("invalid {header} header: {reason}")]
    Invalid {
        /// Canonical name of the offending header.
        header: &'static str,
        /// Human readable explanation.
        reason: String,
    },
}

impl HeadError {
    /// The MSRP status code to answer with: 400 for both kinds, since a
    /// missing or malformed header is a syntax problem (RFC 4975 §7.3 lists
    /// 400 for "the request was unintelligible").
    pub fn response_code(&self) -> u16 {
        400
    }
}

/// `Byte-Range: range-start "-" range-end "/" total` (RFC 4975 §9).
///
/// `end` and `total` are `None` for `*` (unknown, RFC 4975 §7.1.1: used when
/// a message is sent while its length is not yet known, or for a chunk that
/// was interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// 1-based position of the chunk's first byte in the message.
    pub start: u64,
    /// Position of the chunk's last byte, `None` for `*`.
    pub end: Option<u64>,
    /// Total message length, `None` for `*`.
    pub total: Option<u64>,
}

fn invalid(header: &'static str, reason: impl Into<String>) -> HeadError {
    HeadError::Invalid {
        header,
        reason: reason.into(),
    }
}

fn star_or_number(s: &[u8]) -> Option<Option<u64>> {
    if s == b"*" {
        Some(None)
    } else {
        parse_u64(s).map(Some)
    }
}

/// Largest byte position (range-start, range-end, total) accepted: 2^62,
/// 4 EiB, so positions plus any body length a connection can carry stay far
/// from `u64::MAX`.
pub const MAX_POSITION: u64 = 1 << 62;

impl ByteRange {
    /// Parses a Byte-Range value (surrounding SP/HTAB tolerated).
    pub fn parse(value: &[u8]) -> Result<Self, HeadError> {
        const H: &str = "Byte-Range";
        let (a, b) = trim_ws(value);
        let v = &value[a..b];
        let dash = memchr::memchr(b'-', v).ok_or_else(|| invalid(H, "missing '-'"))?;
        let slash = memchr::memchr(b'/', v).ok_or_else(|| invalid(H, "missing '/'"))?;
        if slash < dash {
            return Err(invalid(H, "'/' before '-'"));
        }
        let start = parse_u64(&v[..dash]).ok_or_else(|| invalid(H, "bad range-start"))?;
        let end = star_or_number(&v[dash + 1..slash]).ok_or_else(|| invalid(H, "bad range-end"))?;
        let total = star_or_number(&v[slash + 1..]).ok_or_else(|| invalid(H, "bad total"))?;
        // RFC 4975 §7.1.1: byte positions are 1-based.
        if start == 0 {
            return Err(invalid(H, "range-start must be at least 1"));
        }
        // Positions a relay adds body lengths to must not overflow (a
        // sender claiming "18446744073709551615-*/*" cannot be relayed
        // with a correct Byte-Range).
        if [Some(start), end, total]
            .into_iter()
            .flatten()
            .any(|v| v > MAX_POSITION)
        {
            return Err(invalid(H, format!("a position over {MAX_POSITION}")));
        }
        // An empty chunk is written "1-0/0", so end may be start - 1.
        if let Some(e) = end {
            if e < start - 1 {
                return Err(invalid(H, "range-end before range-start"));
            }
            if let Some(t) = total {
                if e > t {
                    return Err(invalid(H, "range-end beyond total"));
                }
            }
        }
        if let Some(t) = total {
            if start > t.saturating_add(1) {
                return Err(invalid(H, "range-start beyond total"));
            }
        }
        Ok(ByteRange { start, end, total })
    }

    /// The range a REPORT gives for `received` bytes of a chunk that began
    /// at `start` (RFC 4975 §7.1.2: range-end from the bytes actually
    /// received): `start-end/total`, with `*` for a total those bytes
    /// exceed (a sender that overran its own Byte-Range; a range-end
    /// beyond the total is invalid, RFC 4975 §9). The range-end stops at
    /// [`MAX_POSITION`], the largest position a Byte-Range may name.
    pub fn received(start: u64, received: u64, total: Option<u64>) -> ByteRange {
        let end = start
            .saturating_add(received)
            .saturating_sub(1)
            .min(MAX_POSITION);
        ByteRange {
            start,
            end: Some(end),
            total: total.filter(|&t| end <= t),
        }
    }

    /// Number of bytes the range announces for this chunk, when `end` is
    /// known.
    pub fn len(&self) -> Option<u64> {
        self.end
            .map(|e| e.saturating_add(1).saturating_sub(self.start))
    }

    /// True if the range is known to cover no bytes (e.g. `1-0/0`).
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.start)?;
        match self.end {
            Some(e) => write!(f, "{e}")?,
            None => f.write_str("*")?,
        }
        f.write_str("/")?;
        match self.total {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("*"),
        }
    }
}

/// `Failure-Report: "yes" / "no" / "partial"` (RFC 4975 §7.1.1, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReport {
    /// Report failures with a REPORT and send negative responses (default).
    Yes,
    /// Never report failures; no transaction responses either.
    No,
    /// Report failures with a REPORT, but send no transaction responses.
    Partial,
}

impl FailureReport {
    /// Parses the value case-insensitively (ABNF literals are
    /// case-insensitive, RFC 5234 §2.3).
    pub fn parse(value: &[u8]) -> Result<Self, HeadError> {
        let (a, b) = trim_ws(value);
        let v = &value[a..b];
        if v.eq_ignore_ascii_case(b"yes") {
            Ok(FailureReport::Yes)
        } else if v.eq_ignore_ascii_case(b"no") {
            Ok(FailureReport::No)
        } else if v.eq_ignore_ascii_case(b"partial") {
            Ok(FailureReport::Partial)
        } else {
            Err(invalid(
                "Failure-Report",
                format!(
                    "expected yes, no or partial, got {:?}",
                    String::from_utf8_lossy(v)
                ),
            ))
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReport::Yes => "yes",
            FailureReport::No => "no",
            FailureReport::Partial => "partial",
        }
    }
}

impl fmt::Display for FailureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Status: namespace SP status-code [SP text-reason]` (RFC 4975 §9), as
/// carried by REPORT requests (RFC 4975 §7.1.2). Namespace `000` is the only
/// one defined and means "status codes as in MSRP transaction responses".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Three-digit namespace (`000`).
    pub namespace: u16,
    /// Three-digit status code.
    pub code: u16,
    /// Optional reason text.
    pub comment: Option<Bytes>,
}

impl Status {
    /// Parses a Status value such as `000 200 OK`.
    pub fn parse(value: &[u8]) -> Result<Self, HeadError> {
        const H: &str = "Status";
        let (a, b) = trim_ws(value);
        let v = &value[a..b];
        if v.len() < 7 || v[3] != b' ' {
            return Err(invalid(H, "expected \"namespace SP status-code\""));
        }
        let namespace = parse_3digit(&v[..3]).ok_or_else(|| invalid(H, "bad namespace"))?;
        let code = parse_3digit(&v[4..7]).ok_or_else(|| invalid(H, "bad status code"))?;
        let comment = match &v[7..] {
            [] => None,
            [b' ', rest @ ..] => {
                let (ca, cb) = trim_ws(rest);
                let c = &rest[ca..cb];
                (!c.is_empty()).then(|| Bytes::copy_from_slice(c))
            }
            _ => return Err(invalid(H, "bad status code")),
        };
        Ok(Status {
            namespace,
            code,
            comment,
        })
    }

    /// The value as wire bytes (exact, including a non-UTF-8 comment).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{:03} {:03}", self.namespace, self.code).into_bytes();
        if let Some(c) = &self.comment {
            out.push(b' ');
            out.extend_from_slice(c);
        }
        out
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {:03}", self.namespace, self.code)?;
        if let Some(c) = &self.comment {
            write!(f, " {}", String::from_utf8_lossy(c))?;
        }
        Ok(())
    }
}
