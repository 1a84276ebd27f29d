//! The relay engine over real loopback sockets, without Kamailio: a host
//! whose script relays every frame, an in-memory transaction table. What
//! needs the real event route, shm and RPC is tested in the top-level
//! tests/ against Kamailio. Re-chunking, REPORTs for error responses and
//! timeouts, and routing without a socket are tested at the core level
//! (msrp-engine/src/relay/flows.rs).

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use msrp_tools::endpoint::Endpoint;
use msrp_tools::peer::{Peer, PeerError, Request};

#[test]
fn send_is_relayed_rewritten_and_answered_by_the_relay() {
    let r = Relay::start(|_| {});
    let b = Endpoint::bind().expect("B");
    let (mut a, a_uri) = client(&r);
    let req = Request::send(&[&r.uri(), &b.uri("b")], &[&a_uri], b"hello B");
    a.send_request(&req).expect("send");
    let mut bp = b.accept(T).expect("relay connects to B");
    let got = bp.read_frame(T).expect("B reads");
    assert_eq!(got.body, b"hello B");
    assert_eq!(got.to_path(), vec![b.uri("b")]);
    assert_eq!(got.from_path(), vec![r.uri(), a_uri.clone()]);
    assert_ne!(got.tid(), req.tid);
    // the relay's own 200 (RFC 4976 §6.4.1); B's 200 is consumed
    let ok = a.read_frame(T).expect("A's 200");
    assert_eq!((ok.status_code(), ok.tid()), (Some(200), req.tid.clone()));
    bp.send_response(&got, 200, Some("OK")).expect("B answers");
    a.expect_nothing(Duration::from_millis(300))
        .expect("B's 200 is not passed on");
}

#[test]
fn unreachable_next_hop_is_reported() {
    let r = Relay::start(|_| {});
    let gone = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("msrp://{}/b;tcp", gone.local_addr().expect("addr"));
    drop(gone);
    let (mut a, a_uri) = client(&r);
    let req = Request::send(&[&r.uri(), &dead], &[&a_uri], b"x");
    a.send_request(&req).expect("send");
    let mut got = Vec::new();
    for _ in 0..2 {
        let f = a.read_frame(T).expect("frame");
        got.push(
            f.header("Status")
                .unwrap_or_else(|| format!("{:?}", f.status_code())),
        );
    }
    got.sort();
    assert_eq!(got, vec!["000 408 Next Hop Unreachable", "Some(200)"]);
}

#[test]
fn next_hop_closing_mid_message_is_reported_with_bytes_received() {
    let r = Relay::start(|c| c.max_chunk_size = 4096);
    let b = Endpoint::bind().expect("B");
    let (mut a, a_uri) = client(&r);
    let body = vec![7u8; 1_000_000];
    let req = Request::send(&[&r.uri(), &b.uri("b")], &[&a_uri], &body);
    let wire = req.to_wire();
    let body_at = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    // the head and 100 kB of the body: the message stays open
    a.send_raw(&wire[..body_at + 100_000]).expect("send part");
    let mut bp = b.accept(T).expect("accept");
    bp.read_frame(T).expect("first chunk");
    drop(bp);
    let rep = a.read_frame(T).expect("REPORT");
    assert_eq!(rep.method().as_deref(), Some("REPORT"), "{}", rep.summary());
    assert_eq!(
        rep.header("Status").as_deref(),
        Some("000 408 Next Hop Connection Lost")
    );
    let v = rep.header("Byte-Range").expect("range");
    let end: u64 = v[2..v.find('/').expect("/")].parse().expect("end");
    assert!((4096..=100_000).contains(&end), "{v}");
}

