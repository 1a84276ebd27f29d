//! Read-rate limits (modparam `max_read_rate`, `msrp_set_read_rate()`): a
//! limited connection reads no more than its [`TokenBucket`] allows; with
//! the bucket empty it is not read at all and waits to be woken by time.
//! Its socket's receive buffer then fills and TCP holds the sender back,
//! so the relay buffers nothing more than for any other connection.
//!
//! The limit counts MSRP bytes (what reaches the parser, after TLS and
//! WebSocket decoding), the same figure on every transport; each socket
//! read is capped at the allowance, and what a TLS/WebSocket read produces
//! beyond it is a debt repaid before the next read.

use std::time::{Duration, Instant};

use crate::connid::ConnId;

use super::Relay;
use crate::config::READ_CHUNK;
use crate::rate::TokenBucket;

impl Relay {
    /// Limits connection `t` to `bytes_per_second` from now on (0: no
    /// limit); a new limit starts with one second's worth, less what was
    /// read and not handled yet. A connection waiting for its bucket runs again now: without
    /// a limit it reads, with the new rate it re-checks when it may.
    pub(crate) fn set_read_rate(&mut self, t: ConnId, bytes_per_second: u64) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        match (&mut c.read_rate, bytes_per_second) {
            (_, 0) => c.read_rate = None,
            (Some(b), r) => b.set_rate(r, now),
            (None, r) => {
                // what was read before and not handled yet (the rest of
                // the read that brought this frame) counts against it
                let mut b = TokenBucket::new(r, now);
                b.take(c.rbuf.len());
                c.read_rate = Some(b);
            }
        }
        if c.rate_waiting {
            c.rate_waiting = false;
            self.rate_waits.retain(|&(_, w)| w != t);
            self.sched.wake(t);
        }
        if let Some(slot) = c.listed {
            self.stats.conn_read_rate(slot, bytes_per_second);
        }
    }

    /// How many bytes `t` may read now ([`READ_CHUNK`] without a limit);
    /// 0: its bucket is empty, and it is listed to be woken when it has
    /// refilled.
    pub(crate) fn read_allowance(&mut self, t: ConnId) -> usize {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&t) else {
            return 0;
        };
        let Some(b) = c.read_rate.as_mut() else {
            return READ_CHUNK;
        };
        let n = b.allowance(now);
        if n == 0 && !c.rate_waiting {
            c.rate_waiting = true;
            self.rate_waits.push((b.ready_at(), t));
        }
        n.min(READ_CHUNK)
    }

    /// How long the loop may sleep in `poll` before the first waiting
    /// connection's bucket has refilled (at most `max`).
    pub(crate) fn throttle_timeout(&self, max: Duration, now: Instant) -> Duration {
        let Some(first) = self.rate_waits.iter().map(|&(at, _)| at).min() else {
            return max;
        };
        first.saturating_duration_since(now).min(max)
    }

    /// Runs the connections whose buckets have refilled by `self.now`.
    pub(crate) fn wake_throttled(&mut self) {
        let now = self.now;
        let mut i = 0;
        while i < self.rate_waits.len() {
            if self.rate_waits[i].0 > now {
                i += 1;
                continue;
            }
            let (_, t) = self.rate_waits.swap_remove(i);
            if let Some(c) = self.conns.get_mut(&t) {
                c.rate_waiting = false;
                self.sched.wake(t);
            }
        }
    }
}
