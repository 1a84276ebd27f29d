use super::*;
use proptest::prelude::*;

const D: ConnId = ConnId(100);
const E: ConnId = ConnId(101);

fn s(n: usize) -> ConnId {
    ConnId(n as u64)
}

#[test]
fn slot_is_handed_round_robin_at_chunk_boundaries() {
    let mut sc = Scheduler::default();
    assert!(sc.begin_chunk(s(1), D));
    assert!(sc.streaming(D));
    assert!(!sc.begin_chunk(s(2), D));
    assert!(!sc.begin_chunk(s(3), D));
    assert_eq!(sc.blocked(s(2)), Some(Blocked::OnSlot(D)));
    // 1 ends and wants more: 2 and 3 go first
    assert!(sc.end_chunk(D, s(1)));
    assert!(!sc.streaming(D), "handed over, no chunk open yet");
    assert!(!sc.begin_chunk(s(1), D));
    assert_eq!(sc.pop_ready(), Some(s(2)));
    assert!(sc.begin_chunk(s(2), D));
    assert!(sc.end_chunk(D, s(2)));
    assert_eq!(sc.pop_ready(), Some(s(3)));
    assert!(sc.begin_chunk(s(3), D));
    assert!(sc.end_chunk(D, s(3)));
    assert_eq!(sc.pop_ready(), Some(s(1)));
    assert!(sc.begin_chunk(s(1), D));
    sc.check();
}

#[test]
fn a_handed_slot_cannot_be_taken_by_a_third_source() {
    let mut sc = Scheduler::default();
    assert!(sc.begin_chunk(s(1), D));
    assert!(!sc.begin_chunk(s(2), D));
    sc.end_chunk(D, s(1));
    // 2 was handed the slot but has not run yet
    assert!(!sc.begin_chunk(s(3), D));
    assert_eq!(sc.pop_ready(), Some(s(2)));
    assert!(sc.begin_chunk(s(2), D));
}

#[test]
fn only_the_owner_releases() {
    let mut sc = Scheduler::default();
    assert!(sc.begin_chunk(s(1), D));
    assert!(!sc.end_chunk(D, s(2)));
    assert!(sc.streaming(D));
}

#[test]
fn drain_and_window_waiters_wake_on_their_event_only() {
    let mut sc = Scheduler::default();
    sc.wait_drain(s(1), D);
    sc.wait_window(s(2), D);
    assert!(sc.has_drain_waiters(D));
    sc.window_open(D);
    assert_eq!(sc.pop_ready(), Some(s(2)));
    assert_eq!(sc.pop_ready(), None);
    assert_eq!(sc.blocked(s(1)), Some(Blocked::OnDrain(D)));
    sc.drained(D);
    assert_eq!(sc.pop_ready(), Some(s(1)));
    assert_eq!(sc.blocked(s(1)), None);
    assert!(!sc.is_busy(D));
}

#[test]
fn a_closed_destination_wakes_everyone_waiting_for_it() {
    let mut sc = Scheduler::default();
    assert!(sc.begin_chunk(s(1), D));
    assert!(!sc.begin_chunk(s(2), D));
    sc.wait_drain(s(3), D);
    sc.wait_window(s(4), D);
    sc.wait_drain(s(5), E);
    sc.conn_closed(D);
    let mut woken = Vec::new();
    while let Some(t) = sc.pop_ready() {
        woken.push(t.0);
    }
    woken.sort();
    assert_eq!(woken, vec![1, 2, 3, 4]);
    assert_eq!(sc.blocked(s(5)), Some(Blocked::OnDrain(E)));
    assert!(!sc.is_busy(D));
    sc.check();
}

#[test]
fn a_closed_source_gives_its_slot_to_the_next() {
    let mut sc = Scheduler::default();
    assert!(sc.begin_chunk(s(1), D));
    assert!(!sc.begin_chunk(s(2), D));
    sc.conn_closed(s(1));
    assert_eq!(sc.pop_ready(), Some(s(2)));
    assert!(sc.begin_chunk(s(2), D));
    // a waiting source that closes leaves no trace
    assert!(sc.begin_chunk(s(4), E));
    assert!(!sc.begin_chunk(s(5), E));
    sc.conn_closed(s(5));
    assert!(sc.end_chunk(E, s(4)));
    assert_eq!(sc.pop_ready(), None);
    assert!(!sc.is_busy(E));
    sc.check();
}

