//! Next-hop host names resolved off the event loop.
//!
//! A lookup may take seconds (a resolver that does not answer: the whole
//! timeout), and the worker's event loop serves every session of the
//! worker, so the loop never resolves a name itself. It asks
//! [`thread::ResolverThread`] (started on the first name, in the worker
//! process after fork) and parks the request that needs the name; the
//! request's connection is not read further until the answer is back, and
//! everything else goes on. [`cache::DnsState`] keeps the answers for their
//! TTL (failures briefly), one lookup per name, and at most `dns_concurrency`
//! in flight. IP literals never get here.

pub mod cache;
mod error;
pub mod thread;

use std::sync::Arc;
use std::time::Instant;

use mio::{Registry, Token};

pub use cache::{Answer, DnsState, Found, Limits, Waiter};
pub use error::LookupError;
pub use thread::{ResolverThread, Settings};

use crate::config::DnsConfig;

/// One worker's resolver: the state on the loop and, once a name was
/// needed, the thread.
pub struct Dns {
    state: DnsState,
    settings: Settings,
    thread: Option<ResolverThread>,
    /// The thread could not be started (the reason, for every waiter).
    broken: Option<LookupError>,
    /// Answers that did not come from the thread (it is broken or gone).
    local: Vec<(String, Found)>,
    next_ticket: u64,
}

impl Dns {
    pub fn new(cfg: &DnsConfig) -> Dns {
        Dns {
            state: DnsState::new(Limits {
                concurrency: cfg.concurrency,
                timeout: cfg.timeout,
                negative_ttl: cfg.negative_ttl,
            }),
            settings: Settings {
                server: cfg.server,
                timeout: cfg.timeout,
            },
            thread: None,
            broken: None,
            local: Vec::new(),
            next_ticket: 0,
        }
    }

    /// The cached answer for `name` (lower case), while valid at `now`.
    pub fn cached(&self, name: &str, now: Instant) -> Option<Answer> {
        self.state.cached(name, now)
    }

    /// A new ticket for a parked request.
    pub fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    /// `w` waits for `name`; the lookup starts now or when a slot frees.
    /// The thread is started here the first time (`token`: the event-loop
    /// token of its waker).
    pub fn wait(&mut self, name: &str, w: Waiter, now: Instant, registry: &Registry, token: Token) {
        self.state.wait(name, w, now);
        for name in self.state.take_starts() {
            self.send(name, registry, token);
        }
    }

    /// Whether answers wait for [`Dns::answers`] without a wake-up.
    pub fn has_local(&self) -> bool {
        !self.local.is_empty()
    }

    /// Whether names wait for an answer (they may time out).
    pub fn is_waiting(&self) -> bool {
        self.state.is_waiting()
    }

    /// The answers that arrived, each with the requests that waited for it;
    /// lookups queued behind them are started.
    pub fn answers(
        &mut self,
        now: Instant,
        registry: &Registry,
        token: Token,
    ) -> Vec<(String, Answer, Vec<Waiter>)> {
        let mut got = std::mem::take(&mut self.local);
        if let Some(t) = &self.thread {
            got.extend(t.answers());
        }
        let out: Vec<_> = got
            .into_iter()
            .map(|(name, found)| {
                let (answer, waiters) = self.state.answered(&name, found, now);
                (name, answer, waiters)
            })
            .collect();
        // names that were queued behind the ones answered
        for name in self.state.take_starts() {
            self.send(name, registry, token);
        }
        out
    }

    /// Requests whose name waited past its deadline (see
    /// [`DnsState::expire`]); names queued behind them are started.
    pub fn expire(
        &mut self,
        now: Instant,
        registry: &Registry,
        token: Token,
    ) -> Vec<(Waiter, LookupError)> {
        let late = self.state.expire(now);
        for name in self.state.take_starts() {
            self.send(name, registry, token);
        }
        late
    }

    /// Hands `name` to the thread (started the first time; `token`: the
    /// event-loop token of its waker); when it cannot take it, the name
    /// fails with the reason at the next [`Dns::answers`].
    fn send(&mut self, name: String, registry: &Registry, token: Token) {
        if self.thread.is_none() && self.broken.is_none() {
            match mio::Waker::new(registry, token)
                .and_then(|waker| ResolverThread::spawn(self.settings, waker))
            {
                Ok(t) => self.thread = Some(t),
                Err(e) => self.broken = Some(LookupError::Thread(Arc::new(e))),
            }
        }
        let sent = self.thread.as_ref().is_some_and(|t| t.lookup(name.clone()));
        if !sent {
            let why = self.broken.clone().unwrap_or(LookupError::ThreadStopped);
            self.local.push((name, Found::Failed(why, None)));
        }
    }
}

#[cfg(test)]
mod tests;
