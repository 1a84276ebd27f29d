//! The WebSocket client peer against tungstenite's server side (and rustls
//! for wss): handshake, subprotocol selection, refusals, one MSRP write =
//! one binary message, reads across messages, pings, Close, raw frames.
//! No Kamailio involved.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use msrp_tools::stream::Stream;
use msrp_tools::tls::{self, Certs, ClientAuth};
use msrp_tools::ws::{self, WsConnect};
use msrp_tools::{BodyGen, Peer, PeerError, Request, Transport};
use tungstenite::handshake::server::{ErrorResponse, Request as HttpRequest, Response};
use tungstenite::http::StatusCode;
use tungstenite::{Message, WebSocket};

const T: Duration = Duration::from_secs(5);

/// What the server answers to the upgrade.
#[derive(Clone, Copy)]
enum Answer {
    /// 101, selecting `msrp` when offered.
    Msrp,
    /// 101 without Sec-WebSocket-Protocol.
    NoProtocol,
    /// 403.
    Forbidden,
}

struct Upgrade {
    origin: Option<String>,
    protocols: Option<String>,
    path: String,
    host: Option<String>,
}

/// Accepts one connection (TLS first when `tls` is given) and upgrades it,
/// answering as `answer` says; runs `serve` on the WebSocket.
fn server<T: Send + 'static>(
    answer: Answer,
    tls: Option<Arc<rustls::ServerConfig>>,
    serve: impl FnOnce(&mut WebSocket<Stream>, Upgrade) -> T + Send + 'static,
) -> (std::net::SocketAddr, JoinHandle<Option<T>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (tcp, _) = l.accept().unwrap();
        tcp.set_read_timeout(Some(T)).unwrap();
        let stream = match &tls {
            Some(cfg) => Stream::tls_accept(tcp, cfg, Instant::now() + T).unwrap(),
            None => Stream::Tcp(tcp),
        };
        let mut seen = None;
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let cb = |req: &HttpRequest, mut resp: Response| -> Result<Response, ErrorResponse> {
            let hdr = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
            seen = Some(Upgrade {
                origin: hdr("Origin"),
                protocols: hdr("Sec-WebSocket-Protocol"),
                path: req.uri().path().to_owned(),
                host: hdr("Host"),
            });
            match answer {
                Answer::Msrp => {
                    if hdr("Sec-WebSocket-Protocol").is_some_and(|p| p.contains("msrp")) {
                        resp.headers_mut()
                            .insert("Sec-WebSocket-Protocol", "msrp".parse().unwrap());
                    }
                    Ok(resp)
                }
                Answer::NoProtocol => Ok(resp),
                Answer::Forbidden => {
                    let mut e = ErrorResponse::new(Some("origin not allowed".into()));
                    *e.status_mut() = StatusCode::FORBIDDEN;
                    Err(e)
                }
            }
        };
        let mut ws = tungstenite::accept_hdr(stream, cb).ok()?;
        Some(serve(&mut ws, seen.unwrap()))
    });
    (addr, h)
}

