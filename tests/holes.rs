//! Peers that misbehave at the socket level, against a real Kamailio with
//! the module: a sender that half-closes, a next hop that stops reading
//! mid-message, a client that never reads its answers. (The same cases run
//! without Kamailio in msrp-engine/tests/engine.rs.)

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// A sender that half-closes right after its SEND still gets the relay's
/// 200 before the relay closes.
#[test]
fn half_closed_sender_still_gets_its_200() {
    let k = Kamailio::start(RelayOpts::default());
    let b = Endpoint::bind().expect("bind B");
    let mut a = Client::connect(&k);
    let req = Request::send(
        &[&k.relay_uri("relay"), &b.uri("b")],
        &[&a.uri],
        b"last words",
    );
    a.peer.send_request(&req).expect("send");
    a.peer.shutdown_write().expect("half-close");
    let ok = a
        .peer
        .read_frame(T)
        .unwrap_or_else(|e| panic!("no 200 after the half-close: {e}\n{}", k.log_tail(20)));
    assert_eq!((ok.status_code(), ok.tid()), (Some(200), req.tid.clone()));
    let mut bp = b.accept(T).expect("accept");
    assert_eq!(bp.read_frame(T).expect("B reads").body, b"last words");
}

/// A next hop that stops reading mid-message: after `transaction_timeout`
/// without progress the relay closes it; the sender gets its REPORT and a
/// 413 instead of the 200 (the relay dropped the chunk still arriving; its
/// rest, within the refusal slack, is swallowed) and can go on.
#[test]
fn next_hop_that_stops_reading_is_closed_and_reported() {
    let k = Kamailio::start(RelayOpts::default().modparam_int("transaction_timeout", 1));
    let b = Endpoint::bind().expect("bind B");
    let mut a = Client::connect(&k);
    let mut writer = a.peer.try_clone_stream().expect("clone");
    let req = Request::send(
        &[&k.relay_uri("relay"), &b.uri("b")],
        &[&a.uri],
        &vec![5u8; 8_000_000],
    );
    let tid = req.tid.clone();
    let wire = req.to_wire();
    let sender = std::thread::spawn(move || writer.write_all(&wire));
    let _stuck = b
        .accept(T)
        .expect("the relay connects to B, which never reads");
    let (mut report, mut ok) = (None, None);
    while report.is_none() || ok.is_none() {
        let f = a
            .peer
            .read_frame(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("REPORT and 413: {e}\n{}", k.log_tail(20)));
        match f.method() {
            Some(m) if m == "REPORT" => report = Some(f),
            _ => ok = Some(f),
        }
    }
    sender
        .join()
        .expect("sender")
        .expect("the whole body was taken");
    let status = report.and_then(|r| r.header("Status")).unwrap_or_default();
    assert!(status.starts_with("000 408 "), "{status}");
    assert_eq!(
        ok.map(|f| (f.status_code(), f.tid())),
        Some((Some(413), tid))
    );
    let c = Endpoint::bind().expect("bind C");
    relay_small_send(&k, &mut a, &c, &c.uri("c"), None, b"still here");
}

/// A client that sends requests and never reads the answers is not read
/// either once its answers pass the high watermark; the stall timer then
/// closes it, and other sessions go on meanwhile.
#[test]
fn client_that_never_reads_is_not_read_either() {
    let k = Kamailio::start(RelayOpts::default().modparam_int("transaction_timeout", 4));
    let stream = TcpStream::connect(k.relay_addr()).expect("connect");
    let a_uri = format!("msrp://{}/a;tcp", stream.local_addr().expect("addr"));
    // not this relay's URI first: a 481 and a 481 REPORT each, no forwarding
    let foreign = "msrp://192.0.2.1:2855/x;tcp";
    let one = Request::send(&[foreign, foreign], &[&a_uri], b"x").to_wire();
    let many: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * 300_000)
        .collect();
    let mut writer = stream.try_clone().expect("clone");
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let sender = std::thread::spawn(move || {
        let r = writer.write_all(&many);
        d.store(true, Ordering::SeqCst);
        r
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !done.load(Ordering::SeqCst),
        "the relay read every request of a client that reads nothing"
    );
    let b = Endpoint::bind().expect("bind B");
    let mut c = Client::connect(&k);
    relay_small_send(&k, &mut c, &b, &b.uri("b"), None, b"served meanwhile");
    let res = sender.join().expect("sender");
    assert!(res.is_err(), "the silent reader was not closed");
    assert!(
        k.wait_for_log("took nothing of its queue", Duration::from_secs(2)),
        "{}",
        k.log_tail(20)
    );
    drop(stream);
}
