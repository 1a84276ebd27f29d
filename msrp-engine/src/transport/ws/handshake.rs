//! The opening handshake (RFC 6455 §4): a browser's HTTP/1.1 upgrade request
//! and the relay's 101 answer, with the `msrp` subprotocol (RFC 7977 §4).
//!
//! The server side is called with all bytes received so far each time more
//! arrive (the head is at most `max_handshake` bytes, so re-parsing is
//! cheap and no parser state is kept between reads).

use sha1::{Digest, Sha1};

use super::{base64, random_mask, WsError, WsLimits, SUBPROTOCOL};
use base64::Engine as _;

/// Header fields parsed per head; more is answered like an oversized head.
const MAX_HEADERS: usize = 64;
/// The GUID RFC 6455 §1.3 appends to the key for `Sec-WebSocket-Accept`.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Outcome of feeding the bytes received so far to the server handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// Need more bytes.
    Incomplete,
    /// A valid upgrade: write `response` (HTTP 101 with
    /// Sec-WebSocket-Accept and `Sec-WebSocket-Protocol: msrp`). The request
    /// head is the first `consumed` bytes of the input; the bytes after it
    /// are already WebSocket frames (a client may send them before the
    /// answer). `origin`: the Origin header as sent.
    Accepted {
        response: Vec<u8>,
        consumed: usize,
        origin: Option<String>,
    },
    /// Refused: write `response` (an HTTP error) and close; `error` says
    /// why.
    Refused { response: Vec<u8>, error: WsError },
}

/// Answers the upgrade request at the start of `input`.
///
/// `origins`: allow-list of exact Origin values (compared
/// case-insensitively); empty allows any Origin and none. Refusals: 400 for
/// a malformed or non-upgrade request or no `msrp` subprotocol, 403 for an
/// Origin not allowed, 426 (with `Sec-WebSocket-Version: 13`) for another
/// version, 431 for a head over `limits.max_handshake`.
pub fn server_handshake(input: &[u8], origins: &[String], limits: &WsLimits) -> Handshake {
    let max = limits.max_handshake;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(input) {
        // a partial head as long as the limit cannot end within it
        Ok(httparse::Status::Partial) if max == 0 || input.len() < max => {
            return Handshake::Incomplete
        }
        Ok(httparse::Status::Complete(n)) if max == 0 || n <= max => n,
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return refuse(WsError::HeadTooLarge(max)),
        Err(_) => return refuse(WsError::BadRequest("malformed HTTP request")),
    };
    match check_request(&req, origins) {
        Ok((key, origin)) => {
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\
                 Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n",
                accept_key(key)
            );
            Handshake::Accepted {
                response: response.into_bytes(),
                consumed,
                origin,
            }
        }
        Err(error) => refuse(error),
    }
}

/// The checks of RFC 6455 §4.2.1 plus Origin and subprotocol, in the order
/// that decides the status code; the key and the Origin on success.
fn check_request<'a>(
    req: &httparse::Request<'_, 'a>,
    origins: &[String],
) -> Result<(&'a str, Option<String>), WsError> {
    let h: &[httparse::Header<'a>] = req.headers;
    if req.method != Some("GET") {
        return Err(WsError::BadRequest("method is not GET"));
    }
    if req.version != Some(1) {
        return Err(WsError::BadRequest("not HTTP/1.1"));
    }
    if single(h, "Host")?.is_none() {
        return Err(WsError::BadRequest("no Host"));
    }
    if !has_token(h, "Upgrade", "websocket") {
        return Err(WsError::BadRequest("no Upgrade: websocket"));
    }
    if !has_token(h, "Connection", "upgrade") {
        return Err(WsError::BadRequest("no Connection: Upgrade"));
    }
    // bytes after the head are frames, never a request body
    let body = single(h, "Content-Length")?.is_some_and(|v| v != b"0");
    if body || single(h, "Transfer-Encoding")?.is_some() {
        return Err(WsError::BadRequest("request with a body"));
    }
    let key = single(h, "Sec-WebSocket-Key")?
        .and_then(|k| std::str::from_utf8(k).ok())
        .filter(|k| base64().decode(k).is_ok_and(|raw| raw.len() == 16))
        .ok_or(WsError::BadRequest("no valid Sec-WebSocket-Key"))?;
    match single(h, "Sec-WebSocket-Version")? {
        None => return Err(WsError::BadRequest("no Sec-WebSocket-Version")),
        Some(b"13") => {}
        Some(v) => return Err(WsError::Version(lossy(v))),
    }
    let origin = single(h, "Origin")?;
    let allowed =
        origin.is_some_and(|o| origins.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(o)));
    if !origins.is_empty() && !allowed {
        return Err(WsError::Origin(origin.map(lossy)));
    }
    // subprotocol names are compared exactly: the browser checks that the
    // name in the answer is one it offered
    if !tokens(h, "Sec-WebSocket-Protocol").any(|t| t == SUBPROTOCOL.as_bytes()) {
        let offered = values(h, "Sec-WebSocket-Protocol")
            .map(lossy)
            .collect::<Vec<_>>();
        return Err(WsError::Subprotocol(
            (!offered.is_empty()).then(|| offered.join(", ")),
        ));
    }
    Ok((key, origin.map(lossy)))
}

