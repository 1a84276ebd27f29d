//! MSRP over TLS (`tls:` listeners, `msrps://` next hops; RFC 4975 §14,
//! RFC 4976 §9) against a real Kamailio: bodies intact through TLS on both
//! sides with re-chunking, mutual TLS between two relays and a wrong CA on
//! either side REPORTed as unreachable, client-certificate and version
//! policy, hostile bytes on the TLS port, and memory towards a slow TLS
//! reader.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use msrp_tools::tls::{self, Certs, ClientAuth, TlsVersions};
use msrp_tools::Transport;

use common::chunks::*;
use common::*;

const MIB: u64 = 1024 * 1024;
const MAX_CHUNK: u64 = 16384;

fn certs() -> Certs {
    Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"))
}

/// A relay with a plain TCP and a TLS listener, the test certificates, and
/// kex (for the counters).
fn tls_relay(certs: &Certs, extra: &[(&str, &str)]) -> Kamailio {
    let mut opts = RelayOpts::default()
        .listen_transport(Transport::Tls)
        .tls_certs(certs)
        .modparam_int("msrp_max_chunk_size", MAX_CHUNK as i64)
        .global(&format!("loadmodule \"{}kex.so\"", kamailio_modules()));
    for (n, v) in extra {
        opts = opts.modparam_str(n, v);
    }
    Kamailio::start(opts)
}

fn tls_addr(k: &Kamailio) -> std::net::SocketAddr {
    k.transport_addr(Transport::Tls).expect("tls listener")
}

/// A TLS client of the relay (trusting the test CA, presenting `id`).
fn tls_client(k: &Kamailio, certs: &Certs, id: Option<&tls::TlsFiles>) -> Client {
    let cfg = tls::client_config(&certs.ca(), id).expect("client config");
    let peer = Peer::connect_tls(tls_addr(k), "127.0.0.1", &cfg)
        .unwrap_or_else(|e| panic!("TLS connect: {e}\n{}", k.log_tail(20)));
    let a = peer.local_addr();
    let uri = format!("msrps://{}:{}/alice;tcp", a.ip(), a.port());
    Client { peer, uri }
}

/// A TLS endpoint B that requires a client certificate from `ca`.
fn tls_endpoint(id: tls::TlsFiles, ca: PathBuf) -> Endpoint {
    let cfg = tls::server_config(&id, ClientAuth::Required(ca)).expect("server config");
    Endpoint::bind_tls(cfg).expect("bind TLS endpoint")
}

/// A TLS client sends a 20 MiB SEND as one chunk to an `msrps://` endpoint
/// that requires a client certificate: the relay verifies B, shows its own
/// certificate, re-chunks to 16 KiB, and B gets the body intact.
#[test]
fn tls_client_to_mutual_tls_endpoint_rechunked_intact() {
    const LEN: u64 = 20 * MIB;
    let c = certs();
    let k = tls_relay(&c, &[]);
    let b = tls_endpoint(c.endpoint(), c.ca());
    let b_uri = b.uri("bob");
    assert!(b_uri.starts_with("msrps://"), "{b_uri}");
    let relay = k.transport_uri(Transport::Tls, "relay").expect("uri");
    let a = tls_client(&k, &c, None);
    let mut t = stream_through(&k, a.peer, &a.uri, &relay, &b, &b_uri, LEN, |_| {});
    let shown = t.b.tls_peer_certificates().expect("B's TLS session");
    assert!(
        !shown.is_empty(),
        "the relay presented no client certificate to B"
    );
    let total = check_chunks(&t.chunks, MAX_CHUNK, true, Some(LEN), EndFlag::Complete);
    assert_eq!(total, LEN);
    assert_eq!(t.chunks.len() as u64, LEN / MAX_CHUNK, "chunks at B");
    let r = t.a.read_response(T, &["REPORT"]).expect("A's 200");
    assert_eq!(
        (r.status_code(), r.tid()),
        (Some(200), t.tid),
        "{}",
        r.summary()
    );
    // the RPC names the transports
    let conns = k.kamcmd(&["msrp_relay.connections"]);
    assert!(
        conns.contains("TRANSPORT: tls") && conns.contains("DIRECTION: out"),
        "msrp_relay.connections:\n{conns}"
    );
}

