//! The resolver state machine with made-up instants (no thread, no socket);
//! the thread and the engine are tested for real in tests/dns.rs.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::cache::{DnsState, Found, Limits, Waiter};
use super::LookupError;

fn state(concurrency: usize) -> DnsState {
    DnsState::new(Limits {
        concurrency,
        timeout: Duration::from_secs(5),
        negative_ttl: Duration::from_secs(10),
    })
}

fn w(conn: u64) -> Waiter {
    Waiter {
        conn: crate::connid::ConnId(conn),
        ticket: conn,
    }
}

/// A failure for `name` (which one does not matter to the state machine).
fn nx(name: &str) -> LookupError {
    LookupError::NoSuchDomain {
        name: name.to_string(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn one_lookup_per_name_for_all_its_waiters() {
    let t0 = Instant::now();
    let mut s = state(4);
    s.wait("a.example", w(1), t0);
    s.wait("a.example", w(2), t0);
    assert_eq!(s.take_starts(), vec!["a.example".to_string()]);
    assert!(s.take_starts().is_empty());
    let until = t0 + Duration::from_secs(30);
    let (answer, waiters) = s.answered("a.example", Found::Addrs(vec![ip("10.0.0.1")], until), t0);
    assert_eq!(answer.ok(), Some(ip("10.0.0.1")));
    assert_eq!(waiters, vec![w(1), w(2)]);
    assert_eq!(s.load(), (0, 0));
}

#[test]
fn answers_are_cached_for_their_ttl() {
    let t0 = Instant::now();
    let mut s = state(4);
    s.wait("a.example", w(1), t0);
    s.take_starts();
    let until = t0 + Duration::from_secs(30);
    let _ = s.answered(
        "a.example",
        Found::Addrs(vec![ip("10.0.0.1"), ip("10.0.0.2")], until),
        t0,
    );
    assert_eq!(
        s.cached("a.example", t0 + Duration::from_secs(29))
            .and_then(Result::ok),
        Some(ip("10.0.0.1"))
    );
    assert_eq!(
        s.cached("a.example", t0 + Duration::from_secs(30))
            .and_then(Result::ok),
        Some(ip("10.0.0.1"))
    );
    assert!(s
        .cached("a.example", t0 + Duration::from_secs(31))
        .is_none());
    assert!(s.cached("b.example", t0).is_none());
    // after expiry a new wait starts a new lookup
    s.wait("a.example", w(3), t0 + Duration::from_secs(31));
    assert_eq!(s.take_starts(), vec!["a.example".to_string()]);
}

#[test]
fn a_zero_ttl_answer_still_serves_the_requests_that_waited() {
    let t0 = Instant::now();
    let mut s = state(4);
    s.wait("a.example", w(1), t0);
    s.take_starts();
    // valid_until in the past (TTL 0, answer late)
    let t1 = t0 + Duration::from_secs(2);
    let _ = s.answered("a.example", Found::Addrs(vec![ip("10.0.0.1")], t0), t1);
    assert_eq!(
        s.cached("a.example", t1).and_then(Result::ok),
        Some(ip("10.0.0.1"))
    );
    assert!(s
        .cached("a.example", t1 + Duration::from_millis(1))
        .is_none());
}

#[test]
fn failures_are_cached_briefly() {
    let t0 = Instant::now();
    let mut s = state(4);
    for (name, ttl) in [
        ("nx.example", Some(Duration::from_secs(3))),
        ("slow.example", None),
    ] {
        s.wait(name, w(1), t0);
        s.take_starts();
        let (answer, _) = s.answered(name, Found::Failed(nx(name), ttl), t0);
        assert_eq!(
            answer.map_err(|e| e.to_string()),
            Err(format!("{name}: no such domain (NXDOMAIN)"))
        );
    }
    // the zone's negative TTL (3 s) when below dns_negative_ttl (10 s)
    let at = |d| t0 + Duration::from_secs(d);
    assert!(s.cached("nx.example", at(3)).is_some_and(|a| a.is_err()));
    assert!(s.cached("nx.example", at(4)).is_none());
    // no TTL (a timeout): dns_negative_ttl
    assert!(s.cached("slow.example", at(10)).is_some_and(|a| a.is_err()));
    assert!(s.cached("slow.example", at(11)).is_none());
    // a long negative TTL is capped
    s.wait("nx2.example", w(1), t0);
    s.take_starts();
    let _ = s.answered(
        "nx2.example",
        Found::Failed(nx("nx2.example"), Some(Duration::from_secs(3600))),
        t0,
    );
    assert!(s.cached("nx2.example", at(11)).is_none());
    // an empty answer fails too
    s.wait("empty.example", w(1), t0);
    s.take_starts();
    let (answer, _) = s.answered("empty.example", Found::Addrs(vec![], at(60)), t0);
    assert_eq!(
        answer.map_err(|e| e.to_string()),
        Err("empty.example has no address".to_string())
    );
}

#[test]
fn concurrency_is_bounded_and_the_queue_moves_on_answers() {
    let t0 = Instant::now();
    let mut s = state(2);
    for (i, n) in ["a", "b", "c", "d"].iter().enumerate() {
        s.wait(n, w(i as u64), t0);
    }
    assert_eq!(s.take_starts(), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(s.load(), (2, 2));
    // a waiter for a queued name joins it
    s.wait("c", w(9), t0);
    assert_eq!(s.load(), (2, 2));
    let (_, waiters) = s.answered("b", Found::Failed(nx("b"), None), t0);
    assert_eq!(waiters, vec![w(1)]);
    assert_eq!(s.take_starts(), vec!["c".to_string()]);
    let (_, waiters) = s.answered("c", Found::Addrs(vec![ip("10.0.0.3")], t0), t0);
    assert_eq!(waiters, vec![w(2), w(9)]);
    assert_eq!(s.take_starts(), vec!["d".to_string()]);
    assert_eq!(s.load(), (2, 0));
}

#[test]
fn queued_names_fail_after_the_timeout_but_lookups_in_flight_wait_for_the_thread() {
    let t0 = Instant::now();
    let mut s = state(1);
    s.wait("a", w(1), t0);
    s.wait("b", w(2), t0 + Duration::from_secs(1));
    assert_eq!(s.take_starts(), vec!["a".to_string()]);
    assert!(s.expire(t0 + Duration::from_secs(5)).is_empty());
    let late = s.expire(t0 + Duration::from_secs(6));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, w(2));
    assert!(late[0]
        .1
        .to_string()
        .contains("b: no resolver free within dns_timeout"));
    assert_eq!(s.load(), (1, 0));
    // "a" is still in flight; its answer frees the slot
    let (_, waiters) = s.answered("a", Found::Failed(nx("a"), None), t0);
    assert_eq!(waiters, vec![w(1)]);
    assert_eq!(s.load(), (0, 0));
    // an answer nobody waits for (any more) is cached all the same
    let (_, waiters) = s.answered(
        "z",
        Found::Addrs(vec![ip("10.0.0.9")], t0 + Duration::from_secs(9)),
        t0,
    );
    assert!(waiters.is_empty());
    assert_eq!(s.cached("z", t0).and_then(Result::ok), Some(ip("10.0.0.9")));
    assert_eq!(s.load(), (0, 0));
}

#[test]
fn a_lookup_the_thread_never_answers_fails_after_timeout_and_grace() {
    let t0 = Instant::now();
    let mut s = state(1);
    s.wait("a", w(1), t0);
    s.wait("b", w(2), t0);
    assert_eq!(s.take_starts(), vec!["a".to_string()]);
    // "b" waited its 5 s in the queue
    let late = s.expire(t0 + Duration::from_secs(5));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, w(2));
    // "a": 5 s timeout + 2 s grace
    assert!(s.expire(t0 + Duration::from_millis(6999)).is_empty());
    let late = s.expire(t0 + Duration::from_secs(7));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, w(1));
    assert!(late[0]
        .1
        .to_string()
        .contains("a: no answer from the resolver thread"));
    assert_eq!(s.load(), (0, 0));
    assert!(!s.is_waiting());
    // both are remembered as failed; a late answer is cached all the same
    assert!(s
        .cached("a", t0 + Duration::from_secs(7))
        .is_some_and(|a| a.is_err()));
    let (_, waiters) = s.answered(
        "a",
        Found::Addrs(vec![ip("10.0.0.1")], t0 + Duration::from_secs(60)),
        t0 + Duration::from_secs(8),
    );
    assert!(waiters.is_empty());
    assert_eq!(s.load(), (0, 0), "no slot freed twice");
    // a slot freed by an expiry starts the next queued name
    s.wait("c", w(3), t0);
    s.wait("d", w(4), t0);
    assert_eq!(s.take_starts(), vec!["c".to_string()]);
    s.expire(t0 + Duration::from_secs(7));
    assert_eq!(
        s.take_starts(),
        Vec::<String>::new(),
        "d expired in the queue at 5 s"
    );
}
