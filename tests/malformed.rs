//! Malformed input on one connection: the relay answers 400 or closes that
//! connection, logs the peer's address, and a concurrent valid session is
//! unaffected.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// How the bad connection ended.
#[derive(Debug)]
enum Outcome {
    Answered400,
    Closed,
}

fn run_case(name: &str, send_bad: impl FnOnce(&mut Peer, &str)) {
    let k = Kamailio::start(RelayOpts::default());
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");

    // A valid session, opened before the bad input.
    let mut a = Client::connect(&k);
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"before the bad input");

    let mut bad = Peer::connect(k.relay_addr()).expect("connect bad client");
    let bad_addr = bad.local_addr();
    send_bad(&mut bad, &k.relay_uri("relay"));

    let outcome = wait_400_or_close(&mut bad, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("[{name}] {e}\nlog tail:\n{}", k.log_tail(30)));

    let needle = format!("127.0.0.1:{}", bad_addr.port());
    let line = k
        .wait_for_log_line(Duration::from_secs(5), |l| l.contains(&needle))
        .unwrap_or_else(|| {
            panic!(
                "[{name}] ({outcome:?}) the log does not name the peer {needle}; log tail:\n{}",
                k.log_tail(30)
            )
        });
    eprintln!("[{name}] {outcome:?}; log: {}", line.trim());

    // The valid session still relays, in both directions of the transaction.
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"after the bad input");
    b.expect_no_accept(Duration::from_millis(100))
        .unwrap_or_else(|e| panic!("[{name}] {e}"));
    drop(bp);
}

fn wait_400_or_close(bad: &mut Peer, timeout: Duration) -> Result<Outcome, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match bad.read_frame(left) {
            Ok(f) if f.status_code() == Some(400) => return Ok(Outcome::Answered400),
            Ok(f) if f.method().as_deref() == Some("REPORT") => continue,
            Ok(f) => return Err(format!("expected 400 or close, got {}", f.summary())),
            Err(PeerError::Closed(_)) => return Ok(Outcome::Closed),
            Err(e) => return Err(format!("expected 400 or close within {timeout:?}: {e}")),
        }
    }
}

/// Writes and ignores a failure caused by the relay having closed already.
fn send_tolerant(p: &mut Peer, data: &[u8]) {
    match p.send_raw(data) {
        Ok(()) | Err(PeerError::Closed(_)) => {}
        Err(e) => panic!("sending bad input: {e}"),
    }
}

#[test]
fn garbage_line() {
    run_case("garbage line", |p, _| {
        send_tolerant(p, b"HELLO relay, this is not MSRP at all\r\n\r\n")
    });
}

/// 100 KB without CRLF after "MSRP ": the start line exceeds the line limit.
#[test]
fn long_start_line_without_crlf() {
    run_case("100 KB start line without CRLF", |p, _| {
        let mut line = b"MSRP ".to_vec();
        line.extend((0..100 * 1024).map(|i| b'a' + (i % 26) as u8));
        send_tolerant(p, &line);
    });
}

/// A valid start line, then a To-Path line of 100 KB without CRLF: the
/// transaction id is known, so a 400 is possible.
#[test]
fn long_header_line_without_crlf() {
    run_case("100 KB header line without CRLF", |p, relay| {
        let mut line = format!("MSRP longhdr42 SEND\r\nTo-Path: {relay} ").into_bytes();
        line.extend((0..100 * 1024).map(|i| b'a' + (i % 26) as u8));
        send_tolerant(p, &line);
    });
}

#[test]
fn binary_junk() {
    run_case("binary junk", |p, _| {
        let mut junk = vec![0x00, 0xff, 0x16, 0x03, 0x01];
        junk.extend(BodyGen::new(0xbad, 8 * 1024).to_vec());
        send_tolerant(p, &junk);
    });
}

#[test]
fn truncated_frame_then_close() {
    run_case("truncated frame then close", |p, relay| {
        // Cut inside the header block, so the route never sees the frame.
        let head = format!(
            "MSRP trunc4711 SEND\r\nTo-Path: {relay} msrp://127.0.0.1:9/x;tcp\r\n\
             From-Path: msrp://127.0.0.1:{}/a;tcp\r\nMessage-ID: m1\r\nByte-Ra",
            p.local_addr().port()
        );
        send_tolerant(p, head.as_bytes());
        match p.shutdown_write() {
            Ok(()) | Err(PeerError::Closed(_)) => {}
            Err(e) => panic!("shutdown: {e}"),
        }
    });
}

