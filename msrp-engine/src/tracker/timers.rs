//! The tracker's clock: publishing requests to the shared table once they
//! have waited [`PUBLISH_AFTER`], arming response timers, and expiry (the
//! Kamailio timer's for published requests, the tracker's own for the
//! rest and for "partial" groups).

use std::time::Instant;

use crate::connid::ConnId;
use bytes::Bytes;
use msrp_core::FailureReport;

use super::*;

/// Stale entries the deadline queue may hold beyond twice the outstanding
/// requests before it is compacted.
pub(super) const COMPACT_SLACK: usize = 1024;

impl Tracker {
    /// Puts an outstanding request into the shared table (its timer, if
    /// armed, with the time left); when the table is full it stays with its
    /// local deadline, as before publication.
    fn publish(&mut self, key: &Key, now: Instant) {
        let Some(o) = self.outstanding.get_mut(key) else {
            return;
        };
        let Some(u) = o.unpublished.take() else {
            return;
        };
        let (fr, message_id, total) = match &o.origin {
            Origin::Chunk(id) => match self.ins.get(id) {
                Some(s) => (
                    s.tx.failure_report,
                    s.tx.message_id.clone(),
                    s.tx.range.and_then(|r| r.total),
                ),
                None => (FailureReport::Yes, Bytes::new(), None),
            },
            Origin::PassBack(_) | Origin::Link { .. } => (FailureReport::Yes, Bytes::new(), None),
        };
        let info = TxInfo {
            tid: key.1.as_bytes(),
            message_id: &message_id,
            origin: u.origin_addr,
            failure_report: fr,
            range_start: u.range_start,
            total,
        };
        match self.table.insert(&info) {
            Ok(slot) => {
                o.slot = Some(slot);
                self.by_slot.insert(slot, *key);
                // the local deadline's queue entry no longer matches
                if let Some(at) = o.deadline.take() {
                    self.table.arm(slot, at.saturating_duration_since(now));
                }
            }
            Err(e) => {
                self.table.count(Event::TableFull);
                // once per second at most: a full table means many of these
                if self
                    .table_full_logged
                    .is_none_or(|at| now.duration_since(at).as_secs() >= 1)
                {
                    self.table_full_logged = Some(now);
                    log::warn!(
                        "{e}: transactions are tracked by this worker only (see msrp_relay.reports table_full)"
                    );
                }
            }
        }
    }

    /// The request's last byte is queued: its response timer starts
    /// (RFC 4976 §6.4.1).
    pub fn arm(&mut self, dest: ConnId, tid: impl AsRef<[u8]>, now: Instant) {
        let tid = tid.as_ref();
        let at = now + self.timeout;
        if let Some(id) = self.partial_group(dest, tid) {
            // answers to a "partial" group are awaited until the timeout
            // after its last chunk
            if let Some(s) = self.ins.get_mut(&id) {
                s.partial_until = Some(at);
                self.partial_deadlines.push_back((at, id));
            }
            return;
        }
        let key = (dest, TidKey::new(tid));
        let Some(o) = self.outstanding.get_mut(&key) else {
            return;
        };
        match o.slot {
            Some(slot) => self.table.arm(slot, self.timeout),
            None => {
                o.deadline = Some(at);
                self.local_deadlines.push_back((at, key));
                self.compact_local_deadlines();
            }
        }
    }

    /// Drops the queue entries of requests already answered or published.
    /// Most chunks are answered within milliseconds, long before their
    /// deadline reaches the queue's front, so without this the queue held
    /// every chunk of the last `transaction_timeout` (at 10,000 chunks/s
    /// and 30 s: 300,000 entries, 17 MiB, each keeping its transaction ID
    /// alive). Compacting when the queue is over twice the outstanding
    /// requests (plus slack) keeps it proportional to them, at O(1)
    /// amortised cost per entry.
    fn compact_local_deadlines(&mut self) {
        if self.local_deadlines.len() > 2 * self.outstanding.len() + COMPACT_SLACK {
            self.retain_live_deadlines();
        }
    }

    fn retain_live_deadlines(&mut self) {
        let outstanding = &self.outstanding;
        self.local_deadlines
            .retain(|(at, key)| outstanding.get(key).and_then(|o| o.deadline) == Some(*at));
    }

    /// Gives spare room back to the allocator (after a wave of closes):
    /// the maps and queues keep the capacity of their busiest moment.
    pub fn shrink_to_fit(&mut self) {
        self.retain_live_deadlines();
        self.ins.shrink_to_fit();
        self.outstanding.shrink_to_fit();
        self.by_slot.shrink_to_fit();
        self.local_deadlines.shrink_to_fit();
        self.unpublished.shrink_to_fit();
        self.partial.shrink_to_fit();
        self.partial_deadlines.shrink_to_fit();
        self.link_groups.shrink_to_fit();
        self.link_group_deadlines.shrink_to_fit();
        self.per_dest.shrink_to_fit();
        self.out.shrink_to_fit();
    }

    /// The Kamailio timer expired entries of this worker.
    pub fn on_timer_wakeup(&mut self) {
        self.table.clear_wakeup();
        for slot in self.table.take_expired() {
            match self.by_slot.get(&slot).copied() {
                Some(key) => self.finish(key, Outcome::Timeout),
                None => self.table.remove(slot),
            }
        }
    }

    /// The tracker's own timers (call once per loop pass): expiry of
    /// "partial" groups and of requests without a table slot, then requests
    /// outstanding for [`PUBLISH_AFTER`] go into the shared table. A request
    /// times out at the same deadline either way (`transaction_timeout`
    /// after its last byte): here, or by the Kamailio timer once published.
    pub fn expire(&mut self, now: Instant) {
        self.expire_link_groups(now);
        while let Some((at, id)) = self.partial_deadlines.front().copied() {
            if at > now {
                break;
            }
            self.partial_deadlines.pop_front();
            if self
                .ins
                .get(&id)
                .is_some_and(|s| s.partial_until == Some(at) && !s.receiving)
            {
                self.end_partial(id);
            }
        }
        while self
            .local_deadlines
            .front()
            .is_some_and(|(at, _)| *at <= now)
        {
            let Some((at, key)) = self.local_deadlines.pop_front() else {
                break;
            };
            if self.outstanding.get(&key).and_then(|o| o.deadline) == Some(at) {
                self.finish(key, Outcome::Timeout);
            }
        }
        while self
            .unpublished
            .front()
            .is_some_and(|(at, _)| *at + PUBLISH_AFTER <= now)
        {
            if let Some((_, key)) = self.unpublished.pop_front() {
                self.publish(&key, now);
            }
        }
    }
}
