//! A complete body-less response at the front of a buffer, recognised
//! without building a [`FrameHead`](crate::FrameHead): what a next hop
//! sends for each chunk the relay wrote it (RFC 4975 §7.1.3, a 200 per
//! SEND chunk with Failure-Report "yes"), ~65,000 per GiB re-chunked at
//! 16 KiB. It checks what the full parser checks, with the same
//! validators and limits, and answers `None` for anything else (a
//! request, a body, a line it would reject, an incomplete frame): the full
//! parser then reads the frame and reports what is wrong with it.

use std::ops::Range;

use memchr::memchr;

use super::end_line::{match_end_line, EndMatch};
use super::head_scan::{parse_header, parse_start_line, StartKind};
use super::{EndFlag, Limits, Parser, State};

/// A response frame [`Parser::quick_response`] recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickResponse {
    /// Bytes of the whole frame, end-line included.
    pub len: usize,
    /// Where its transaction ID is in the buffer.
    pub tid: Range<usize>,
    /// Its status code.
    pub code: u16,
    /// The end-line's continuation flag.
    pub flag: EndFlag,
}

impl Parser {
    /// The body-less response frame that starts `buf`, when the parser is
    /// between frames and the whole frame is in `buf`, is well formed and
    /// within the limits: exactly what [`Parser::next`] would return as a
    /// `Head` (a response) and an `End` after consuming `len` bytes. The
    /// caller that uses it removes those bytes from the front of the
    /// buffer itself; the parser's state does not change.
    pub fn quick_response(&self, buf: &[u8]) -> Option<QuickResponse> {
        match &self.state {
            State::Head(scan) if !scan.started && self.error.is_none() => {}
            _ => return None,
        }
        quick_response(buf, &self.limits)
    }
}

fn quick_response(buf: &[u8], limits: &Limits) -> Option<QuickResponse> {
    let first = line(buf, 0, limits)?;
    let start = parse_start_line(&buf[..first - 2], 0).ok()?;
    let StartKind::Response { code, .. } = start.kind else {
        return None;
    };
    let tid = &buf[start.tid.clone()];
    let (mut at, mut headers) = (first, 0);
    loop {
        let rest = buf.get(at..).filter(|r| !r.is_empty())?;
        if rest[0] == b'-' {
            // the end-line of a body-less frame, not counted against the
            // head limits (as in `head_scan::first_bytes`)
            let nl = memchr(b'\n', rest)?;
            let EndMatch::Valid(flag) = match_end_line(&rest[..=nl], tid) else {
                return None;
            };
            return Some(QuickResponse {
                len: at + nl + 1,
                tid: start.tid,
                code,
                flag,
            });
        }
        // a blank line (a body follows) or one header too many: the full
        // parser decides
        if rest.starts_with(b"\r") || headers >= limits.max_headers {
            return None;
        }
        let end = line(buf, at, limits)?;
        parse_header(&buf[at..end - 2], at).ok()?;
        headers += 1;
        at = end;
    }
}

/// The end of the complete line starting at `at` (after its CRLF), when it
/// fits the limits.
fn line(buf: &[u8], at: usize, limits: &Limits) -> Option<usize> {
    let nl = memchr(b'\n', &buf[at..])?;
    let len = nl + 1;
    let fits = len <= limits.max_line && at + len <= limits.max_head;
    (fits && nl > 0 && buf[at + nl - 1] == b'\r').then_some(at + len)
}

#[cfg(test)]
mod tests;
