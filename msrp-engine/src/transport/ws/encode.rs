//! Frames this side sends: MSRP frames as binary messages, control frames.

use super::{apply_mask, Role, MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE, OP_CONTINUATION};

/// The header of one frame: the bytes and how many of the 14 are used.
/// `opcode`: 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong.
/// The length takes the shortest encoding (RFC 6455 §5.2).
pub fn frame_header(opcode: u8, fin: bool, len: u64, mask: Option<[u8; 4]>) -> ([u8; 14], usize) {
    let mut h = [0u8; 14];
    h[0] = (u8::from(fin) << 7) | (opcode & 0x0f);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    let mut n = match len {
        0..=125 => {
            h[1] = masked | len as u8;
            2
        }
        126..=0xffff => {
            h[1] = masked | 126;
            h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            h[1] = masked | 127;
            h[2..10].copy_from_slice(&len.to_be_bytes());
            10
        }
    };
    if let Some(key) = mask {
        h[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    (h, n)
}

/// A whole frame with `payload`, masked with a fresh key for
/// [`Role::Client`]. For control frames (ping, pong, close) the payload is
/// cut to 125 bytes, the most RFC 6455 §5.5 allows.
pub fn control_frame(role: Role, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let mask = role.send_mask();
    let (h, n) = frame_header(opcode, true, payload.len() as u64, mask);
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[n..], key, 0);
    }
    out
}

/// A close frame with `code` and `reason` (cut at a character boundary to
/// fit the 125-byte control payload).
pub fn close_frame(role: Role, code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    control_frame(role, OP_CLOSE, &payload)
}

/// Streams MSRP frames as WebSocket messages: one MSRP frame per binary
/// message (RFC 7977 §5.1), written as one WebSocket frame per piece the
/// relay writes, because it learns where an MSRP frame ends only when it
/// writes the frame's last piece.
#[derive(Debug, Clone)]
pub struct MessageWriter {
    role: Role,
    /// Whether a message's first frame has been written and its last not.
    in_message: bool,
}

impl MessageWriter {
    /// A writer with no message in progress.
    pub fn new(role: Role) -> Self {
        MessageWriter {
            role,
            in_message: false,
        }
    }

    /// Whether a message has been started and not yet finished.
    pub fn in_message(&self) -> bool {
        self.in_message
    }

    /// Appends to `out` the header for a piece of `len` payload bytes:
    /// binary for the first piece of a message, continuation after, FIN
    /// when `last`. For [`Role::Server`] the caller then writes the payload
    /// itself, uncopied. Writes nothing for an empty piece that is not the
    /// last. For [`Role::Client`] use [`Self::piece_masked`]; here the
    /// header carries the all-zero mask key (the payload goes unchanged),
    /// which a server accepts but which defeats masking's purpose.
    pub fn piece_header(&mut self, len: usize, last: bool, out: &mut Vec<u8>) {
        let mask = (self.role == Role::Client).then_some([0u8; 4]);
        self.header(len, last, mask, out);
    }

    /// The header and the payload of a piece, masked with a fresh key for
    /// [`Role::Client`] (a copy is unavoidable there), copied as is for
    /// [`Role::Server`].
    pub fn piece_masked(&mut self, payload: &[u8], last: bool, out: &mut Vec<u8>) {
        let mask = self.role.send_mask();
        if !self.header(payload.len(), last, mask, out) {
            return;
        }
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut out[start..], key, 0);
        }
    }

    /// [`Self::piece_header`] as an array and how many of its bytes are
    /// used (0: none), for a caller that hands it on without allocating.
    pub fn piece_header_array(&mut self, len: usize, last: bool) -> ([u8; 14], usize) {
        let mask = (self.role == Role::Client).then_some([0u8; 4]);
        self.header_array(len, last, mask)
    }

    /// Appends a piece's header; false when there is none (an empty piece
    /// that is not the last).
    fn header(&mut self, len: usize, last: bool, mask: Option<[u8; 4]>, out: &mut Vec<u8>) -> bool {
        let (h, n) = self.header_array(len, last, mask);
        out.extend_from_slice(&h[..n]);
        n > 0
    }

    fn header_array(&mut self, len: usize, last: bool, mask: Option<[u8; 4]>) -> ([u8; 14], usize) {
        if len == 0 && !last {
            return ([0; 14], 0);
        }
        let opcode = if self.in_message {
            OP_CONTINUATION
        } else {
            OP_BINARY
        };
        self.in_message = !last;
        frame_header(opcode, last, len as u64, mask)
    }
}
