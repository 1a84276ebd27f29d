//! Transaction IDs for forwarded requests (RFC 4976 §6.4: a relay uses a new
//! transaction ID for every request it forwards). 16 characters of base62:
//! unique per worker (counter) and unpredictable across restarts (seed).

use bytes::Bytes;

/// Length of every transaction ID [`TidGen::next_tid`] gives.
pub const TID_LEN: usize = 16;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub struct TidGen {
    state: u64,
    counter: u64,
}

impl TidGen {
    pub fn new(seed: u64) -> Self {
        TidGen {
            state: seed | 1,
            counter: 0,
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
        Bytes::copy_from_slice(&out)
    }
}
