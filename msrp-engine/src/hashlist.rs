//! The logic of the shared-memory lists (the connection-map mirror and the
//! connection list) as safe code: a hash table of plain records with a
//! fixed capacity, whose records live in segments made on demand.
//!
//! Other workers look entries up by key (a session ID, a peer address) for
//! every request that crosses workers, and at 100k sessions (issue 19) a
//! scan of every record under the lock would cost more than the relaying.
//! So records are chained per bucket (O(1) add, remove and find), and
//! since `max_connections` x workers records would take more shared memory
//! than Kamailio usually has (about 140-240 bytes each), only the bucket
//! array is allocated up front; records come in segments of [`SEGMENT`]
//! as they are needed, and a segment whose records are all free again is
//! given back (issue 19: memory back after the sessions close). Records are
//! taken from the lowest segment with room, so after a close wave the high
//! segments drain and the live records gather in the low ones.
//!
//! `src/kamailio/shm.rs` places the header, buckets and segments in
//! Kamailio shm behind one lock ([`Store`]); tests use plain vectors.

use std::hash::{DefaultHasher, Hasher};

/// No record (end of a chain or of the free list).
pub const NIL: u32 = u32::MAX;
/// Records per segment.
pub const SEGMENT: u32 = 4096;
/// Most buckets a list has (1 MiB of bucket heads, taken at start-up): a
/// huge `max_connections` x `workers` gets longer chains, not a bucket
/// array that would fill Kamailio's shm before the first connection.
pub const MAX_BUCKETS: usize = 1 << 18;

/// A record of a list.
pub trait Keyed: Copy + 'static {
    /// An unused record.
    const EMPTY: Self;
    fn used(&self) -> bool;
    /// What the record is found by.
    fn key(&self) -> &[u8];
}

/// A record and the link to the next one in its bucket (or free list).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot<S> {
    pub rec: S,
    next: u32,
}

impl<S: Keyed> Slot<S> {
    pub const EMPTY: Slot<S> = Slot {
        rec: S::EMPTY,
        next: NIL,
    };
}

/// Where the list stands; lives at the start of the shared block.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Head {
    /// Records in use.
    pub used: u32,
    /// Records in the segments made and not given back.
    pub made: u32,
    /// Records the list may hold (a multiple of [`SEGMENT`]).
    pub capacity: u32,
    /// Every made segment below this one is full (where `add` looks first).
    low: u32,
    /// Random key of the bucket hash, the same in every process (set
    /// before fork): peers choose addresses, and chains must stay short.
    seed: [u64; 2],
}

/// What the list knows of one segment (an array of them lies in the shared
/// block next to the bucket heads, [`Head::segments`] long).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seg {
    /// Records of the segment in use.
    pub used: u32,
    /// First free record of the segment (its own free list: a segment
    /// given back takes no link with it).
    free: u32,
    /// 1 when the segment is made (its records exist).
    made: u32,
}

impl Seg {
    /// A segment not made (or given back).
    pub const UNMADE: Seg = Seg {
        used: 0,
        free: NIL,
        made: 0,
    };

    pub fn is_made(&self) -> bool {
        self.made != 0
    }
}

impl Head {
    /// A list for at least `capacity` records, with a random hash key.
    pub fn new(capacity: usize) -> Self {
        let mut seed = [0u8; 16];
        // (no randomness: the hash is still a keyed SipHash, with key 0)
        let _ = getrandom::fill(&mut seed);
        let half = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let segs = capacity.div_ceil(SEGMENT as usize).max(1);
        Head {
            used: 0,
            made: 0,
            capacity: (segs * SEGMENT as usize).min((NIL - SEGMENT) as usize) as u32,
            low: 0,
            seed: [half(&seed[..8]), half(&seed[8..])],
        }
    }

    /// Segments the list may make.
    pub fn segments(&self) -> usize {
        self.capacity.div_ceil(SEGMENT) as usize
    }

    /// Buckets for this capacity: at most two records per bucket when full,
    /// and at most [`MAX_BUCKETS`].
    pub fn buckets(&self) -> usize {
        ((self.capacity as usize).next_power_of_two() / 2).min(MAX_BUCKETS)
    }

    fn hash(&self, key: &[u8]) -> u64 {
        let mut h = DefaultHasher::new();
        h.write_u64(self.seed[0]);
        h.write_u64(self.seed[1]);
        h.write(key);
        h.finish()
    }
}

/// Where the records are.
pub trait Store<S> {
    /// Record `i` of a segment made.
    fn slot(&self, i: u32) -> &Slot<S>;
    fn slot_mut(&mut self, i: u32) -> &mut Slot<S>;
    /// Makes segment `n` (records `n * SEGMENT ..`), every record
    /// [`Slot::EMPTY`]; false when there is no memory for it.
    fn make(&mut self, n: usize) -> bool;
    /// Gives segment `n` back (none of its records is in use); it is not
    /// touched again unless made anew.
    fn unmake(&mut self, n: usize);
}

/// A list: its header, bucket heads, segment counts and records, borrowed
/// under the lock.
pub struct HashList<'a, S, St> {
    pub head: &'a mut Head,
    pub buckets: &'a mut [u32],
    pub segs: &'a mut [Seg],
    pub store: &'a mut St,
    _rec: std::marker::PhantomData<S>,
}