/// Sends a small SEND from a plain TCP client A through `k` to `to` and
/// returns A (with its 200 read).
fn send_via(k: &Kamailio, to: &[&str], body: &[u8]) -> (Client, Request) {
    let mut a = Client::connect(k);
    let relay = k.relay_uri("relay");
    let mut path = vec![relay.as_str()];
    path.extend_from_slice(to);
    let req = Request::send(&path, &[&a.uri], body);
    a.peer.send_request(&req).expect("A sends");
    let r = a.peer.read_response(T, &["REPORT"]).expect("A's 200");
    assert_eq!(r.status_code(), Some(200), "{}", r.summary());
    (a, req)
}

/// A's REPORT for `req` (within 10 s); returns its Status.
fn expect_report(k: &Kamailio, a: &mut Client, req: &Request) -> String {
    let rep = a
        .peer
        .read_frame(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("no REPORT at A: {e}\n{}", k.log_tail(20)));
    assert_eq!(rep.method().as_deref(), Some("REPORT"), "{}", rep.summary());
    assert_eq!(
        rep.header("Message-ID"),
        req.header("Message-ID").map(str::to_owned)
    );
    rep.header("Status").unwrap_or_default()
}

/// A's REPORT for `req`, which must say 408 Next Hop Unreachable.
fn expect_unreachable_report(k: &Kamailio, a: &mut Client, req: &Request) {
    assert_eq!(expect_report(k, a, req), "000 408 Next Hop Unreachable");
}

/// Two relays over TLS: R1 dials `msrps://R2`, R2 requires a client
/// certificate. With the right CAs the SEND reaches B behind R2 (R1's
/// certificate verified by R2, R2's by R1); R2 trusting another CA refuses
/// R1's certificate, and R1 not trusting R2's issuer refuses R2: each is a
/// REPORT 408 Next Hop Unreachable to A, and a counted handshake failure.
#[test]
fn relay_to_relay_mutual_tls_and_wrong_ca_reported() {
    let c = certs();
    let r1 = tls_relay(&c, &[]);
    let other_ca = c.other_ca().display().to_string();
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    for (r2_extra, who_refuses) in [
        (vec![("tls_verify_client", "required")], None),
        (
            vec![
                ("tls_verify_client", "required"),
                ("tls_ca_list", other_ca.as_str()),
            ],
            Some("R2 refuses R1's certificate"),
        ),
        (
            vec![
                (
                    "tls_certificate",
                    &*c.other().cert_chain.display().to_string(),
                ),
                (
                    "tls_private_key",
                    &*c.other().private_key.display().to_string(),
                ),
            ],
            Some("R1 refuses R2's certificate"),
        ),
    ] {
        let r2_extra: Vec<(&str, &str)> = r2_extra.iter().map(|(n, v)| (*n, *v)).collect();
        let r2 = tls_relay(&c, &r2_extra);
        let r2_uri = r2.transport_uri(Transport::Tls, "r2").expect("uri");
        let failures0 = relay_stat(&r1, "tls_handshake_failures");
        let (mut a, req) = send_via(&r1, &[&r2_uri, &b_uri], b"over two relays");
        match who_refuses {
            None => {
                let mut bp = b.accept(T).unwrap_or_else(|e| {
                    panic!(
                        "B not reached: {e}\nR1:\n{}\nR2:\n{}",
                        r1.log_tail(20),
                        r2.log_tail(20)
                    )
                });
                let f = bp.read_frame(T).expect("SEND at B");
                assert_eq!(&f.body[..], b"over two relays");
                assert_eq!(f.from_path()[0], r2_uri, "R2 first in From-Path");
                let conns = r2.kamcmd(&["msrp_relay.connections"]);
                assert!(conns.contains("TRANSPORT: tls"), "R2:\n{conns}");
            }
            Some(why) => {
                expect_unreachable_report(&r1, &mut a, &req);
                assert!(
                    relay_stat(&r1, "tls_handshake_failures") > failures0
                        || relay_stat(&r2, "tls_handshake_failures") > 0,
                    "{why}: no handshake failure counted"
                );
                b.expect_no_accept(Duration::from_millis(300))
                    .unwrap_or_else(|e| panic!("{why}: B was reached: {e}"));
            }
        }
    }
}

