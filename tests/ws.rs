//! MSRP over WebSocket (RFC 7977) against a real Kamailio with the module:
//! a third-party client (Python `websockets`) on `wss:` with the shipped
//! RFC-strict `cfg/kamailio-tls.cfg` (Digest AUTH, SEND both ways), large
//! SENDs from and to WebSocket clients (re-chunking; one MSRP frame per
//! WebSocket message), refused upgrades (subprotocol, Origin), oversized
//! and malformed frames, pings, and the connections RPC.

mod common;
#[path = "common/digest.rs"]
mod digest;
#[path = "common/rawws.rs"]
mod rawws;
#[path = "common/wsutil.rs"]
mod wsutil;

use std::time::{Duration, Instant};

use msrp_tools::pyws::{PyWsClient, PyWsEvent, PyWsOptions};
use msrp_tools::tls::{client_config, Certs};
use msrp_tools::ws::{frame, opcode, WsConnect};
use msrp_tools::Transport;
use sha2::{Digest, Sha256};

use common::*;
use rawws::RawWs;
use wsutil::*;

const KIB: u64 = 1024;

/// 1. The Python `websockets` client on `wss:` with the shipped
///    `cfg/kamailio-tls.cfg`: a SEND before AUTH gets 403 and reaches
///    nobody; AUTH gets 401, the Digest answer 200 with Use-Path
///    `msrps://127.0.0.1:PORT/SESSION;ws`; its SEND reaches a TCP endpoint
///    B intact and it gets its 200; B's SEND back through the Use-Path
///    reaches the client over its WebSocket, and B gets its 200.
#[test]
fn python_client_auths_and_chats_over_wss_with_shipped_tls_cfg() {
    let certs = Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"));
    let k = start_shipped_tls_cfg(&certs);
    let port = k.transport_addr(Transport::Wss).expect("wss").port();
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let opts = PyWsOptions {
        ca: Some(certs.ca()),
        ..Default::default()
    };
    let mut py = PyWsClient::spawn(&format!("wss://127.0.0.1:{port}/"), &opts)
        .unwrap_or_else(|e| panic!("start ws_client.py: {e}"));
    let proto = py
        .wait_open(T)
        .unwrap_or_else(|e| panic!("wss upgrade: {e}"));
    assert_eq!(proto.as_deref(), Some("msrp"), "selected subprotocol");
    let a_uri = ws_uri("msrps");
    let relay = format!("msrps://127.0.0.1:{port};ws");

    let early = Request::send(&[&relay, &b_uri], &[&a_uri], b"before any AUTH");
    py_transact(&mut py, &early, 403, "SEND before AUTH");
    assert!(
        k.wait_for_log("no AUTHed session in To-Path", T),
        "no 403 log line"
    );
    b.expect_no_accept(QUIET)
        .expect("a SEND refused with 403 must not reach B");

    let auth = Request::new("AUTH", &[&relay], &[&a_uri]);
    let r = py_transact(&mut py, &auth, 401, "AUTH without credentials");
    let chal = digest::params(&r.header("WWW-Authenticate").expect("WWW-Authenticate"));
    assert_eq!(chal.get("realm").map(String::as_str), Some("myrealm"));
    let answer = digest::authorization(&chal, "alice", "xyz123", &relay, 1);
    let auth = Request::new("AUTH", &[&relay], &[&a_uri]).with_header("Authorization", &answer);
    let r = py_transact(&mut py, &auth, 200, "AUTH with Digest");
    let use_path = r.header("Use-Path").expect("Use-Path").trim().to_owned();
    let prefix = format!("msrps://127.0.0.1:{port}/");
    let session = use_path
        .strip_prefix(&prefix)
        .and_then(|s| s.strip_suffix(";ws"));
    assert!(
        session.is_some_and(|s| !s.is_empty() && !s.contains(['/', ';', ' '])),
        "Use-Path {use_path:?} is not {prefix}SESSION;ws"
    );

    let body = "héllo from a browser ☃\r\n-------not-an-end-line$\r\n".repeat(40);
    let send = Request::send(&[&use_path, &b_uri], &[&a_uri], body.as_bytes());
    py.send_frame(&send.to_wire())
        .expect("frame to ws_client.py");
    let mut bp = b.accept(T).expect("the relay connects to B");
    let got = bp.read_frame(T).expect("the SEND at B");
    assert_relayed(&got, &send, &[&b_uri], &[&use_path, &a_uri], "at B");
    bp.send_response(&got, 200, Some("OK")).expect("B's 200");
    let r = py
        .read_frame(T)
        .unwrap_or_else(|e| panic!("200 to the SEND: {e}"));
    assert_answer(&r, 200, &send.tid, "the client's SEND");

    let back = Request::send(&[&use_path, &a_uri], &[&b_uri], "B answers ✓".as_bytes());
    bp.send_request(&back).expect("B's SEND");
    let f = py
        .read_frame(T)
        .unwrap_or_else(|e| panic!("B's SEND at the client: {e}"));
    assert_relayed(&f, &back, &[&a_uri], &[&use_path, &b_uri], "at the client");
    py.send_frame(&ok_for(&f)).expect("the client's 200");
    let r = bp.read_response(T, &[]).expect("B's 200");
    assert_answer(&r, 200, &back.tid, "B's SEND");

    let (events, status) = py.finish(T).unwrap_or_else(|e| panic!("ws_client.py: {e}"));
    assert!(
        status.success() && matches!(events.as_slice(), [PyWsEvent::Close(1000, _)]),
        "ws_client.py ended with {status} after {events:?}"
    );
    // the shipped cfg's session-end line: the Digest user, wss, one
    // message each way with its bytes (RFC 4975 body bytes, UTF-8)
    let session = session.unwrap_or_default();
    let needle = format!("MSRP session {session} user=alice transport=wss ");
    let line = k
        .wait_for_log_line(T, |l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no session-end line {needle}\n{}", k.log_tail(10)));
    let counts = format!(
        " msgs_in=1 bytes_in={} msgs_out=1 bytes_out={} end=closed",
        body.len(),
        "B answers ✓".len()
    );
    assert!(line.contains(&counts), "{line}\nexpected {counts}");
}

/// 2. A 4 MiB SEND from a WebSocket client as one MSRP chunk (head, 64 KiB
///    pieces and end-line each one WebSocket message) reaches a TCP B as
///    4 MiB / 16 KiB chunks with exact Byte-Ranges and the same SHA-256;
///    the client gets one 200.
#[test]
fn large_send_from_ws_client_is_rechunked() {
    const LEN: u64 = 4096 * KIB;
    const MAX: u64 = 16 * KIB;
    let k = Kamailio::start(
        RelayOpts::default()
            .listen_transport(Transport::Ws)
            .modparam_int("msrp_max_chunk_size", MAX as i64),
    );
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.transport_uri(Transport::Ws, "relay").expect("ws uri");
    let a = ws_client(&k);
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a.uri], LEN);
    let (tid, msg_id) = (req.tid.clone(), req.header("Message-ID").map(str::to_owned));
    let sender = std::thread::spawn(move || {
        let mut peer = a.peer;
        let sent = peer.send_request_streaming(&req, BodyGen::new(4, LEN));
        (peer, sent)
    });
    let mut bp = b.accept(T).expect("the relay connects to B");
    let (mut hasher, mut next, mut chunks) = (Sha256::new(), 1u64, 0u64);
    while next <= LEN {
        let f = bp
            .read_frame_streaming(T, |p| hasher.update(p))
            .unwrap_or_else(|e| panic!("B after {chunks} chunks: {e}"));
        let what = format!("chunk {chunks}: {}", f.summary());
        assert_eq!(f.header("Message-ID"), msg_id, "{what}");
        assert_ne!(f.tid(), tid, "relay reused A's transaction id: {what}");
        let range = f.head.byte_range().ok().flatten().expect("Byte-Range");
        let want = (next, Some(next + MAX - 1), Some(LEN));
        assert_eq!(
            (range.start, range.end, range.total),
            want,
            "Byte-Range: {what}"
        );
        assert_eq!(f.body_len, MAX, "chunk size: {what}");
        (next, chunks) = (next + f.body_len, chunks + 1);
        let flag = [EndFlag::Continued, EndFlag::Complete][usize::from(next > LEN)];
        assert_eq!(f.flag, flag, "end-line flag: {what}");
        bp.send_response(&f, 200, Some("OK")).expect("B's 200");
    }
    assert_eq!(chunks, LEN.div_ceil(MAX), "chunks at B");
    let (mut a_peer, sent) = sender.join().expect("sender thread");
    let sent = sent.unwrap_or_else(|e| panic!("A's streaming SEND: {e}"));
    let got: [u8; 32] = hasher.finalize().into();
    assert_eq!(hex(&got), hex(&sent), "SHA-256 of the body at B");
    let r = a_peer.read_response(T, &[]).expect("A's 200");
    assert_answer(&r, 200, &tid, "A's SEND");
    a_peer
        .expect_nothing(QUIET)
        .expect("A gets exactly one response");
    bp.expect_nothing(QUIET).expect("B gets nothing more");
}