impl<'a, S: Keyed, St: Store<S>> HashList<'a, S, St> {
    /// `buckets` has `head.buckets()` entries, each [`NIL`] in a new list;
    /// `segs` has `head.segments()`, each [`Seg::UNMADE`] in a new list.
    pub fn new(
        head: &'a mut Head,
        buckets: &'a mut [u32],
        segs: &'a mut [Seg],
        store: &'a mut St,
    ) -> Self {
        HashList {
            head,
            buckets,
            segs,
            store,
            _rec: std::marker::PhantomData,
        }
    }

    fn bucket(&self, key: &[u8]) -> usize {
        (self.head.hash(key) % self.buckets.len().max(1) as u64) as usize
    }

    /// Segment of record `i` if that segment is made.
    fn made_seg(&self, i: u32) -> Option<usize> {
        let n = (i / SEGMENT) as usize;
        self.segs.get(n).filter(|g| g.is_made()).map(|_| n)
    }

    /// Stores `rec`; its index, or `None` when the list is full (or shm is).
    pub fn add(&mut self, rec: S) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let n = self.room()?;
        let i = self.segs[n].free;
        let b = self.bucket(rec.key());
        let next = self.buckets[b];
        let s = self.store.slot_mut(i);
        self.segs[n].free = s.next;
        *s = Slot { rec, next };
        self.buckets[b] = i;
        self.segs[n].used += 1;
        self.head.used += 1;
        Some(i)
    }

    /// The lowest made segment with a free record, else a new one (the
    /// lowest not made): records stay packed low, and high segments empty.
    fn room(&mut self) -> Option<usize> {
        let from = self.head.low as usize;
        if let Some(n) = (from..self.segs.len()).find(|&n| self.segs[n].free != NIL) {
            self.head.low = n as u32;
            return Some(n);
        }
        let n = self.segs.iter().position(|g| !g.is_made())?;
        if !self.store.make(n) {
            return None;
        }
        // Lowest index first out, within the segment too.
        let first = n as u32 * SEGMENT;
        let mut free = NIL;
        for i in (first..first + SEGMENT).rev() {
            self.store.slot_mut(i).next = free;
            free = i;
        }
        self.segs[n] = Seg {
            used: 0,
            free,
            made: 1,
        };
        self.head.made += SEGMENT;
        // every other made segment is full (the search above found none)
        self.head.low = n as u32;
        Some(n)
    }

    /// Frees record `i` (nothing if it is not in use).
    pub fn remove(&mut self, i: u32) {
        let Some(n) = self.made_seg(i) else { return };
        if !self.store.slot(i).rec.used() {
            return;
        }
        let b = self.bucket(self.store.slot(i).rec.key());
        let after = self.store.slot(i).next;
        if self.buckets[b] == i {
            self.buckets[b] = after;
        } else {
            let mut k = self.buckets[b];
            while k != NIL {
                let s = self.store.slot_mut(k);
                if s.next == i {
                    s.next = after;
                    break;
                }
                k = s.next;
            }
        }
        *self.store.slot_mut(i) = Slot {
            rec: S::EMPTY,
            next: self.segs[n].free,
        };
        self.segs[n].free = i;
        self.segs[n].used -= 1;
        self.head.used -= 1;
        self.head.low = self.head.low.min(n as u32);
        if self.segs[n].used == 0 {
            self.emptied(n);
        }
    }

    /// Segment `n` has no record in use: give it back unless the other
    /// segments have fewer than half a segment free. That is the
    /// hysteresis: a list moving around a segment boundary keeps its last
    /// segment, and one given back is made again only after half a
    /// segment of adds (at most one empty segment is ever kept).
    fn emptied(&mut self, n: usize) {
        let free_elsewhere = self.head.made - SEGMENT - self.head.used;
        if free_elsewhere >= SEGMENT / 2 {
            self.store.unmake(n);
            self.segs[n] = Seg::UNMADE;
            self.head.made -= SEGMENT;
        }
    }

    /// Changes record `i` with `f`, if it is in use (the key must stay).
    pub fn update(&mut self, i: u32, f: impl FnOnce(&mut S)) {
        if self.made_seg(i).is_some() {
            let s = &mut self.store.slot_mut(i).rec;
            if s.used() {
                f(s);
            }
        }
    }

    /// The first record with key `key` that `f` accepts.
    pub fn find<V>(&self, key: &[u8], mut f: impl FnMut(&S) -> Option<V>) -> Option<V> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut k = self.buckets[self.bucket(key)];
        while k != NIL {
            let s = self.store.slot(k);
            if s.rec.used() && s.rec.key() == key {
                if let Some(v) = f(&s.rec) {
                    return Some(v);
                }
            }
            k = s.next;
        }
        None
    }

    /// `f` of the records in use that it accepts, the first `limit` of
    /// them (for listing: an RPC showing 500 need not copy 100k under the
    /// lock every other worker waits for).
    pub fn view<V>(&self, limit: usize, mut f: impl FnMut(&S) -> Option<V>) -> Vec<V> {
        (0..self.segs.len() as u32)
            .filter(|&n| self.segs[n as usize].is_made())
            .flat_map(|n| n * SEGMENT..(n + 1) * SEGMENT)
            .map(|i| &self.store.slot(i).rec)
            .filter(|r| r.used())
            .filter_map(&mut f)
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests;
