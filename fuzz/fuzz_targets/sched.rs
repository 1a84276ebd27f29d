//! The scheduler (stream slots, drain and window waiting) driven by random
//! operations, as the engine drives it (a source waits for one thing at a
//! time; connections are sources and destinations at once): its invariants
//! hold after every step (`Scheduler::check`), and once the destinations
//! drain, open their windows and end their chunks, nobody is left waiting
//! and no destination is left busy (no lost wake-up, no leaked state).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use msrp_engine::connid::ConnId;
use msrp_engine::sched::Scheduler;

/// Sources are tokens 0..6, destinations 4..8: 4 and 5 are both.
const TOKENS: u64 = 8;

fn src(n: u8) -> ConnId {
    ConnId(u64::from(n) % 6)
}

fn dest(n: u8) -> ConnId {
    ConnId(4 + u64::from(n) % 4)
}

#[derive(Debug, Arbitrary)]
enum Op {
    Begin(u8, u8),
    End(u8, u8),
    WaitDrain(u8, u8),
    WaitWindow(u8, u8),
    Drained(u8),
    WindowOpen(u8),
    Leave(u8, u8),
    Close(u8),
    Wake(u8),
    Pop,
}

fuzz_target!(|ops: Vec<Op>| {
    let mut sc = Scheduler::default();
    for op in ops {
        match op {
            Op::Begin(a, d) if sc.blocked(src(a)).is_none() => {
                let got = sc.begin_chunk(src(a), dest(d));
                assert_eq!(got, sc.blocked(src(a)).is_none());
                if got {
                    assert!(sc.streaming(dest(d)));
                }
            }
            Op::End(a, d) => {
                sc.end_chunk(dest(d), src(a));
            }
            Op::WaitDrain(a, d) if sc.blocked(src(a)).is_none() => sc.wait_drain(src(a), dest(d)),
            Op::WaitWindow(a, d) if sc.blocked(src(a)).is_none() => sc.wait_window(src(a), dest(d)),
            Op::Drained(d) => sc.drained(dest(d)),
            Op::WindowOpen(d) => sc.window_open(dest(d)),
            Op::Leave(a, d) => {
                sc.leave(dest(d), src(a));
            }
            Op::Close(t) => sc.conn_closed(ConnId(u64::from(t) % TOKENS)),
            Op::Wake(a) => sc.wake(src(a)),
            Op::Pop => {
                if let Some(t) = sc.pop_ready() {
                    assert!(sc.blocked(t).is_none(), "{t:?} runs but still waits");
                }
            }
            _ => {}
        }
        sc.check();
    }
    // the world settles: owners finish, queues drain, windows open
    for _ in 0..2 * TOKENS {
        for d in 0..4 {
            sc.drained(dest(d));
            sc.window_open(dest(d));
            for a in 0..6 {
                sc.end_chunk(dest(d), src(a));
            }
        }
        while sc.pop_ready().is_some() {}
        sc.check();
    }
    for t in 0..TOKENS {
        assert_eq!(sc.blocked(ConnId(t)), None, "{t} still waits");
        assert!(!sc.is_busy(ConnId(t)), "{t} still busy");
    }
    assert!(!sc.has_ready());
});
