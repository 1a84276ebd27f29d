//! Prometheus metrics through Kamailio's `xhttp_prom` (issue 23 item 5):
//! the shipped fragment `cfg/msrp-prometheus.cfg` included in a config;
//! `/metrics` scraped over real HTTP before and after traffic shows every
//! `msrp_relay` statistic as `kamailio_msrp_relay_*`, the counters move,
//! and the gauges (connections by transport, sessions, bytes queued) go up
//! and back down.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use msrp_engine::stats::Stat;

use common::*;

const KIB: u64 = 1024;

/// AUTH gets a Use-Path session (no Digest here: metrics are the point),
/// everything else is relayed.
const ROUTE: &str = r#"if ($msrp(method) == "AUTH" && $msrp(nexthops) == 0) {
        msrp_cmap_save();
        exit;
    }
    msrp_relay();"#;

/// Starts Kamailio with the standard test cfg and the shipped metrics
/// fragment included (its HTTP port moved to a free one); returns the
/// metrics address too.
fn start_with_metrics() -> (Kamailio, SocketAddr) {
    let fragment = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cfg/msrp-prometheus.cfg"
    ))
    .expect("read cfg/msrp-prometheus.cfg");
    let shipped = "listen=tcp:127.0.0.1:9494";
    assert!(fragment.contains(shipped), "the fragment's listen changed");
    let port = free_tcp_port();
    let opts = RelayOpts::default()
        .route(ROUTE)
        .modparam_int("socket_sndbuf", 65536);
    let so = module_so();
    let k = Kamailio::start_custom(1, |v| {
        let ours = fragment.replace(shipped, &format!("listen=tcp:127.0.0.1:{port}"));
        std::fs::write(v.dir.join("msrp-prometheus.cfg"), ours).expect("write fragment");
        // included by a relative name, as the fragment's comment says
        render_cfg(&opts, &so, v).replace(
            "request_route {",
            "include_file \"msrp-prometheus.cfg\"\nrequest_route {",
        )
    });
    (k, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// One `GET /metrics` over HTTP/1.0: the `kamailio_msrp_relay_*` values.
fn scrape(addr: SocketAddr) -> HashMap<String, i64> {
    // (the MSRP port the harness waits for is bound in mod_init, Kamailio's
    // TCP listener later: the first scrape may have to wait for it)
    let deadline = Instant::now() + T;
    let mut s = loop {
        match TcpStream::connect_timeout(&addr, T) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => panic!("connect to {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    s.set_read_timeout(Some(T)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send GET");
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + T;
    let body_start = loop {
        let n = s.read(&mut buf).expect("read /metrics");
        assert!(n > 0, "connection closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(i) = text.find("\r\n\r\n") {
            let len: usize = text[..i]
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("Content-Length");
            if got.len() >= i + 4 + len {
                assert!(text.starts_with("HTTP/1."), "{text}");
                assert!(text[..i].contains(" 200 "), "{}", &text[..i]);
                break i + 4;
            }
        }
        assert!(Instant::now() < deadline, "no complete HTTP answer");
    };
    let body = String::from_utf8_lossy(&got[body_start..]).into_owned();
    body.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.strip_prefix("kamailio_msrp_relay_")?;
            Some((name.to_owned(), f.next()?.parse().ok()?))
        })
        .collect()
}

