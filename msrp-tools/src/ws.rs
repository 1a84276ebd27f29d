//! MSRP over WebSocket (RFC 7977) for the test peers: the client handshake
//! with tungstenite (an implementation independent of the relay's own
//! framing, which is what is under test), and a builder for raw WebSocket
//! frames (well-formed or not) for tests that bypass tungstenite.

use std::sync::Arc;
use std::time::Instant;

use rustls::ClientConfig;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error as WsError, WebSocket};

use crate::error::PeerError;
use crate::stream::Stream;

/// The WebSocket subprotocol of MSRP (RFC 7977 §4.1).
pub const SUBPROTOCOL: &str = "msrp";

/// Frame opcodes (RFC 6455 §5.2).
pub mod opcode {
    /// Continuation frame.
    pub const CONTINUATION: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// How to open a WebSocket to the relay. [`WsConnect::new`] gives the usual
/// one: subprotocol `msrp`, no Origin, plain `ws://`.
#[derive(Debug, Clone)]
pub struct WsConnect<'a> {
    /// Authority of the request URL and `Host` header, e.g. `127.0.0.1:2857`
    /// or `relay.test`.
    pub url_host: &'a str,
    /// Request path, e.g. `/` or `/msrp`.
    pub path: &'a str,
    /// `Origin` header, when given.
    pub origin: Option<&'a str>,
    /// Subprotocols offered in `Sec-WebSocket-Protocol` (none: no header).
    /// When `msrp` is among them the server must select it.
    pub subprotocols: Vec<&'a str>,
    /// More request headers.
    pub headers: Vec<(&'a str, &'a str)>,
    /// `wss://`: TLS with this server name and configuration first.
    pub tls: Option<(&'a str, &'a Arc<ClientConfig>)>,
}

impl<'a> WsConnect<'a> {
    /// `ws://url_host/path` offering subprotocol `msrp`.
    pub fn new(url_host: &'a str, path: &'a str) -> WsConnect<'a> {
        WsConnect {
            url_host,
            path,
            origin: None,
            subprotocols: vec![SUBPROTOCOL],
            headers: Vec::new(),
            tls: None,
        }
    }

    /// With an `Origin` header.
    pub fn origin(mut self, origin: &'a str) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Over TLS (`wss://`), verifying the server as `server_name`.
    pub fn tls(mut self, server_name: &'a str, config: &'a Arc<ClientConfig>) -> Self {
        self.tls = Some((server_name, config));
        self
    }

    /// The request URL: `ws://` or `wss://`, `url_host`, `path`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let slash = if self.path.starts_with('/') { "" } else { "/" };
        format!("{scheme}://{}{slash}{}", self.url_host, self.path)
    }
}

/// tungstenite's configuration for the test peers: no message or frame size
/// limit of our own (what the relay sends is what is under test).
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
}

/// Performs the client handshake on `stream` before `deadline`; returns the
/// WebSocket and the subprotocol the server selected.
pub(crate) fn handshake(
    stream: Stream,
    opts: &WsConnect<'_>,
    deadline: Instant,
) -> Result<(WebSocket<Stream>, Option<String>), PeerError> {
    let url = opts.url();
    let bad_request = |e: WsError| PeerError::WsHandshake(format!("request for {url}: {e}"));
    let mut req = url.as_str().into_client_request().map_err(bad_request)?;
    {
        let h = req.headers_mut();
        let mut add = |name: &str, value: &str| -> Result<(), PeerError> {
            let name = tungstenite::http::HeaderName::try_from(name)
                .map_err(|e| PeerError::WsHandshake(format!("header name {name:?}: {e}")))?;
            let value = tungstenite::http::HeaderValue::try_from(value)
                .map_err(|e| PeerError::WsHandshake(format!("header value {value:?}: {e}")))?;
            h.append(name, value);
            Ok(())
        };
        if let Some(o) = opts.origin {
            add("Origin", o)?;
        }
        if !opts.subprotocols.is_empty() {
            add("Sec-WebSocket-Protocol", &opts.subprotocols.join(", "))?;
        }
        for (n, v) in &opts.headers {
            add(n, v)?;
        }
    }
    let set_timeouts = |s: &Stream| -> Result<(), PeerError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PeerError::Timeout(format!(
                "WebSocket handshake with {url} not finished in time"
            )));
        }
        s.tcp().set_read_timeout(Some(left))?;
        s.tcp().set_write_timeout(Some(left))?;
        Ok(())
    };
    set_timeouts(&stream)?;
    let mut attempt = tungstenite::client::client_with_config(req, stream, Some(config()));
    let (ws, response) = loop {
        match attempt {
            Ok(done) => break done,
            Err(HandshakeError::Interrupted(mid)) => {
                set_timeouts(mid.get_ref().get_ref())?;
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(e)) => return Err(handshake_error(&url, e)),
        }
    };
    let selected = selected_protocol(&response);
    if opts.subprotocols.contains(&SUBPROTOCOL) && selected.as_deref() != Some(SUBPROTOCOL) {
        return Err(PeerError::WsHandshake(format!(
            "{url}: the server selected subprotocol {selected:?}, not {SUBPROTOCOL:?}"
        )));
    }
    Ok((ws, selected))
}

fn selected_protocol(r: &Response) -> Option<String> {
    r.headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
}

fn handshake_error(url: &str, e: WsError) -> PeerError {
    match e {
        WsError::Http(resp) => PeerError::WsRefused {
            status: resp.status().as_u16(),
            body: resp
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        },
        WsError::Protocol(tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(e)) => {
            PeerError::WsHandshake(format!(
                "{url}: the server did not select subprotocol {SUBPROTOCOL:?}: {e}"
            ))
        }
        WsError::Io(e) => match PeerError::from(e) {
            PeerError::Timeout(e) => PeerError::Timeout(format!("WebSocket handshake: {e}")),
            PeerError::Closed(e) => {
                PeerError::Closed(format!("during the WebSocket handshake with {url}: {e}"))
            }
            other => other,
        },
        other => PeerError::WsHandshake(format!("{url}: {other}")),
    }
}

