//! Transaction IDs for forwarded requests (RFC 4976 §6.4: a relay uses a new
//! transaction ID for every request it forwards). 16 characters of base62:
//! unique per worker (counter) and unpredictable across restarts (seed).

use bytes::{Bytes, BytesMut};

/// Length of every transaction ID [`TidGen::next_tid`] gives.
pub const TID_LEN: usize = 16;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Transaction IDs written into one shared buffer before a new one is
/// taken: a large SEND re-chunked at 16 KiB takes a tid per chunk, and
/// each kept in two places (the chunk's forward state and the tracker), so
/// a tid of its own cost two allocations and two frees per chunk (the
/// buffer and, on the first clone, the `Bytes` shared header). From a slab
/// a clone is a reference count. A tid still in use keeps its slab (512
/// bytes) alive: bounded by the transactions outstanding.
const SLAB_TIDS: usize = 32;

pub struct TidGen {
    state: u64,
    counter: u64,
    /// The rest of the current slab (see [`SLAB_TIDS`]).
    slab: BytesMut,
}

impl TidGen {
    pub fn new(seed: u64) -> Self {
        TidGen {
            state: seed | 1,
            counter: 0,
            slab: BytesMut::new(),
        }
    }

    fn mix(&mut self) -> u64 {
        // xorshift64*: cheap; uniqueness comes from the counter.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn next_tid(&mut self) -> Bytes {
        self.counter += 1;
        let r = self.mix();
        let mut out = [0u8; TID_LEN];
        // 6 chars of counter (62^6 > 5.6e10) + 10 random chars.
        let mut c = self.counter;
        for b in out[..6].iter_mut().rev() {
            *b = ALPHABET[(c % 62) as usize];
            c /= 62;
        }
        let mut x = r;
        for b in out[6..].iter_mut() {
            *b = ALPHABET[(x % 62) as usize];
            x /= 62;
        }
        if self.slab.capacity() < TID_LEN {
            self.slab = BytesMut::with_capacity(TID_LEN * SLAB_TIDS);
        }
        self.slab.extend_from_slice(&out);
        self.slab.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tids_split_off_slabs_are_unique_and_base62() {
        let mut g = TidGen::new(42);
        let mut seen = HashSet::new();
        for _ in 0..SLAB_TIDS * 5 + 3 {
            let t = g.next_tid();
            // exactly one tid per split, whatever the slab held before
            assert_eq!(t.len(), TID_LEN);
            assert!(t.iter().all(|b| ALPHABET.contains(b)));
            assert!(seen.insert(t), "unique");
        }
    }
}
