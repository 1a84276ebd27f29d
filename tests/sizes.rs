//! Message size caps (issue 23 item 2), against a real Kamailio:
//! `max_message_size` and `msrp_set_max_message_size()`. A SEND whose
//! Byte-Range total, or whose bytes so far, pass the connection's limit
//! gets 413 (RFC 4975 §10) and one REPORT 413 (Failure-Report yes); the
//! rest is not forwarded (a chunk already started downstream ends with
//! `#`), and later chunks of the message get 413.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: usize = 100_000;

/// Sends `req` in two writes, `first` bytes and the rest 300 ms later, so
/// that the relay has started forwarding it when the rest arrives.
fn send_in_two(a: &mut Peer, req: &Request, first: usize) {
    let wire = req.to_wire();
    a.send_raw(&wire[..first]).expect("A sends the start");
    std::thread::sleep(Duration::from_millis(300));
    a.send_raw(&wire[first..]).expect("A sends the rest");
}

/// A SEND chunk of `body` with `Byte-Range: range`, flag `flag`.
fn chunk(to: &[&str], from: &str, body: &[u8], range: &str, flag: EndFlag) -> Request {
    let mut r = Request::send(to, &[from], body).with_header("Failure-Report", "yes");
    r.headers[1] = ("Byte-Range".into(), range.into());
    r.flag = flag;
    r
}

/// Reads A's 413 for `req` and one REPORT 413 whose Byte-Range starts
/// `range_start`; returns the REPORT's Byte-Range.
fn refused(k: &Kamailio, a: &mut Peer, req: &Request, range_start: &str) -> String {
    let report = read_413_and_report(k, a, &req.tid, "000 413 Message Too Large");
    let range = report.header("Byte-Range").unwrap_or_default();
    assert!(range.starts_with(range_start), "{range}");
    range
}

/// Declared totals: `1-50000/200000` is refused at its head (nothing
/// reaches B), `1-100000/100000` (at the limit) is relayed.
#[test]
fn declared_total_over_the_limit_gets_413_and_is_not_forwarded() {
    let k = Kamailio::start(RelayOpts::default().modparam_int("max_message_size", LIMIT as i64));
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let body = vec![b'x'; 50_000];
    let big = chunk(
        &[&relay, &b_uri],
        &a.uri,
        &body,
        "1-50000/200000",
        EndFlag::Continued,
    );
    a.peer.send_request(&big).expect("A sends");
    // refused at its head: no byte of it had been received
    assert_eq!(refused(&k, &mut a.peer, &big, "1-"), "1-0/200000");
    b.expect_no_accept(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("B got something of a refused message: {e}"));
    let line = k
        .wait_for_log_line(T, |l| l.contains("max_message_size"))
        .unwrap_or_else(|| panic!("no log line:\n{}", k.log_tail(20)));
    assert!(line.contains(&a.peer.local_addr().to_string()), "{line}");
    // a message of exactly the limit goes through
    let at_limit = chunk(
        &[&relay, &b_uri],
        &a.uri,
        &vec![b'y'; LIMIT],
        &format!("1-{LIMIT}/{LIMIT}"),
        EndFlag::Complete,
    );
    a.peer.send_request(&at_limit).expect("A sends");
    let mut bp = b.accept(T).expect("relay connects to B");
    let mut seen = 0u64;
    loop {
        let f = bp.read_frame_hashed(T).expect("B reads");
        seen += f.body_len;
        bp.send_response(&f, 200, Some("OK")).expect("B 200");
        if f.flag == EndFlag::Complete {
            break;
        }
    }
    assert_eq!(seen, LIMIT as u64);
    let r = a.peer.read_frame(T).expect("A's 200");
    assert_eq!(
        (r.status_code(), r.tid()),
        (Some(200), at_limit.tid.clone())
    );
}

/// Undeclared total (`1-*/*`), 300000 bytes in one chunk, the first 50000
/// sent first: B gets at most the limit, the chunk ending with `#`; A gets
/// 413 and a REPORT whose range-end is past the limit; its connection stays
/// usable.
#[test]
fn undeclared_total_is_cut_at_the_limit() {
    let k = Kamailio::start(RelayOpts::default().modparam_int("max_message_size", LIMIT as i64));
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let body = BodyGen::new(6, 300_000).to_vec();
    let req = chunk(&[&relay, &b_uri], &a.uri, &body, "1-*/*", EndFlag::Complete);
    send_in_two(&mut a.peer, &req, 50_000);
    let mut bp = b.accept(T).expect("relay connects to B");
    let mut seen = 0u64;
    loop {
        let f = bp
            .read_frame_hashed(T)
            .unwrap_or_else(|e| panic!("B after {seen}: {e}\n{}", k.log_tail(20)));
        seen += f.body_len;
        match f.flag {
            EndFlag::Continued => bp.send_response(&f, 200, Some("OK")).expect("B 200"),
            EndFlag::Aborted => break,
            EndFlag::Complete => panic!("the message went through: {}", f.summary()),
        }
    }
    assert!(seen <= LIMIT as u64, "B got {seen} bytes");
    let range = refused(&k, &mut a.peer, &req, "1-");
    let end: u64 = range
        .trim_start_matches("1-")
        .split('/')
        .next()
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("REPORT Byte-Range {range}"));
    assert!(end > LIMIT as u64 && end <= 300_000, "{range}");
    bp.expect_nothing(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("B after the #: {e}"));
    relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"small");
}

