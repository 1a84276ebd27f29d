//! The shared transaction table's logic, as safe code over plain records:
//! a free list of slots with generations (a reused slot never matches an
//! old [`TxSlot`]), response deadlines, expiry by the timer, per-worker
//! collection of expired entries, counters and the RPC listing.
//!
//! The boundary (src/kamailio/txtable.rs) only places a [`TableHead`] and
//! `capacity` [`Record`]s in Kamailio shared memory, takes the lock around
//! each call and supplies the clock (CLOCK_MONOTONIC milliseconds, the same
//! in every process) and the wake-ups; everything here is tested with plain
//! `cargo test` and fuzzed (fuzz target `txtable`).

use msrp_core::FailureReport;

use super::{Cause, Event, TableFull, TxInfo, TxSlot};
use crate::fixed::{fill, text};

const TID_MAX: usize = 32;
const MSGID_MAX: usize = 64;
const PEER_MAX: usize = 48;
/// End of the free list.
const NONE: u32 = u32::MAX;

const FREE: u8 = 0;
const PENDING: u8 = 1;
const EXPIRED: u8 = 2;

/// Counters: REPORTs by cause, then dropped (origin gone), then table-full
/// events.
const COUNTERS: usize = Cause::ALL.len() + 2;
const DROPPED: usize = Cause::ALL.len();
const FULL: usize = Cause::ALL.len() + 1;

/// The table's header (one per table, in front of the records).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TableHead {
    capacity: u32,
    used: u32,
    free_head: u32,
    generation: u32,
    counters: [u64; COUNTERS],
}

/// One transaction: an outgoing SEND chunk the relay may owe a REPORT for.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Record {
    state: u8,
    owner: u8,
    failure_report: u8,
    tid_len: u8,
    msgid_len: u8,
    peer_len: u8,
    _pad: [u8; 2],
    generation: u32,
    next_free: u32,
    /// Milliseconds of the shared clock; 0 = timer not started.
    deadline_ms: u64,
    created_ms: u64,
    range_start: u64,
    /// u64::MAX = `*`
    total: u64,
    tid: [u8; TID_MAX],
    msgid: [u8; MSGID_MAX],
    peer: [u8; PEER_MAX],
}

impl TableHead {
    /// The header of an empty table of `capacity` records; [`Slots::format`]
    /// links them.
    pub const fn new(capacity: u32) -> Self {
        TableHead {
            capacity,
            used: 0,
            free_head: NONE,
            generation: 1,
            counters: [0; COUNTERS],
        }
    }
}

impl Record {
    /// An unused record.
    pub const FREE: Record = Record {
        state: FREE,
        owner: 0,
        failure_report: 0,
        tid_len: 0,
        msgid_len: 0,
        peer_len: 0,
        _pad: [0; 2],
        generation: 0,
        next_free: NONE,
        deadline_ms: 0,
        created_ms: 0,
        range_start: 0,
        total: 0,
        tid: [0; TID_MAX],
        msgid: [0; MSGID_MAX],
        peer: [0; PEER_MAX],
    };
}

/// One entry as RPC shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    pub tid: String,
    pub worker: u8,
    pub state: &'static str,
    pub age_ms: u64,
    /// ms until expiry; `None` while the request is still being sent.
    pub expires_in_ms: Option<i64>,
    pub message_id: String,
    pub origin: String,
    pub failure_report: &'static str,
    pub range_start: u64,
    pub total: Option<u64>,
}

/// What RPC shows of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// At most the `limit` asked for.
    pub entries: Vec<EntryView>,
    pub used: u32,
    pub capacity: u32,
    /// REPORT counters by cause, then dropped and table-full counts.
    pub counters: Vec<(&'static str, u64)>,
}

/// The table: its header and records, borrowed for one locked call.
pub struct Slots<'a> {
    head: &'a mut TableHead,
    records: &'a mut [Record],
}

fn fr_code(fr: FailureReport) -> u8 {
    match fr {
        FailureReport::Yes => 1,
        FailureReport::Partial => 2,
        FailureReport::No => 0,
    }
}

fn fr_name(code: u8) -> &'static str {
    match code {
        1 => "yes",
        2 => "partial",
        _ => "no",
    }
}

/// Bit of worker `owner` in an owner mask (workers above 63 share bit 63).
fn owner_bit(owner: u8) -> u64 {
    1u64 << owner.min(63)
}

impl<'a> Slots<'a> {
    /// The table over `head` and `records`; only the first
    /// `head.capacity` records are used.
    pub fn new(head: &'a mut TableHead, records: &'a mut [Record]) -> Self {
        let n = (head.capacity as usize).min(records.len());
        head.capacity = n as u32;
        Slots {
            head,
            records: &mut records[..n],
        }
    }

    /// Empties the table: every record free and on the free list.
    pub fn format(&mut self) {
        let n = self.records.len() as u32;
        for (i, r) in self.records.iter_mut().enumerate() {
            *r = Record::FREE;
            r.next_free = if (i as u32) + 1 < n {
                i as u32 + 1
            } else {
                NONE
            };
        }
        self.head.free_head = if n > 0 { 0 } else { NONE };
        self.head.used = 0;
    }