/// Scrapes until `ok` holds for the metrics (the gauges are refreshed once
/// a second), at most `wait`; returns the last scrape.
fn scrape_until(
    addr: SocketAddr,
    wait: Duration,
    ok: impl Fn(&HashMap<String, i64>) -> bool,
) -> HashMap<String, i64> {
    let deadline = Instant::now() + wait;
    loop {
        let m = scrape(addr);
        if ok(&m) || Instant::now() >= deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An AUTH from `a` to the relay, answered 200 by `msrp_cmap_save()`.
fn auth(k: &Kamailio, a: &mut Client) {
    let relay = k.relay_uri("relay");
    let req = Request::new("AUTH", &[&relay], &[&a.uri]);
    a.peer.send_request(&req).expect("send AUTH");
    let r = a.peer.read_response(T, &[]).expect("AUTH answer");
    assert_eq!(r.status_code(), Some(200), "{}", r.summary());
}

/// 1. Every `msrp_relay` statistic is exported as
///    `kamailio_msrp_relay_<name>`, all 0 before traffic (but the
///    harness's accepted probe). After an AUTH and
///    a small SEND A -> B: `requests_in`, `send_in`, `auth_in`,
///    `requests_forwarded`, `bytes_in`, `bytes_out`, `connections_accepted`
///    moved; `connections_tcp` is 2 (A and the relay's connection to B),
///    `sessions_active` 1. A 4 MiB SEND to a B that does not read shows in
///    `bytes_queued`; once B has read it, `bytes_queued` is 0 again, and
///    after A and B leave the connection and session gauges are 0.
#[test]
fn metrics_over_http_move_with_traffic() {
    let (k, addr) = start_with_metrics();
    // the harness's probe of the MSRP port is accepted, once
    // (and closed: the probe hangs up at once, but the worker may see the
    // close a loop pass after the accept)
    let before = scrape_until(addr, T, |m| {
        m.get("connections_accepted") == Some(&1) && m.get("connections_active") == Some(&0)
    });
    for (name, _) in Stat::ALL {
        // (the harness's probe of the MSRP port was accepted)
        let want = if name == "connections_accepted" { 1 } else { 0 };
        assert_eq!(
            before.get(name),
            Some(&want),
            "kamailio_msrp_relay_{name} before traffic: {before:?}"
        );
    }

    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    auth(&k, &mut a);
    let mut bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"counted");
    let after = scrape_until(addr, T, |m| {
        m.get("connections_tcp") == Some(&2) && m.get("sessions_active") == Some(&1)
    });
    for name in [
        "requests_in",
        "send_in",
        "auth_in",
        "requests_forwarded",
        "bytes_in",
        "bytes_out",
        "connections_accepted",
        "connections_opened",
        "connections_active",
    ] {
        assert!(
            after.get(name).copied().unwrap_or(0) > before[name],
            "kamailio_msrp_relay_{name} did not move: {after:?}"
        );
    }
    assert_eq!(after.get("connections_tcp"), Some(&2), "{after:?}");
    assert_eq!(after.get("sessions_active"), Some(&1), "{after:?}");
    assert_eq!(after.get("connections_tls"), Some(&0), "{after:?}");

    // B stops reading: the relay's queue towards it fills
    const LEN: u64 = 4 * 1024 * KIB;
    let relay = k.relay_uri("relay");
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a.uri], LEN);
    let msg_id = req.header("Message-ID").expect("Message-ID").to_owned();
    let sender = std::thread::spawn(move || {
        let mut a = a;
        let r = a.peer.send_request_streaming(&req, BodyGen::new(9, LEN));
        (a, r)
    });
    let queued = scrape_until(addr, Duration::from_secs(10), |m| {
        m.get("bytes_queued").copied().unwrap_or(0) >= 64 * KIB as i64
    });
    let q = queued.get("bytes_queued").copied().unwrap_or(0);
    assert!(
        q >= 64 * KIB as i64,
        "bytes_queued {q} while B reads nothing"
    );
    let mut n = 0u64;
    loop {
        let f = bp
            .read_frame_streaming(Duration::from_secs(30), |p| n += p.len() as u64)
            .unwrap_or_else(|e| panic!("B read: {e}\n{}", k.log_tail(20)));
        assert_eq!(f.header("Message-ID").as_deref(), Some(msg_id.as_str()));
        bp.send_response(&f, 200, Some("OK")).expect("B 200");
        if f.flag != EndFlag::Continued {
            break;
        }
    }
    assert_eq!(n, LEN);
    let (mut a, sent) = sender.join().expect("sender");
    sent.unwrap_or_else(|e| panic!("A send: {e}"));
    let r = a.peer.read_response(T, &["REPORT"]).expect("A's 200");
    assert_eq!(r.status_code(), Some(200), "{}", r.summary());
    let drained = scrape_until(addr, T, |m| m.get("bytes_queued") == Some(&0));
    assert_eq!(drained.get("bytes_queued"), Some(&0), "{drained:?}");
    eprintln!(
        "metrics: before traffic all 0; after {after:?}; bytes_queued {q} while B did not read"
    );

    drop(a);
    drop(bp);
    let gone = scrape_until(addr, T, |m| {
        m.get("connections_tcp") == Some(&0) && m.get("sessions_active") == Some(&0)
    });
    assert_eq!(gone.get("connections_tcp"), Some(&0), "{gone:?}");
    assert_eq!(gone.get("sessions_active"), Some(&0), "{gone:?}");
}
