//! Read-rate limit of one connection (modparam `max_read_rate`, script
//! function `msrp_set_read_rate()`): a token bucket the read path asks how
//! many bytes it may take from the socket now.
//!
//! The relay limits a sender by reading it slower, never by buffering: a
//! connection whose bucket is empty is not read until time refills it, its
//! socket's receive buffer fills, and TCP's flow control holds the sender
//! back (the feature request this module answers: "you do so by pulling
//! from the TCP buffer at a lower rate").
//!
//! Sans-IO: the caller passes the time in, so the arithmetic is tested
//! without sleeping.

use std::time::{Duration, Instant};

/// The bucket holds at most this much of the rate: after an idle spell a
/// connection may read one second's worth at once, no more.
pub const BURST: Duration = Duration::from_secs(1);
/// A throttled connection is read again once this much of its rate has
/// accumulated (about ten reads per second, whatever the rate), so a
/// trickle of window updates does not turn into a stream of tiny reads.
const QUANTUM: Duration = Duration::from_millis(100);
/// A read never takes more than this at once (the engine's read size).
const MAX_QUANTUM: u64 = crate::config::READ_CHUNK as u64;

const NANOS: u128 = 1_000_000_000;

/// Bytes per second for one connection, with up to [`BURST`] of them
/// saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bytes per second (never 0: no limit is no bucket).
    rate: u64,
    /// Bytes that may be read now; below 0 when a read through a TLS or
    /// WebSocket layer produced more than it was allowed (a debt repaid
    /// before the next read).
    level: i64,
    /// The time `level` is filled up to.
    last: Instant,
}

impl TokenBucket {
    /// A bucket for `rate` bytes per second (at least 1), full: a new
    /// connection may send its first second's worth at once.
    pub fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(1);
        TokenBucket {
            rate,
            level: capacity(rate),
            last: now,
        }
    }

    /// Bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the rate from `now` on: what accumulated so far counts at
    /// the old rate, and no more than one second of the new rate stays.
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(1);
        self.level = self.level.min(capacity(self.rate));
    }

    /// How many bytes may be read now: 0 until at least a quantum (100 ms
    /// of the rate, at most one read) has accumulated, then all of it.
    pub fn allowance(&mut self, now: Instant) -> usize {
        self.refill(now);
        if self.level < self.quantum() {
            return 0;
        }
        usize::try_from(self.level).unwrap_or(usize::MAX)
    }

    /// `n` bytes were read (more than the allowance leaves a debt).
    pub fn take(&mut self, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.level = self.level.saturating_sub(n);
    }

    /// When [`TokenBucket::allowance`] will be non-zero again.
    pub fn ready_at(&self) -> Instant {
        let need = self.quantum().saturating_sub(self.level);
        if need <= 0 {
            return self.last;
        }
        let nanos = (need as u128 * NANOS).div_ceil(self.rate as u128);
        let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        // (a wait past what Instant can hold: far enough)
        self.last
            .checked_add(wait)
            .unwrap_or(self.last + Duration::from_secs(86_400))
    }

    /// 100 ms of the rate, at least one byte, at most one read.
    fn quantum(&self) -> i64 {
        let q = (self.rate as u128 * QUANTUM.as_nanos() / NANOS) as u64;
        q.clamp(1, MAX_QUANTUM.min(capacity(self.rate) as u64)) as i64
    }

    /// Adds the bytes earned since `last`. `last` moves by exactly the time
    /// those whole bytes took, so fractions of a byte are not lost between
    /// frequent calls.
    fn refill(&mut self, now: Instant) {
        let cap = capacity(self.rate);
        if self.level >= cap {
            self.last = self.last.max(now);
            return;
        }
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        let earned = elapsed * self.rate as u128 / NANOS;
        if earned == 0 {
            return;
        }
        let earned = i64::try_from(earned).unwrap_or(i64::MAX);
        let level = self.level.saturating_add(earned);
        if level >= cap {
            self.level = cap;
            self.last = now;
        } else {
            self.level = level;
            let took = earned as u128 * NANOS / self.rate as u128;
            self.last += Duration::from_nanos(took as u64);
        }
    }
}

