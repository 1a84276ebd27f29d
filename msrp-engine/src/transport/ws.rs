//! A sans-IO WebSocket layer (RFC 6455) for MSRP over WebSocket (RFC 7977).
//!
//! Nothing here touches a socket: the engine feeds the bytes it read and
//! writes the bytes it gets back, so everything is unit-tested, split-fed
//! and fuzzed without a network.
//!
//! * [`server_handshake`] answers a browser's HTTP upgrade request (with the
//!   `msrp` subprotocol RFC 7977 §4 requires); [`client_request`] and
//!   [`client_response`] are the other side, for test and bench tools.
//! * [`Decoder`] turns the peer's WebSocket frames back into the MSRP byte
//!   stream. It streams: a frame's payload is handed on as far as it has
//!   arrived, so a multi-megabyte message (a browser may send a whole MSRP
//!   chunk as one) is never held in memory, and only a frame header (or a
//!   control frame, at most 131 bytes) is ever left waiting in the input.
//! * [`MessageWriter`] sends MSRP frames the other way, one MSRP frame per
//!   WebSocket binary message (RFC 7977 §5.1), written as fragments because
//!   the relay learns where an MSRP frame ends only with its last piece.
//!
//! No extension (permessage-deflate) is negotiated, so every RSV bit must be
//! zero.

use std::hash::{BuildHasher, Hasher};

mod decode;
mod encode;
mod handshake;
#[cfg(test)]
mod tests;
mod utf8;

pub use decode::{Decoder, Status};
pub use encode::{close_frame, control_frame, frame_header, MessageWriter};
pub use handshake::{
    accept_key, client_key, client_request, client_response, server_handshake, Handshake,
};

/// Opcode of a continuation frame.
pub const OP_CONTINUATION: u8 = 0;
/// Opcode of the first frame of a text message.
pub const OP_TEXT: u8 = 1;
/// Opcode of the first frame of a binary message.
pub const OP_BINARY: u8 = 2;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 9;
/// Opcode of a pong frame.
pub const OP_PONG: u8 = 10;
/// The largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// The subprotocol RFC 7977 registers for MSRP.
pub const SUBPROTOCOL: &str = "msrp";

/// Which end of the connection this side is. The only difference on the
/// wire is masking (RFC 6455 §5.3): a client masks every frame it sends, a
/// server never does, and each refuses frames masked the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The relay: expects masked frames, sends unmasked ones.
    Server,
    /// A browser (here: test tools and the fuzzer): expects unmasked frames,
    /// sends masked ones.
    Client,
}

impl Role {
    /// Whether frames this side receives must be masked.
    fn expects_masked(self) -> bool {
        self == Role::Server
    }

    /// A mask key for a frame this side sends: none for a server, a fresh
    /// random one for a client.
    fn send_mask(self) -> Option<[u8; 4]> {
        match self {
            Role::Server => None,
            Role::Client => Some(random_mask()),
        }
    }
}

/// Limits on what a peer may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsLimits {
    /// The largest data message (the payload of all its fragments), 0 for
    /// unlimited. Checked from each frame header, before its payload is
    /// read, so an oversized message fails without being received.
    pub max_message: usize,
    /// The largest HTTP request head of the handshake, 0 for unlimited.
    pub max_handshake: usize,
}

impl Default for WsLimits {
    /// No message limit (the relay's MSRP layer limits chunks itself) and
    /// 8 KiB of request head, more than any browser sends.
    fn default() -> Self {
        WsLimits {
            max_message: 0,
            max_handshake: 8192,
        }
    }
}

/// A header a client sent, as an operator reads it:
/// `Sec-WebSocket-Protocol: sip`, or `no Sec-WebSocket-Protocol`.
fn offered(name: &str, value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{name}: {v}"),
        None => format!("no {name}"),
    }
}

fn origin_refused(origin: &Option<String>) -> String {
    match origin {
        Some(o) => format!("Origin {o} not allowed (ws_allowed_origins)"),
        None => "no Origin header, and ws_allowed_origins is set".to_string(),
    }
}

