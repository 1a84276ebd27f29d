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

/// Segments in vectors (`None`: not made or given back, so touching one
/// panics); `limit` segments at most (shm running out).
struct Segs {
    segs: Vec<Option<Vec<Slot<Rec>>>>,
    limit: usize,
    makes: usize,
    unmakes: usize,
}

impl Segs {
    fn seg(&self, i: u32) -> &[Slot<Rec>] {
        self.segs[(i / SEGMENT) as usize]
            .as_deref()
            .expect("record of a segment made")
    }
}

impl Store<Rec> for Segs {
    fn slot(&self, i: u32) -> &Slot<Rec> {
        &self.seg(i)[(i % SEGMENT) as usize]
    }
    fn slot_mut(&mut self, i: u32) -> &mut Slot<Rec> {
        let seg = self.segs[(i / SEGMENT) as usize].as_mut();
        &mut seg.expect("record of a segment made")[(i % SEGMENT) as usize]
    }
    fn make(&mut self, n: usize) -> bool {
        if self.segs.iter().flatten().count() >= self.limit {
            return false;
        }
        if self.segs.len() <= n {
            self.segs.resize(n + 1, None);
        }
        assert!(self.segs[n].is_none(), "segment {n} made twice");
        self.segs[n] = Some(vec![Slot::EMPTY; SEGMENT as usize]);
        self.makes += 1;
        true
    }
    fn unmake(&mut self, n: usize) {
        let seg = self.segs[n].take().expect("a made segment given back");
        assert!(
            seg.iter().all(|s| !s.rec.used()),
            "segment {n} given back in use"
        );
        self.unmakes += 1;
    }
}

/// One list's memory, as the shm block would hold it.
struct Mem {
    head: Head,
    buckets: Vec<u32>,
    segs: Vec<Seg>,
    store: Segs,
}