/// One raw WebSocket frame: FIN bit, opcode (4 bits; reserved values
/// allowed), masked with `mask` when given (clients must mask, RFC 6455
/// §5.3), payload length in the shortest form. Anything can be built,
/// including what a relay must refuse (an unmasked client frame, a reserved
/// opcode, a control frame over 125 bytes or fragmented).
pub fn frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    frame_into(&mut out, fin, opcode, mask, payload);
    out
}

/// [`frame`] appended to `out`: a load client reuses one buffer, and
/// masks over 64-bit words (per byte, masking cost the load client more
/// than the relay's unmasking, on the cores it shares with the relay).
pub fn frame_into(out: &mut Vec<u8>, fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) {
    out.reserve(payload.len() + 14);
    let (h, n) = frame_header(fin, opcode, mask, payload.len());
    out.extend_from_slice(&h[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        mask_in_place(&mut out[start..], k);
    }
}

/// Copies `src` into `dst` (of the same length) masked with `key`, where
/// `src` starts `offset` bytes into the payload: one pass, over 64-bit
/// words, instead of a copy and a pass of masking over the copy.
pub fn mask_copy(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    let k = [0, 1, 2, 3].map(|i| key[(offset + i) % 4]);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let v = u64::from_ne_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]) ^ word;
        d.copy_from_slice(&v.to_ne_bytes());
    }
    // the rest starts at a multiple of 8, so at k[0] again
    for (i, (d, s)) in d.into_remainder().iter_mut().zip(s.remainder()).enumerate() {
        *d = s ^ k[i % 4];
    }
}

/// The header of a frame of `len` payload bytes (see [`frame`]), and how
/// many of the 14 bytes it takes.
pub fn frame_header(fin: bool, opcode: u8, mask: Option<[u8; 4]>, len: usize) -> ([u8; 14], usize) {
    let mut h = [0u8; 14];
    h[0] = if fin { 0x80 } else { 0 } | (opcode & 0x0f);
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut at = 2;
    if len < 126 {
        h[1] = m | len as u8;
    } else if let Ok(n16) = u16::try_from(len) {
        h[1] = m | 126;
        h[2..4].copy_from_slice(&n16.to_be_bytes());
        at = 4;
    } else {
        h[1] = m | 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        at = 10;
    }
    if let Some(k) = mask {
        h[at..at + 4].copy_from_slice(&k);
        at += 4;
    }
    (h, at)
}

/// XORs `data` with the repeated key, the key's byte 0 on `data[0]`.
fn mask_in_place(data: &mut [u8], k: [u8; 4]) {
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut words = data.chunks_exact_mut(8);
    for w in &mut words {
        let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) ^ word;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    // the rest starts at a multiple of 8, so the key is back at byte 0
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

/// A masked client frame ([`frame`] with a fixed, non-zero mask).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, Some([0x37, 0xfa, 0x21, 0x3d]), payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        // RFC 6455 §5.7 examples
        assert_eq!(
            frame(true, opcode::TEXT, None, b"Hello"),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(
            frame(true, opcode::TEXT, Some([0x37, 0xfa, 0x21, 0x3d]), b"Hello"),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        assert_eq!(frame(false, opcode::TEXT, None, b"Hel")[0], 0x01);
        let f = frame(true, opcode::BINARY, None, &[0u8; 256]);
        assert_eq!(&f[..4], &[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(f.len(), 4 + 256);
        let f = frame(true, opcode::BINARY, None, &[0u8; 65536]);
        assert_eq!(&f[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        let f = client_frame(true, opcode::BINARY, &[1u8; 200]);
        assert_eq!(&f[..4], &[0x82, 0xFE, 0x00, 200]);
        assert_eq!(f.len(), 4 + 4 + 200);
    }

    #[test]
    fn word_masking_is_byte_masking() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 125, 126, 1000, 65537] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let f = frame(false, opcode::CONTINUATION, Some(key), &payload);
            let masked = &f[f.len() - len..];
            let want: Vec<u8> = payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(masked, &want[..], "payload of {len} bytes");
            // appended after what the buffer held, header and all
            let mut out = b"xyz".to_vec();
            frame_into(&mut out, false, opcode::CONTINUATION, Some(key), &payload);
            assert_eq!(&out[3..], &f[..]);
        }
    }

    #[test]
    fn masked_copies_continue_the_key_at_any_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let f = frame(true, opcode::BINARY, Some(key), &payload);
        let want = &f[f.len() - payload.len()..];
        for cut in [0, 1, 2, 3, 7, 9, 500, 999, 1000] {
            let mut got = vec![0u8; payload.len()];
            let (a, b) = got.split_at_mut(cut);
            mask_copy(a, &payload[..cut], key, 0);
            mask_copy(b, &payload[cut..], key, cut);
            assert_eq!(&got[..], want, "cut at {cut}");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            WsConnect::new("127.0.0.1:80", "/").url(),
            "ws://127.0.0.1:80/"
        );
        assert_eq!(WsConnect::new("h", "msrp").url(), "ws://h/msrp");
        let c =
            crate::tls::client_config(&crate::tls::Certs::for_tests().unwrap().ca(), None).unwrap();
        let w = WsConnect::new("relay.test:443", "/x").tls("relay.test", &c);
        assert_eq!(w.url(), "wss://relay.test:443/x");
        assert_eq!(w.subprotocols, vec!["msrp"]);
    }
}