/// `tls_verify_client required`: a client without a certificate cannot
/// send; one with a certificate from the CA can. `tls_min_version 1.3`: a
/// TLS 1.2-only client fails the handshake.
#[test]
fn client_certificate_and_version_policy() {
    let c = certs();
    let k = tls_relay(
        &c,
        &[
            ("tls_verify_client", "required"),
            ("tls_min_version", "1.3"),
        ],
    );
    let b = Endpoint::bind().expect("bind B");
    let relay = k.transport_uri(Transport::Tls, "relay").expect("uri");
    // without a certificate: refused (TLS 1.3 shows it on the first read)
    let cfg = tls::client_config(&c.ca(), None).expect("config");
    let refused = Peer::connect_tls(tls_addr(&k), "127.0.0.1", &cfg).and_then(|mut p| {
        let req = Request::send(&[&relay, &b.uri("b")], &["msrps://127.0.0.1:9/a;tcp"], b"x");
        p.send_request(&req)?;
        p.read_frame(T)
    });
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
    // TLS 1.2 only: refused
    let v12 =
        tls::client_config_with(&c.ca(), Some(&c.client()), TlsVersions::Only12).expect("config");
    assert!(
        Peer::connect_tls(tls_addr(&k), "127.0.0.1", &v12).is_err(),
        "a TLS 1.2 client got in with tls_min_version 1.3"
    );
    // a certificate from the CA: served
    let mut a = tls_client(&k, &c, Some(&c.client()));
    let bp = relay_small_send(&k, &mut a, &b, &b.uri("b"), None, b"with a certificate");
    drop(bp);
    assert!(relay_stat(&k, "tls_handshake_failures") >= 2);
}

/// Per-listener policy: the global `tls_verify_client required` (an old
/// single-value configuration) stays the policy of the listener that sets
/// none, while a second `tls:` listener with `;verify_client=off` serves a
/// client without a certificate (and, with `;min_version=1.3`, refuses
/// TLS 1.2 where the first accepts it).
#[test]
fn listener_policy_overrides_global_verify_client() {
    let c = certs();
    let port = free_tcp_port();
    let open = format!("tls:127.0.0.1:{port};verify_client=off;min_version=1.3");
    let k = tls_relay(&c, &[("tls_verify_client", "required"), ("listen", &open)]);
    assert!(
        k.wait_for_log(&format!("listening for MSRP on {open}"), T),
        "no start-up line naming the listener's policy:\n{}",
        k.log_tail(20)
    );
    let b = Endpoint::bind().expect("bind B");
    let cfg = tls::client_config(&c.ca(), None).expect("config");
    // the listener without options: the global `required`
    let refused = Peer::connect_tls(tls_addr(&k), "127.0.0.1", &cfg).and_then(|mut p| {
        let req = Request::send(
            &[&k.relay_uri("r"), &b.uri("b")],
            &["msrps://127.0.0.1:9/a;tcp"],
            b"x",
        );
        p.send_request(&req)?;
        p.read_frame(T)
    });
    assert!(
        refused.is_err(),
        "a client without a certificate was served on the required listener"
    );
    // `;min_version=1.3` there: a TLS 1.2 client is refused, while the
    // other listener (global 1.2) serves one with a certificate
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let v12 = tls::client_config_with(&c.ca(), None, TlsVersions::Only12).expect("config");
    assert!(
        Peer::connect_tls(addr, "127.0.0.1", &v12).is_err(),
        "a TLS 1.2 client got in on {open}"
    );
    let v12 =
        tls::client_config_with(&c.ca(), Some(&c.client()), TlsVersions::Only12).expect("config");
    Peer::connect_tls(tls_addr(&k), "127.0.0.1", &v12)
        .unwrap_or_else(|e| panic!("TLS 1.2 with a certificate on the other listener: {e}"));
    // `;verify_client=off`: served without a certificate
    let peer = Peer::connect_tls(addr, "127.0.0.1", &cfg)
        .unwrap_or_else(|e| panic!("TLS to {open}: {e}\n{}", k.log_tail(20)));
    let a = peer.local_addr();
    let uri = format!("msrps://{}:{}/alice;tcp", a.ip(), a.port());
    let mut a = Client { peer, uri };
    relay_small_send(
        &k,
        &mut a,
        &b,
        &b.uri("b"),
        None,
        b"no certificate asked for",
    );
}

