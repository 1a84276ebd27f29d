use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Copy, PartialEq, Debug)]
struct Rec {
    used: bool,
    key: [u8; 8],
    value: u32,
}

impl Keyed for Rec {
    const EMPTY: Rec = Rec {
        used: false,
        key: [0; 8],
        value: 0,
    };
    fn used(&self) -> bool {
        self.used
    }
    fn key(&self) -> &[u8] {
        &self.key
    }
}

fn rec(key: u64, value: u32) -> Rec {
    Rec {
        used: true,
        key: key.to_le_bytes(),
        value,
    }
}

/// Segments in vectors; `limit` segments at most (shm running out).
struct Segs {
    segs: Vec<Vec<Slot<Rec>>>,
    limit: usize,
}

impl Store<Rec> for Segs {
    fn slot(&self, i: u32) -> &Slot<Rec> {
        &self.segs[(i / SEGMENT) as usize][(i % SEGMENT) as usize]
    }
    fn slot_mut(&mut self, i: u32) -> &mut Slot<Rec> {
        &mut self.segs[(i / SEGMENT) as usize][(i % SEGMENT) as usize]
    }
    fn make(&mut self, n: usize) -> bool {
        assert_eq!(n, self.segs.len(), "segments are made in order");
        if n >= self.limit {
            return false;
        }
        self.segs.push(vec![Slot::EMPTY; SEGMENT as usize]);
        true
    }
}

/// One list's memory, as the shm block would hold it.
struct Mem {
    head: Head,
    buckets: Vec<u32>,
    segs: Segs,
}

impl Mem {
    fn new(capacity: usize, limit: usize) -> Self {
        let head = Head::new(capacity);
        Mem {
            buckets: vec![NIL; head.buckets()],
            head,
            segs: Segs {
                segs: Vec::new(),
                limit,
            },
        }
    }
    fn list(&mut self) -> HashList<'_, Rec, Segs> {
        HashList::new(&mut self.head, &mut self.buckets, &mut self.segs)
    }
}

fn value_of(m: &mut Mem, key: u64) -> Option<u32> {
    m.list().find(&key.to_le_bytes(), |r| Some(r.value))
}

/// Issue 19: past the old 4096-entry cap, entry 5000 is still found (by
/// key, as another worker looks a session up) and listed.
#[test]
fn entry_5000_is_found_past_the_old_cap() {
    // workers 2 x max_connections 4000
    let mut m = Mem::new(2 * 4000, usize::MAX);
    for k in 0..6000u64 {
        assert_eq!(m.list().add(rec(k, k as u32 * 10)), Some(k as u32));
    }
    assert_eq!(value_of(&mut m, 5000), Some(50_000));
    assert_eq!(value_of(&mut m, 6000), None);
    let all = m.list().view(usize::MAX, |r| Some(r.value));
    assert_eq!(all.len(), 6000);
    // a listing of the first 500 is the start of the whole one
    assert_eq!(m.list().view(500, |r| Some(r.value)), all[..500]);
    assert_eq!(m.head.made, 2 * SEGMENT);
    assert_eq!(m.head.capacity, 2 * SEGMENT);
}

#[test]
fn buckets_follow_the_capacity_up_to_their_cap() {
    assert_eq!(Head::new(1).buckets(), SEGMENT as usize / 2);
    assert_eq!(Head::new(65_536).buckets(), 32_768);
    assert_eq!(Head::new(8_000_000).buckets(), MAX_BUCKETS);
}

#[test]
fn full_list_refuses_and_a_freed_record_is_reused() {
    let mut m = Mem::new(10, usize::MAX);
    assert_eq!(m.head.capacity, SEGMENT);
    for k in 0..SEGMENT as u64 {
        assert!(m.list().add(rec(k, 0)).is_some());
    }
    assert_eq!(m.list().add(rec(99_999, 0)), None, "full");
    m.list().remove(7);
    assert_eq!(m.list().add(rec(99_999, 1)), Some(7));
    assert_eq!(value_of(&mut m, 99_999), Some(1));
    assert_eq!(value_of(&mut m, 7), None);
}

#[test]
fn no_shared_memory_for_a_segment_refuses() {
    let mut m = Mem::new(3 * SEGMENT as usize, 1);
    for k in 0..SEGMENT as u64 {
        assert!(m.list().add(rec(k, 0)).is_some());
    }
    assert_eq!(m.list().add(rec(1 << 40, 0)), None);
    assert_eq!(m.head.used, SEGMENT);
}

#[test]
fn update_keeps_and_remove_twice_is_harmless() {
    let mut m = Mem::new(1, usize::MAX);
    let i = m.list().add(rec(5, 1)).unwrap();
    m.list().update(i, |r| r.value = 2);
    assert_eq!(value_of(&mut m, 5), Some(2));
    m.list().remove(i);
    m.list().remove(i);
    m.list().remove(NIL - 1);
    m.list().update(i, |r| r.value = 3);
    assert_eq!(m.head.used, 0);
    assert_eq!(value_of(&mut m, 5), None);
}

#[test]
fn equal_keys_are_all_found_by_the_filter() {
    let mut m = Mem::new(1, usize::MAX);
    for v in 0..5 {
        m.list().add(rec(1, v));
    }
    let got = m
        .list()
        .find(&1u64.to_le_bytes(), |r| (r.value == 3).then_some(r.value));
    assert_eq!(got, Some(3));
}

proptest! {
    /// Random adds and removes against a model: every live key is found
    /// with its value, removed ones are not, counts agree (chains stay
    /// intact through removals from their middle: few buckets, many keys).
    #[test]
    fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u64..600), 1..3000)) {
        let mut m = Mem::new(2 * SEGMENT as usize, usize::MAX);
        let mut model: HashMap<u64, (u32, u32)> = HashMap::new();
        for (n, (add, key)) in ops.into_iter().enumerate() {
            if add && !model.contains_key(&key) {
                let i = m.list().add(rec(key, n as u32)).expect("room");
                model.insert(key, (i, n as u32));
            } else if let Some((i, _)) = model.remove(&key) {
                m.list().remove(i);
            }
        }
        prop_assert_eq!(m.head.used as usize, model.len());
        for key in 0..600u64 {
            prop_assert_eq!(value_of(&mut m, key), model.get(&key).map(|v| v.1));
        }
        prop_assert_eq!(m.list().view(usize::MAX, |r| Some(r.value)).len(), model.len());
    }
}
