//! Responses the script makes (`msrp_reply()`) and the relay's own (200,
//! 413, 481), built as the stock msrp module builds them.

use bytes::Bytes;
use msrp_core::{head::path_tokens, FrameHead};

use super::ScriptError;

/// A response to `head` built the way the stock msrp module's `msrp_reply()`
/// builds it: To-Path is the previous hop for SEND (RFC 4975 §7.2: hop by
/// hop), the whole From-Path otherwise; From-Path is the relay's URI (the
/// first To-Path URI); Message-ID copied; `hdrs` appended as given (each
/// line ending in CRLF).
///
/// The relay answers every SEND it forwards with one of these (RFC 4976
/// §6.4.1), so the frame is written straight into one buffer of its exact
/// size, from the header values as received.
pub fn reply_frame(
    head: &FrameHead,
    code: u16,
    text: &[u8],
    hdrs: &[u8],
) -> Result<Bytes, ScriptError> {
    let method = head.method().ok_or(ScriptError::ReplyToResponse)?;
    if method == b"REPORT" {
        return Err(ScriptError::ReplyToReport);
    }
    let from = path(head, "From-Path")?;
    let relay = path(head, "To-Path")?
        .next()
        .ok_or(ScriptError::MissingHeader("To-Path"))?;
    let mut to = from.clone();
    let mut first = to.next().ok_or(ScriptError::MissingHeader("From-Path"))?;
    let send = method == b"SEND";
    let tid = &head.transaction_id[..];
    let mid = head.message_id();
    let hdrs_end: &[u8] = if hdrs.is_empty() || hdrs.ends_with(b"\r\n") {
        b""
    } else {
        b"\r\n"
    };
    let to_len = if send {
        first.len()
    } else {
        from.map(|u| u.len() + 1).sum::<usize>() - 1
    };
    let len = 5
        + tid.len()
        + 1
        + 3
        + (1 + text.len())
        + 2
        + 9
        + to_len
        + 2
        + 11
        + relay.len()
        + 2
        + mid.map_or(0, |m| 12 + m.len() + 2)
        + hdrs.len()
        + hdrs_end.len()
        + 7
        + tid.len()
        + 3;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"MSRP ");
    out.extend_from_slice(tid);
    out.push(b' ');
    put_code(&mut out, code);
    if !text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(text);
    }
    out.extend_from_slice(b"\r\nTo-Path: ");
    loop {
        out.extend_from_slice(first);
        match to.next() {
            Some(u) if !send => {
                out.push(b' ');
                first = u;
            }
            _ => break,
        }
    }
    out.extend_from_slice(b"\r\nFrom-Path: ");
    out.extend_from_slice(relay);
    out.extend_from_slice(b"\r\n");
    if let Some(m) = mid {
        out.extend_from_slice(b"Message-ID: ");
        out.extend_from_slice(m);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(hdrs);
    out.extend_from_slice(hdrs_end);
    out.extend_from_slice(b"-------");
    out.extend_from_slice(tid);
    out.extend_from_slice(b"$\r\n");
    debug_assert!(out.len() <= len);
    Ok(Bytes::from(out))
}

/// The URIs of a path header (RFC 4975 §7.1: at least one).
fn path<'a>(
    head: &'a FrameHead,
    name: &'static str,
) -> Result<impl Iterator<Item = &'a [u8]> + Clone, ScriptError> {
    head.header(name)
        .map(path_tokens)
        .ok_or(ScriptError::MissingHeader(name))
}

/// A status code as three digits (RFC 4975 §9 `status-code = 3DIGIT`),
/// longer only for a code the caller did not check.
fn put_code(out: &mut Vec<u8>, code: u16) {
    if code > 999 {
        out.extend_from_slice(code.to_string().as_bytes());
        return;
    }
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ]);
}

/// The relay's own answer to an incoming SEND chunk it forwards (RFC 4976
/// §6.4.1): a 200 once the chunk is received whole ("yes"), or a 413 when
/// the chunk is refused while it still arrives ("yes" and "partial", RFC
/// 4975 §7.1.4). Both are built from one frame: the 413 only on refusal.
#[derive(Debug)]
pub struct OwnAnswer {
    /// The 200 (`MSRP tid 200 OK`).
    frame: Bytes,
    /// Where ` 200 OK` starts in it.
    code_at: usize,
    /// The 200 goes back once the chunk is complete.
    ok: bool,
}

/// ` 200 OK`, the status of [`OwnAnswer`]'s frame.
const OK: &[u8] = b" 200 OK";

impl OwnAnswer {
    /// The answer to `head`: with a 200 when `ok`, with a 413 on refusal
    /// when `refuse` (`None` when neither).
    pub fn new(head: &FrameHead, ok: bool, refuse: bool) -> Option<OwnAnswer> {
        if !(ok || refuse) {
            return None;
        }
        let frame = reply_frame(head, 200, &OK[5..], b"").ok()?;
        let code_at = 5 + head.transaction_id.len();
        debug_assert_eq!(&frame[code_at..code_at + OK.len()], OK);
        Some(OwnAnswer { frame, code_at, ok })
    }

    /// The 200, if the previous hop gets one.
    pub fn ok(self) -> Option<Bytes> {
        self.ok.then_some(self.frame)
    }

    /// The 413 for the chunk refused while it arrives: the 200's frame
    /// under another status line.
    pub fn refusal(&self) -> Bytes {
        let status = b" 413 Message Too Large";
        let f = &self.frame;
        let mut out = Vec::with_capacity(f.len() - OK.len() + status.len());
        out.extend_from_slice(&f[..self.code_at]);
        out.extend_from_slice(status);
        out.extend_from_slice(&f[self.code_at + OK.len()..]);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests;
