//! Responses the script makes (`msrp_reply()`) and the relay's own (200,
//! 413, 481), built as the stock msrp module builds them.

use bytes::{Bytes, BytesMut};
use msrp_core::{build, FrameHead, Header, StartLine};

use super::ScriptError;

/// A response to `head` built the way the stock msrp module's `msrp_reply()`
/// builds it: To-Path is the previous hop for SEND (RFC 4975 §7.2: hop by
/// hop), the whole From-Path otherwise; From-Path is the relay's URI (the
/// first To-Path URI); Message-ID copied; `hdrs` appended as given (each
/// line ending in CRLF).
pub fn reply_frame(
    head: &FrameHead,
    code: u16,
    text: &[u8],
    hdrs: &[u8],
) -> Result<Bytes, ScriptError> {
    let method = match &head.start {
        StartLine::Response { .. } => return Err(ScriptError::ReplyToResponse),
        StartLine::Request { method } => method.clone(),
    };
    if method.as_ref() == b"REPORT" {
        return Err(ScriptError::ReplyToReport);
    }
    let from = head
        .from_path()
        .map_err(|_| ScriptError::MissingHeader("From-Path"))?;
    let to = head
        .to_path()
        .map_err(|_| ScriptError::MissingHeader("To-Path"))?;
    let to_path: Vec<Bytes> = if method.as_ref() == b"SEND" {
        from.into_iter().take(1).collect()
    } else {
        from
    };
    let from_path: Vec<Bytes> = to.into_iter().take(1).collect();
    let mut extra: Vec<Header> = Vec::new();
    if let Some(m) = head.message_id() {
        extra.push(Header {
            name: Bytes::from_static(b"Message-ID"),
            value: m.clone(),
        });
    }
    let text = (!text.is_empty()).then_some(text);
    let rhead = build::response_head(
        &head.transaction_id,
        code,
        text,
        &to_path,
        &from_path,
        &extra,
    );
    let mut frame = BytesMut::with_capacity(rhead.len() + hdrs.len() + 48);
    frame.extend_from_slice(&rhead);
    frame.extend_from_slice(hdrs);
    if !hdrs.is_empty() && !hdrs.ends_with(b"\r\n") {
        frame.extend_from_slice(b"\r\n");
    }
    frame.extend_from_slice(&build::end_line(
        &head.transaction_id,
        msrp_core::EndFlag::Complete,
    ));
    Ok(frame.freeze())
}