/// What the WebSocket client of test 3 got of one message.
#[derive(Default)]
struct Incoming {
    sha: Sha256,
    bytes: u64,
    chunks: u32,
    done: bool,
}

/// 3. Delivery to a WebSocket client: two TCP clients each send 4 MiB to
///    its Use-Path session at once (re-chunked to 16 KiB, streamed to it as
///    fragmented messages) while it sends its own SENDs to B, whose 200s
///    come to it among those chunks: every WebSocket message it gets is
///    binary and exactly one complete MSRP frame; all arrive intact.
#[test]
fn each_frame_to_a_ws_client_is_one_websocket_message() {
    const LEN: u64 = 4096 * KIB;
    let route = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; }
    msrp_relay();"#;
    let k = Kamailio::start(
        RelayOpts::default()
            .route(route)
            .listen_transport(Transport::Ws),
    );
    let addr = k.transport_addr(Transport::Ws).expect("ws");
    let mut w = RawWs::open(addr);
    let w_uri = ws_uri("msrp");
    let auth = Request::new("AUTH", &[&format!("msrp://{addr};ws")], &[&w_uri]);
    w.send_msg(opcode::BINARY, &auth.to_wire());
    let r = one_frame(&w.read_message(T).expect("the 200 to AUTH"), "AUTH");
    assert_answer(&r, 200, &auth.tid, "AUTH");
    let use_path = r.header("Use-Path").expect("Use-Path").trim().to_owned();
    assert!(use_path.starts_with(&format!("msrp://{addr}/")) && use_path.ends_with(";ws"));

    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let own: Vec<Request> = (0..5)
        .map(|n| {
            Request::send(
                &[&use_path, &b_uri],
                &[&w_uri],
                format!("own {n}").as_bytes(),
            )
        })
        .collect();
    let b_thread = std::thread::spawn(move || {
        let mut bp = b.accept(T).expect("the relay connects to B");
        let mut bodies = Vec::new();
        for _ in 0..5 {
            let f = bp.read_frame(T).expect("W's SEND at B");
            bp.send_response(&f, 200, Some("OK")).expect("B's 200");
            bodies.push(f.body);
        }
        bodies
    });
    let mut msg_ids = Vec::new();
    let senders: Vec<_> = (0..2u64)
        .map(|i| {
            let mut a = Client::connect(&k);
            let req = Request::send_streaming(&[&use_path, &w_uri], &[&a.uri], LEN);
            msg_ids.push(req.header("Message-ID").map(str::to_owned));
            std::thread::spawn(move || {
                let sent = a
                    .peer
                    .send_request_streaming(&req, BodyGen::new(30 + i, LEN));
                let r = a.peer.read_response(T, &[]);
                let r = r
                    .map(|r| (r.status_code(), r.tid()))
                    .map_err(|e| e.to_string());
                (sent.map_err(|e| e.to_string()), r, req.tid)
            })
        })
        .collect();
    let mut got: Vec<Incoming> = (0..2).map(|_| Incoming::default()).collect();
    let mut pending: Vec<String> = Vec::new();
    let (mut count, mut fragmented, mut answers_at) = (0, 0, Vec::new());
    while answers_at.len() < own.len() || got.iter().any(|g| !g.done) {
        let m = w
            .read_message(T)
            .unwrap_or_else(|e| panic!("message {count} at W: {e}"));
        let f = one_frame(&m, &format!("message {count}"));
        (count, fragmented) = (count + 1, fragmented + usize::from(m.frames > 1));
        if f.method().is_none() {
            let at = pending.iter().position(|t| *t == f.tid());
            let tid = pending.remove(at.unwrap_or_else(|| panic!("unexpected {}", f.summary())));
            assert_answer(&f, 200, &tid, "W's SEND");
            answers_at.push(count);
            continue;
        }
        assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
        assert_eq!(f.to_path(), [w_uri.as_str()], "{}", f.summary());
        let i = msg_ids.iter().position(|m| *m == f.header("Message-ID"));
        let g = &mut got[i.expect("a known Message-ID")];
        let range = f.head.byte_range().ok().flatten().expect("Byte-Range");
        assert!(!g.done && f.body_len <= 16 * KIB, "{}", f.summary());
        assert_eq!(
            (range.start, range.total),
            (g.bytes + 1, Some(LEN)),
            "{}",
            f.summary()
        );
        g.sha.update(&f.body);
        (g.bytes, g.chunks, g.done) = (
            g.bytes + f.body_len,
            g.chunks + 1,
            f.flag == EndFlag::Complete,
        );
        w.send_msg(opcode::BINARY, &ok_for(&f));
        if pending.is_empty()
            && answers_at.is_empty()
            && got.iter().map(|g| g.chunks).sum::<u32>() == 2
        {
            for req in &own {
                w.send_msg(opcode::BINARY, &req.to_wire());
                pending.push(req.tid.clone());
            }
        }
    }
    for (i, s) in senders.into_iter().enumerate() {
        let (sent, resp, tid) = s.join().expect("sender thread");
        let sent = sent.unwrap_or_else(|e| panic!("sender {i}: {e}"));
        let digest: [u8; 32] = got[i].sha.clone().finalize().into();
        assert_eq!(hex(&digest), hex(&sent), "SHA-256 of message {i} at W");
        assert_eq!(got[i].bytes, LEN, "bytes of message {i}");
        assert_eq!(resp, Ok((Some(200), tid)), "sender {i}'s response");
    }
    let bodies: Vec<_> = own.iter().map(|r| r.body.clone().unwrap()).collect();
    assert_eq!(b_thread.join().expect("B thread"), bodies, "W's SENDs at B");
    eprintln!("W: {count} messages, {fragmented} fragmented, 200s at {answers_at:?}");
}

