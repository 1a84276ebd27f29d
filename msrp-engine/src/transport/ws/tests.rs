//! Tests of the WebSocket layer; helpers shared by the test files below.

use bytes::BytesMut;

use super::*;

mod decode;
mod encode;
mod handshake;
mod prop;

/// The RFC 6455 §1.3 example key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A frame as a client sends it: masked with `key`.
fn masked(opcode: u8, fin: bool, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let (h, n) = frame_header(opcode, fin, payload.len() as u64, Some(key));
    let mut f = h[..n].to_vec();
    let start = f.len();
    f.extend_from_slice(payload);
    apply_mask(&mut f[start..], key, 0);
    f
}

/// A frame as a server sends it: unmasked.
fn plain(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let (h, n) = frame_header(opcode, fin, payload.len() as u64, None);
    let mut f = h[..n].to_vec();
    f.extend_from_slice(payload);
    f
}

/// What feeding some bytes produced.
#[derive(Debug)]
struct Fed {
    result: Result<Status, WsError>,
    out: Vec<u8>,
    reply: Vec<u8>,
    /// Bytes left in the input.
    left: usize,
}

/// Feeds `bytes` to a fresh `role` decoder in pieces cut at `cuts` (sorted
/// positions), stopping at the first error; checks after each call that at
/// most an incomplete header or control frame is left.
fn feed_cut(role: Role, limits: WsLimits, bytes: &[u8], cuts: &[usize]) -> Fed {
    let mut dec = Decoder::new(role, limits);
    let (mut input, mut out, mut reply) = (BytesMut::new(), BytesMut::new(), Vec::new());
    let mut collected = Vec::new();
    let mut from = 0;
    let mut result = Ok(Status::Open);
    for &to in cuts.iter().chain([bytes.len()].iter()) {
        input.extend_from_slice(&bytes[from..to.max(from)]);
        from = to.max(from);
        result = dec.decode(&mut input, &mut out, &mut reply);
        collected.extend_from_slice(&out.split());
        if result.is_err() {
            break;
        }
        assert!(
            input.len() <= 131,
            "{} bytes left in the input",
            input.len()
        );
    }
    Fed {
        result,
        out: collected,
        reply,
        left: input.len(),
    }
}

/// [`feed_cut`] through [`Decoder::decode_slice`]: each piece lent as a
/// slice, as rustls lends a record's plaintext; `left` is what is held.
fn feed_slices(role: Role, limits: WsLimits, bytes: &[u8], cuts: &[usize]) -> Fed {
    let mut dec = Decoder::new(role, limits);
    let (mut held, mut out, mut reply) = (BytesMut::new(), BytesMut::new(), Vec::new());
    let mut collected = Vec::new();
    let mut from = 0;
    let mut result = Ok(Status::Open);
    for &to in cuts.iter().chain([bytes.len()].iter()) {
        let to = to.max(from);
        // what the engine's buffer holds already stays in front
        out.extend_from_slice(b"x");
        result = dec.decode_slice(&bytes[from..to], &mut held, &mut out, &mut reply);
        from = to;
        assert_eq!(out[0], b'x');
        collected.extend_from_slice(&out.split()[1..]);
        if result.is_err() {
            break;
        }
        assert!(held.len() <= 131, "{} bytes held", held.len());
    }
    Fed {
        result,
        out: collected,
        reply,
        left: held.len(),
    }
}

/// Feeds `bytes` whole to a fresh decoder.
fn feed(role: Role, bytes: &[u8]) -> Fed {
    feed_cut(role, WsLimits::default(), bytes, &[])
}

/// The error and its close code when a server decoder gets `bytes`.
fn server_error(bytes: &[u8]) -> (WsError, u16) {
    let e = feed(Role::Server, bytes).result.unwrap_err();
    let code = e.close_code();
    (e, code)
}