/// The HTTP error answer for a refused request.
fn refuse(error: WsError) -> Handshake {
    let (status, extra) = match error {
        WsError::HeadTooLarge(_) => ("431 Request Header Fields Too Large", ""),
        WsError::Version(_) => (
            "426 Upgrade Required",
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        ),
        WsError::Origin(_) => ("403 Forbidden", ""),
        _ => ("400 Bad Request", ""),
    };
    let response =
        format!("HTTP/1.1 {status}\r\n{extra}Connection: close\r\nContent-Length: 0\r\n\r\n");
    Handshake::Refused {
        response: response.into_bytes(),
        error,
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64().encode(sha.finalize())
}

/// A fresh random `Sec-WebSocket-Key` (16 random bytes, base64).
pub fn client_key() -> String {
    let mut raw = [0u8; 16];
    for c in raw.chunks_exact_mut(4) {
        c.copy_from_slice(&random_mask());
    }
    base64().encode(raw)
}

/// The upgrade request a client (test tool) sends to `host` for `path`,
/// offering the `msrp` subprotocol, with `key` (see [`client_key`]).
pub fn client_request(host: &str, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    )
    .into_bytes()
}

/// Checks the server's answer to [`client_request`] with `key`:
/// `Ok(None)` while incomplete, `Ok(Some(consumed))` for a 101 with the
/// right accept value and subprotocol `msrp` (bytes after `consumed` are
/// frames), else the error.
pub fn client_response(input: &[u8], key: &str) -> Result<Option<usize>, WsError> {
    let bad = |why: String| WsError::BadResponse(why);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let consumed = match resp.parse(input) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(n)) => n,
        Err(e) => return Err(bad(e.to_string())),
    };
    let h = resp.headers;
    if resp.code != Some(101) {
        return Err(bad(format!(
            "status {} {}",
            resp.code.unwrap_or(0),
            resp.reason.unwrap_or("")
        )));
    }
    if !has_token(h, "Upgrade", "websocket") || !has_token(h, "Connection", "upgrade") {
        return Err(bad("no Upgrade: websocket / Connection: Upgrade".into()));
    }
    let accept = single(h, "Sec-WebSocket-Accept")?;
    if accept != Some(accept_key(key).as_bytes()) {
        let got = accept.map_or("missing".into(), lossy);
        return Err(bad(format!("Sec-WebSocket-Accept {got}")));
    }
    let protocol = single(h, "Sec-WebSocket-Protocol")?;
    if protocol != Some(SUBPROTOCOL.as_bytes()) {
        let got = protocol.map_or("missing".into(), lossy);
        return Err(bad(format!("Sec-WebSocket-Protocol {got}")));
    }
    Ok(Some(consumed))
}

/// The trimmed values of every header field called `name`.
fn values<'a: 'h, 'h>(
    h: &'h [httparse::Header<'a>],
    name: &'h str,
) -> impl Iterator<Item = &'a [u8]> + 'h {
    h.iter()
        .filter(move |x| x.name.eq_ignore_ascii_case(name))
        .map(|x| x.value.trim_ascii())
}

/// The comma-separated elements of every header field called `name`.
fn tokens<'a: 'h, 'h>(
    h: &'h [httparse::Header<'a>],
    name: &'h str,
) -> impl Iterator<Item = &'a [u8]> + 'h {
    values(h, name).flat_map(|v| v.split(|&b| b == b',').map(<[u8]>::trim_ascii))
}

/// Whether a list header field has `token` (case-insensitively).
fn has_token(h: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    tokens(h, name).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// The value of a header field that may appear at most once.
fn single<'a>(h: &[httparse::Header<'a>], name: &str) -> Result<Option<&'a [u8]>, WsError> {
    let mut it = values(h, name);
    let first = it.next();
    if it.next().is_some() {
        return Err(WsError::BadRequest("a header field repeated"));
    }
    Ok(first)
}

/// Header bytes for a log line or an error: as sent, with control and
/// non-ASCII bytes escaped (`\r`, `\x7f`), so a peer cannot forge log lines.
fn lossy(v: &[u8]) -> String {
    v.escape_ascii().to_string()
}