/// One [`BURST`] of `rate`.
fn capacity(rate: u64) -> i64 {
    let c = rate as u128 * BURST.as_nanos() / NANOS;
    i64::try_from(c).unwrap_or(i64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_with_one_second_of_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(MIB, t0);
        assert_eq!(b.allowance(t0), MIB as usize);
        b.take(MIB as usize);
        assert_eq!(b.allowance(t0), 0);
        // idle for ten seconds: still only one second's worth
        assert_eq!(b.allowance(t0 + ms(10_000)), MIB as usize);
    }

    #[test]
    fn refills_at_the_rate_in_quanta() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        b.take(1000);
        // a quantum is 100 bytes (100 ms) at 1000 B/s
        assert_eq!(b.allowance(t0 + ms(99)), 0);
        assert_eq!(b.ready_at(), t0 + ms(100));
        assert_eq!(b.allowance(t0 + ms(100)), 100);
        assert_eq!(b.allowance(t0 + ms(450)), 450);
        b.take(450);
        assert_eq!(b.ready_at(), t0 + ms(550));
        assert_eq!(b.allowance(t0 + ms(549)), 0);
        assert_eq!(b.allowance(t0 + ms(550)), 100);
    }

    #[test]
    fn what_is_read_over_time_follows_the_rate() {
        // a reader that reads whatever it may every 7 ms for 20 s reads
        // the burst plus 20 s of the rate, not a byte more
        let t0 = Instant::now();
        let rate = 3 * MIB + 12_345;
        let mut b = TokenBucket::new(rate, t0);
        let mut read = 0u64;
        let mut now = t0;
        while now < t0 + ms(20_000) {
            now += ms(7);
            let n = b.allowance(now);
            b.take(n);
            read += n as u64;
        }
        let expected = rate + 20 * rate;
        assert!(read <= expected, "{read} > {expected}");
        assert!(
            read >= expected - rate / 10 - 1,
            "{read} much below {expected}"
        );
    }

    #[test]
    fn fractions_of_a_byte_are_not_lost() {
        // 3 B/s polled every millisecond: each poll earns 0.003 bytes
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, t0);
        b.take(3);
        let mut read = 0;
        for i in 1..=10_000 {
            let n = b.allowance(t0 + ms(i));
            b.take(n);
            read += n;
        }
        assert_eq!(read, 30);
    }

    #[test]
    fn a_debt_delays_the_next_read() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        b.take(1500); // a TLS read produced more than allowed
        assert_eq!(b.allowance(t0 + ms(500)), 0);
        assert_eq!(b.ready_at(), t0 + ms(600));
        assert_eq!(b.allowance(t0 + ms(600)), 100);
    }

    #[test]
    fn quantum_is_at_most_one_read() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100 * MIB, t0);
        b.take(100 * MIB as usize);
        let read = crate::config::READ_CHUNK as u64;
        let at = b.ready_at();
        assert!(at - t0 <= Duration::from_nanos(read * 1_000_000_000 / (100 * MIB) + 1));
        assert_eq!(b.allowance(at), read as usize);
    }

    #[test]
    fn changing_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        b.take(1000);
        // 500 ms at 1000 B/s, then 10 B/s: of the 500 bytes earned at the
        // old rate, at most one second of the new rate stays
        b.set_rate(10, t0 + ms(500));
        assert_eq!(b.rate(), 10);
        assert_eq!(b.allowance(t0 + ms(500)), 10);
        // raising it: what was earned stays, the new rate applies onwards
        let mut b = TokenBucket::new(1000, t0);
        b.take(1000);
        b.set_rate(100_000, t0 + ms(200));
        // 200 bytes are less than a quantum (100 ms) of the new rate
        assert_eq!(b.allowance(t0 + ms(200)), 0);
        assert_eq!(b.allowance(t0 + ms(300)), 200 + 10_000);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(u64::MAX, t0);
        assert!(b.allowance(t0 + ms(1000 * 3600 * 24 * 365)) > 0);
        b.take(usize::MAX);
        b.take(usize::MAX);
        let _ = b.ready_at();
        let mut b = TokenBucket::new(0, t0);
        assert_eq!(b.rate(), 1);
        assert_eq!(b.allowance(t0), 1);
        b.take(1);
        assert_eq!(b.allowance(t0 + ms(999)), 0);
        assert_eq!(b.allowance(t0 + ms(1000)), 1);
        b.take(1);
        // a clock that goes back (a caller's mistake) earns nothing
        assert_eq!(b.allowance(t0), 0);
    }
}
