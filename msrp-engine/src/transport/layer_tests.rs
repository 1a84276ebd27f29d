//! A `wss:` layer against a rustls client over a real socket pair: the
//! read side decodes WebSocket frames straight from each record's
//! plaintext, the write side seals frame headers and pieces from the stack.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msrp_tools::tls::{self, Certs, ClientAuth};

use super::{ws, Got, Layer, WsPolicy, WsState};
use crate::io::ReadPool;
use crate::stream::Stream;

/// An open server WebSocket layer, over `tls` when given.
pub(super) fn open_ws(tls: Option<rustls::Connection>) -> Layer {
    let codec = (
        ws::Decoder::new(ws::Role::Server, ws::WsLimits::default()),
        ws::MessageWriter::new(ws::Role::Server),
    );
    let policy = WsPolicy {
        origins: &[],
        max_message: 0,
    };
    Layer::with(tls, Some((WsState::Open(Box::new(codec)), policy)))
}

/// An open `wss:` server layer, the client's TLS connection (handshake
/// done in memory) and the socket pair between them.
fn wss_pair() -> (Layer, rustls::ClientConnection, TcpStream, Stream) {
    let certs = Certs::for_tests().expect("test certificates");
    let server_cfg = tls::server_config(&certs.relay(), ClientAuth::None).expect("server config");
    let client_cfg = tls::client_config(&certs.ca(), None).expect("client config");
    let mut server = rustls::ServerConnection::new(server_cfg).expect("server");
    let name = tls::server_name("127.0.0.1").expect("name");
    let mut client = rustls::ClientConnection::new(client_cfg, name).expect("client");
    while server.is_handshaking() || client.is_handshaking() {
        let mut b = Vec::new();
        client.write_tls(&mut b).unwrap();
        server.read_tls(&mut &b[..]).unwrap();
        server.process_new_packets().unwrap();
        b.clear();
        server.write_tls(&mut b).unwrap();
        client.read_tls(&mut &b[..]).unwrap();
        client.process_new_packets().unwrap();
    }
    client.set_buffer_limit(None);
    let layer = open_ws(Some(rustls::Connection::Server(server)));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let b = l.accept().unwrap().0;
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    (layer, client, a, Stream::Tcp(b))
}

#[test]
fn masked_frames_in_tls_records_give_back_the_stream_and_pongs() {
    let (mut layer, mut client, mut a, stream) = wss_pair();
    let stream_bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    // messages of odd sizes, fragmented, a ping between two fragments: frame
    // headers fall anywhere in the records, and records anywhere in reads
    let mut wire = Vec::new();
    let mut w = ws::MessageWriter::new(ws::Role::Client);
    let cuts = [0, 3, 20_000, 20_001, 40_000, 77_777, 100_000];
    for (i, pair) in cuts.windows(2).enumerate() {
        w.piece_masked(&stream_bytes[pair[0]..pair[1]], i % 2 == 1, &mut wire);
        if i == 2 {
            wire.extend(ws::control_frame(ws::Role::Client, ws::OP_PING, b"hi"));
        }
    }
    for piece in wire.chunks(5000) {
        client.writer().write_all(piece).unwrap();
    }
    while client.wants_write() {
        client.write_tls(&mut a).unwrap();
    }
    let (mut pool, mut rbuf) = (ReadPool::default(), BytesMut::new());
    let mut got = Vec::new();
    while got.len() < stream_bytes.len() {
        match layer.read(&stream, &mut pool, &mut rbuf, 7000).unwrap() {
            Got::Data(_) => got.extend_from_slice(&rbuf.split()),
            other => panic!("{other:?} after {} bytes", got.len()),
        }
    }
    assert_eq!(got, stream_bytes);
    assert!(layer.ws_in.is_empty(), "nothing held between frames");
    // the pong went out over TLS
    layer.flush(&stream).unwrap();
    let plain = client_reads(&mut client, &mut a, 4);
    assert_eq!(plain, [0x8a, 2, b'h', b'i']);
}

#[test]
fn a_turn_becomes_full_records_with_a_frame_per_msrp_frame() {
    let (mut layer, mut client, mut a, stream) = wss_pair();
    // one MSRP frame in 100 pieces of 700 bytes (more than one batch of
    // slices), then a short frame cut over two turns
    let body: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let mut pieces: Vec<(Bytes, bool)> = body
        .chunks(700)
        .map(|c| (Bytes::copy_from_slice(c), false))
        .collect();
    pieces.last_mut().unwrap().1 = true;
    pieces.push((Bytes::from_static(b"MSRP b "), false));
    layer.encode(&pieces);
    layer.encode(&[(Bytes::from_static(b"200 OK\r\n"), true)]);
    assert!(layer.backlogged());
    let flushed = layer.flush(&stream).unwrap();
    assert!(flushed > 70_029, "{flushed} bytes written");
    let mut raw = Vec::new();
    let want = body.len() + 7 + 8;
    let mut plain = Vec::new();
    while plain.len() < want + 10 + 2 + 2 {
        let mut buf = [0u8; 65536];
        let n = a
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{e} after {} bytes of plaintext", plain.len()));
        assert!(n > 0);
        raw.extend_from_slice(&buf[..n]);
        let mut fed = &buf[..n];
        while !fed.is_empty() {
            client.read_tls(&mut fed).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut plain);
        }
    }
    let mut dec = ws::Decoder::new(ws::Role::Client, ws::WsLimits::default());
    let (mut input, mut out) = (BytesMut::from(&plain[..]), BytesMut::new());
    dec.decode(&mut input, &mut out, &mut Vec::new()).unwrap();
    let mut stream_bytes = body.clone();
    stream_bytes.extend_from_slice(b"MSRP b 200 OK\r\n");
    assert_eq!(&out[..], &stream_bytes[..]);
    // three frames: the 70,000-byte one, "MSRP b " and its continuation
    assert_eq!(&plain[..2], &[0x82, 127]);
    assert_eq!(&plain[10 + 70_000..10 + 70_000 + 2], &[0x02, 7]);
    assert_eq!(&plain[10 + 70_007 + 2..10 + 70_007 + 4], &[0x80, 8]);
    // full records: 70,029 bytes of plaintext in at most 16 KiB each, one
    // more where the batches of slices meet, one for the second turn
    assert!(records(&raw) <= 5 + 1 + 1, "{} records", records(&raw));
}

/// Reads from `a` until the client has `n` bytes of plaintext.
fn client_reads(client: &mut rustls::ClientConnection, a: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut plain = Vec::new();
    while plain.len() < n {
        client.read_tls(a).unwrap();
        client.process_new_packets().unwrap();
        let _ = client.reader().read_to_end(&mut plain);
    }
    plain
}

/// TLS records in `raw` (each: type, version, 2-byte length).
fn records(raw: &[u8]) -> usize {
    let (mut at, mut n) = (0, 0);
    while at + 5 <= raw.len() {
        at += 5 + usize::from(u16::from_be_bytes([raw[at + 3], raw[at + 4]]));
        n += 1;
    }
    n
}
