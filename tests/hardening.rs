//! Hardening against slow or broken peers (issue 21), against a real
//! Kamailio:
//! - `frame_timeout`: a head trickled after a valid request, and a body
//!   that stalls mid-chunk, close the connection with a log line naming
//!   the peer; a stalled SEND ends with `#` downstream and the sender gets
//!   its REPORT and 413 first; a sender the relay itself holds back (flow
//!   control) is never cut;
//! - never a 200 for a chunk the relay dropped while it was arriving: a
//!   next hop that never reads, one that answers an error mid-chunk; the
//!   sender gets 413 instead, one REPORT, and a sender that keeps writing
//!   the refused chunk is closed instead of read for hundreds of MiB.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The SEND of `len` body bytes, with its full wire form and where its body
/// starts in it.
fn send_wire(to: &[&str], from: &str, len: usize, fr: &str) -> (Request, Vec<u8>, usize) {
    let body = BodyGen::new(3, len as u64).to_vec();
    let req = Request::send(to, &[from], &body).with_header("Failure-Report", fr);
    let wire = req.to_wire();
    let head_len = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    (req, wire, head_len)
}

/// Whether `p`'s connection was closed by the relay (waiting up to `wait`).
fn closed_within(p: &mut Peer, wait: Duration) -> bool {
    p.expect_closed(wait).is_ok()
}

/// A client sends one valid SEND (200), then trickles a new head one byte
/// every 300 ms: with `frame_timeout` 2 the relay closes it 2-4 s after the
/// first byte (1 s sweep), logging the peer and the limit. A connection
/// silent after its request (idle, `idle_timeout` 3600) stays open.
#[test]
fn trickled_head_is_closed_at_frame_timeout() {
    let k = Kamailio::start(RelayOpts::default().modparam_int("frame_timeout", 2));
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"first");
    let mut idle = Client::connect(&k);
    let bp = relay_small_send(&k, &mut idle, &b, &b_uri, Some(bp), b"idle one");

    let relay = k.relay_uri("relay");
    let (_, wire, head_len) = send_wire(&[&relay, &b_uri], &a.uri, 10, "yes");
    let started = Instant::now();
    let mut sent = 0;
    let closed_at = loop {
        assert!(sent < head_len, "the whole head went out: not closed");
        let _ = a.peer.send_raw(&wire[sent..sent + 1]);
        sent += 1;
        if closed_within(&mut a.peer, Duration::from_millis(300)) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "trickle still open after {:?}\n{}",
            started.elapsed(),
            k.log_tail(20)
        );
    };
    assert!(
        closed_at >= Duration::from_secs(2) && closed_at < Duration::from_millis(4500),
        "closed {closed_at:?} after the first byte of the head ({sent} bytes)"
    );
    let needle = format!("127.0.0.1:{}", a.peer.local_addr().port());
    let line = k
        .wait_for_log_line(T, |l| l.contains(&needle) && l.contains("frame_timeout"))
        .unwrap_or_else(|| panic!("no frame_timeout line naming {needle}:\n{}", k.log_tail(20)));
    assert!(line.contains("head"), "{line}");
    eprintln!(
        "trickle closed after {closed_at:?}, {sent} bytes: {}",
        line.trim()
    );
    // the idle connection is untouched and still relays
    idle.peer
        .expect_nothing(Duration::from_millis(200))
        .unwrap_or_else(|e| panic!("idle connection: {e}"));
    relay_small_send(&k, &mut idle, &b, &b_uri, Some(bp), b"still here");
}

