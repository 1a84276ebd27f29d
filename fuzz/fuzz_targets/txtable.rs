//! The shared transaction table's logic (msrp-engine `txtable::slots`)
//! driven by random operations, as the workers and the timer drive it:
//! its invariants hold after every step (`Slots::check`: an exact free
//! list, `used` counting the rest), a stale handle never touches a reused
//! slot, and each worker collects exactly its own expired entries.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use msrp_core::FailureReport;
use msrp_engine::txtable::slots::{Record, Slots, TableHead};
use msrp_engine::txtable::{TxInfo, TxSlot};

const CAPACITY: u32 = 16;

#[derive(Debug, Arbitrary)]
enum Op {
    Insert { owner: u8, tid: Vec<u8> },
    Arm { which: u8, after: u16 },
    Remove { which: u8 },
    Stale { which: u8 },
    Expire { dt: u16 },
    Take { owner: u8 },
    Snapshot { limit: u8 },
}

fuzz_target!(|ops: Vec<Op>| {
    let mut head = TableHead::new(CAPACITY);
    let mut records = vec![Record::FREE; CAPACITY as usize];
    let mut t = Slots::new(&mut head, &mut records);
    t.format();
    let mut live: Vec<(TxSlot, u8)> = Vec::new();
    let mut gone: Vec<TxSlot> = Vec::new();
    let mut now = 1u64;
    for op in ops {
        match op {
            Op::Insert { owner, tid } => {
                let info = TxInfo {
                    tid: &tid,
                    message_id: b"m",
                    origin: "127.0.0.1:1".parse().expect("addr"),
                    failure_report: FailureReport::Yes,
                    range_start: 1,
                    total: None,
                };
                match t.insert(&info, owner % 8, "o", now) {
                    Ok(s) => {
                        assert!(live.iter().all(|(l, _)| l.index != s.index));
                        live.push((s, owner % 8));
                    }
                    Err(_) => assert_eq!(live.len(), CAPACITY as usize),
                }
            }
            Op::Arm { which, after } if !live.is_empty() => {
                let (s, _) = live[usize::from(which) % live.len()];
                t.arm(s, now + u64::from(after));
            }
            Op::Remove { which } if !live.is_empty() => {
                let (s, _) = live.remove(usize::from(which) % live.len());
                t.remove(s);
                gone.push(s);
            }
            Op::Stale { which } if !gone.is_empty() => {
                // An old handle: whatever now lives in that slot stays.
                let before = t.snapshot(usize::MAX, now);
                let s = gone[usize::from(which) % gone.len()];
                if live.iter().all(|(l, _)| *l != s) {
                    t.remove(s);
                    t.arm(s, 1);
                    assert_eq!(t.snapshot(usize::MAX, now), before);
                }
            }
            Op::Expire { dt } => {
                now += u64::from(dt);
                t.expire_due(now);
            }
            Op::Take { owner } => {
                for s in t.take_expired(owner % 8) {
                    assert!(live.contains(&(s, owner % 8)));
                }
            }
            Op::Snapshot { limit } => {
                let snap = t.snapshot(usize::from(limit), now);
                assert!(snap.entries.len() <= usize::from(limit));
                assert_eq!(snap.used as usize, live.len());
            }
            _ => {}
        }
        if let Err(e) = t.check() {
            panic!("table invariant broken: {e}");
        }
    }
});