/// 4. An upgrade offering `sip`, or no subprotocol, gets HTTP 400 and is
///    closed, logged with the peer's address and counted in
///    `ws_protocol_errors` (also the Python client offering `sip`); an
///    upgrade the client abandons is logged and counted in
///    `ws_handshake_failures`; an established WebSocket session keeps
///    relaying.
#[test]
fn upgrade_without_msrp_subprotocol_is_refused() {
    let k = Kamailio::start(
        RelayOpts::default()
            .listen_transport(Transport::Ws)
            .global(&kex()),
    );
    let addr = k.transport_addr(Transport::Ws).expect("ws");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = ws_client(&k);
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"before");
    let errors = stat(&k, "ws_protocol_errors");
    for offer in [&["Sec-WebSocket-Protocol: sip"][..], &[]] {
        let (mut raw, head) = RawWs::upgrade(addr, offer);
        assert!(
            head.starts_with("HTTP/1.1 400 "),
            "offering {offer:?}: {head}"
        );
        let after = raw.expect_eof(T);
        after.unwrap_or_else(|e| panic!("after the 400 (offering {offer:?}): {e}"));
        assert_logged(&k, &raw.local_addr().to_string(), "no msrp subprotocol");
    }
    let opts = PyWsOptions {
        subprotocols: vec!["sip".into()],
        ..Default::default()
    };
    let (events, status) = PyWsClient::run_batch(&format!("ws://{addr}/"), &opts, &[], 0)
        .unwrap_or_else(|e| panic!("ws_client.py: {e}"));
    assert!(
        !status.success() && events.contains(&PyWsEvent::Refused(400)),
        "Python client offering sip: {status}, {events:?}"
    );
    let now = stat_reaching(&k, "ws_protocol_errors", errors + 3);
    assert_eq!(now, errors + 3, "ws_protocol_errors after 3 refusals");
    // half an upgrade request, then the client gives up: logged once with
    // the peer and the listener, counted apart from the refusals (and from
    // the harness's start-up probe, which connects and closes at once)
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let peer = s.local_addr().expect("addr").to_string();
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\n").expect("write");
    drop(s);
    let why = format!("WebSocket upgrade with {peer} on ws:{addr} failed: the peer closed the connection before it completed");
    assert_logged(&k, &peer, &why);
    assert_eq!(
        stat_reaching(&k, "ws_handshake_failures", 1),
        1,
        "ws_handshake_failures"
    );
    assert_eq!(
        stat(&k, "ws_protocol_errors"),
        errors + 3,
        "ws_protocol_errors"
    );
    relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"after the refusals");
}