/// A SEND of 100000 bytes stops after 30000 (Failure-Report yes),
/// `frame_timeout` 2: the next hop gets 30000 bytes, the last chunk ending
/// with `#`; the sender gets REPORT `000 408 Sender Stalled` with
/// `Byte-Range: 1-30000/100000` and a 413 (never a 200), then the close.
#[test]
fn stalled_body_is_aborted_reported_and_closed() {
    const LEN: usize = 100_000;
    const SENT: usize = 30_000;
    let k = Kamailio::start(RelayOpts::default().modparam_int("frame_timeout", 2));
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let relay = k.relay_uri("relay");
    let (req, wire, head_len) = send_wire(&[&relay, &b_uri], &a.uri, LEN, "yes");
    a.peer
        .send_raw(&wire[..head_len + SENT])
        .expect("A sends part of the body");
    let stalled = Instant::now();
    let mut bp = b.accept(T).expect("relay connects to B");
    let mut seen = 0u64;
    loop {
        let f = bp
            .read_frame_hashed(Duration::from_secs(6))
            .unwrap_or_else(|e| panic!("B after {seen} bytes: {e}\n{}", k.log_tail(20)));
        seen += f.body_len;
        match f.flag {
            EndFlag::Continued => bp.send_response(&f, 200, Some("OK")).expect("B 200"),
            EndFlag::Aborted => break,
            EndFlag::Complete => panic!("chunk ended with $: {}", f.summary()),
        }
    }
    assert_eq!(seen, SENT as u64, "bytes B got");
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let f = a
            .peer
            .read_frame(Duration::from_secs(6))
            .unwrap_or_else(|e| panic!("A after {frames:?}: {e}\n{}", k.log_tail(20)));
        frames.push(f);
    }
    let elapsed = stalled.elapsed();
    assert!(elapsed >= Duration::from_secs(2), "cut after {elapsed:?}");
    let report = frames
        .iter()
        .find(|f| f.method().as_deref() == Some("REPORT"))
        .unwrap_or_else(|| panic!("no REPORT: {frames:?}"));
    assert_eq!(
        report.header("Status").as_deref(),
        Some("000 408 Sender Stalled")
    );
    assert_eq!(
        report.header("Byte-Range").as_deref(),
        Some(format!("1-{SENT}/{LEN}").as_str())
    );
    let resp = frames
        .iter()
        .find(|f| f.method().is_none())
        .unwrap_or_else(|| panic!("no response: {frames:?}"));
    assert_eq!(resp.status_code(), Some(413), "{}", resp.summary());
    assert_eq!(resp.tid(), req.tid);
    assert!(
        closed_within(&mut a.peer, T),
        "A still open\n{}",
        k.log_tail(20)
    );
    let needle = format!("127.0.0.1:{}", a.peer.local_addr().port());
    k.wait_for_log_line(T, |l| l.contains(&needle) && l.contains("body stalled"))
        .unwrap_or_else(|| panic!("no stall line naming {needle}:\n{}", k.log_tail(20)));
    bp.expect_nothing(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("B after the #: {e}"));
}

/// The relay holds a sender back while its next hop reads nothing for 4 s
/// (flow control); with `frame_timeout` 1 the sender is not cut: all 8 MiB
/// arrive, A gets its 200 and no REPORT.
#[test]
fn sender_held_back_by_the_relay_is_not_cut() {
    const LEN: u64 = 8 * 1024 * 1024;
    let k = Kamailio::start(RelayOpts::default().modparam_int("frame_timeout", 1));
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let a = Client::connect(&k);
    let relay = k.relay_uri("relay");
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a.uri], LEN)
        .with_header("Failure-Report", "yes");
    let sender = std::thread::spawn(move || {
        let mut peer = a.peer;
        let r = peer.send_request_streaming(&req, BodyGen::new(5, LEN));
        (peer, req, r)
    });
    let mut bp = b.accept(T).expect("relay connects to B");
    std::thread::sleep(Duration::from_secs(4));
    let mut seen = 0u64;
    while seen < LEN {
        let f = bp
            .read_frame_hashed(T)
            .unwrap_or_else(|e| panic!("B after {seen} bytes: {e}\n{}", k.log_tail(20)));
        assert_ne!(f.flag, EndFlag::Aborted, "{}", f.summary());
        seen += f.body_len;
        bp.send_response(&f, 200, Some("OK")).expect("B 200");
    }
    let (mut peer, req, sent) = sender.join().expect("sender");
    sent.unwrap_or_else(|e| panic!("A streaming: {e}\n{}", k.log_tail(20)));
    let r = peer.read_frame(T).expect("A's response");
    assert_eq!(r.status_code(), Some(200), "{}", r.summary());
    assert_eq!(r.tid(), req.tid);
    peer.expect_nothing(Duration::from_millis(500))
        .unwrap_or_else(|e| panic!("A after its 200: {e}"));
    assert!(!k.log().contains("frame_timeout"), "{}", k.log_tail(20));
}

