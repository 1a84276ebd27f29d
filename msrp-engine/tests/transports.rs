//! The engine's TLS and WebSocket layers over real loopback sockets,
//! without Kamailio: a WebSocket client's large SEND re-chunked to a TCP
//! endpoint, a TLS client to a mutual-TLS endpoint, and a WebSocket peer
//! that pings without reading is stopped from being read (its pongs do not
//! pile up in the relay).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use msrp_engine::config::TlsSettings;
use msrp_engine::transport::{ws, Kind};
use msrp_tools::endpoint::Endpoint;
use msrp_tools::peer::{Peer, Request};
use msrp_tools::tls::{self, Certs, ClientAuth};
use msrp_tools::EndFlag;

fn certs() -> Certs {
    Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"))
}

fn relay_tls(c: &Certs) -> TlsSettings {
    TlsSettings {
        certificate: Some(c.relay().cert_chain),
        private_key: Some(c.relay().private_key),
        ca_list: Some(c.ca()),
        ..TlsSettings::default()
    }
}

/// A raw TCP connection to the relay's WebSocket listener `addr`, upgraded.
fn ws_upgraded(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let key = ws::client_key();
    s.write_all(&ws::client_request(&addr.to_string(), "/", &key))
        .expect("upgrade");
    let mut resp = Vec::new();
    let mut buf = [0u8; 1024];
    while ws::client_response(&resp, &key).expect("101").is_none() {
        let n = s.read(&mut buf).expect("read 101");
        assert!(n > 0, "closed during the upgrade");
        resp.extend_from_slice(&buf[..n]);
    }
    s
}

/// Reads one message's chunks at B (answering each 200) and returns the
/// body; every chunk at most `max` bytes, Byte-Ranges contiguous.
fn receive_body(bp: &mut Peer, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let f = bp.read_frame(T).expect("chunk at B");
        let range = f.header("Byte-Range").expect("Byte-Range");
        let start: usize = range.split('-').next().unwrap().parse().unwrap();
        assert_eq!(start, body.len() + 1, "contiguous: {range}");
        assert!(f.body.len() <= max, "chunk of {} > {max}", f.body.len());
        body.extend_from_slice(&f.body);
        bp.send_response(&f, 200, Some("OK")).expect("B answers");
        if f.flag == EndFlag::Complete {
            return body;
        }
    }
}

/// A WebSocket client's 300 kB SEND (one WebSocket message) and a streamed
/// one (a WebSocket message per piece) come out at a TCP endpoint as
/// 4096-byte chunks, intact; the relay's 200s go back over the WebSocket.
#[test]
fn websocket_client_send_is_rechunked_to_tcp() {
    let r = Relay::start_with(&[Kind::Tcp, Kind::Ws], None, |c| c.max_chunk_size = 4096);
    let ws_addr = r.addr_of(Kind::Ws);
    let mut a = Peer::connect_ws(ws_addr, &ws_addr.to_string(), "/", None, None).expect("ws");
    assert_eq!(a.ws_protocol(), Some("msrp"));
    let relay = format!("msrp://{ws_addr}/relay;ws");
    let a_uri = "msrp://x7f3k.invalid:2855/a;ws";
    let b = Endpoint::bind().expect("B");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let req = Request::send(&[&relay, &b.uri("b")], &[a_uri], &body);
    a.send_request(&req).expect("send over ws");
    let mut bp = b.accept(T).expect("relay connects to B");
    assert_eq!(receive_body(&mut bp, 4096), body);
    let ok = a.read_frame(T).expect("A's 200 over ws");
    assert_eq!((ok.status_code(), ok.tid()), (Some(200), req.tid.clone()));

    let req = Request::send_streaming(&[&relay, &b.uri("b")], &[a_uri], 1_000_000);
    let sent = a
        .send_request_streaming(&req, msrp_tools::BodyGen::new(3, 1_000_000))
        .expect("streamed send");
    let got = receive_body(&mut bp, 4096);
    assert_eq!(got, msrp_tools::BodyGen::new(3, 1_000_000).to_vec());
    assert_eq!(sent.len(), 32);
    let ok = a.read_frame(T).expect("A's second 200");
    assert_eq!(ok.status_code(), Some(200));
}

