//! The decoder: RFC 6455 §5.7 examples, streaming, and every error rule.

use super::*;

const KEY4: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Every way to cut `bytes` in two, fed in a buffer and lent as slices.
fn every_split(role: Role, bytes: &[u8]) -> Vec<Fed> {
    (0..=bytes.len())
        .flat_map(|cut| {
            [
                feed_cut(role, WsLimits::default(), bytes, &[cut]),
                feed_slices(role, WsLimits::default(), bytes, &[cut]),
            ]
        })
        .collect()
}

#[test]
fn rfc_examples_text_hello() {
    // §5.7: a single-frame unmasked text message, to a client
    let fed = feed(Role::Client, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(
        (fed.result, fed.out.as_slice()),
        (Ok(Status::Open), &b"Hello"[..])
    );
    // §5.7: a single-frame masked text message, to a server, cut anywhere
    let frame = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(masked(OP_TEXT, true, b"Hello", KEY4), frame);
    for fed in every_split(Role::Server, &frame) {
        assert_eq!(fed.result, Ok(Status::Open));
        assert_eq!((fed.out.as_slice(), fed.left), (&b"Hello"[..], 0));
    }
}

#[test]
fn rfc_example_fragmented_text() {
    let bytes = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    for fed in every_split(Role::Client, &bytes) {
        assert_eq!(
            (fed.result, fed.out.as_slice()),
            (Ok(Status::Open), &b"Hello"[..])
        );
    }
}

#[test]
fn rfc_examples_ping_and_pong() {
    // unmasked ping to a client: a masked pong with the same payload back
    let fed = feed(Role::Client, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(fed.out, b"");
    let mut pong = fed.reply.clone();
    assert_eq!(&pong[..2], &[0x8a, 0x85]);
    let key = [pong[2], pong[3], pong[4], pong[5]];
    apply_mask(&mut pong[6..], key, 0);
    assert_eq!(&pong[6..], b"Hello");
    // masked ping to a server: an unmasked pong
    let fed = feed(Role::Server, &masked(OP_PING, true, b"Hello", KEY4));
    assert_eq!(fed.reply, [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    // §5.7's masked pong: nothing to answer
    let fed = feed(
        Role::Server,
        &[
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    );
    assert_eq!(
        (fed.result, fed.out.len(), fed.reply.len()),
        (Ok(Status::Open), 0, 0)
    );
}

#[test]
fn rfc_examples_16_and_64_bit_lengths() {
    let mut b = vec![0x82, 0x7e, 0x01, 0x00];
    b.extend(std::iter::repeat_n(7u8, 256));
    assert_eq!(feed(Role::Client, &b).out.len(), 256);
    let mut b = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    b.extend(std::iter::repeat_n(7u8, 65536));
    assert_eq!(feed(Role::Client, &b).out.len(), 65536);
}

#[test]
fn payload_streamed_as_it_arrives() {
    // a 1 MB frame of which 1000 bytes have come: all of them handed on
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let frame = masked(OP_BINARY, true, &payload, [9, 8, 7, 6]);
    let mut dec = Decoder::new(Role::Server, WsLimits::default());
    let (mut input, mut out, mut reply) = (BytesMut::new(), BytesMut::new(), Vec::new());
    // cuts that leave the mask key at every offset
    let mut got = Vec::new();
    for window in [0, 5, 14, 1001, 1002, 1003, 70_001, frame.len()].windows(2) {
        input.extend_from_slice(&frame[window[0]..window[1]]);
        assert_eq!(
            dec.decode(&mut input, &mut out, &mut reply),
            Ok(Status::Open)
        );
        assert!(input.len() < 14, "payload held back");
        got.extend_from_slice(&out.split());
    }
    assert_eq!(got, payload);
}

#[test]
fn control_frames_between_fragments() {
    let key = [1, 2, 3, 4];
    let mut b = masked(OP_TEXT, false, b"MSRP ", key);
    b.extend(masked(OP_PING, true, b"p1", key));
    b.extend(masked(OP_CONTINUATION, false, b"", key));
    b.extend(masked(OP_PONG, true, b"", key));
    b.extend(masked(OP_PING, true, b"", key));
    b.extend(masked(OP_CONTINUATION, true, b"a SEND", key));
    let fed = feed(Role::Server, &b);
    assert_eq!(fed.result, Ok(Status::Open));
    assert_eq!(fed.out, b"MSRP a SEND");
    let mut pongs = plain(OP_PONG, true, b"p1");
    pongs.extend(plain(OP_PONG, true, b""));
    assert_eq!(fed.reply, pongs);
}

#[test]
fn utf8_split_across_frames_and_reads_accepted() {
    let text = "é€😀 ok".as_bytes();
    for cut in 0..=text.len() {
        let mut b = masked(OP_TEXT, false, &text[..cut], KEY4);
        b.extend(masked(OP_CONTINUATION, true, &text[cut..], [5, 6, 7, 8]));
        for fed in every_split(Role::Server, &b) {
            assert_eq!(fed.result, Ok(Status::Open), "frame cut {cut}");
            assert_eq!(fed.out, text);
        }
    }
}

#[test]
fn invalid_utf8_in_text_rejected_with_1007() {
    let cases: [&[&[u8]]; 6] = [
        &[b"ok\xff"],
        &[b"\xc0\x80"],     // overlong
        &[b"\xed\xa0\x80"], // surrogate
        &[b"\xe2\x82", b"\x28"],
        &[b"\xf0\x9f", b"\x98"], // cut code point at the end of the message
        &[b"\xf4\x90\x80\x80"],  // over U+10FFFF
    ];
    for frames in cases {
        let mut b = Vec::new();
        for (i, p) in frames.iter().enumerate() {
            let op = if i == 0 { OP_TEXT } else { OP_CONTINUATION };
            b.extend(masked(op, i + 1 == frames.len(), p, KEY4));
        }
        for fed in every_split(Role::Server, &b) {
            let e = fed.result.unwrap_err();
            assert_eq!(
                (e.clone(), e.close_code()),
                (WsError::InvalidUtf8, 1007),
                "{frames:?}"
            );
        }
    }
    // the same bytes in a binary message are fine
    let fed = feed(
        Role::Server,
        &masked(OP_BINARY, true, b"ok\xff\xc0\x80", KEY4),
    );
    assert_eq!(fed.out, b"ok\xff\xc0\x80");
}

#[test]
fn protocol_errors_with_their_close_codes() {
    let k = KEY4;
    let mut rsv = masked(OP_BINARY, true, b"x", k);
    rsv[0] |= 0x40;
    let mut opcode3 = masked(OP_BINARY, true, b"x", k);
    opcode3[0] = 0x83;
    let mut opcode11 = masked(OP_PING, true, b"", k);
    opcode11[0] = 0x8b;
    let mut frag_then_text = masked(OP_BINARY, false, b"a", k);
    frag_then_text.extend(masked(OP_TEXT, true, b"b", k));
    let cases: Vec<(Vec<u8>, WsError)> = vec![
        (rsv, WsError::Reserved),
        (opcode3, WsError::Opcode(3)),
        (opcode11, WsError::Opcode(11)),
        (
            plain(OP_BINARY, true, b"x"),
            WsError::Mask { masked: false },
        ),
        (masked(OP_PING, false, b"", k), WsError::ControlFragmented),
        (masked(OP_CLOSE, false, b"", k), WsError::ControlFragmented),
        (masked(OP_PING, true, &[0; 126], k), WsError::ControlTooLong),
        (
            masked(OP_CONTINUATION, true, b"x", k),
            WsError::UnexpectedContinuation,
        ),
        (frag_then_text, WsError::MessageInProgress),
        (
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            WsError::LengthOverflow,
        ),
        (masked(OP_CLOSE, true, &[3], k), WsError::CloseLength),
        (
            masked(OP_CLOSE, true, &1005u16.to_be_bytes(), k),
            WsError::CloseCode(1005),
        ),
        (
            masked(OP_CLOSE, true, &999u16.to_be_bytes(), k),
            WsError::CloseCode(999),
        ),
        (
            masked(OP_CLOSE, true, &2000u16.to_be_bytes(), k),
            WsError::CloseCode(2000),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(server_error(&bytes), (want.clone(), 1002), "{bytes:x?}");
    }
    let fed = feed(Role::Client, &masked(OP_BINARY, true, b"x", k));
    assert_eq!(fed.result, Err(WsError::Mask { masked: true }));
    let bad_reason = masked(OP_CLOSE, true, b"\x03\xe8\xff", k);
    assert_eq!(server_error(&bad_reason), (WsError::CloseReason, 1007));
}

#[test]
fn message_over_the_limit_fails_from_its_header() {
    let limits = WsLimits {
        max_message: 10,
        ..WsLimits::default()
    };
    let header_only = |op, fin, len| {
        let (h, n) = frame_header(op, fin, len, Some(KEY4));
        h[..n].to_vec()
    };
    // one frame of 11 bytes: refused before any payload arrived
    let fed = feed_cut(
        Role::Server,
        limits.clone(),
        &header_only(OP_BINARY, true, 11),
        &[],
    );
    assert_eq!(fed.result, Err(WsError::TooBig(10)));
    assert_eq!(fed.result.unwrap_err().close_code(), 1009);
    // 6 + 5 over two fragments, with a ping between
    let mut b = masked(OP_BINARY, false, b"123456", KEY4);
    b.extend(masked(OP_PING, true, b"", KEY4));
    b.extend(header_only(OP_CONTINUATION, true, 5));
    let fed = feed_cut(Role::Server, limits.clone(), &b, &[]);
    assert_eq!(
        (fed.result, fed.out.as_slice()),
        (Err(WsError::TooBig(10)), &b"123456"[..])
    );
    // exactly 10, twice (the count starts again per message)
    let mut b = masked(OP_BINARY, false, b"123456", KEY4);
    b.extend(masked(OP_CONTINUATION, true, b"7890", KEY4));
    b.extend(masked(OP_TEXT, true, b"abcdefghij", KEY4));
    let fed = feed_cut(Role::Server, limits, &b, &[]);
    assert_eq!(fed.result, Ok(Status::Open));
    assert_eq!(fed.out, b"1234567890abcdefghij");
}

#[test]
fn close_answered_then_input_ignored() {
    let fed = feed(Role::Server, &masked(OP_CLOSE, true, b"", KEY4));
    assert_eq!(
        (fed.result, fed.reply),
        (Ok(Status::Closed), vec![0x88, 0x00])
    );
    // the peer's code echoed; what follows the close is dropped
    let mut b = masked(OP_BINARY, true, b"before", KEY4);
    b.extend(masked(OP_CLOSE, true, b"\x03\xe8bye", KEY4));
    b.extend(masked(OP_BINARY, true, b"after", KEY4));
    b.extend(masked(OP_PING, true, b"after", KEY4));
    for fed in every_split(Role::Server, &b) {
        assert_eq!(fed.result, Ok(Status::Closed));
        assert_eq!(fed.out, b"before");
        assert_eq!(
            (fed.reply.as_slice(), fed.left),
            (&[0x88, 0x02, 0x03, 0xe8][..], 0)
        );
    }
    // held: the reply waits for take_close_reply, once
    let mut dec = Decoder::new(Role::Server, WsLimits::default());
    dec.hold_close_reply();
    let mut input = BytesMut::from(&b[..]);
    let (mut out, mut reply) = (BytesMut::new(), Vec::new());
    assert_eq!(
        dec.decode(&mut input, &mut out, &mut reply),
        Ok(Status::Closed)
    );
    assert_eq!((&out[..], reply.len()), (&b"before"[..], 0));
    assert_eq!(dec.take_close_reply(), Some(vec![0x88, 0x02, 0x03, 0xe8]));
    assert_eq!(dec.take_close_reply(), None);
    // after our own close, the peer's close gets no reply
    let mut dec = Decoder::new(Role::Server, WsLimits::default());
    dec.close_sent();
    let mut input = BytesMut::from(&masked(OP_CLOSE, true, b"\x03\xe8", KEY4)[..]);
    let (mut out, mut reply) = (BytesMut::new(), Vec::new());
    assert_eq!(
        dec.decode(&mut input, &mut out, &mut reply),
        Ok(Status::Closed)
    );
    assert!(reply.is_empty());
}

#[test]
fn errors_are_sticky_and_carry_a_close_frame() {
    let mut dec = Decoder::new(Role::Server, WsLimits::default());
    let (mut out, mut reply) = (BytesMut::new(), Vec::new());
    let mut input = BytesMut::from(&plain(OP_BINARY, true, b"x")[..]);
    let e = dec.decode(&mut input, &mut out, &mut reply).unwrap_err();
    let mut good = BytesMut::from(&masked(OP_BINARY, true, b"x", KEY4)[..]);
    assert_eq!(dec.decode(&mut good, &mut out, &mut reply), Err(e.clone()));
    assert!(out.is_empty());
    let close = e.close_frame(dec.role());
    assert_eq!(&close[..4], &[0x88, close.len() as u8 - 2, 0x03, 0xea]);
    assert_eq!(
        WsError::TooBig(9).close_frame(Role::Server)[2..4],
        [0x03, 0xf1]
    );
    let client = WsError::InvalidUtf8.close_frame(Role::Client);
    assert_eq!(client[1] & 0x80, 0x80, "a client's close is masked");
}