/// Issue 21's case: a next hop that accepts and never reads,
/// `transaction_timeout` 2, one 256 MiB SEND that keeps coming. The sender
/// gets one REPORT 408 and a 413, never a 200; it ignores the 413 and keeps
/// writing, so the relay closes it after its slack (16 MiB, or twice the
/// socket's receive buffer), a pause of 1-2 s and a second slack instead of
/// reading (and discarding) the rest: its write fails before 256 MiB.
#[test]
fn non_reading_next_hop_gets_413_and_a_writer_that_goes_on_is_closed() {
    const LEN: u64 = 256 * 1024 * 1024;
    let k = Kamailio::start(RelayOpts::default().modparam_int("transaction_timeout", 2));
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let a = Client::connect(&k);
    let mut reader = Peer::from_stream(a.peer.try_clone_stream().expect("clone")).expect("reader");
    let relay = k.relay_uri("relay");
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a.uri], LEN)
        .with_header("Failure-Report", "yes");
    let tid = req.tid.clone();
    let sender = std::thread::spawn(move || {
        let mut peer = a.peer;
        peer.send_request_streaming(&req, BodyGen::new(9, LEN))
    });
    let _silent_b = b.accept(T).expect("relay connects to B");
    let mut frames = Vec::new();
    while frames.len() < 2 {
        match reader.read_frame(Duration::from_secs(10)) {
            Ok(f) => frames.push(f),
            Err(e) => panic!("A after {frames:?}: {e}\n{}", k.log_tail(20)),
        }
    }
    let sent = sender.join().expect("sender");
    assert!(
        sent.is_err(),
        "the relay read all 256 MiB of a refused chunk"
    );
    let summaries: Vec<String> = frames.iter().map(|f| f.summary()).collect();
    let responses: Vec<_> = frames.iter().filter(|f| f.method().is_none()).collect();
    assert_eq!(responses.len(), 1, "{summaries:?}");
    assert_eq!(responses[0].status_code(), Some(413), "{summaries:?}");
    assert_eq!(responses[0].tid(), tid);
    let reports: Vec<_> = frames
        .iter()
        .filter(|f| f.method().as_deref() == Some("REPORT"))
        .collect();
    assert_eq!(reports.len(), 1, "{summaries:?}");
    assert!(
        reports[0]
            .header("Status")
            .is_some_and(|s| s.starts_with("000 408")),
        "{summaries:?}"
    );
    // nothing else, in particular no 200, before the close
    assert!(closed_within(&mut reader, T), "A still open");
    let needle = format!("127.0.0.1:{}", reader.local_addr().port());
    let line = k
        .wait_for_log_line(T, |l| l.contains(&needle) && l.contains("refused chunk"))
        .unwrap_or_else(|| panic!("no close line naming {needle}:\n{}", k.log_tail(20)));
    eprintln!("{}", line.trim());
}

/// B answers 403 to the first chunk of a 12 MiB SEND still arriving (and
/// nothing else; B reads nothing meanwhile, so its socket takes only a
/// small part of the message and the chunk is still arriving): A gets REPORT 403 and a 413 (no 200), the chunk open
/// towards B ends with `#` and nothing more of the message reaches B; A
/// sends the rest of its chunk (within the slack), its connection stays
/// open, a new message relays as usual and the same message gets 413.
#[test]
fn error_response_mid_chunk_gets_413_not_200() {
    const LEN: u64 = 12 * 1024 * 1024;
    let k = Kamailio::start(
        RelayOpts::default()
            .modparam_int("queue_high_watermark", 65536)
            .modparam_int("queue_low_watermark", 16384)
            .modparam_int("socket_sndbuf", 16384),
    );
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let a = Client::connect(&k);
    let a_uri = a.uri.clone();
    let relay = k.relay_uri("relay");
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a.uri], LEN)
        .with_header("Failure-Report", "yes");
    let msg_id = req.header("Message-ID").unwrap().to_owned();
    let sender = send_in_background(a.peer, &req, 4, LEN);
    let mut bp = b.accept(T).expect("relay connects to B");
    let first = bp.read_frame_hashed(T).expect("B's first chunk");
    bp.send_response(&first, 403, Some("Forbidden"))
        .expect("B 403");
    let mut seen = first.body_len;
    let mut aborted = false;
    while let Ok(f) = bp.read_frame_hashed(Duration::from_secs(2)) {
        assert!(!aborted, "a chunk after the #: {}", f.summary());
        assert_ne!(f.flag, EndFlag::Complete, "{}", f.summary());
        aborted = f.flag == EndFlag::Aborted;
        seen += f.body_len;
    }
    assert!(seen < LEN, "B got the whole message ({seen} bytes)");
    let (mut peer, sent) = sender.join().expect("sender");
    sent.unwrap_or_else(|e| panic!("A streaming: {e}\n{}", k.log_tail(20)));
    read_413_and_report(&k, &mut peer, &req.tid, "000 403 Forbidden");
    // the same message again: 413, not forwarded
    let mut again = Request::send(&[&relay, &b_uri], &[&a_uri], b"more");
    again.headers[0] = ("Message-ID".into(), msg_id);
    peer.send_request(&again).expect("A sends more");
    let r = peer.read_frame(T).expect("A's answer");
    assert_eq!(r.status_code(), Some(413), "{}", r.summary());
    // a new message relays as usual
    let mut a = Client { peer, uri: a_uri };
    relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"a new message");
}