#[test]
fn two_senders_share_one_next_hop_chunk_by_chunk() {
    let r = Relay::start(|c| c.max_chunk_size = 4096);
    let b = Endpoint::bind().expect("B");
    let (mut a1, u1) = client(&r);
    let (mut a2, u2) = client(&r);
    // larger than the output watermark: the first message cannot go out in
    // one pass before the second is read
    let body = vec![1u8; 4_000_000];
    let w1 = Request::send(&[&r.uri(), &b.uri("b")], &[&u1], &body).to_wire();
    let w2 = Request::send(&[&r.uri(), &b.uri("b")], &[&u2], &body).to_wire();
    // both messages are under way before either body is sent in full
    let first = 64 * 1024;
    a1.send_raw(&w1[..first]).expect("a1 head");
    a2.send_raw(&w2[..first]).expect("a2 head");
    let t1 = std::thread::spawn(move || a1.send_raw(&w1[first..]).map(|_| a1));
    let t2 = std::thread::spawn(move || a2.send_raw(&w2[first..]).map(|_| a2));
    let mut bp = b.accept(T).expect("accept");
    let mut got = std::collections::HashMap::<String, usize>::new();
    let mut lag_at_first_end = None;
    while got.values().sum::<usize>() < 2 * body.len() {
        let f = bp.read_frame(T).expect("chunk");
        let n = got.entry(f.from_path()[1].clone()).or_default();
        *n += f.body.len();
        if *n == body.len() && lag_at_first_end.is_none() {
            lag_at_first_end = Some(2 * body.len() - got.values().sum::<usize>());
        }
        bp.send_response(&f, 200, None).expect("200");
    }
    t1.join().expect("a1").expect("a1 sends");
    t2.join().expect("a2").expect("a2 sends");
    // when the first message is complete, the other one is too, but for
    // about a turn of reads (1 MiB) and what the watermark lets queue
    let lag = lag_at_first_end.unwrap_or(usize::MAX);
    assert!(lag <= 2_000_000, "unfair: {lag} bytes behind");
}

/// A sender that half-closes right after its SEND still gets the relay's
/// 200 (it used to be dropped with the connection).
#[test]
fn half_closed_sender_still_gets_its_200() {
    let r = Relay::start(|_| {});
    let b = Endpoint::bind().expect("B");
    let (mut a, a_uri) = client(&r);
    let req = Request::send(&[&r.uri(), &b.uri("b")], &[&a_uri], b"last words");
    a.send_request(&req).expect("send");
    a.shutdown_write().expect("half-close");
    let ok = a.read_frame(T).expect("the 200 after the half-close");
    assert_eq!((ok.status_code(), ok.tid()), (Some(200), req.tid.clone()));
    let mut bp = b.accept(T).expect("accept");
    assert_eq!(bp.read_frame(T).expect("B reads").body, b"last words");
}

/// A SEND and the end of the stream in one burst: the relay answers and
/// then closes its side too. (Guards the short-read optimisation: no read
/// again after a read that did not fill its buffer, unless the event said
/// the peer shut down. The end of the stream, reported once by the
/// edge-triggered poller together with that data, must still be read.)
#[test]
fn sender_closing_with_its_send_is_answered_and_closed() {
    let r = Relay::start(|_| {});
    let b = Endpoint::bind().expect("B");
    for i in 0..20 {
        let (mut a, a_uri) = client(&r);
        let body = format!("last words {i}");
        let req = Request::send(&[&r.uri(), &b.uri("b")], &[&a_uri], body.as_bytes());
        let mut wire = req.to_wire();
        // the half-close right behind the bytes, before the relay reads them
        a.send_raw(&std::mem::take(&mut wire)).expect("send");
        a.shutdown_write().expect("half-close");
        let ok = a.read_frame(T).expect("the 200 after the half-close");
        assert_eq!((ok.status_code(), ok.tid()), (Some(200), req.tid.clone()));
        match a.read_frame(T) {
            Err(PeerError::Closed(_)) => {}
            other => panic!("round {i}: the relay did not close: {other:?}"),
        }
    }
}

/// The end of the stream arriving alone, after the relay's last read took
/// everything there was (a short read, after which the relay does not read
/// again until a new event): the event for the shutdown must still be seen
/// and the connection closed.
#[test]
fn sender_closing_after_its_200_is_closed() {
    let r = Relay::start(|_| {});
    let b = Endpoint::bind().expect("B");
    for i in 0..5 {
        let (mut a, a_uri) = client(&r);
        let req = Request::send(&[&r.uri(), &b.uri("b")], &[&a_uri], b"then nothing");
        a.send_request(&req).expect("send");
        let ok = a.read_frame(T).expect("the 200");
        assert_eq!((ok.status_code(), ok.tid()), (Some(200), req.tid.clone()));
        std::thread::sleep(Duration::from_millis(20));
        a.shutdown_write().expect("half-close");
        match a.read_frame(T) {
            Err(PeerError::Closed(_)) => {}
            other => panic!("round {i}: the relay did not close: {other:?}"),
        }
    }
}