/// A TLS client through the engine to an `msrps://` endpoint that requires
/// a client certificate: the relay verifies B and presents its own.
#[test]
fn tls_client_to_mutual_tls_endpoint() {
    let c = certs();
    let r = Relay::start_with(&[Kind::Tcp, Kind::Tls], Some(relay_tls(&c)), |_| {});
    let tls_addr = r.addr_of(Kind::Tls);
    let cfg = tls::client_config(&c.ca(), None).expect("client config");
    let mut a = Peer::connect_tls(tls_addr, "127.0.0.1", &cfg).expect("TLS connect");
    let b_cfg = tls::server_config(&c.endpoint(), ClientAuth::Required(c.ca())).expect("B cfg");
    let b = Endpoint::bind_tls(b_cfg).expect("B");
    let relay = format!("msrps://{tls_addr}/relay;tcp");
    let a_uri = format!("msrps://{}/a;tcp", a.local_addr());
    let req = Request::send(&[&relay, &b.uri("b")], &[&a_uri], b"secret");
    a.send_request(&req).expect("send");
    let mut bp = b.accept(T).expect("relay reaches B over mutual TLS");
    let f = bp.read_frame(T).expect("B reads");
    assert_eq!(f.body, b"secret");
    assert_eq!(f.from_path(), vec![relay, a_uri]);
    let ok = a.read_frame(T).expect("A's 200");
    assert_eq!(ok.status_code(), Some(200));
}

/// A WebSocket peer that sends pings and never reads: once its unread
/// pongs pass the high watermark the relay stops reading it, so its writes
/// block instead of the relay's memory growing.
#[test]
fn pings_without_reading_stop_being_read() {
    let r = Relay::start_with(&[Kind::Tcp, Kind::Ws], None, |c| {
        c.queue_high = 16_384;
        c.queue_low = 4096;
        c.so_rcvbuf = 16_384;
        c.so_sndbuf = 16_384;
    });
    let addr = r.addr_of(Kind::Ws);
    let mut s = ws_upgraded(addr);
    s.set_write_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let ping = ws::control_frame(ws::Role::Client, ws::OP_PING, &[b'p'; 125]);
    let limit = 64 * 1024 * 1024;
    let mut sent = 0usize;
    let t0 = Instant::now();
    while sent < limit {
        match s.write(&ping) {
            Ok(n) => sent += n,
            Err(_) => break, // blocked for a second: the relay stopped reading
        }
    }
    assert!(
        sent < limit,
        "the relay read {sent} bytes of pings in {:?} from a peer that reads nothing",
        t0.elapsed()
    );
    eprintln!("pings accepted before the relay stopped reading: {sent} bytes");
}

/// A WebSocket peer whose last MSRP frame and close frame arrive in one
/// read (one short recv): the relay answers the close and ends the
/// connection, though no later event comes for it.
#[test]
fn data_and_close_in_one_read_end_the_connection() {
    let r = Relay::start_with(&[Kind::Tcp, Kind::Ws], None, |_| {});
    let addr = r.addr_of(Kind::Ws);
    let mut s = ws_upgraded(addr);
    // a SEND for B that the relay forwards and does not answer (with an
    // answer queued for A, an end at the socket would wait for it)
    let b = Endpoint::bind().expect("B");
    let relay = format!("msrp://{addr}/relay;ws");
    let req = Request::send(
        &[&relay, &b.uri("b")],
        &["msrp://x7f3k.invalid:2855/a;ws"],
        b"bye",
    )
    .with_header("Failure-Report", "no");
    let msrp = req.to_wire();
    let msrp = &msrp[..];
    let mut both = msrp_tools::ws::client_frame(true, msrp_tools::ws::opcode::BINARY, msrp);
    both.extend(ws::control_frame(
        ws::Role::Client,
        ws::OP_CLOSE,
        &[0x03, 0xe8],
    ));
    s.write_all(&both).expect("frame and close");
    let mut bp = b.accept(T).expect("the relay connects to B");
    let f = bp.read_frame(T).expect("the SEND at B");
    assert_eq!(f.body, b"bye");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (mut got, mut buf) = (Vec::new(), [0u8; 1024]);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no end of the connection after the close ({e}); got {got:?}"),
        }
    }
    let close = [0x88, 0x02, 0x03, 0xe8];
    assert!(
        got.windows(4).any(|w| w == close),
        "the close reply before the end: {got:?}"
    );
}