/// 5. With `ws_allowed_origins` set (twice), an upgrade from another
///    Origin or none gets 403; both allowed ones are accepted and relay.
#[test]
fn origin_allow_list() {
    let k = Kamailio::start(
        RelayOpts::default()
            .listen_transport(Transport::Ws)
            .modparam_str("ws_allowed_origins", "https://chat.example.com")
            .modparam_str("ws_allowed_origins", "https://other.example.org"),
    );
    let addr = k.transport_addr(Transport::Ws).expect("ws");
    let host = addr.to_string();
    for origin in [
        Some("https://evil.example.com"),
        Some("http://chat.example.com"),
        None,
    ] {
        match Peer::connect_ws(addr, &host, "/", origin, None) {
            Err(PeerError::WsRefused { status: 403, .. }) => {}
            Err(e) => panic!("Origin {origin:?}: {e} instead of a 403"),
            Ok(_) => panic!("Origin {origin:?} was accepted"),
        }
    }
    // logged as operators read it: the value, not `Some("...")`
    for what in [
        "WebSocket: Origin https://evil.example.com not allowed (ws_allowed_origins)",
        "WebSocket: no Origin header, and ws_allowed_origins is set",
    ] {
        assert_logged(&k, "127.0.0.1:", what);
    }
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut bp = None;
    for origin in ["https://chat.example.com", "https://other.example.org"] {
        let peer = Peer::connect_ws_with(addr, &WsConnect::new(&host, "/chat").origin(origin))
            .unwrap_or_else(|e| panic!("Origin {origin}: {e}"));
        let mut c = client_on(peer, "msrp");
        bp = Some(relay_small_send(
            &k,
            &mut c,
            &b,
            &b_uri,
            bp,
            origin.as_bytes(),
        ));
    }
}

