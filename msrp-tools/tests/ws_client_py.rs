//! `tests/ws_client.py` (Python `websockets` 10.4, Debian's
//! python3-websockets) against tungstenite's server side, over ws and wss:
//! the upgrade it sends, frames out as one message each, frames in cut from
//! messages whatever their boundaries, Close, refusals, TLS client
//! certificates, the batch mode. No Kamailio involved. Fails (does not
//! skip) when Python or its websockets module is missing.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use msrp_tools::pyws::{self, PyWsClient, PyWsError, PyWsEvent, PyWsOptions};
use msrp_tools::stream::Stream;
use msrp_tools::tls::{self, Certs, ClientAuth};
use msrp_tools::Request;
use tungstenite::handshake::server::{ErrorResponse, Request as HttpRequest, Response};
use tungstenite::http::StatusCode;
use tungstenite::{Message, WebSocket};

const T: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Clone)]
struct Upgrade {
    origin: Option<String>,
    protocols: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Msrp,
    NoProtocol,
    Forbidden,
}

/// One connection: TLS first when `tls`, the upgrade answered as `answer`,
/// then `serve`.
fn server<T: Send + 'static>(
    answer: Answer,
    tls: Option<Arc<rustls::ServerConfig>>,
    serve: impl FnOnce(&mut WebSocket<Stream>, Upgrade) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<Result<T, String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (tcp, _) = l.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(T)).unwrap();
        let stream = match &tls {
            Some(cfg) => {
                Stream::tls_accept(tcp, cfg, Instant::now() + T).map_err(|e| e.to_string())?
            }
            None => Stream::Tcp(tcp),
        };
        let mut seen = Upgrade::default();
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let cb = |req: &HttpRequest, mut resp: Response| -> Result<Response, ErrorResponse> {
            let hdr = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
            seen.origin = hdr("Origin");
            seen.protocols = hdr("Sec-WebSocket-Protocol");
            match answer {
                Answer::Msrp => {
                    resp.headers_mut()
                        .insert("Sec-WebSocket-Protocol", "msrp".parse().unwrap());
                    Ok(resp)
                }
                Answer::NoProtocol => Ok(resp),
                Answer::Forbidden => {
                    let mut e = ErrorResponse::new(Some("no".into()));
                    *e.status_mut() = StatusCode::FORBIDDEN;
                    Err(e)
                }
            }
        };
        let mut ws = tungstenite::accept_hdr(stream, cb).map_err(|e| e.to_string())?;
        Ok(serve(&mut ws, seen))
    });
    (addr, h)
}