impl Mem {
    fn new(capacity: usize, limit: usize) -> Self {
        let head = Head::new(capacity);
        Mem {
            buckets: vec![NIL; head.buckets()],
            segs: vec![Seg::UNMADE; head.segments()],
            head,
            store: Segs {
                segs: Vec::new(),
                limit,
                makes: 0,
                unmakes: 0,
            },
        }
    }
    fn list(&mut self) -> HashList<'_, Rec, Segs> {
        HashList::new(
            &mut self.head,
            &mut self.buckets,
            &mut self.segs,
            &mut self.store,
        )
    }
    /// Segments made now.
    fn made(&self) -> usize {
        self.store.segs.iter().flatten().count()
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

/// Issue 19: after the sessions close the segments go back (all but one,
/// kept as the hysteresis), and a refill finds every record again.
#[test]
fn fill_drain_refill_gives_segments_back() {
    let n = 5 * SEGMENT as u64;
    let mut m = Mem::new(n as usize, usize::MAX);
    let mut idx: Vec<u32> = (0..n).map(|k| m.list().add(rec(k, 1)).unwrap()).collect();
    assert_eq!(m.made(), 5);
    // closes in a scattered order (every 7th key first, as sessions end)
    let order: Vec<u64> = (0..7).flat_map(|r| (r..n).step_by(7)).collect();
    for &k in &order {
        m.list().remove(idx[k as usize]);
    }
    assert_eq!(m.head.used, 0);
    assert_eq!(m.made(), 1, "one empty segment kept");
    assert_eq!(m.head.made, SEGMENT);
    assert_eq!(m.store.unmakes, 4);
    for k in 0..n {
        idx[k as usize] = m.list().add(rec(k, 2)).expect("room again");
    }
    assert_eq!(m.made(), 5);
    for k in (0..n).step_by(97) {
        assert_eq!(value_of(&mut m, k), Some(2));
    }
    assert_eq!(
        m.list().view(usize::MAX, |r| Some(r.value)).len(),
        n as usize
    );
}

/// A segment given back while others have room is made again once they
/// are full, and its records are found like any other.
#[test]
fn segment_given_back_then_reused() {
    let mut m = Mem::new(3 * SEGMENT as usize, usize::MAX);
    for k in 0..2 * SEGMENT as u64 {
        assert_eq!(m.list().add(rec(k, 0)), Some(k as u32));
    }
    // free half of segment 0, then all of segment 1: it goes back
    for i in 0..SEGMENT / 2 {
        m.list().remove(i);
    }
    for i in SEGMENT..2 * SEGMENT {
        m.list().remove(i);
    }
    assert_eq!((m.store.unmakes, m.made()), (1, 1));
    // new records fill segment 0's holes first, then segment 1 anew
    for k in 0..SEGMENT / 2 + 10 {
        let i = m.list().add(rec(100_000 + k as u64, k)).unwrap();
        assert!(i < SEGMENT || k >= SEGMENT / 2, "record {k} at {i}");
    }
    assert_eq!((m.store.makes, m.made()), (3, 2));
    assert_eq!(
        value_of(&mut m, 100_000 + SEGMENT as u64 / 2 + 9),
        Some(SEGMENT / 2 + 9)
    );
    assert_eq!(value_of(&mut m, 100_000), Some(0));
    assert_eq!(value_of(&mut m, SEGMENT as u64 - 1), Some(0));
    assert_eq!(m.head.used, 2 * SEGMENT / 2 + 10);
}

/// A list moving across a segment boundary keeps its last segment instead
/// of making and giving it back on every add and remove.
#[test]
fn oscillating_at_a_boundary_keeps_the_segment() {
    let mut m = Mem::new(2 * SEGMENT as usize, usize::MAX);
    for k in 0..SEGMENT as u64 {
        m.list().add(rec(k, 0));
    }
    for k in 0..100 {
        let i = m.list().add(rec(1 << 40, k)).unwrap();
        assert_eq!(i, SEGMENT);
        m.list().remove(i);
    }
    assert_eq!((m.store.makes, m.store.unmakes), (2, 0));
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
        check_segments(&m)?;
    }

    /// Waves of sessions over several segments: each adds `a` records and
    /// then closes a random share of those live; every live record is
    /// found after each wave and segments follow the counts.
    #[test]
    fn waves_over_segments(waves in proptest::collection::vec((0u32..7000, 0u64..=100, any::<u64>()), 1..6)) {
        let mut m = Mem::new(4 * SEGMENT as usize, usize::MAX);
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut next_key = 0u64;
        for (a, pct, salt) in waves {
            for _ in 0..a {
                match m.list().add(rec(next_key, next_key as u32)) {
                    Some(i) => { model.insert(next_key, i); }
                    None => prop_assert_eq!(m.head.used, m.head.capacity),
                }
                next_key += 1;
            }
            let gone: Vec<u64> = model.keys().copied()
                .filter(|k| (k ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 100 < pct)
                .collect();
            for k in gone {
                m.list().remove(model.remove(&k).unwrap());
            }
            prop_assert_eq!(m.head.used as usize, model.len());
            for (&k, _) in model.iter().step_by(13) {
                prop_assert_eq!(value_of(&mut m, k), Some(k as u32));
            }
            prop_assert_eq!(m.list().view(usize::MAX, |r| Some(r.value)).len(), model.len());
            check_segments(&m)?;
        }
    }
}

/// Counts agree with the segments made, and at most one is kept empty.
fn check_segments(m: &Mem) -> Result<(), TestCaseError> {
    let made: Vec<&Seg> = m.segs.iter().filter(|g| g.is_made()).collect();
    prop_assert_eq!(made.len(), m.made());
    prop_assert_eq!(made.len() as u32 * SEGMENT, m.head.made);
    prop_assert_eq!(made.iter().map(|g| g.used).sum::<u32>(), m.head.used);
    prop_assert!(made.iter().filter(|g| g.used == 0).count() <= 1);
    Ok(())
}
