use super::*;
use proptest::prelude::*;

fn info(tid: &[u8]) -> TxInfo<'_> {
    TxInfo {
        tid,
        message_id: b"msg-1",
        origin: "127.0.0.1:5000".parse().expect("addr"),
        failure_report: FailureReport::Yes,
        range_start: 1,
        total: Some(100),
    }
}

/// A formatted table of `n` records, owned by the test.
struct Table {
    head: TableHead,
    records: Vec<Record>,
}

impl Table {
    fn new(n: u32) -> Self {
        let mut t = Table {
            head: TableHead::new(n),
            records: vec![Record::FREE; n as usize],
        };
        t.slots().format();
        t
    }

    fn slots(&mut self) -> Slots<'_> {
        Slots::new(&mut self.head, &mut self.records)
    }
}

#[test]
fn full_table_refuses_and_counts_then_reuses_a_freed_slot() {
    let mut t = Table::new(2);
    let mut s = t.slots();
    let a = s.insert(&info(b"t1"), 0, "a", 10).expect("room");
    let b = s.insert(&info(b"t2"), 0, "a", 10).expect("room");
    assert_eq!(
        s.insert(&info(b"t3"), 0, "a", 10),
        Err(TableFull { capacity: 2 })
    );
    s.remove(a);
    let c = s.insert(&info(b"t3"), 1, "b", 11).expect("freed slot");
    assert_eq!(c.index, a.index);
    assert_ne!(c.generation, a.generation);
    // The stale handle touches nothing.
    s.remove(a);
    s.arm(a, 5);
    let snap = s.snapshot(10, 20);
    assert_eq!(snap.used, 2);
    assert_eq!(
        snap.counters.iter().find(|(n, _)| *n == "table_full"),
        Some(&("table_full", 1))
    );
    assert!(snap.entries.iter().all(|e| e.expires_in_ms.is_none()));
    s.remove(b);
    s.remove(c);
    assert_eq!(s.snapshot(10, 20).used, 0);
    s.check().expect("invariants");
}

#[test]
fn armed_entries_expire_for_their_owner_only() {
    let mut t = Table::new(4);
    let mut s = t.slots();
    let a = s.insert(&info(b"t1"), 0, "a", 0).expect("room");
    let b = s.insert(&info(b"t2"), 3, "b", 0).expect("room");
    let unarmed = s.insert(&info(b"t3"), 3, "b", 0).expect("room");
    s.arm(a, 100);
    s.arm(b, 200);
    assert_eq!(s.expire_due(99), 0);
    assert_eq!(s.expire_due(100), 1 << 0);
    assert_eq!(s.take_expired(0), vec![a]);
    assert!(s.take_expired(3).is_empty());
    assert_eq!(s.expire_due(1000), 1 << 3, "a is expired already");
    assert_eq!(s.take_expired(3), vec![b]);
    // An expired entry cannot be re-armed; unarmed ones never expire.
    s.arm(b, 5000);
    assert_eq!(s.snapshot(10, 1000).entries[1].state, "expired");
    assert!(!s.take_expired(3).contains(&unarmed));
    s.check().expect("invariants");
}

#[test]
fn listing_shows_what_was_stored_cut_to_the_fields() {
    let mut t = Table::new(1);
    let mut s = t.slots();
    let long = [b'x'; 40];
    let slot = s.insert(&info(&long), 7, "[::1]:2855", 1000).expect("room");
    s.arm(slot, 31_000);
    s.count(Event::Report(Cause::Timeout));
    s.count(Event::ReportDropped);
    let snap = s.snapshot(1, 1500);
    assert_eq!(
        snap.entries,
        vec![EntryView {
            tid: "x".repeat(TID_MAX),
            worker: 7,
            state: "pending",
            age_ms: 500,
            expires_in_ms: Some(29_500),
            message_id: "msg-1".into(),
            origin: "[::1]:2855".into(),
            failure_report: "yes",
            range_start: 1,
            total: Some(100),
        }]
    );
    assert!(snap.counters.contains(&("timeout", 1)));
    assert!(snap.counters.contains(&("dropped_origin_gone", 1)));
    assert_eq!(s.snapshot(0, 1500).entries, vec![]);
}

#[test]
fn capacity_is_bounded_by_the_records_given() {
    let mut head = TableHead::new(10);
    let mut records = vec![Record::FREE; 3];
    let mut s = Slots::new(&mut head, &mut records);
    s.format();
    assert_eq!(s.snapshot(0, 0).capacity, 3);
    s.check().expect("invariants");
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8),
    Arm(usize, u16),
    Remove(usize),
    Expire(u16),
    Take(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4).prop_map(Op::Insert),
        (0usize..16, 0u16..500).prop_map(|(i, d)| Op::Arm(i, d)),
        (0usize..16).prop_map(Op::Remove),
        (0u16..1000).prop_map(Op::Expire),
        (0u8..4).prop_map(Op::Take),
    ]
}

/// What the table should hold for one live entry.
struct Model {
    slot: TxSlot,
    owner: u8,
    deadline: Option<u64>,
    expired: bool,
}

proptest! {
    /// Any sequence of operations keeps the free list exact, never hands
    /// out a live slot twice, wakes exactly the owners of newly expired
    /// entries, and each worker collects exactly its expired entries.
    #[test]
    fn operations_keep_the_table_consistent(ops in proptest::collection::vec(op(), 0..200)) {
        let mut t = Table::new(8);
        let mut s = t.slots();
        let mut live: Vec<Model> = Vec::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Insert(owner) => match s.insert(&info(b"tid"), owner, "o", now) {
                    Ok(slot) => {
                        prop_assert!(live.iter().all(|m| m.slot.index != slot.index));
                        live.push(Model { slot, owner, deadline: None, expired: false });
                    }
                    Err(_) => prop_assert_eq!(live.len(), 8),
                },
                Op::Arm(i, d) => {
                    let n = live.len().max(1);
                    if let Some(m) = live.get_mut(i % n) {
                        s.arm(m.slot, now + u64::from(d));
                        if !m.expired {
                            m.deadline = Some((now + u64::from(d)).max(1));
                        }
                    }
                }
                Op::Remove(i) => {
                    if !live.is_empty() {
                        let m = live.remove(i % live.len());
                        s.remove(m.slot);
                        s.remove(m.slot);
                    }
                }
                Op::Expire(dt) => {
                    now += u64::from(dt);
                    let mut woken = 0u64;
                    for m in live.iter_mut().filter(|m| !m.expired) {
                        if m.deadline.is_some_and(|d| d <= now) {
                            m.expired = true;
                            woken |= 1 << m.owner;
                        }
                    }
                    prop_assert_eq!(s.expire_due(now), woken);
                }
                Op::Take(w) => {
                    let mut want: Vec<TxSlot> = live
                        .iter()
                        .filter(|m| m.expired && m.owner == w)
                        .map(|m| m.slot)
                        .collect();
                    want.sort_by_key(|s| s.index);
                    prop_assert_eq!(s.take_expired(w), want);
                }
            }
            prop_assert_eq!(s.check(), Ok(()));
            prop_assert_eq!(s.snapshot(0, now).used as usize, live.len());
        }
    }
}