#[derive(Debug, Clone)]
enum Op {
    Begin(usize, bool),
    End(usize, bool),
    WaitDrain(usize, bool),
    WaitWindow(usize, bool),
    Drained(bool),
    WindowOpen(bool),
    Leave(usize, bool),
    Close(usize),
    CloseDest(bool),
    Pop,
}

fn dest(e: bool) -> ConnId {
    if e {
        E
    } else {
        D
    }
}

fn op() -> impl Strategy<Value = Op> {
    let src = 0usize..6;
    prop_oneof![
        (src.clone(), any::<bool>()).prop_map(|(a, b)| Op::Begin(a, b)),
        (src.clone(), any::<bool>()).prop_map(|(a, b)| Op::End(a, b)),
        (src.clone(), any::<bool>()).prop_map(|(a, b)| Op::WaitDrain(a, b)),
        (src.clone(), any::<bool>()).prop_map(|(a, b)| Op::WaitWindow(a, b)),
        any::<bool>().prop_map(Op::Drained),
        any::<bool>().prop_map(Op::WindowOpen),
        (src.clone(), any::<bool>()).prop_map(|(a, b)| Op::Leave(a, b)),
        src.prop_map(Op::Close),
        any::<bool>().prop_map(Op::CloseDest),
        Just(Op::Pop),
    ]
}

proptest! {
    /// Any sequence of events keeps the invariants, and once the
    /// destinations drain, open their windows and end their chunks, no
    /// source is left waiting: no lost wake-up.
    #[test]
    fn no_source_is_left_waiting(ops in proptest::collection::vec(op(), 0..200)) {
        let mut sc = Scheduler::default();
        for o in ops {
            match o {
                // a source waits for one thing at a time, as in the engine
                Op::Begin(a, e) if sc.blocked(s(a)).is_none() => { sc.begin_chunk(s(a), dest(e)); }
                Op::End(a, e) => { sc.end_chunk(dest(e), s(a)); }
                Op::WaitDrain(a, e) if sc.blocked(s(a)).is_none() => sc.wait_drain(s(a), dest(e)),
                Op::WaitWindow(a, e) if sc.blocked(s(a)).is_none() => sc.wait_window(s(a), dest(e)),
                Op::Drained(e) => sc.drained(dest(e)),
                Op::WindowOpen(e) => sc.window_open(dest(e)),
                Op::Leave(a, e) => { sc.leave(dest(e), s(a)); }
                Op::Close(a) => sc.conn_closed(s(a)),
                Op::CloseDest(e) => sc.conn_closed(dest(e)),
                Op::Pop => { sc.pop_ready(); }
                _ => {}
            }
            sc.check();
        }
        // the world settles: owners finish, queues drain, windows open
        for _ in 0..20 {
            for e in [false, true] {
                sc.drained(dest(e));
                sc.window_open(dest(e));
                for a in 0..6 {
                    sc.end_chunk(dest(e), s(a));
                }
            }
            while sc.pop_ready().is_some() {}
        }
        prop_assert!(sc.blocked.is_empty(), "still waiting: {:?}", sc.blocked);
    }

    /// Sources that keep sending into one destination get chunks in turn:
    /// no source gets two chunks while another waiting one gets none.
    #[test]
    fn sharing_is_fair(n in 2usize..8, rounds in 10usize..200, first in 0usize..8) {
        let mut sc = Scheduler::default();
        let mut sent = vec![0u32; n];
        let first = first % n;
        prop_assert!(sc.begin_chunk(s(first), D));
        for i in 0..n {
            if i != first {
                prop_assert!(!sc.begin_chunk(s(i), D));
            }
        }
        let mut owner = first;
        for _ in 0..rounds {
            sent[owner] += 1;
            prop_assert!(sc.end_chunk(D, s(owner)));
            prop_assert!(!sc.begin_chunk(s(owner), D));
            let next = sc.pop_ready();
            prop_assert!(next.is_some());
            owner = next.map_or(0, |t| t.0 as usize);
            prop_assert!(sc.begin_chunk(s(owner), D));
            let (lo, hi) = (sent.iter().min().copied().unwrap_or(0), sent.iter().max().copied().unwrap_or(0));
            prop_assert!(hi - lo <= 1, "unfair: {:?}", sent);
            sc.check();
        }
    }
}