/// 6. With `ws_max_message_size` 65536, a message of exactly 65536 bytes
///    passes; one of 100000 bytes gets close 1009 and the connection
///    closes; another WebSocket session keeps working.
#[test]
fn oversized_message_is_closed_with_1009() {
    let k = Kamailio::start(
        RelayOpts::default()
            .listen_transport(Transport::Ws)
            .modparam_int("ws_max_message_size", 65536)
            .modparam_int("msrp_max_chunk_size", 0),
    );
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    // the To-Path of relay_small_send (any listen address is the relay's)
    let relay = k.relay_uri("relay");
    let sized = |uri: &str, size: usize| {
        let mut len = size;
        loop {
            let r = Request::send(&[&relay, &b_uri], &[uri], &vec![b'm'; len]);
            match r.to_wire().len() {
                n if n == size => return r.body.unwrap(),
                n => len = len + size - n,
            }
        }
    };
    let mut a = ws_client(&k);
    let at_limit = sized(&a.uri, 65536);
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, None, &at_limit);

    let mut big = ws_client(&k);
    let peer = big.peer.local_addr().to_string();
    let req = Request::send(&[&relay, &b_uri], &[&big.uri], &sized(&big.uri, 100_000));
    // the relay may close before taking it all: a failed write is fine
    let _ = big.peer.send_request(&req);
    let err = big.peer.read_frame(T).expect_err("no frame may come back");
    assert!(matches!(err, PeerError::Closed(_)), "{err}");
    let close = big.peer.ws_close_frame();
    assert_eq!(
        close.as_ref().map(|c| c.0),
        Some(1009),
        "close frame {close:?}"
    );
    big.peer.expect_closed(T).expect("connection closed");
    assert_logged(&k, &peer, "message over 65536 bytes");
    relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"still here");
}

