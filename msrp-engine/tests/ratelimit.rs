//! `max_read_rate` in the engine alone (no Kamailio): a limited client is
//! read at its rate after one second of burst, over real loopback sockets.

mod common;

use std::time::{Duration, Instant};

use common::*;
use msrp_tools::endpoint::Endpoint;
use msrp_tools::peer::Request;

const KIB: usize = 1024;

/// 768 KiB under 256 KiB/s: the first 256 KiB at once, the rest at the
/// rate, so B has the whole body after 2-4 s, intact, in order.
#[test]
fn limited_client_is_read_at_its_rate() {
    const RATE: usize = 256 * KIB;
    const LEN: usize = 3 * RATE;
    let r = Relay::start(|c| c.max_read_rate = RATE as u64);
    let b = Endpoint::bind().expect("B");
    let (mut a, a_uri) = client(&r);
    let body: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let req = Request::send(&[&r.uri(), &b.uri("b")], &[&a_uri], &body);
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        a.send_request(&req).expect("send");
        a
    });
    let mut bp = b.accept(T).expect("relay connects to B");
    let mut got = Vec::new();
    while got.len() < LEN {
        let f = bp.read_frame(Duration::from_secs(10)).expect("chunk");
        got.extend_from_slice(&f.body);
        bp.send_response(&f, 200, None).expect("200");
    }
    let took = start.elapsed();
    let _a = sender.join().expect("sender");
    assert!(got == body, "the body arrived changed");
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_secs(4),
        "768 KiB under 256 KiB/s took {took:?} (expected 2-4 s)"
    );
}