/// Why a handshake was refused or a frame stream is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// A malformed HTTP request or one that is not a WebSocket upgrade
    /// (answered with 400).
    #[error("bad WebSocket upgrade request: {0}")]
    BadRequest(&'static str),
    /// The request head is larger than `max_handshake` or has too many
    /// header fields (answered with 431).
    #[error("WebSocket upgrade request head over {0} bytes or with too many header fields")]
    HeadTooLarge(usize),
    /// A `Sec-WebSocket-Version` other than 13 (answered with 426).
    #[error("unsupported Sec-WebSocket-Version {0}")]
    Version(String),
    /// The client did not offer the `msrp` subprotocol (answered with 400);
    /// what it offered, if anything.
    #[error("no msrp subprotocol offered ({})", offered("Sec-WebSocket-Protocol", .0))]
    Subprotocol(Option<String>),
    /// An Origin not in the allow-list, or none while there is a list
    /// (answered with 403).
    #[error("{}", origin_refused(.0))]
    Origin(Option<String>),
    /// The server's answer to [`client_request`] is not a valid upgrade.
    #[error("bad WebSocket handshake response: {0}")]
    BadResponse(String),
    /// A frame with an RSV bit set, though no extension was negotiated.
    #[error("reserved bits set in a frame header")]
    Reserved,
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {0}")]
    Opcode(u8),
    /// A frame masked when it must not be, or unmasked when it must be.
    #[error("frame masking wrong for the peer's role (masked: {masked})")]
    Mask {
        /// Whether the offending frame was masked.
        masked: bool,
    },
    /// A control frame without FIN (control frames cannot be fragmented).
    #[error("fragmented control frame")]
    ControlFragmented,
    /// A control frame payload over 125 bytes.
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    /// A continuation frame while no data message is in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is in progress.
    #[error("new data message before the previous one ended")]
    MessageInProgress,
    /// A 64-bit payload length with its most significant bit set.
    #[error("64-bit payload length with the most significant bit set")]
    LengthOverflow,
    /// A message whose payload exceeds `max_message`.
    #[error("message over {0} bytes")]
    TooBig(usize),
    /// Invalid UTF-8 in a text message.
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    /// A close frame with a 1-byte payload.
    #[error("close frame with a 1-byte payload")]
    CloseLength,
    /// A close frame with a status code an endpoint must not send.
    #[error("invalid close code {0}")]
    CloseCode(u16),
    /// A close frame whose reason is not UTF-8.
    #[error("invalid UTF-8 in a close reason")]
    CloseReason,
}

impl WsError {
    /// The close code to send for this error (RFC 6455 §7.4.1): 1007 for
    /// invalid UTF-8, 1009 for a message too big, 1002 (protocol error) for
    /// the rest. Handshake errors have no close frame; they say 1002.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::InvalidUtf8 | WsError::CloseReason => 1007,
            WsError::TooBig(_) => 1009,
            _ => 1002,
        }
    }

    /// The close frame to send (for `role`, the decoder's) before closing
    /// the connection: [`Self::close_code`] with this error as the reason.
    pub fn close_frame(&self, role: Role) -> Vec<u8> {
        close_frame(role, self.close_code(), &self.to_string())
    }
}

/// A random masking key. `getrandom` failing (no entropy source) leaves the
/// std hasher's per-process random seed: masking only needs keys a web page
/// cannot predict, and only the client role (test tools) masks.
fn random_mask() -> [u8; 4] {
    let mut key = [0u8; 4];
    if getrandom::fill(&mut key).is_err() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(0);
        key.copy_from_slice(&h.finish().to_ne_bytes()[..4]);
    }
    key
}

/// XORs `buf` with `key`, where `buf` starts `offset` bytes into a frame's
/// payload (the key repeats every 4 bytes of the payload, so a payload that
/// arrives in pieces continues at `offset % 4`). Eight bytes at a time: the
/// relay may unmask gigabytes, and a per-byte loop with a modulo is several
/// times slower.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: u64) {
    let r = (offset % 4) as usize;
    let k = [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]];
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    // the remainder starts a multiple of 8 bytes in, so at k[0] again
    for (b, m) in chunks.into_remainder().iter_mut().zip(k.iter().cycle()) {
        *b ^= m;
    }
}

/// Standard base64 with padding, as `Sec-WebSocket-Key`/`-Accept` use.
fn base64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}
