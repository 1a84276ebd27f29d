//! Random identifiers for transactions, messages and sessions.
//!
//! Uses the standard library's randomly keyed hasher plus a process-wide
//! counter, so identifiers are unique within a run and differ between runs
//! without pulling in a random number crate.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh 64-bit random value.
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    h.finish()
}

/// A random alphanumeric string of `len` characters.
pub fn random_alnum(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut word = random_u64();
    let mut left = 10; // 62^10 < 2^64: ten digits per word
    for _ in 0..len {
        if left == 0 {
            word = random_u64();
            left = 10;
        }
        out.push(char::from(ALPHABET[(word % 62) as usize]));
        word /= 62;
        left -= 1;
    }
    out
}

/// A transaction identifier (RFC 4975 §7.1: at least 64 bits of randomness).
pub fn transaction_id() -> String {
    random_alnum(16)
}

/// A Message-ID value.
pub fn message_id() -> String {
    random_alnum(20)
}

/// A session-id for an MSRP URI path.
pub fn session_id() -> String {
    random_alnum(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_alnum_and_distinct() {
        let a = transaction_id();
        let b = transaction_id();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(random_alnum(37).len(), 37);
    }
}
