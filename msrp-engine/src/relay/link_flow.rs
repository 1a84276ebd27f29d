//! Flow control per connection across a link between workers.
//!
//! A worker that owns a connection over its high watermark used to stop
//! reading the whole link a chunk for it arrived on, so one slow receiver
//! held back every session crossing from that worker (the link carries
//! one chunk at a time). Now the owner takes in what is already under way
//! for the connection, up to a bound ([`absorb_limit`]), and asks the
//! other worker with a [`Record::Pause`](crate::link::record::Record) to
//! start no more chunks for it; the link goes on for the others. When the
//! connection drains to its low watermark, or closes, a `Resume` lets the
//! other worker's waiting sources go on. Past the bound (more under way
//! than a ring and a queue can hold, e.g. huge chunks) the owner waits as
//! before, which is slow but safe.
//!
//! Not covered: a chunk from a link that must wait for the connection's
//! stream slot (another source streams into it) or request window still
//! holds the link until it can start.

use rustc_hash::FxHashMap as HashMap;

use super::{Relay, OUT_QUEUE_LIMIT_FACTOR};
use crate::conn::Incoming;
use crate::connid::ConnId;
use crate::link::record;

/// Room for what can be under way on a link when the other worker learns
/// of a pause: the ring (512 KiB, `src/kamailio/rings.rs`), what this
/// worker read of it and has not parsed yet (a read buffer, 256 KiB), and
/// the chunk the other worker is streaming; measured: up to 1.1 MiB with
/// 16 KiB chunks and 64 KiB watermarks (tests/crossing.rs).
const IN_FLIGHT: usize = 2 * 1024 * 1024;

/// The pauses this worker asked for and was asked for.
#[derive(Default)]
pub struct LinkFlow {
    /// Owner side: connections of this worker over their high watermark,
    /// and the links told to pause chunks for them.
    told: HashMap<ConnId, Vec<ConnId>>,
    /// Sender side: (link, connection of the other worker) pairs paused,
    /// and the sources waiting for them.
    paused: HashMap<(ConnId, u64), Vec<ConnId>>,
}

/// Most bytes queued for a connection while chunks from links are taken in
/// above its high watermark: twice the watermark (its own, and the other
/// worker's queue for the link) plus what is in flight, and at most half
/// the point where a connection counts as not reading.
pub(super) fn absorb_limit(high: usize) -> usize {
    (2 * high + IN_FLIGHT).min(high * OUT_QUEUE_LIMIT_FACTOR / 2)
}

impl Relay {
    /// Chunk bytes from link `t` went to `dest`, now over its high
    /// watermark: within [`absorb_limit`] the link goes on (true) and is
    /// told, once, to pause chunks for `dest`; past it, or for a source
    /// that is no link, false (the caller holds the source back).
    pub(super) fn link_absorbs(&mut self, t: ConnId, dest: ConnId) -> bool {
        if self.conns.get(&t).is_none_or(|c| c.link.is_none()) {
            return false;
        }
        let Some(queued) = self.conns.get(&dest).map(|d| d.queued()) else {
            return false;
        };
        if queued <= self.cfg.queue_high || queued > absorb_limit(self.cfg.queue_high) {
            return false;
        }
        let told = self.link_flow.told.entry(dest).or_default();
        if !told.contains(&t) {
            told.push(t);
            self.push_frame(t, record::pause(dest.0), self.now);
        }
        true
    }

    /// `dest` drained to its low watermark or closed: the links told to
    /// pause chunks for it may go on.
    pub(super) fn link_resume(&mut self, dest: ConnId) {
        if let Some(links) = self.link_flow.told.remove(&dest) {
            for l in links {
                self.push_frame(l, record::resume(dest.0), self.now);
            }
        }
    }

    /// A pause or resume for connection `target` of the worker at the
    /// other end of link `t`.
    pub(super) fn on_link_flow(&mut self, t: ConnId, target: u64, pause: bool) {
        if pause {
            self.link_flow.paused.entry((t, target)).or_default();
        } else if let Some(waiting) = self.link_flow.paused.remove(&(t, target)) {
            for w in waiting {
                self.sched.wake(w);
            }
        }
    }

    /// Whether source `t`, about to start a chunk over link `dest`, must
    /// wait because the other worker paused the chunk's connection; it is
    /// then woken by the resume (or when the link drains, to look again).
    pub(super) fn link_paused(&mut self, t: ConnId, dest: ConnId) -> bool {
        let target = match self.conns.get(&t).map(|c| &c.incoming) {
            Some(Incoming::Forward(f)) => f.link_target.as_ref().map(|l| l.conid),
            _ => None,
        };
        let Some(target) = target else {
            return false;
        };
        let Some(waiting) = self.link_flow.paused.get_mut(&(dest, target)) else {
            return false;
        };
        if !waiting.contains(&t) {
            waiting.push(t);
        }
        self.sched.wait_drain(t, dest);
        true
    }
}
