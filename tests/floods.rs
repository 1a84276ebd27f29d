//! Connection floods: idle connections (slowloris) and connections that
//! trickle a byte at a time fill `max_connections`; established sessions
//! keep working, connections beyond the limit are closed at once, and the
//! first-request timer (RFC 4976 §6.1) frees the slots.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn idle_and_trickling_connections_cannot_starve_established_sessions() {
    let first_request_timeout = 5;
    let k = Kamailio::start(
        RelayOpts::default()
            .modparam_int("max_connections", 12)
            .modparam_int("first_request_timeout", first_request_timeout),
    );
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"before the flood");

    // Flood until the relay refuses: every other connection trickles bytes
    // of a head that never ends, the others stay silent.
    let mut flood: Vec<TcpStream> = Vec::new();
    let mut refused = None;
    for i in 0..20 {
        let mut s = TcpStream::connect(k.relay_addr()).expect("connect");
        let t0 = Instant::now();
        if closed_within(&mut s, Duration::from_millis(100)) {
            refused = Some(t0.elapsed());
            break;
        }
        if i % 2 == 1 {
            s.write_all(b"M").expect("trickle");
        }
        flood.push(s);
    }
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "{} connections accepted with max_connections 12\n{}",
            flood.len(),
            k.log_tail(20)
        )
    });
    // A's connection and the relay's to B hold two of the 12 slots (the
    // harness's start-up probe may hold one more for a moment)
    assert!(
        (9..=10).contains(&flood.len()),
        "refused after {} flood connections",
        flood.len()
    );
    eprintln!(
        "{} flood connections accepted; the next one closed after {refused:?}",
        flood.len()
    );
    assert!(
        k.wait_for_log("max_connections (12) reached", Duration::from_secs(2)),
        "no log line for the refused connection\n{}",
        k.log_tail(20)
    );

    // The established session goes on while the flood holds every slot,
    // the trickling connections sending a byte every 500 ms.
    for (i, s) in flood.iter_mut().enumerate() {
        if i % 2 == 1 {
            let _ = s.write_all(b"S");
        }
    }
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"during the flood");
    std::thread::sleep(Duration::from_millis(500));
    for (i, s) in flood.iter_mut().enumerate() {
        if i % 2 == 1 {
            let _ = s.write_all(b"R");
        }
    }

    // first_request_timeout closes both kinds, and new clients get in.
    let deadline = Instant::now() + Duration::from_secs(first_request_timeout as u64 + 4);
    for s in flood.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_within(s, left.max(Duration::from_millis(1))),
            "a flood connection outlived first_request_timeout\n{}",
            k.log_tail(20)
        );
    }
    let mut c = Client::connect(&k);
    let bp = relay_small_send(&k, &mut c, &b, &b_uri, Some(bp), b"after the flood");
    relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"and the first session");
}