/// 7. An unmasked client frame gets close 1002 and the connection closes
///    (nothing relayed); a ping gets a pong with its payload, and the
///    connection goes on (a SEND, then the close handshake).
#[test]
fn unmasked_frame_and_ping() {
    let k = Kamailio::start(RelayOpts::default().listen_transport(Transport::Ws));
    let addr = k.transport_addr(Transport::Ws).expect("ws");
    let relay = k.transport_uri(Transport::Ws, "relay").expect("ws uri");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let w_uri = ws_uri("msrp");

    let mut w = RawWs::open(addr);
    let send = Request::send(&[&relay, &b_uri], &[&w_uri], b"unmasked");
    w.send(&frame(true, opcode::BINARY, None, &send.to_wire()))
        .expect("send");
    let m = w.read_message(T).expect("a close frame");
    assert_eq!((m.opcode, m.close_code()), (opcode::CLOSE, 1002), "{m:?}");
    w.expect_eof(T).expect("closed after the close frame");
    assert_logged(&k, &w.local_addr().to_string(), "masking");
    b.expect_no_accept(QUIET)
        .expect("the unmasked SEND must not be relayed");

    let mut w = RawWs::open(addr);
    w.send_msg(opcode::PING, b"are you there? 42");
    let m = w.read_message(T).expect("a pong");
    assert_eq!(
        (m.opcode, &m.payload[..]),
        (opcode::PONG, &b"are you there? 42"[..])
    );
    let send = Request::send(&[&relay, &b_uri], &[&w_uri], b"after the ping");
    w.send_msg(opcode::BINARY, &send.to_wire());
    let mut bp = b.accept(T).expect("the relay connects to B");
    let f = bp.read_frame(T).expect("SEND at B");
    assert_relayed(&f, &send, &[&b_uri], &[&relay, &w_uri], "at B");
    bp.send_response(&f, 200, Some("OK")).expect("B's 200");
    let r = one_frame(&w.read_message(T).expect("200"), "the 200");
    assert_answer(&r, 200, &send.tid, "the SEND after the ping");
    w.send_msg(opcode::CLOSE, &1000u16.to_be_bytes());
    let m = w.read_message(T).expect("the close answer");
    assert_eq!((m.opcode, m.close_code()), (opcode::CLOSE, 1000), "{m:?}");
    w.expect_eof(T).expect("closed after the close handshake");
}

