//! The WebSocket layer (msrp_engine::transport::ws) on arbitrary bytes:
//! `[control byte, split seed, bytes...]`. The bytes go to the server
//! handshake, then (after the request it accepted, else all of them) to a
//! server decoder in reads whose sizes the control byte and the seed
//! choose. Checked: no panic; an accepted request lies within the input and
//! the head limit; the decoder hands on at most the bytes it got and
//! answers with at most as many; it leaves at most an incomplete header or
//! control frame; its errors are sticky; and the reads do not matter —
//! the same bytes fed whole give the same status, error, replies and (when
//! no error) the same stream, whether the reads are appended to the input
//! or lent as slices (`decode_slice`).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msrp_engine::transport::ws::{
    server_handshake, Decoder, Handshake, Role, Status, WsError, WsLimits,
};
use msrp_fuzz::Rng;

/// Largest read per control byte bits 5..7 (0: everything at once).
const READS: [u64; 8] = [1, 2, 3, 7, 16, 64, 300, 0];

/// What a decoder made of the bytes.
struct Run {
    result: Result<Status, WsError>,
    out: Vec<u8>,
    reply: Vec<u8>,
}

/// Feeds `bytes` in reads of 1..=`max` bytes (0: all at once), appended to
/// the decoder's input, or lent as slices (`Decoder::decode_slice`, as the
/// relay decodes TLS plaintext) when `lend`.
fn run(bytes: &[u8], limits: &WsLimits, max: u64, rng: &mut Rng, lend: bool) -> Run {
    let mut dec = Decoder::new(Role::Server, limits.clone());
    let (mut input, mut out, mut reply) = (BytesMut::new(), BytesMut::new(), Vec::new());
    let mut collected = Vec::new();
    let mut rest = bytes;
    let result = loop {
        let n = if max == 0 {
            rest.len()
        } else {
            (1 + rng.below(max) as usize).min(rest.len())
        };
        let result = match lend {
            true => dec.decode_slice(&rest[..n], &mut input, &mut out, &mut reply),
            false => {
                input.extend_from_slice(&rest[..n]);
                dec.decode(&mut input, &mut out, &mut reply)
            }
        };
        rest = &rest[n..];
        collected.extend_from_slice(&out.split());
        match &result {
            Err(e) => {
                let again = dec.decode(
                    &mut BytesMut::from(&b"\x82\x80abcd"[..]),
                    &mut out,
                    &mut reply,
                );
                assert_eq!(again.as_ref(), Err(e), "errors are sticky");
                assert!(out.is_empty());
                let close = e.close_frame(Role::Server);
                assert!(close.len() <= 127 && close[0] == 0x88);
                break result;
            }
            Ok(Status::Closed) => assert!(input.is_empty()),
            Ok(Status::Open) => assert!(input.len() <= 131, "{} bytes held", input.len()),
        }
        if rest.is_empty() {
            break result;
        }
    };
    assert!(collected.len() <= bytes.len(), "more out than in");
    assert!(reply.len() <= bytes.len(), "more replies than input");
    Run {
        result,
        out: collected,
        reply,
    }
}

fuzz_target!(|data: &[u8]| {
    let [ctl, seed, rest @ ..] = data else {
        return;
    };
    let origins = if ctl & 1 == 0 {
        Vec::new()
    } else {
        vec!["https://chat.example.com".to_string()]
    };
    let limits = WsLimits {
        max_message: if ctl & 2 == 0 { 0 } else { 64 },
        max_handshake: 512,
    };
    let frames = match server_handshake(rest, &origins, &limits) {
        Handshake::Accepted {
            response,
            consumed,
            origin,
        } => {
            assert!(consumed <= rest.len() && consumed <= limits.max_handshake);
            assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
            if !origins.is_empty() {
                assert!(origin.is_some_and(|o| o.eq_ignore_ascii_case(&origins[0])));
            }
            &rest[consumed..]
        }
        Handshake::Refused { response, .. } => {
            assert!(response.starts_with(b"HTTP/1.1 4") && response.ends_with(b"\r\n\r\n"));
            rest
        }
        Handshake::Incomplete => {
            assert!(rest.len() < limits.max_handshake);
            rest
        }
    };
    let mut rng = Rng::new(u64::from(*seed));
    let reads = READS[usize::from(ctl >> 5)];
    let split = run(frames, &limits, reads, &mut rng, false);
    let lent = run(frames, &limits, reads, &mut rng, true);
    let whole = run(frames, &limits, 0, &mut rng, false);
    for split in [split, lent] {
        assert_eq!(split.result, whole.result);
        assert_eq!(split.reply, whole.reply);
        if split.result.is_ok() {
            assert_eq!(split.out, whole.out);
        } else {
            // on an error each holds a prefix of the stream: up to the
            // piece that failed
            let n = split.out.len().min(whole.out.len());
            assert_eq!(split.out[..n], whole.out[..n]);
        }
    }
});
