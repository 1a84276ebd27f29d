//! The end-line `"-------" transact-id flag CRLF` (RFC 4975 §9): matching
//! it at the front of some bytes, and how much of a body's tail could be
//! its beginning.

use super::EndFlag;
use crate::syntax::DASHES;

/// Outcome of matching `"-------" tid flag CRLF` at the front of some bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum EndMatch {
    /// The bytes are a valid end-line for this tid.
    Valid(EndFlag),
    /// All bytes available so far agree with an end-line; more are needed.
    Incomplete,
    /// Not an end-line for this tid.
    Invalid,
}

/// Length of `"-------" tid flag CRLF`.
pub(super) fn end_line_len(tid: &[u8]) -> usize {
    DASHES.len() + tid.len() + 3
}

pub(super) fn match_end_line(data: &[u8], tid: &[u8]) -> EndMatch {
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

/// Length of the longest suffix of `hay` that is a proper prefix of
/// `needle` (which starts with CR).
pub(super) fn partial_suffix(hay: &[u8], needle: &[u8]) -> usize {
    let window = hay.len().min(needle.len().saturating_sub(1));
    let tail = &hay[hay.len() - window..];
    memchr::memchr_iter(b'\r', tail)
        .find(|&p| needle.starts_with(&tail[p..]))
        .map_or(0, |p| window - p)
}
