//! The TLS server's session cache for resumption (RFC 8446 §2.2 tickets
//! the server keeps, RFC 5246 §7.4.1.2 session IDs), in slots allocated
//! once.
//!
//! rustls' default (`ServerSessionMemoryCache`, 256 entries) allocates a
//! key and a value on the heap per handshake and keeps the newest 256.
//! During a wave of new connections those small allocations land between
//! the connections' own memory, and after the wave closed they are among
//! the few live allocations left: each pins its heap page, so a worker
//! kept ~1.2 MiB of free heap resident (issue 19 item 3; README "Scale").
//! This store has the same policy (stateful, per worker, the newest
//! [`CAPACITY`] sessions, each used once for TLS 1.3) but copies keys and
//! values into one block reserved at the first session, so the cache does
//! not allocate between the connections (but for sessions with a client
//! certificate chain, over [`VALUE_MAX`], kept as rustls' cache would).

use std::fmt;
use std::sync::{Mutex, PoisonError};

use rustls::server::StoresServerSessions;

/// Sessions kept per store (as rustls' default cache).
const CAPACITY: usize = 256;
/// Longest key: rustls makes 32-byte ticket IDs (TLS 1.3) and session IDs
/// are at most 32 bytes (TLS 1.2).
const KEY_MAX: usize = 32;
/// Longest value kept in a slot: an encoded session is ~100 bytes plus its
/// SNI name. One with the client's certificate chain (mutual TLS) is
/// larger and is kept in its own allocation as rustls' cache would.
const VALUE_MAX: usize = 512;

#[derive(Clone)]
struct Entry {
    /// Order of insertion: the smallest is evicted first.
    seq: u64,
    key_len: u8,
    value_len: u16,
    key: [u8; KEY_MAX],
    value: [u8; VALUE_MAX],
    /// A value longer than [`VALUE_MAX`] (then `value_len` is 0).
    large: Option<Vec<u8>>,
}

impl Entry {
    fn key(&self) -> &[u8] {
        &self.key[..usize::from(self.key_len)]
    }

    fn value(&self) -> Vec<u8> {
        match &self.large {
            Some(v) => v.clone(),
            None => self.value[..usize::from(self.value_len)].to_vec(),
        }
    }
}

/// A session cache that allocates its storage once (see the module doc).
#[derive(Default)]
pub struct SessionSlots {
    inner: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// At most [`CAPACITY`], reserved in one block at the first `put`.
    entries: Vec<Entry>,
    next_seq: u64,
}

impl fmt::Debug for SessionSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSlots")
            .field("sessions", &self.slots().entries.len())
            .finish()
    }
}

impl SessionSlots {
    /// The slots; a panic elsewhere while they were held cannot leave them
    /// inconsistent (every change is one assignment), so a poisoned lock
    /// is used as is.
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions stored now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots().entries.len()
    }
}

impl Slots {
    fn find(&self, key: &[u8]) -> Option<usize> {
        self.entries.iter().position(|e| e.key() == key)
    }

    /// The slot a new session goes to: its key's, a new one while there
    /// is room, else the oldest one's.
    fn slot_for(&mut self, key: &[u8]) -> usize {
        if let Some(i) = self.find(key) {
            return i;
        }
        if self.entries.len() < CAPACITY {
            if self.entries.capacity() == 0 {
                self.entries.reserve_exact(CAPACITY);
            }
            self.entries.push(Entry {
                seq: 0,
                key_len: 0,
                value_len: 0,
                key: [0; KEY_MAX],
                value: [0; VALUE_MAX],
                large: None,
            });
            return self.entries.len() - 1;
        }
        let oldest = self.entries.iter().enumerate().min_by_key(|(_, e)| e.seq);
        oldest.map_or(0, |(i, _)| i)
    }
}

impl StoresServerSessions for SessionSlots {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let Ok(key_len) = u8::try_from(key.len()) else {
            return false;
        };
        if key.len() > KEY_MAX {
            return false;
        }
        let mut s = self.slots();
        let i = s.slot_for(&key);
        let seq = s.next_seq;
        s.next_seq += 1;
        let e = &mut s.entries[i];
        (e.seq, e.key_len) = (seq, key_len);
        e.key[..key.len()].copy_from_slice(&key);
        match u16::try_from(value.len()) {
            Ok(n) if value.len() <= VALUE_MAX => {
                e.value[..value.len()].copy_from_slice(&value);
                (e.value_len, e.large) = (n, None);
            }
            _ => (e.value_len, e.large) = (0, Some(value)),
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let s = self.slots();
        s.find(key).map(|i| s.entries[i].value())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut s = self.slots();
        let i = s.find(key)?;
        Some(s.entries.swap_remove(i).value())
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Vec<u8> {
        let mut k = vec![0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_be_bytes());
        k
    }

    #[test]
    fn stores_gets_and_takes_once() {
        let s = SessionSlots::default();
        assert!(s.put(key(1), b"one".to_vec()));
        assert!(s.put(key(2), b"two".to_vec()));
        assert_eq!(s.get(&key(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(s.take(&key(2)).as_deref(), Some(&b"two"[..]));
        assert_eq!(s.take(&key(2)), None);
        assert_eq!(s.get(&key(1)).as_deref(), Some(&b"one"[..]));
        // a key stored again replaces its value
        assert!(s.put(key(1), b"uno".to_vec()));
        assert_eq!(s.get(&key(1)).as_deref(), Some(&b"uno"[..]));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn keeps_the_newest_capacity_sessions_in_one_block() {
        let s = SessionSlots::default();
        for i in 0..CAPACITY * 3 {
            assert!(s.put(key(i), i.to_be_bytes().to_vec()));
            // taking some leaves holes that new sessions fill
            if i % 7 == 0 {
                assert!(s.take(&key(i)).is_some());
            }
        }
        assert_eq!(s.len(), CAPACITY);
        assert_eq!(s.slots().entries.capacity(), CAPACITY, "never grew");
        let newest = CAPACITY * 3 - 1;
        assert_eq!(s.get(&key(newest)), Some(newest.to_be_bytes().to_vec()));
        assert_eq!(s.get(&key(1)), None, "the oldest went first");
        let kept = (0..CAPACITY * 3).filter(|&i| s.get(&key(i)).is_some());
        assert!(kept.clone().all(|i| i >= CAPACITY), "only newer ones kept");
        assert_eq!(kept.count(), CAPACITY);
    }

    #[test]
    fn keeps_large_values_apart_and_refuses_long_keys() {
        let s = SessionSlots::default();
        assert!(!s.put(vec![1; KEY_MAX + 1], b"v".to_vec()));
        assert!(s.put(key(1), vec![7; VALUE_MAX]));
        assert_eq!(s.get(&key(1)), Some(vec![7; VALUE_MAX]));
        // a session with a client certificate chain
        assert!(s.put(key(2), vec![8; 3000]));
        assert_eq!(s.get(&key(2)), Some(vec![8; 3000]));
        // and a small one in the same slot again
        assert!(s.put(key(2), b"small".to_vec()));
        assert_eq!(s.take(&key(2)).as_deref(), Some(&b"small"[..]));
        assert_eq!(s.len(), 1);
    }
}
