//! The scheduler: who may write into a destination connection, and who waits
//! for what. Sans-IO: the engine tells it what sources want and what
//! destinations did, and takes from it the sources that may go on.
//!
//! * **Stream slot** (RFC 4975 §7.1.1 fairness): a destination carries one
//!   outgoing chunk at a time. At every chunk boundary the slot goes to the
//!   next waiting source, in arrival order, and frames deferred meanwhile
//!   (responses, REPORTs) go out first.
//! * **Drain**: a source whose destination's output queue is above the high
//!   watermark waits until it drains below the low watermark (TCP flow
//!   control then slows the sender).
//! * **Window**: a source whose next hop has a full window of unanswered
//!   requests waits until answers (or timeouts) open it.
//!
//! A source waits for at most one thing; every waiting source is either in
//! one destination's list or in the ready queue (no lost wake-up), and a
//! destination that goes away wakes everyone waiting for it.

use std::collections::VecDeque;

use crate::connid::ConnId;
use rustc_hash::FxHashMap as HashMap;

/// Why a source is not being read right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// Another source holds the destination's stream slot.
    OnSlot(ConnId),
    /// The destination's output queue is above the high watermark.
    OnDrain(ConnId),
    /// The destination has too many unanswered requests of the relay's.
    OnWindow(ConnId),
}

impl Blocked {
    fn dest(self) -> ConnId {
        match self {
            Blocked::OnSlot(d) | Blocked::OnDrain(d) | Blocked::OnWindow(d) => d,
        }
    }
}

#[derive(Debug, Default)]
struct Dest {
    /// Source that holds (or has been handed) the stream slot.
    owner: Option<ConnId>,
    /// The owner has an outgoing chunk open.
    open: bool,
    slot_waiters: VecDeque<ConnId>,
    drain_waiters: Vec<ConnId>,
    window_waiters: Vec<ConnId>,
}

impl Dest {
    fn is_empty(&self) -> bool {
        self.owner.is_none()
            && self.slot_waiters.is_empty()
            && self.drain_waiters.is_empty()
            && self.window_waiters.is_empty()
    }

    fn forget(&mut self, src: ConnId) {
        self.slot_waiters.retain(|w| *w != src);
        self.drain_waiters.retain(|w| *w != src);
        self.window_waiters.retain(|w| *w != src);
    }
}

#[derive(Debug, Default)]
pub struct Scheduler {
    dests: HashMap<ConnId, Dest>,
    blocked: HashMap<ConnId, Blocked>,
    ready: VecDeque<ConnId>,
}

impl Scheduler {
    /// Gives spare room back to the allocator (after a wave of closes).
    pub fn shrink_to_fit(&mut self) {
        self.dests.shrink_to_fit();
        self.blocked.shrink_to_fit();
        self.ready.shrink_to_fit();
    }

    /// What `src` waits for, if anything.
    pub fn blocked(&self, src: ConnId) -> Option<Blocked> {
        self.blocked.get(&src).copied()
    }

    /// `src` wants to start a chunk into `dest`: true when it holds the
    /// slot now; otherwise it waits for it.
    pub fn begin_chunk(&mut self, src: ConnId, dest: ConnId) -> bool {
        let d = self.dests.entry(dest).or_default();
        match d.owner {
            Some(o) if o != src => {
                if !d.slot_waiters.contains(&src) {
                    d.slot_waiters.push_back(src);
                }
                self.blocked.insert(src, Blocked::OnSlot(dest));
                false
            }
            _ => {
                d.owner = Some(src);
                d.open = true;
                true
            }
        }
    }

    /// Whether a chunk is open into `dest` (complete frames for it must
    /// wait for the chunk's end).
    pub fn streaming(&self, dest: ConnId) -> bool {
        self.dests
            .get(&dest)
            .is_some_and(|d| d.open && d.owner.is_some())
    }

    /// Whether any source holds or waits for `dest`.
    pub fn is_busy(&self, dest: ConnId) -> bool {
        self.dests.get(&dest).is_some_and(|d| !d.is_empty())
    }

    /// `src` ended its chunk into `dest` (or gives the slot up): the slot
    /// goes to the next waiting source. Returns whether `src` held it (then
    /// frames deferred for `dest` may go out).
    pub fn end_chunk(&mut self, dest: ConnId, src: ConnId) -> bool {
        let Some(d) = self.dests.get_mut(&dest) else {
            return false;
        };
        if d.owner != Some(src) {
            return false;
        }
        d.owner = None;
        d.open = false;
        while let Some(w) = d.slot_waiters.pop_front() {
            if w == src {
                continue;
            }
            d.owner = Some(w);
            self.blocked.remove(&w);
            self.ready.push_back(w);
            break;
        }
        if d.is_empty() {
            self.dests.remove(&dest);
        }
        true
    }

