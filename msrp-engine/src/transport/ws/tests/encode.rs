//! Frame headers, close frames and the message writer.

use super::*;

#[test]
fn header_lengths_and_mask() {
    let cases: [(u64, &[u8]); 5] = [
        (0, &[0x82, 0x00]),
        (125, &[0x82, 125]),
        (126, &[0x82, 126, 0x00, 126]),
        (65535, &[0x82, 126, 0xff, 0xff]),
        (65536, &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
    ];
    for (len, want) in cases {
        let (h, n) = frame_header(OP_BINARY, true, len, None);
        assert_eq!(&h[..n], want, "{len}");
    }
    let (h, n) = frame_header(OP_CONTINUATION, false, 1 << 40, Some([1, 2, 3, 4]));
    assert_eq!(&h[..n], &[0x00, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
}

#[test]
fn close_reason_cut_at_a_character_boundary() {
    let f = close_frame(Role::Server, 1000, &"é".repeat(100));
    assert_eq!(f.len(), 2 + 2 + 122);
    assert_eq!(&f[..4], &[0x88, 124, 0x03, 0xe8]);
    assert!(std::str::from_utf8(&f[4..]).is_ok());
    // the server decoder accepts what a client role writes
    let fed = feed(Role::Server, &close_frame(Role::Client, 4000, "bye"));
    assert_eq!(
        (fed.result, fed.reply),
        (Ok(Status::Closed), vec![0x88, 2, 0x0f, 0xa0])
    );
}

#[test]
fn writer_pieces_become_one_binary_message_per_frame() {
    let mut w = MessageWriter::new(Role::Server);
    let mut out = Vec::new();
    w.piece_header(5, false, &mut out);
    out.extend_from_slice(b"MSRP ");
    assert!(w.in_message());
    w.piece_header(0, false, &mut out); // nothing
    w.piece_header(3, false, &mut out);
    out.extend_from_slice(b"a S");
    w.piece_header(0, true, &mut out); // the end, empty
    assert!(!w.in_message());
    w.piece_header(2, true, &mut out); // a whole message at once
    out.extend_from_slice(b"xy");
    let want: Vec<u8> = [
        plain(OP_BINARY, false, b"MSRP "),
        plain(OP_CONTINUATION, false, b"a S"),
        plain(OP_CONTINUATION, true, b""),
        plain(OP_BINARY, true, b"xy"),
    ]
    .concat();
    assert_eq!(out, want);
    let fed = feed(Role::Client, &out);
    assert_eq!(
        (fed.result, fed.out),
        (Ok(Status::Open), b"MSRP a Sxy".to_vec())
    );
}

#[test]
fn client_writer_masks_and_server_decodes() {
    let mut w = MessageWriter::new(Role::Client);
    let mut out = Vec::new();
    w.piece_masked(b"MSRP a SEND\r\n", false, &mut out);
    w.piece_masked(b"", false, &mut out);
    w.piece_masked(b"-------a$\r\n", true, &mut out);
    assert_eq!(&out[..2], &[0x02, 0x80 | 13]);
    assert_ne!(&out[6..19], b"MSRP a SEND\r\n", "not masked");
    let fed = feed(Role::Server, &out);
    assert_eq!(fed.out, b"MSRP a SEND\r\n-------a$\r\n");
    // piece_header in the client role: zero key, still a valid frame
    let mut w = MessageWriter::new(Role::Client);
    let mut out = Vec::new();
    w.piece_header(2, true, &mut out);
    out.extend_from_slice(b"ok");
    assert_eq!(feed(Role::Server, &out).out, b"ok");
    // piece_masked in the server role: a plain copy
    let mut w = MessageWriter::new(Role::Server);
    let mut out = Vec::new();
    w.piece_masked(b"ok", true, &mut out);
    assert_eq!(out, plain(OP_BINARY, true, b"ok"));
}

#[test]
fn mask_is_its_own_inverse_at_every_offset() {
    let data: Vec<u8> = (0..=255u8).collect();
    let key = [0xa1, 0xb2, 0xc3, 0xd4];
    let mut whole = data.clone();
    apply_mask(&mut whole, key, 0);
    for (i, b) in whole.iter().enumerate() {
        assert_eq!(*b, data[i] ^ key[i % 4]);
    }
    for cut in 0..data.len() {
        let mut pieces = data.clone();
        let (a, b) = pieces.split_at_mut(cut);
        apply_mask(a, key, 0);
        apply_mask(b, key, cut as u64);
        assert_eq!(pieces, whole, "cut {cut}");
    }
}