/// A well-framed SEND with an unparseable Byte-Range: the stream can be
/// resynchronised, so the relay answers 400 to that transaction (RFC 4975
/// §7.3, §10) and the same connection keeps relaying.
#[test]
fn well_framed_bad_header_gets_400() {
    let k = Kamailio::start(RelayOpts::default());
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let mut a = Client::connect(&k);
    let bad = Request::send(&[&relay, &b_uri], &[&a.uri], b"hi").with_header("X-Test", "bad");
    let mut bad = bad;
    bad.headers[1].1 = "one-two/three".into();
    a.peer.send_request(&bad).expect("send bad SEND");
    let resp = a
        .peer
        .read_response(T, &["REPORT"])
        .unwrap_or_else(|e| panic!("expected 400: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(resp.status_code(), Some(400), "{}", resp.summary());
    assert_eq!(resp.tid(), bad.tid, "{}", resp.summary());
    assert_eq!(resp.to_path(), vec![a.uri.clone()], "{}", resp.summary());
    b.expect_no_accept(Duration::from_millis(200))
        .unwrap_or_else(|e| panic!("the bad SEND was forwarded: {e}"));
    relay_small_send(&k, &mut a, &b, &b_uri, None, b"after the 400");
}

/// Sends `req` from A: the relay answers 400 and B gets no connection.
fn expect_400(k: &Kamailio, a: &mut Client, b: &Endpoint, req: &Request, what: &str) {
    a.peer.send_request(req).expect("send");
    let resp = a
        .peer
        .read_response(T, &["REPORT"])
        .unwrap_or_else(|e| panic!("{what}: expected 400: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(resp.status_code(), Some(400), "{what}: {}", resp.summary());
    b.expect_no_accept(Duration::from_millis(200))
        .unwrap_or_else(|e| panic!("{what}: forwarded: {e}"));
}

/// A Byte-Range whose positions a relay cannot add body lengths to
/// (range-start u64::MAX, a body larger than the max chunk) gets 400 and is
/// not forwarded (it overflowed the re-chunking arithmetic before).
#[test]
fn byte_range_near_u64_max_gets_400() {
    let k = Kamailio::start(RelayOpts::default());
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let mut a = Client::connect(&k);
    let mut bad = Request::send(&[&relay, &b_uri], &[&a.uri], &vec![b'x'; 40_000]);
    bad.headers[1].1 = "18446744073709551615-*/*".into();
    expect_400(&k, &mut a, &b, &bad, "Byte-Range u64::MAX");
    relay_small_send(&k, &mut a, &b, &b_uri, None, b"after the 400");
}

/// RFC 4976 §6.1: a connection that sends no request within
/// `first_request_timeout` is closed (and logged with the peer), while a
/// connection that did send one stays open.
#[test]
fn silent_connection_is_closed_after_first_request_timeout() {
    let k = Kamailio::start(RelayOpts::default().modparam_int("first_request_timeout", 1));
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"a request in time");

    let mut silent = Peer::connect(k.relay_addr()).expect("connect silent client");
    let port = silent.local_addr().port();
    let started = Instant::now();
    silent
        .expect_closed(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("silent connection not closed: {e}\n{}", k.log_tail(20)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before first_request_timeout"
    );
    assert!(
        k.wait_for_log(&format!("127.0.0.1:{port}"), Duration::from_secs(2)),
        "log does not name the silent peer:\n{}",
        k.log_tail(20)
    );
    // The connection that sent a request in time is still served.
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"still served");
    drop(bp);
}

/// A SEND without Byte-Range padded to `fields` header fields in all (To-
/// Path and From-Path included), with a body the relay re-chunks.
fn send_with_fields(k: &Kamailio, a: &Client, b_uri: &str, fields: usize) -> Request {
    let relay = k.relay_uri("relay");
    let mut req = Request::send(&[&relay, b_uri], &[&a.uri], &vec![b'f'; 10_000]);
    req.headers.retain(|(n, _)| n != "Byte-Range");
    for i in 0..fields - 2 - req.headers.len() {
        req.headers.push((format!("X-Pad-{i}"), "x".into()));
    }
    req
}

/// Found by fuzz/ (target head): a SEND with 64 header fields, the most a
/// frame may have, and no Byte-Range left the re-chunker with 65 (each
/// chunk gains a Byte-Range), which a next hop like this relay refuses; and
/// a head at `max_header_size` grows past it with a Byte-Range and the
/// relay's 16-character transaction ID. Such a request gets 400 and a log line instead of being
/// forwarded; with one field (or byte) less it is relayed.
#[test]
fn a_head_that_would_leave_beyond_the_limits_gets_400() {
    const HEAD: usize = 2048;
    let k = Kamailio::start(
        RelayOpts::default()
            .modparam_int("msrp_max_chunk_size", 4096)
            .modparam_int("max_header_size", HEAD as i64),
    );
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);

    // 64 fields, no Byte-Range: re-chunked it would have 65
    let req = send_with_fields(&k, &a, &b_uri, 64);
    expect_400(&k, &mut a, &b, &req, "64 fields");
    assert!(
        k.wait_for_log(
            "would break this relay's own limits",
            Duration::from_secs(2)
        ),
        "no log line:\n{}",
        k.log_tail(20)
    );

    // a head of max_header_size bytes whose Byte-Range ("1-2/2") the
    // relay may write as wide as "2^62-2^62/2^62"
    let mut long = Request::send(&[&k.relay_uri("relay"), &b_uri], &[&a.uri], b"hi");
    // the head the limit counts: start line and header lines, not the
    // blank line before the body
    let head_len = |r: &Request| {
        let wire = r.to_wire();
        wire.windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("blank line")
            + 2
    };
    long.headers.push(("X-Pad".into(), String::new()));
    long.headers.last_mut().expect("pad").1 = "p".repeat(HEAD - head_len(&long));
    assert_eq!(head_len(&long), HEAD);
    expect_400(&k, &mut a, &b, &long, "a head at max_header_size");

    // one field less: relayed in chunks of 64 fields, each with its range
    let req = send_with_fields(&k, &a, &b_uri, 63);
    a.peer.send_request(&req).expect("send 63 fields");
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("63 fields not relayed: {e}\n{}", k.log_tail(30)));
    let relay = k.relay_uri("relay");
    let mut body = Vec::new();
    let chunks = chunks::receive_message(
        &k,
        &mut bp,
        req.header("Message-ID").expect("Message-ID"),
        std::slice::from_ref(&b_uri),
        &[relay, a.uri.clone()],
        |p| body.extend_from_slice(p),
    );
    assert!(
        chunks.len() > 1,
        "not re-chunked: {} chunk(s)",
        chunks.len()
    );
    assert_eq!(body, vec![b'f'; 10_000]);
    let resp = a.peer.read_response(T, &["REPORT"]).expect("A's 200");
    assert_eq!(
        (resp.status_code(), resp.tid()),
        (Some(200), req.tid.clone()),
        "{}",
        resp.summary()
    );
    relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"after the 400s");
}