    /// `src` waits for `dest`'s output queue to drain.
    pub fn wait_drain(&mut self, src: ConnId, dest: ConnId) {
        let d = self.dests.entry(dest).or_default();
        if !d.drain_waiters.contains(&src) {
            d.drain_waiters.push(src);
        }
        self.blocked.insert(src, Blocked::OnDrain(dest));
    }

    /// `src` waits for `dest`'s request window to open.
    pub fn wait_window(&mut self, src: ConnId, dest: ConnId) {
        let d = self.dests.entry(dest).or_default();
        if !d.window_waiters.contains(&src) {
            d.window_waiters.push(src);
        }
        self.blocked.insert(src, Blocked::OnWindow(dest));
    }

    /// Whether sources wait for `dest` to drain.
    pub fn has_drain_waiters(&self, dest: ConnId) -> bool {
        self.dests
            .get(&dest)
            .is_some_and(|d| !d.drain_waiters.is_empty())
    }

    /// `dest`'s output queue went below the low watermark.
    pub fn drained(&mut self, dest: ConnId) {
        if let Some(d) = self.dests.get_mut(&dest) {
            let w = std::mem::take(&mut d.drain_waiters);
            self.wake_all(w);
            self.gc(dest);
        }
    }

    /// `dest`'s request window has room again.
    pub fn window_open(&mut self, dest: ConnId) {
        if let Some(d) = self.dests.get_mut(&dest) {
            let w = std::mem::take(&mut d.window_waiters);
            self.wake_all(w);
            self.gc(dest);
        }
    }

    fn wake_all(&mut self, ws: Vec<ConnId>) {
        for w in ws {
            self.blocked.remove(&w);
            self.ready.push_back(w);
        }
    }

    fn gc(&mut self, dest: ConnId) {
        if self.dests.get(&dest).is_some_and(Dest::is_empty) {
            self.dests.remove(&dest);
        }
    }

    /// `src` no longer feeds `dest`: it stops waiting for it (and runs
    /// again if it was) and gives up the slot, held or only handed over.
    /// Returns whether it held the slot.
    pub fn leave(&mut self, dest: ConnId, src: ConnId) -> bool {
        if let Some(d) = self.dests.get_mut(&dest) {
            d.forget(src);
        }
        if self.blocked.get(&src).is_some_and(|b| b.dest() == dest) {
            // it was waiting for `dest`: it goes on (without it)
            self.blocked.remove(&src);
            self.ready.push_back(src);
        }
        let held = self.end_chunk(dest, src);
        self.gc(dest);
        held
    }

    /// Connection `t` is gone: as a destination, everyone waiting for it
    /// goes on (and finds it gone); as a source, it waits for nothing.
    pub fn conn_closed(&mut self, t: ConnId) {
        if let Some(d) = self.dests.remove(&t) {
            let mut ws: Vec<ConnId> = d.slot_waiters.into_iter().collect();
            ws.extend(d.drain_waiters);
            ws.extend(d.window_waiters);
            ws.extend(d.owner);
            ws.retain(|w| *w != t);
            self.wake_all(ws);
        }
        if let Some(b) = self.blocked.remove(&t) {
            self.leave(b.dest(), t);
        }
        let owned: Vec<ConnId> = self
            .dests
            .iter()
            .filter(|(_, d)| d.owner == Some(t))
            .map(|(k, _)| *k)
            .collect();
        for dest in owned {
            self.leave(dest, t);
        }
    }

    /// Makes `src` run again at the next chance (e.g. a connect completed).
    pub fn wake(&mut self, src: ConnId) {
        self.ready.push_back(src);
    }

    /// The next source to run; it no longer counts as waiting.
    pub fn pop_ready(&mut self) -> Option<ConnId> {
        let t = self.ready.pop_front()?;
        if let Some(b) = self.blocked.remove(&t) {
            // woken for another reason while waiting: it re-registers if it
            // still has to wait
            if let Some(d) = self.dests.get_mut(&b.dest()) {
                d.forget(t);
            }
            self.gc(b.dest());
        }
        Some(t)
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Checks the invariants (tests, fuzzing): every waiting source is
    /// listed where it waits, the slot owner of a destination is not also
    /// waiting for it.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn check(&self) {
        for (src, b) in &self.blocked {
            let d = self.dests.get(&b.dest());
            let listed = match b {
                Blocked::OnSlot(_) => d.is_some_and(|d| d.slot_waiters.contains(src)),
                Blocked::OnDrain(_) => d.is_some_and(|d| d.drain_waiters.contains(src)),
                Blocked::OnWindow(_) => d.is_some_and(|d| d.window_waiters.contains(src)),
            };
            assert!(listed || self.ready.contains(src), "{src:?} lost: {b:?}");
        }
        for d in self.dests.values() {
            if let Some(o) = d.owner {
                assert!(!d.slot_waiters.contains(&o));
            }
        }
    }
}

#[cfg(test)]
mod tests;