    /// Stores a new pending transaction of worker `owner` at `now_ms`;
    /// `origin` is its sender's address as text (cut to fit, as the ids).
    pub fn insert(
        &mut self,
        info: &TxInfo<'_>,
        owner: u8,
        origin: &str,
        now_ms: u64,
    ) -> Result<TxSlot, TableFull> {
        let i = self.head.free_head;
        let Some(r) = self.records.get_mut(i as usize) else {
            self.head.counters[FULL] += 1;
            return Err(TableFull {
                capacity: self.head.capacity,
            });
        };
        self.head.free_head = r.next_free;
        self.head.used += 1;
        self.head.generation = self.head.generation.wrapping_add(1).max(1);
        *r = Record {
            state: PENDING,
            owner,
            failure_report: fr_code(info.failure_report),
            generation: self.head.generation,
            created_ms: now_ms,
            range_start: info.range_start,
            total: info.total.unwrap_or(u64::MAX),
            ..Record::FREE
        };
        r.tid_len = fill(&mut r.tid, info.tid);
        r.msgid_len = fill(&mut r.msgid, info.message_id);
        r.peer_len = fill(&mut r.peer, origin.as_bytes());
        Ok(TxSlot {
            index: i,
            generation: r.generation,
        })
    }

    fn live(&mut self, slot: TxSlot) -> Option<&mut Record> {
        self.records
            .get_mut(slot.index as usize)
            .filter(|r| r.state != FREE && r.generation == slot.generation)
    }

    /// Starts the response timer: the entry expires at `deadline_ms`
    /// (RFC 4976 §6.4.1: counted from the request's last byte).
    pub fn arm(&mut self, slot: TxSlot, deadline_ms: u64) {
        if let Some(r) = self.live(slot).filter(|r| r.state == PENDING) {
            r.deadline_ms = deadline_ms.max(1);
        }
    }

    /// Frees the entry (answered, reported or given up); a stale handle
    /// does nothing.
    pub fn remove(&mut self, slot: TxSlot) {
        let head = self.head.free_head;
        if let Some(r) = self.live(slot) {
            *r = Record {
                next_free: head,
                ..Record::FREE
            };
            self.head.free_head = slot.index;
            self.head.used -= 1;
        }
    }

    /// The timer's pass: pending entries whose deadline is at or before
    /// `now_ms` become expired; returns the mask of their owners (the
    /// workers to wake).
    pub fn expire_due(&mut self, now_ms: u64) -> u64 {
        let mut owners = 0;
        for r in self.records.iter_mut() {
            if r.state == PENDING && r.deadline_ms != 0 && r.deadline_ms <= now_ms {
                r.state = EXPIRED;
                owners |= owner_bit(r.owner);
            }
        }
        owners
    }

    /// Worker `owner`'s expired entries (they stay until it removes them).
    pub fn take_expired(&self, owner: u8) -> Vec<TxSlot> {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == EXPIRED && r.owner == owner)
            .map(|(i, r)| TxSlot {
                index: i as u32,
                generation: r.generation,
            })
            .collect()
    }

    pub fn count(&mut self, event: Event) {
        let i = match event {
            Event::Report(c) => c as usize,
            Event::ReportDropped => DROPPED,
            Event::TableFull => FULL,
        };
        self.head.counters[i] += 1;
    }

    /// The table as RPC lists it at `now_ms`: at most `limit` entries.
    pub fn snapshot(&self, limit: usize, now_ms: u64) -> Snapshot {
        let entries = self
            .records
            .iter()
            .filter(|r| r.state != FREE)
            .take(limit)
            .map(|r| EntryView {
                tid: text(&r.tid, r.tid_len),
                worker: r.owner,
                state: if r.state == EXPIRED {
                    "expired"
                } else {
                    "pending"
                },
                age_ms: now_ms.saturating_sub(r.created_ms),
                expires_in_ms: (r.deadline_ms != 0).then(|| r.deadline_ms as i64 - now_ms as i64),
                message_id: text(&r.msgid, r.msgid_len),
                origin: text(&r.peer, r.peer_len),
                failure_report: fr_name(r.failure_report),
                range_start: r.range_start,
                total: (r.total != u64::MAX).then_some(r.total),
            })
            .collect();
        let mut counters: Vec<(&'static str, u64)> = Cause::ALL
            .iter()
            .map(|c| (c.name(), self.head.counters[*c as usize]))
            .collect();
        counters.push(("dropped_origin_gone", self.head.counters[DROPPED]));
        counters.push(("table_full", self.head.counters[FULL]));
        Snapshot {
            entries,
            used: self.head.used,
            capacity: self.head.capacity,
            counters,
        }
    }

    /// Checks the table's invariants (tests and fuzzing): the free list
    /// holds exactly the free records, once each, and `used` counts the
    /// others.
    pub fn check(&self) -> Result<(), String> {
        let mut on_list = vec![false; self.records.len()];
        let mut i = self.head.free_head;
        while i != NONE {
            let Some(r) = self.records.get(i as usize) else {
                return Err(format!("free list points past the table: {i}"));
            };
            if std::mem::replace(&mut on_list[i as usize], true) {
                return Err(format!("record {i} twice on the free list"));
            }
            if r.state != FREE {
                return Err(format!("record {i} on the free list is in use"));
            }
            i = r.next_free;
        }
        let free = self.records.iter().filter(|r| r.state == FREE).count();
        if free != on_list.iter().filter(|b| **b).count() {
            return Err("a free record is missing from the free list".into());
        }
        if self.head.used as usize + free != self.records.len() {
            return Err(format!("used {} + free {free} != capacity", self.head.used));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