/// 7b. A close frame right behind a request the relay answers at once (in
///    one TCP segment): the answers, queued when the close is read, go out
///    before the relay's reply to the close (RFC 6455 §5.5.1: no data
///    after one's own Close), which echoes the code; then the connection
///    closes. The relay used to answer the close at once and keep the
///    answer queued, half-closed, until a timer closed it.
#[test]
fn answer_queued_at_the_peers_close_goes_out_before_the_reply() {
    let k = Kamailio::start(RelayOpts::default().listen_transport(Transport::Ws));
    let addr = k.transport_addr(Transport::Ws).expect("ws");
    let w_uri = ws_uri("msrp");
    let mut w = RawWs::open(addr);
    // a first To-Path URI that is not the relay: 481 at once
    let req = Request::send(&["msrp://127.0.0.1:9/elsewhere;tcp"], &[&w_uri], b"hi");
    let mut bytes = msrp_tools::ws::client_frame(true, opcode::BINARY, &req.to_wire());
    bytes.extend(msrp_tools::ws::client_frame(
        true,
        opcode::CLOSE,
        &1001u16.to_be_bytes(),
    ));
    w.send(&bytes).expect("send");
    // its REPORT (RFC 4976 §6.4.1, Failure-Report) and the 481, then the close
    let mut frames = Vec::new();
    let m = loop {
        let m = w
            .read_message(T)
            .expect("the answers, then the close reply");
        if m.opcode != opcode::BINARY {
            break m;
        }
        frames.push(one_frame(&m, "an answer"));
    };
    assert_eq!((m.opcode, m.close_code()), (opcode::CLOSE, 1001), "{m:?}");
    let answer = frames.iter().find(|f| f.status_code().is_some());
    let answer = answer.unwrap_or_else(|| panic!("no answer before the close: {frames:?}"));
    assert_answer(answer, 481, &req.tid, "the SEND");
    w.expect_eof(T).expect("closed after the close handshake");
}

/// 8. `msrp_relay.connections` shows a `ws:` client as TRANSPORT ws, a
///    `wss:` one as wss (DIRECTION in, LOCAL their listeners), the
///    connection to B as tcp/out; a closed client leaves the list.
#[test]
fn connections_rpc_shows_the_transport() {
    let certs = Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"));
    let k = Kamailio::start(
        RelayOpts::default()
            .listen_transport(Transport::Ws)
            .listen_transport(Transport::Wss)
            .tls_certs(&certs),
    );
    let ws_addr = k.transport_addr(Transport::Ws).expect("ws");
    let wss_addr = k.transport_addr(Transport::Wss).expect("wss");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut ws = ws_client(&k);
    let bp = relay_small_send(&k, &mut ws, &b, &b_uri, None, b"over ws");
    let tls = client_config(&certs.ca(), None).expect("TLS client config");
    let host = wss_addr.to_string();
    let peer = Peer::connect_ws(wss_addr, &host, "/", None, Some(("127.0.0.1", &tls)))
        .unwrap_or_else(|e| panic!("wss: {e}"));
    let mut wss = client_on(peer, "msrps");
    let _bp = relay_small_send(&k, &mut wss, &b, &b_uri, Some(bp), b"over wss");
    let conns = k.kamcmd(&["msrp_relay.connections"]);
    let field = |peer: &str, name: &str| -> String {
        let block = conns
            .split('{')
            .find(|c| c.contains(&format!("PEER: {peer}\n")));
        let block = block.unwrap_or_else(|| panic!("no connection with PEER {peer}:\n{conns}"));
        let v = block
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")));
        v.unwrap_or_else(|| panic!("no {name} in {block}"))
            .trim()
            .to_owned()
    };
    let ws_peer = ws.peer.local_addr().to_string();
    for (peer, transport, dir, local) in [
        (ws_peer.clone(), "ws", "in", Some(ws_addr)),
        (
            wss.peer.local_addr().to_string(),
            "wss",
            "in",
            Some(wss_addr),
        ),
        (b.addr().to_string(), "tcp", "out", None),
    ] {
        let got = (field(&peer, "TRANSPORT"), field(&peer, "DIRECTION"));
        assert_eq!(got, (transport.into(), dir.into()), "{peer}:\n{conns}");
        if let Some(l) = local {
            assert_eq!(field(&peer, "LOCAL"), l.to_string(), "LOCAL of {peer}");
        }
    }
    drop(ws);
    let deadline = Instant::now() + T;
    while k.kamcmd(&["msrp_relay.connections"]).contains(&ws_peer) {
        assert!(
            Instant::now() < deadline,
            "{ws_peer} still listed after its close"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
