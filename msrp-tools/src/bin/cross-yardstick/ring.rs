//! A single-producer single-consumer ring of byte messages in memory both
//! sides share (here two threads; in the relay it would be Kamailio shm
//! between two forked workers), with an eventfd written only when the
//! consumer has said it is going to sleep.
//!
//! Safe code: the ring is words of `AtomicU64` (relaxed loads and stores
//! compile to plain moves), published by a release store of `tail` and
//! taken by a release store of `head`.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};

use rustix::event::{eventfd, EventfdFlags};

pub struct Ring {
    words: Box<[std::sync::atomic::AtomicU64]>,
    /// Next word the consumer reads (written by the consumer only).
    head: AtomicUsize,
    /// Next word the producer writes (written by the producer only).
    tail: AtomicUsize,
    /// The consumer is about to wait on `wake`.
    sleeping: AtomicBool,
    wake: OwnedFd,
}

impl Ring {
    /// A ring of `words` 8-byte words.
    pub fn new(words: usize) -> std::io::Result<Ring> {
        Ok(Ring {
            words: (0..words).map(|_| Default::default()).collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
            wake: eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?,
        })
    }

    /// The eventfd the consumer waits on.
    pub fn fd(&self) -> impl AsFd + '_ {
        self.wake.as_fd()
    }

    /// Appends `msg` (false: no room); wakes a sleeping consumer.
    pub fn push(&self, msg: &[u8]) -> bool {
        let cap = self.words.len();
        let need = 1 + msg.len().div_ceil(8);
        let tail = self.tail.load(Ordering::Relaxed);
        if cap - (tail - self.head.load(Ordering::Acquire)) < need {
            return false;
        }
        self.words[tail % cap].store(msg.len() as u64, Ordering::Relaxed);
        for (k, part) in msg.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..part.len()].copy_from_slice(part);
            self.words[(tail + 1 + k) % cap].store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
        self.tail.store(tail + need, Ordering::Release);
        // Pairs with the fence in `sleep`: either the consumer sees the new
        // tail before sleeping or we see `sleeping` and wake it.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
        }
        true
    }

    /// Takes the oldest message into `out` (false: empty).
    pub fn pop(&self, out: &mut Vec<u8>) -> bool {
        let cap = self.words.len();
        let head = self.head.load(Ordering::Relaxed);
        if head == self.tail.load(Ordering::Acquire) {
            return false;
        }
        let len = self.words[head % cap].load(Ordering::Relaxed) as usize;
        let n = len.div_ceil(8);
        out.clear();
        for k in 0..n {
            let w = self.words[(head + 1 + k) % cap].load(Ordering::Relaxed);
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(len);
        self.head.store(head + 1 + n, Ordering::Release);
        true
    }

    /// The consumer found the ring empty and wants to wait: true when it
    /// may (a producer will write the eventfd), false when a message came
    /// in the meantime.
    pub fn sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.head.load(Ordering::Relaxed) != self.tail.load(Ordering::Acquire) {
            self.sleeping.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// After waking: clears the eventfd.
    pub fn woke(&self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&self.wake, &mut b);
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Wakes the consumer whatever it is doing (shutdown).
    pub fn poke(&self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn messages_come_out_whole_and_in_order_across_the_wrap() {
        let r = Ring::new(16).unwrap();
        let mut out = Vec::new();
        for n in 0..100u8 {
            let msg: Vec<u8> = (0..(n % 40)).map(|i| i ^ n).collect();
            assert!(r.push(&msg), "room for message {n}");
            assert!(r.pop(&mut out));
            assert_eq!(out, msg);
        }
        assert!(!r.pop(&mut out), "empty");
    }

    #[test]
    fn a_full_ring_refuses_and_a_sleeper_is_woken() {
        let r = Ring::new(8).unwrap();
        assert!(r.push(&[1; 48]), "7 words");
        assert!(!r.push(&[2; 8]), "2 more do not fit");
        let mut out = Vec::new();
        assert!(!r.sleep(), "not empty: no sleep");
        assert!(r.pop(&mut out) && out == [1; 48]);
        assert!(r.sleep(), "empty: may sleep");
        assert!(r.push(&[3; 3]));
        let mut b = [0u8; 8];
        assert_eq!(
            rustix::io::read(&r.wake, &mut b).ok(),
            Some(8),
            "eventfd written"
        );
        r.woke();
        assert!(r.pop(&mut out) && out == [3; 3]);
    }
}
