//! The resolver's state on the event loop: answers cached for their TTL,
//! lookups in flight (at most `concurrency`, one per name however many
//! requests wait for it), names queued behind them, and the requests
//! waiting for each name. No socket, no thread and no clock in here: the
//! engine passes the time, so the tests drive it with made-up instants.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap as HashMap;

use super::LookupError;

/// Names cached at most; past it expired entries go first, then all (a
/// burst of distinct names costs lookups, never unbounded memory).
const MAX_ENTRIES: usize = 4096;

/// Who waits for a name: a connection and the ticket of the request it
/// parked (a closed connection's ID may be reused; the ticket tells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    pub conn: crate::connid::ConnId,
    pub ticket: u64,
}

/// What the resolver thread found for a name.
#[derive(Debug, Clone)]
pub enum Found {
    /// Addresses, valid until the instant (the smallest TTL of the answer).
    Addrs(Vec<IpAddr>, Instant),
    /// No address: why, and for NXDOMAIN / no records the zone's negative
    /// TTL (RFC 2308 §5) when the answer carried one.
    Failed(LookupError, Option<Duration>),
}

/// The answer a request gets for its next hop's name.
pub type Answer = Result<IpAddr, LookupError>;

#[derive(Debug)]
struct Entry {
    answer: Answer,
    expires: Instant,
}

/// How much longer than `timeout` the loop waits for a lookup in flight
/// before it fails it itself (the thread bounds each lookup by `timeout`;
/// this only matters if the thread stopped answering).
const GRACE: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Pending {
    waiters: Vec<Waiter>,
    /// Queued: the name fails at this time unless it started; started: the
    /// loop gives up on the thread's answer at this time.
    deadline: Instant,
    started: bool,
}

/// Settings of [`DnsState`] (from the `dns_*` modparams).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Lookups in flight at once.
    pub concurrency: usize,
    /// How long a name may wait in the queue before its requests fail.
    pub timeout: Duration,
    /// Longest time a failed lookup is remembered.
    pub negative_ttl: Duration,
}

/// The resolver state of one worker (see the module doc).
#[derive(Debug)]
pub struct DnsState {
    limits: Limits,
    cache: HashMap<String, Entry>,
    pending: HashMap<String, Pending>,
    queue: VecDeque<String>,
    in_flight: usize,
    /// Names to hand to the resolver thread now.
    to_start: Vec<String>,
}

impl DnsState {
    pub fn new(limits: Limits) -> DnsState {
        DnsState {
            limits: Limits {
                concurrency: limits.concurrency.max(1),
                ..limits
            },
            cache: HashMap::default(),
            pending: HashMap::default(),
            queue: VecDeque::new(),
            in_flight: 0,
            to_start: Vec::new(),
        }
    }

    /// The cached answer for `name`, while it is valid at `now`.
    pub fn cached(&self, name: &str, now: Instant) -> Option<Answer> {
        self.cache
            .get(name)
            .filter(|e| e.expires >= now)
            .map(|e| e.answer.clone())
    }

    /// `w` waits for `name`: a lookup starts unless one is in flight or
    /// queued for it already (then `w` joins it).
    pub fn wait(&mut self, name: &str, w: Waiter, now: Instant) {
        if let Some(p) = self.pending.get_mut(name) {
            p.waiters.push(w);
            return;
        }
        self.pending.insert(
            name.to_string(),
            Pending {
                waiters: vec![w],
                deadline: now + self.limits.timeout,
                started: false,
            },
        );
        self.queue.push_back(name.to_string());
        self.start_queued(now);
    }

    /// Names to hand to the resolver thread (taken).
    pub fn take_starts(&mut self) -> Vec<String> {
        std::mem::take(&mut self.to_start)
    }

    /// Lookups in flight and names queued (for the statistics and tests).
    pub fn load(&self) -> (usize, usize) {
        (self.in_flight, self.queue.len())
    }

    /// The resolver thread answered for `name`: the answer is cached (at
    /// least until `now`, so the requests woken in this pass find it) and
    /// its waiters are returned; the next queued name may start.
    pub fn answered(&mut self, name: &str, found: Found, now: Instant) -> (Answer, Vec<Waiter>) {
        let (answer, expires) = match found {
            Found::Addrs(addrs, until) => match addrs.first() {
                Some(a) => (Ok(*a), until.max(now)),
                None => (
                    Err(LookupError::NoAddress {
                        name: name.to_string(),
                    }),
                    self.negative(None, now),
                ),
            },
            Found::Failed(why, ttl) => (Err(why), self.negative(ttl, now)),
        };
        if self.cache.len() >= MAX_ENTRIES {
            self.cache.retain(|_, e| e.expires >= now);
            if self.cache.len() >= MAX_ENTRIES {
                self.cache.clear();
            }
        }
        self.cache.insert(
            name.to_string(),
            Entry {
                answer: answer.clone(),
                expires,
            },
        );
        let waiters = match self.pending.remove(name) {
            Some(p) => {
                if p.started {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                p.waiters
            }
            None => Vec::new(),
        };
        self.start_queued(now);
        (answer, waiters)
    }

    /// Names whose wait passed their deadline at `now`: queued ones after
    /// `timeout` without a free slot, started ones `timeout` + 2 s without an
    /// answer from the thread. They are dropped (and remembered as failed)
    /// and their waiters returned with the reason.
    pub fn expire(&mut self, now: Instant) -> Vec<(Waiter, LookupError)> {
        let late: Vec<(String, bool)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(n, p)| (n.clone(), p.started))
            .collect();
        // out of the queue first: a slot freed below must not start them
        self.queue
            .retain(|n| !late.iter().any(|(l, started)| !started && l == n));
        let mut out = Vec::new();
        for (name, started) in late {
            let why = if started {
                LookupError::ThreadSilent { name: name.clone() }
            } else {
                LookupError::NoSlot { name: name.clone() }
            };
            let (_, waiters) = self.answered(&name, Found::Failed(why.clone(), None), now);
            out.extend(waiters.into_iter().map(|w| (w, why.clone())));
        }
        out
    }

    /// Whether any name waits for an answer.
    pub fn is_waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Failures are remembered briefly: the zone's negative TTL, at most
    /// `negative_ttl` (RFC 2308 §5 lets resolvers cap it).
    fn negative(&self, ttl: Option<Duration>, now: Instant) -> Instant {
        let d = ttl.map_or(self.limits.negative_ttl, |t| {
            t.min(self.limits.negative_ttl)
        });
        now + d
    }

    fn start_queued(&mut self, now: Instant) {
        while self.in_flight < self.limits.concurrency {
            let Some(name) = self.queue.pop_front() else {
                return;
            };
            if let Some(p) = self.pending.get_mut(&name) {
                p.started = true;
                p.deadline = now + self.limits.timeout + GRACE;
                self.in_flight += 1;
                self.to_start.push(name);
            }
        }
    }
}