/// A next hop that stops reading mid-message: after `transaction_timeout`
/// without progress the relay closes it, the sender gets a REPORT and a 413
/// instead of the 200 (the relay dropped the chunk still arriving) and is
/// read again (its rest, within the refusal slack, is swallowed), and
/// other sessions go on.
#[test]
fn next_hop_that_stops_reading_is_closed_and_reported() {
    let r = Relay::start(|c| c.transaction_timeout = Duration::from_secs(1));
    let b = Endpoint::bind().expect("B");
    let stream = std::net::TcpStream::connect(r.addr).expect("connect");
    let a_uri = format!("msrp://{}/a;tcp", stream.local_addr().expect("addr"));
    let mut writer = stream.try_clone().expect("clone");
    let mut a = Peer::from_stream(stream).expect("peer");
    let body = vec![5u8; 8_000_000];
    let req = Request::send(&[&r.uri(), &b.uri("b")], &[&a_uri], &body);
    let tid = req.tid.clone();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(&req.to_wire())
    });
    let _stuck = b.accept(T).expect("relay connects to B, which never reads");
    let (mut report, mut ok) = (None, None);
    while report.is_none() || ok.is_none() {
        let f = a
            .read_frame(Duration::from_secs(20))
            .expect("REPORT and 413");
        match f.method() {
            Some(m) if m == "REPORT" => report = Some(f),
            _ => ok = Some(f),
        }
    }
    sender
        .join()
        .expect("sender")
        .expect("the whole body was taken");
    let report = report.expect("report");
    // the first failure of the chunk reports: its response timeout (the
    // first outgoing chunk's last byte went out) or the stuck next hop
    let status = report.header("Status").unwrap_or_default();
    assert!(
        status == "000 408 Request Timeout" || status == "000 408 Next Hop Connection Lost",
        "{}",
        report.summary()
    );
    assert_eq!(
        ok.map(|f| (f.status_code(), f.tid())),
        Some((Some(413), tid))
    );
    // the relay still works for this sender
    let c = Endpoint::bind().expect("C");
    let req = Request::send(&[&r.uri(), &c.uri("c")], &[&a_uri], b"still here");
    a.send_request(&req).expect("send");
    let mut cp = c.accept(T).expect("accept C");
    assert_eq!(cp.read_frame(T).expect("C reads").body, b"still here");
}

/// A client that sends requests and never reads the answers: once what is
/// queued for it passes the high watermark the relay reads no more of its
/// requests (its writes block instead of the relay's memory growing), and
/// the stall timer closes it; other sessions go on meanwhile.
#[test]
fn client_that_never_reads_is_not_read_either() {
    let r = Relay::start(|c| c.transaction_timeout = Duration::from_secs(4));
    let stream = std::net::TcpStream::connect(r.addr).expect("connect");
    let a_uri = format!("msrp://{}/a;tcp", stream.local_addr().expect("addr"));
    // the first To-Path URI is not the relay's: every SEND gets a 481 and a
    // 481 REPORT, nothing is forwarded
    let foreign = "msrp://192.0.2.1:2855/x;tcp";
    let one = Request::send(&[foreign, foreign], &[&a_uri], b"x").to_wire();
    let mut many = Vec::with_capacity(one.len() * 300_000);
    for _ in 0..300_000 {
        many.extend_from_slice(&one);
    }
    let mut writer = stream.try_clone().expect("clone");
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        let r = writer.write_all(&many);
        d.store(true, Ordering::SeqCst);
        r
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !done.load(Ordering::SeqCst),
        "the relay read every request of a client that reads nothing"
    );
    // meanwhile another session is served
    let b = Endpoint::bind().expect("B");
    let (mut c, c_uri) = client(&r);
    c.send_request(&Request::send(&[&r.uri(), &b.uri("b")], &[&c_uri], b"hi"))
        .expect("send");
    assert_eq!(c.read_frame(T).expect("200").status_code(), Some(200));
    // the stall timer closes the silent reader: its blocked write fails
    let res = sender.join().expect("sender");
    assert!(res.is_err(), "the connection was not closed");
    drop(stream);
}