/// The next data message's payload (pings/pongs skipped).
fn next_data(ws: &mut WebSocket<Stream>) -> Vec<u8> {
    loop {
        match ws.read().unwrap() {
            Message::Binary(b) => return b.to_vec(),
            Message::Text(t) => return t.as_bytes().to_vec(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn send_frame() -> Request {
    Request::send(
        &["msrp://127.0.0.1:2855/relay;ws", "msrp://127.0.0.1:9/b;tcp"],
        &["msrp://abc.invalid:9/a;ws"],
        b"hello over a WebSocket",
    )
}

/// One request out as one binary message; a 200 back split over a text
/// and two binary messages with a ping in between; the server's Close.
fn round_trip(
    tls_server: Option<Arc<rustls::ServerConfig>>,
    client_tls: Option<&Arc<rustls::ClientConfig>>,
) {
    let req = send_frame();
    let wire = req.to_wire();
    let (addr, h) = server(Answer::Msrp, tls_server, move |ws, up| {
        let got = next_data(ws);
        assert_eq!(got, wire, "the request arrives as exactly one message");
        let tid = String::from_utf8_lossy(&got[5..])
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        let resp = format!(
            "MSRP {tid} 200 OK\r\nTo-Path: msrp://abc.invalid:9/a;ws\r\nFrom-Path: msrp://127.0.0.1:2855/relay;ws\r\n-------{tid}$\r\n"
        );
        let (a, rest) = resp.split_at(7);
        let (b, c) = rest.split_at(20);
        ws.send(Message::text(a)).unwrap();
        ws.send(Message::Ping(b"are you there".to_vec().into()))
            .unwrap();
        ws.send(Message::binary(b.as_bytes().to_vec())).unwrap();
        ws.send(Message::binary(c.as_bytes().to_vec())).unwrap();
        // The client answers the ping while reading.
        let pong = match ws.read().unwrap() {
            Message::Pong(p) => p.to_vec(),
            other => panic!("expected the pong, got {other:?}"),
        };
        ws.close(Some(tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        }))
        .unwrap();
        // our Close is answered
        let closed = loop {
            match ws.read() {
                Ok(Message::Close(_)) => {}
                Ok(other) => panic!("after Close: {other:?}"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(closed, tungstenite::Error::ConnectionClosed),
            "{closed}"
        );
        (pong, up)
    });
    let host = format!("127.0.0.1:{}", addr.port());
    let mut opts = WsConnect::new(&host, "/msrp").origin("https://app.example");
    if let Some(cfg) = client_tls {
        opts = opts.tls("127.0.0.1", cfg);
    }
    let mut a = Peer::connect_ws_with(addr, &opts).unwrap();
    assert_eq!(
        a.transport(),
        if client_tls.is_some() {
            Transport::Wss
        } else {
            Transport::Ws
        }
    );
    assert_eq!(a.ws_protocol(), Some("msrp"));
    a.send_request(&req).unwrap();
    let r = a.read_response(T, &[]).unwrap();
    assert_eq!(r.status_code(), Some(200));
    assert_eq!(r.tid(), req.tid);
    let err = a.read_frame(T).unwrap_err();
    assert!(matches!(err, PeerError::Closed(_)), "{err}");
    assert_eq!(a.ws_close_frame(), Some((1000, "bye".to_owned())));
    assert!(a.try_clone_stream().is_err());
    let (pong, up) = h.join().unwrap().expect("upgrade");
    assert_eq!(pong, b"are you there");
    assert_eq!(up.origin.as_deref(), Some("https://app.example"));
    assert_eq!(up.protocols.as_deref(), Some("msrp"));
    assert_eq!(up.path, "/msrp");
    assert_eq!(up.host.as_deref(), Some(host.as_str()));
}

#[test]
fn ws_round_trip() {
    round_trip(None, None);
}

#[test]
fn wss_round_trip() {
    let c = Certs::for_tests().unwrap();
    let server_cfg = tls::server_config(&c.relay(), ClientAuth::None).unwrap();
    let client_cfg = tls::client_config(&c.ca(), None).unwrap();
    round_trip(Some(server_cfg), Some(&client_cfg));
}

#[test]
fn wss_with_a_client_certificate_through_connect_ws() {
    let c = Certs::for_tests().unwrap();
    let server_cfg = tls::server_config(&c.relay(), ClientAuth::Required(c.ca())).unwrap();
    let client_cfg = tls::client_config(&c.ca(), Some(&c.client())).unwrap();
    let (addr, h) = server(Answer::Msrp, Some(server_cfg), |ws, _| {
        let got = next_data(ws);
        ws.send(Message::binary(got)).unwrap();
        let got = next_data(ws);
        ws.send(Message::binary(got)).unwrap();
    });
    let mut a = Peer::connect_ws(
        addr,
        "relay.test",
        "/",
        None,
        Some(("relay.test", &client_cfg)),
    )
    .unwrap();
    assert_eq!(a.transport(), Transport::Wss);
    assert_eq!(a.tls_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    // echoed back: our request, then a raw masked binary frame
    let req = send_frame();
    a.send_request(&req).unwrap();
    let back = a.read_frame(T).unwrap();
    assert_eq!(back.tid(), req.tid);
    assert_eq!(back.body, b"hello over a WebSocket");
    let other = send_frame().to_wire();
    a.send_ws_raw(&ws::client_frame(true, ws::opcode::BINARY, &other))
        .unwrap();
    let back = a.read_frame(T).unwrap();
    assert_eq!(back.body, b"hello over a WebSocket");
    h.join().unwrap().expect("upgrade");
}

#[test]
fn streaming_send_arrives_in_several_messages() {
    let len = 300_000u64;
    let (addr, h) = server(Answer::Msrp, None, move |ws, _| {
        let mut all = Vec::new();
        let mut messages = 0;
        while !all.ends_with(b"$\r\n") {
            all.extend(next_data(ws));
            messages += 1;
        }
        (all, messages)
    });
    let mut a = Peer::connect_ws(addr, "127.0.0.1", "/", None, None).unwrap();
    let req = Request::send_streaming(&["msrp://h:1/r;ws"], &["msrp://x.invalid/a;ws"], len);
    let sha = a
        .send_request_streaming(&req, BodyGen::new(7, len))
        .unwrap();
    assert_eq!(sha, BodyGen::new(7, len).sha256());
    let (all, messages) = h.join().unwrap().unwrap();
    assert!(
        messages >= 3,
        "head, body pieces, end-line: {messages} messages"
    );
    let body_start = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        &all[body_start..body_start + len as usize],
        BodyGen::new(7, len).to_vec().as_slice()
    );
}

#[test]
fn refused_upgrades_are_errors() {
    // 403
    let (addr, h) = server(Answer::Forbidden, None, |_, _| ());
    let err =
        Peer::connect_ws(addr, "127.0.0.1", "/", Some("https://evil.example"), None).unwrap_err();
    assert!(
        matches!(err, PeerError::WsRefused { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("403"), "{err}");
    assert!(h.join().unwrap().is_none());
    // 101 without selecting msrp
    let (addr, h) = server(Answer::NoProtocol, None, |_, _| ());
    let err = Peer::connect_ws(addr, "127.0.0.1", "/", None, None).unwrap_err();
    assert!(matches!(err, PeerError::WsHandshake(_)), "{err}");
    assert!(err.to_string().contains("msrp"), "{err}");
    let _ = h.join();
    // Offering no subprotocol at all is possible (for tests of a relay that
    // must refuse that).
    let (addr, h) = server(Answer::Msrp, None, |_, up| up.protocols);
    let mut opts = WsConnect::new("127.0.0.1", "/");
    opts.subprotocols.clear();
    let a = Peer::connect_ws_with(addr, &opts).unwrap();
    assert_eq!(a.ws_protocol(), None);
    assert_eq!(h.join().unwrap().unwrap(), None);
}

#[test]
fn handshake_against_a_silent_server_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    let err = Peer::connect_ws(l.local_addr().unwrap(), "127.0.0.1", "/", None, None).unwrap_err();
    assert!(matches!(err, PeerError::Timeout(_)), "{err}");
    assert!(t0.elapsed() < msrp_tools::peer::CONNECT_TIMEOUT + Duration::from_secs(2));
}

#[test]
fn a_malformed_server_frame_is_a_ws_error() {
    // A hand-made server: 101 with msrp, then a frame with a reserved
    // opcode.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            req.push(b[0]);
        }
        let req = String::from_utf8(req).unwrap();
        let key = req
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let accept = tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
        write!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: msrp\r\n\r\n"
        )
        .unwrap();
        s.write_all(&ws::frame(true, 0x3, None, b"reserved"))
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        drop::<TcpStream>(s);
    });
    let mut a = Peer::connect_ws(addr, "127.0.0.1", "/", None, None).unwrap();
    let err = a.read_frame(T).unwrap_err();
    assert!(matches!(err, PeerError::Ws(_)), "{err}");
    h.join().unwrap();
}

#[test]
fn ws_only_calls_fail_on_plain_peers() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut p = Peer::connect(l.local_addr().unwrap()).unwrap();
    assert!(p.send_ws_raw(b"x").is_err());
    assert!(p.send_ws_message(Message::text("x")).is_err());
    assert!(p.ws_close(1000, "").is_err());
    assert_eq!(p.ws_close_frame(), None);
    assert_eq!(p.transport(), Transport::Tcp);
    assert!(p.try_clone_stream().is_ok());
}