/// Pre-chunked: 1-60000/* is relayed (200); 60001-*/* (60000 bytes) passes the
/// limit mid-chunk (its first 30000 bytes sent first; 413, REPORT, `#` at
/// B); 120001-130000/* gets 413 without being forwarded.
#[test]
fn pre_chunked_message_is_stopped_at_the_limit() {
    let k = Kamailio::start(RelayOpts::default().modparam_int("max_message_size", LIMIT as i64));
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let to = [relay.as_str(), b_uri.as_str()];
    let c1 = chunk(&to, &a.uri, &[1; 60_000], "1-60000/*", EndFlag::Continued);
    let msg_id = c1.header("Message-ID").unwrap().to_owned();
    let same = |mut r: Request| {
        r.headers[0] = ("Message-ID".into(), msg_id.clone());
        r
    };
    let c2 = same(chunk(
        &to,
        &a.uri,
        &[2; 60_000],
        "60001-*/*",
        EndFlag::Continued,
    ));
    let c3 = same(chunk(
        &to,
        &a.uri,
        &[3; 10_000],
        "120001-130000/*",
        EndFlag::Complete,
    ));
    a.peer.send_request(&c1).expect("chunk 1");
    let r = a.peer.read_frame(T).expect("200 for chunk 1");
    assert_eq!((r.status_code(), r.tid()), (Some(200), c1.tid.clone()));
    let mut bp = b.accept(T).expect("relay connects to B");
    let mut seen = 0u64;
    while seen < 60_000 {
        let f = bp.read_frame_hashed(T).expect("B reads chunk 1");
        assert_eq!(f.flag, EndFlag::Continued, "{}", f.summary());
        seen += f.body_len;
        bp.send_response(&f, 200, Some("OK")).expect("B 200");
    }
    send_in_two(&mut a.peer, &c2, 30_000);
    let mut seen = 0u64; // of chunk 2
    loop {
        let f = bp.read_frame_hashed(T).expect("B reads");
        seen += f.body_len;
        match f.flag {
            EndFlag::Continued => bp.send_response(&f, 200, Some("OK")).expect("B 200"),
            EndFlag::Aborted => break,
            EndFlag::Complete => panic!("{}", f.summary()),
        }
    }
    assert!(
        seen <= (LIMIT - 60_000) as u64,
        "B got {seen} bytes of chunk 2"
    );
    refused(&k, &mut a.peer, &c2, "60001-");
    a.peer.send_request(&c3).expect("chunk 3");
    let r = a.peer.read_frame(T).expect("413 for chunk 3");
    assert_eq!((r.status_code(), r.tid()), (Some(413), c3.tid.clone()));
    bp.expect_nothing(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("B got chunk 3: {e}"));
}

/// `msrp_set_max_message_size(1000)` in the AUTH route limits that
/// connection only: after its AUTH a 2000-byte SEND gets 413; a client
/// that did not AUTH relays the same SEND (no `max_message_size`).
#[test]
fn script_sets_the_limit_per_connection() {
    let route = r#"if ($msrp(method) == "AUTH") { msrp_set_max_message_size(1000); msrp_cmap_save(); exit; } msrp_relay();"#;
    let k = Kamailio::start(RelayOpts::default().route(route));
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let auth = Request::new("AUTH", &[&relay], &[&a.uri]);
    a.peer.send_request(&auth).expect("AUTH");
    let r = a.peer.read_frame(T).expect("AUTH answer");
    assert_eq!(r.status_code(), Some(200), "{}", r.summary());
    let body = [7u8; 2000];
    let req = Request::send(&[&relay, &b_uri], &[&a.uri], &body);
    a.peer.send_request(&req).expect("A sends");
    refused(&k, &mut a.peer, &req, "1-");
    b.expect_no_accept(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("B: {e}"));
    let mut c = Client::connect(&k);
    relay_small_send(&k, &mut c, &b, &b_uri, None, &body);
}