/// Hostile bytes on the TLS port (plain text, a forged record, a handshake
/// that never completes) each cost only their own connection, with a log
/// line naming the peer; a TLS session on the same relay keeps relaying.
#[test]
fn bad_tls_input_closes_only_that_connection() {
    let c = certs();
    let k = Kamailio::start(
        RelayOpts::default()
            .listen_transport(Transport::Tls)
            .tls_certs(&c)
            .modparam_int("first_request_timeout", 2)
            .global(&format!("loadmodule \"{}kex.so\"", kamailio_modules())),
    );
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("b");
    let mut a = tls_client(&k, &c, None);
    let mut bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"before");
    let closed_within = |mut s: TcpStream, limit: Duration| -> Duration {
        s.set_read_timeout(Some(limit)).expect("timeout");
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return t0.elapsed(),
                Ok(_) => continue, // an alert
            }
        }
    };
    // plain MSRP on the TLS port
    let mut s = TcpStream::connect(tls_addr(&k)).expect("connect");
    s.write_all(b"MSRP abcd1234 SEND\r\nTo-Path: msrp://x/y;tcp\r\n\r\n")
        .expect("write");
    let took = closed_within(s, Duration::from_secs(3));
    assert!(
        took < Duration::from_secs(1),
        "plain text: closed after {took:?}"
    );
    // a handshake record header announcing garbage
    let mut s = TcpStream::connect(tls_addr(&k)).expect("connect");
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00])
        .expect("write");
    let took = closed_within(s, Duration::from_secs(3));
    assert!(
        took < Duration::from_secs(1),
        "forged record: closed after {took:?}"
    );
    // a handshake that never completes: closed by first_request_timeout
    let cfg = tls::client_config(&c.ca(), None).expect("config");
    let hello = tls::client_hello(cfg, "127.0.0.1").expect("ClientHello");
    let mut s = TcpStream::connect(tls_addr(&k)).expect("connect");
    s.write_all(&hello).expect("send the ClientHello");
    let took = closed_within(s, Duration::from_secs(6));
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "silent TLS connection closed after {took:?}"
    );
    assert!(relay_stat(&k, "tls_handshake_failures") >= 3);
    let listener = format!("on tls:{}", tls_addr(&k));
    for why in [
        "failed: received corrupt message",
        "failed: nothing more from the peer within first_request_timeout (2 s)",
    ] {
        let line = k.wait_for_log_line(T, |l| {
            l.contains("TLS handshake with 127.0.0.1:") && l.contains(&listener) && l.contains(why)
        });
        assert!(
            line.is_some(),
            "no log line naming the peer, {listener} and {why:?}:\n{}",
            k.log_tail(20)
        );
    }
    // a ClientHello, then the client gives up: logged once and counted
    let failures = relay_stat(&k, "tls_handshake_failures");
    let mut s = TcpStream::connect(tls_addr(&k)).expect("connect");
    let peer = s.local_addr().expect("addr").to_string();
    s.write_all(&hello).expect("send the ClientHello");
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf).expect("the relay's ServerHello");
    drop(s);
    let why = "failed: the peer closed the connection before it completed";
    assert!(
        k.wait_for_log_line(T, |l| l.contains(&peer)
            && l.contains(&listener)
            && l.contains(why))
            .is_some(),
        "no log line for {peer} closing mid-handshake:\n{}",
        k.log_tail(20)
    );
    assert_eq!(relay_stat(&k, "tls_handshake_failures"), failures + 1);
    // the TLS session still relays
    let relay = k.transport_uri(Transport::Tls, "relay").expect("uri");
    let req = Request::send(&[&relay, &b_uri], &[&a.uri], b"after");
    a.peer.send_request(&req).expect("A sends again");
    let f = bp.read_frame(T).expect("B gets the second SEND");
    assert_eq!(&f.body[..], b"after");
}