fn data(ws: &mut WebSocket<Stream>) -> Option<Vec<u8>> {
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => return Some(b.to_vec()),
            Ok(Message::Text(t)) => return Some(t.as_bytes().to_vec()),
            Ok(Message::Close(_)) => {
                // send the Close reply tungstenite queued
                let _ = ws.flush();
                return None;
            }
            Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn response_for(req: &[u8], code: &str) -> Vec<u8> {
    let tid = String::from_utf8_lossy(&req[5..])
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    format!(
        "MSRP {tid} {code}\r\nTo-Path: msrp://a.invalid:1/a;ws\r\nFrom-Path: msrp://127.0.0.1:2/r;ws\r\n-------{tid}$\r\n"
    )
    .into_bytes()
}

/// The interactive session: frames each way, split and joined messages,
/// a ping, Close from the client when stdin ends.
fn interactive(tls_server: Option<Arc<rustls::ServerConfig>>, opts: PyWsOptions, scheme: &str) {
    let req = Request::send(
        &["msrp://127.0.0.1:2/r;ws", "msrp://127.0.0.1:9/b;tcp"],
        &["msrp://a.invalid:1/a;ws"],
        b"hello from Python",
    );
    let wire = req.to_wire();
    let (addr, h) = server(Answer::Msrp, tls_server, move |ws, up| {
        let got = data(ws).expect("the SEND");
        assert_eq!(got, wire, "one frame = one message");
        let ok = response_for(&got, "200 OK");
        // split over three messages, a ping in between
        ws.send(Message::binary(ok[..10].to_vec())).unwrap();
        ws.send(Message::Ping(b"p".to_vec().into())).unwrap();
        ws.send(Message::text(
            String::from_utf8(ok[10..30].to_vec()).unwrap(),
        ))
        .unwrap();
        ws.send(Message::binary(ok[30..].to_vec())).unwrap();
        // two frames in one message
        let mut two = response_for(&got, "200 OK");
        two.extend(response_for(&got, "403 Nope"));
        ws.send(Message::binary(two)).unwrap();
        // the client's Close (after its stdin ends)
        let mut pong = false;
        let close = loop {
            match ws.read() {
                Ok(Message::Pong(_)) => pong = true,
                Ok(Message::Close(c)) => break c,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => panic!("read: {e}"),
            }
        };
        let _ = ws.flush();
        (up, pong, close.map(|c| u16::from(c.code)))
    });
    let url = format!("{scheme}://127.0.0.1:{}/msrp", addr.port());
    let mut c = PyWsClient::spawn(&url, &opts).unwrap();
    assert_eq!(c.wait_open(T).unwrap().as_deref(), Some("msrp"));
    c.send_frame(&req.to_wire()).unwrap();
    let f = c.read_frame(T).unwrap();
    assert_eq!(f.status_code(), Some(200));
    assert_eq!(f.tid(), req.tid);
    assert_eq!(c.read_frame(T).unwrap().status_code(), Some(200));
    assert_eq!(c.read_frame(T).unwrap().status_code(), Some(403));
    let (events, status) = c.finish(T).unwrap();
    assert!(status.success(), "{status} {events:?}");
    assert_eq!(events, vec![PyWsEvent::Close(1000, String::new())]);
    let (up, pong, close) = h.join().unwrap().unwrap();
    assert!(pong, "the ping was answered");
    assert_eq!(close, Some(1000));
    assert_eq!(up.protocols.as_deref(), Some("msrp"));
    assert_eq!(up.origin, opts.origin);
}

#[test]
fn python_websockets_is_there() {
    let v = pyws::check_python().unwrap_or_else(|e| panic!("{e}"));
    assert!(!v.is_empty());
}

#[test]
fn ws_interactive() {
    interactive(
        None,
        PyWsOptions {
            origin: Some("https://app.example".into()),
            ..Default::default()
        },
        "ws",
    );
}

#[test]
fn wss_interactive_with_a_client_certificate() {
    let c = Certs::for_tests().unwrap();
    let server_cfg = tls::server_config(&c.relay(), ClientAuth::Required(c.ca())).unwrap();
    let client = c.client();
    interactive(
        Some(server_cfg),
        PyWsOptions {
            ca: Some(c.ca()),
            client_cert: Some((client.cert_chain, client.private_key)),
            server_name: Some("relay.test".into()),
            ..Default::default()
        },
        "wss",
    );
}

#[test]
fn wss_refusals() {
    let c = Certs::for_tests().unwrap();
    // The server wants a client certificate, none is given: with TLS 1.3
    // the client sees the refusal after its handshake, as an error or a
    // closed connection, never an open session that works.
    let cfg = tls::server_config(&c.relay(), ClientAuth::Required(c.ca())).unwrap();
    let (addr, h) = server(Answer::Msrp, Some(cfg), |_, _| ());
    let url = format!("wss://127.0.0.1:{}/", addr.port());
    let opts = PyWsOptions {
        ca: Some(c.ca()),
        timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let (events, status) =
        PyWsClient::run_batch(&url, &opts, &[b"MSRP x SEND\r\n-------x$\r\n"], 1).unwrap();
    assert!(!status.success(), "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(e, PyWsEvent::Frame(_))),
        "{events:?}"
    );
    assert!(h.join().unwrap().is_err());
    // A server certificate of another CA.
    let cfg = tls::server_config(&c.other(), ClientAuth::None).unwrap();
    let (addr, _h) = server(Answer::Msrp, Some(cfg), |_, _| ());
    let url = format!("wss://127.0.0.1:{}/", addr.port());
    let (events, status) = PyWsClient::run_batch(&url, &opts, &[], 0).unwrap();
    assert!(!status.success());
    assert!(
        matches!(&events[..], [PyWsEvent::Error(e)] if e.contains("CERTIFICATE_VERIFY_FAILED")),
        "{events:?}"
    );
}

#[test]
fn refused_and_no_subprotocol() {
    let (addr, h) = server(Answer::Forbidden, None, |_, _| ());
    let url = format!("ws://127.0.0.1:{}/", addr.port());
    let opts = PyWsOptions {
        origin: Some("https://evil.example".into()),
        ..Default::default()
    };
    let mut c = PyWsClient::spawn(&url, &opts).unwrap();
    let err = c.wait_open(T).unwrap_err();
    assert!(
        matches!(&err, PyWsError::Script(e) if e == "refused 403"),
        "{err}"
    );
    let (_, status) = c.finish(T).unwrap();
    assert!(!status.success());
    assert!(h.join().unwrap().is_err());

    let (addr, _h) = server(Answer::NoProtocol, None, |_, _| ());
    let url = format!("ws://127.0.0.1:{}/", addr.port());
    let (events, status) = PyWsClient::run_batch(&url, &PyWsOptions::default(), &[], 0).unwrap();
    assert!(!status.success());
    assert_eq!(events[0], PyWsEvent::Open(None));
    assert!(
        matches!(&events[1], PyWsEvent::Error(e) if e.contains("did not select subprotocol msrp")),
        "{events:?}"
    );
}

#[test]
fn batch_mode_and_a_server_close() {
    let req = Request::send(
        &["msrp://127.0.0.1:2/r;ws"],
        &["msrp://a.invalid:1/a;ws"],
        b"x",
    );
    let wire = req.to_wire();
    let (addr, h) = server(Answer::Msrp, None, move |ws, _| {
        let a = data(ws).unwrap();
        let b = data(ws).unwrap();
        assert_eq!(a, wire);
        assert_eq!(b, wire);
        ws.send(Message::binary(response_for(&a, "200 OK")))
            .unwrap();
        ws.send(Message::binary(response_for(&b, "200 OK")))
            .unwrap();
        data(ws) // until the client's Close
    });
    let url = format!("ws://127.0.0.1:{}/", addr.port());
    let (events, status) = PyWsClient::run_batch(
        &url,
        &PyWsOptions::default(),
        &[&req.to_wire(), &req.to_wire()],
        2,
    )
    .unwrap();
    assert!(status.success(), "{events:?}");
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0], PyWsEvent::Open(Some("msrp".into())));
    assert_eq!(events[3], PyWsEvent::Close(1000, String::new()));
    assert!(h.join().unwrap().unwrap().is_none());

    // The server closes first (e.g. a relay refusing malformed input): the
    // interactive client reports it and exits.
    let (addr, h) = server(Answer::Msrp, None, |ws, _| {
        let _ = data(ws);
        ws.close(Some(tungstenite::protocol::CloseFrame {
            code: 1002.into(),
            reason: "bad frame".into(),
        }))
        .unwrap();
        let _ = data(ws);
    });
    let url = format!("ws://127.0.0.1:{}/", addr.port());
    let mut c = PyWsClient::spawn(&url, &PyWsOptions::default()).unwrap();
    c.wait_open(T).unwrap();
    c.send_frame(b"garbage").unwrap();
    assert_eq!(
        c.next_event(T).unwrap(),
        PyWsEvent::Close(1002, "bad frame".into())
    );
    h.join().unwrap().unwrap();
    let (_, status) = c.finish(T).unwrap();
    assert!(status.success());
}

#[test]
fn garbage_from_the_server_is_reported() {
    let (addr, h) = server(Answer::Msrp, None, |ws, _| {
        ws.send(Message::binary(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()))
            .unwrap();
        data(ws)
    });
    let url = format!("ws://127.0.0.1:{}/", addr.port());
    let (events, status) = PyWsClient::run_batch(&url, &PyWsOptions::default(), &[], 1).unwrap();
    assert!(!status.success());
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PyWsEvent::Error(t) if t.contains("not an MSRP start line"))),
        "{events:?}"
    );
    let _ = h.join();
}
