//! `msrp-bench`'s senders over TLS and WebSockets: `load::transfer_with`
//! and `load::rate_session_with` through a small terminating proxy (TLS
//! and/or WebSocket on the client side, plain TCP to a verifying `Sink`),
//! standing in for the relay's future listeners. No Kamailio involved.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use msrp_tools::load::{self, Dialer, Pattern, RateCounters, Sink};
use msrp_tools::stream::Stream;
use msrp_tools::tls::{self, Certs, ClientAuth};
use msrp_tools::Transport;
use tungstenite::handshake::server::{ErrorResponse, Request as HttpRequest, Response};
use tungstenite::Message;

const POLL: Duration = Duration::from_millis(2);

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Serves each connection to `l` in a thread: TLS when `tls`, WebSocket
/// (selecting `msrp`) when `ws`, bytes copied both ways to `upstream`
/// (server-to-client bytes as one binary message per read). Returns its
/// address.
fn proxy(tls: Option<Arc<rustls::ServerConfig>>, ws: bool, upstream: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(tcp) = conn else { return };
            let tls = tls.clone();
            std::thread::spawn(move || serve(tcp, tls, ws, upstream));
        }
    });
    addr
}

fn serve(tcp: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, ws: bool, upstream: SocketAddr) {
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let stream = match &tls {
        Some(cfg) => Stream::tls_accept(tcp, cfg, Instant::now() + Duration::from_secs(5)).unwrap(),
        None => Stream::Tcp(tcp),
    };
    let mut up = TcpStream::connect(upstream).unwrap();
    up.set_read_timeout(Some(POLL)).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    if ws {
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let cb = |req: &HttpRequest, mut resp: Response| -> Result<Response, ErrorResponse> {
            assert_eq!(
                req.headers()
                    .get("Sec-WebSocket-Protocol")
                    .and_then(|v| v.to_str().ok()),
                Some("msrp")
            );
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", "msrp".parse().unwrap());
            Ok(resp)
        };
        let mut ws = tungstenite::accept_hdr(stream, cb).unwrap();
        ws.get_ref().tcp().set_read_timeout(Some(POLL)).unwrap();
        loop {
            match ws.read() {
                Ok(Message::Binary(b)) => up.write_all(&b).unwrap(),
                Ok(Message::Text(t)) => up.write_all(t.as_bytes()).unwrap(),
                Ok(Message::Close(_)) => return,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if would_block(&e) => {}
                Err(_) => return,
            }
            match up.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => ws.send(Message::binary(buf[..n].to_vec())).unwrap(),
                Err(e) if would_block(&e) => {}
                Err(_) => return,
            }
        }
    } else {
        let mut s = stream;
        s.tcp().set_read_timeout(Some(POLL)).unwrap();
        loop {
            match s.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => up.write_all(&buf[..n]).unwrap(),
                Err(e) if would_block(&e) => {}
                Err(_) => return,
            }
            match up.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    s.write_all(&buf[..n]).unwrap();
                    s.flush().unwrap();
                }
                Err(e) if would_block(&e) => {}
                Err(_) => return,
            }
        }
    }
}

fn run(t: Transport) {
    let certs = Certs::for_tests().unwrap();
    let pattern = Pattern::new(11);
    let sink = Sink::start(IpAddr::V4(Ipv4Addr::LOCALHOST), pattern.clone()).unwrap();
    let server_tls = t
        .is_tls()
        .then(|| tls::server_config(&certs.relay(), ClientAuth::None).unwrap());
    let addr = proxy(server_tls, t.is_ws(), sink.addr());
    let client_tls = t.is_tls().then(|| {
        (
            "127.0.0.1".to_owned(),
            tls::client_config(&certs.ca(), None).unwrap(),
        )
    });
    let dialer = Dialer::new(t, client_tls, Some("https://bench.example".into())).unwrap();
    assert_eq!(dialer.transport(), t);

    // A's URI names the transport.
    let c = load::Conn::dial(addr, &dialer, Some(Duration::from_secs(5))).unwrap();
    let uri = c.uri("s1");
    let want = format!("{}://", t.uri_scheme());
    assert!(
        uri.starts_with(&want) && uri.ends_with(&format!("/s1;{}", t.uri_transport())),
        "{uri}"
    );
    if t.is_ws() {
        assert!(uri.contains(".invalid:"), "{uri}");
    }
    drop(c);

    // One large transfer, verified byte by byte at the sink.
    let size = 3_000_000;
    let tr = load::transfer_with(
        &dialer,
        addr,
        &[],
        &sink,
        &pattern,
        size,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(tr.bytes, size);
    assert_eq!(tr.chunks, 1);

    // Request/response sessions.
    let counters = RateCounters::default();
    let sent = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let to = vec![sink.uri("x")];
                let (p, counters, dialer) = (&pattern, &counters, &dialer);
                s.spawn(move || {
                    load::rate_session_with(
                        dialer,
                        addr,
                        to,
                        1024,
                        p,
                        counters,
                        Duration::from_secs(5),
                    )
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while counters.ready.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        counters.go.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        counters.stop.store(true, Ordering::Relaxed);
        hs.into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .sum::<u64>()
    });
    assert!(sent > 0);
    assert_eq!(counters.ok.load(Ordering::Relaxed), sent);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.stats().messages.load(Ordering::Relaxed) < sent + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sink.stats().messages.load(Ordering::Relaxed), sent + 1);
    assert_eq!(sink.stats().error_count(), 0, "{:?}", sink.stats().errors());
}

#[test]
fn senders_over_tls() {
    run(Transport::Tls);
}

#[test]
fn senders_over_ws() {
    run(Transport::Ws);
}

#[test]
fn senders_over_wss() {
    run(Transport::Wss);
}

#[test]
fn dialer_needs_tls_config_for_tls() {
    assert!(Dialer::new(Transport::Tls, None, None).is_err());
    assert!(Dialer::new(Transport::Wss, None, None).is_err());
    assert!(Dialer::new(Transport::Ws, None, None).is_ok());
    // A TLS dialer against a plain TCP server fails, it does not hang.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let _ = s.write_all(b"MSRP not-tls SEND\r\n");
    });
    let certs = Certs::for_tests().unwrap();
    let d = Dialer::new(
        Transport::Tls,
        Some((
            "127.0.0.1".into(),
            tls::client_config(&certs.ca(), None).unwrap(),
        )),
        None,
    )
    .unwrap();
    let err = load::Conn::dial(addr, &d, None)
        .err()
        .expect("TLS against plain TCP");
    assert!(err.contains("TLS"), "{err}");
}