/// 256 MiB from a TLS client to a TLS endpoint that reads slowly: the
/// worker's memory stays bounded (flow control through the TLS layer).
#[test]
fn slow_tls_reader_keeps_memory_bounded() {
    const LEN: u64 = 256 * MIB;
    let c = certs();
    let k = tls_relay(&c, &[]);
    let workers = k.worker_pids();
    let hwm0: Vec<u64> = workers.iter().map(|p| Kamailio::peak_rss_kib(*p)).collect();
    let b = tls_endpoint(c.endpoint(), c.ca());
    let b_uri = b.uri("bob");
    let relay = k.transport_uri(Transport::Tls, "relay").expect("uri");
    let a = tls_client(&k, &c, None);
    let mut seen = 0u64;
    let t = stream_through(&k, a.peer, &a.uri, &relay, &b, &b_uri, LEN, |p| {
        seen += p.len() as u64;
        // a slow reader (~40 MB/s): a pause per MiB taken
        if seen % MIB < p.len() as u64 {
            std::thread::sleep(Duration::from_millis(25));
        }
    });
    assert_eq!(
        check_chunks(&t.chunks, MAX_CHUNK, true, Some(LEN), EndFlag::Complete),
        LEN
    );
    for (pid, before) in workers.iter().zip(hwm0) {
        let after = Kamailio::peak_rss_kib(*pid);
        eprintln!("MSRP worker {pid}: VmHWM {before} -> {after} KiB for 256 MiB over TLS");
        assert!(
            after < before + 12 * 1024,
            "worker {pid} grew {} KiB for a 256 MiB transfer over TLS",
            after.saturating_sub(before)
        );
    }
}

/// An `msrps://` next hop that accepts TCP but never answers the TLS
/// handshake: the sender gets a 408 REPORT after `transaction_timeout`,
/// and the relay gives the connection up.
#[test]
fn next_hop_that_never_completes_the_handshake_is_reported() {
    let c = certs();
    let k = Kamailio::start(
        RelayOpts::default()
            .listen_transport(Transport::Tls)
            .tls_certs(&c)
            .modparam_int("transaction_timeout", 2),
    );
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let uri = format!("msrps://{}/mute;tcp", silent.local_addr().expect("addr"));
    let t0 = Instant::now();
    let (mut a, req) = send_via(&k, &[&uri], b"into the void");
    let (held, _) = silent.accept().expect("the relay connects");
    let status = expect_report(&k, &mut a, &req);
    assert!(status.starts_with("000 408 "), "Status: {status}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
        "REPORT after {took:?}"
    );
    // the relay gives the connection up (its output did not move for
    // transaction_timeout)
    held.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let mut r = &held;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue, // the ClientHello
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the relay kept the stuck connection open: {e}"),
        }
    }
}
