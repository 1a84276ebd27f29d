//! The transaction tracker: which requests the relay forwarded, and the
//! REPORTs it owes when they fail (RFC 4976 §6.4.1). Sans-IO: it is told
//! what happened (a chunk was sent, its last byte queued, a response, a
//! timeout, a lost connection), with the time as a parameter, and answers
//! with [`Output`]s for the engine to carry out.
//!
//! * An incoming transaction ([`InTx`]) is one incoming SEND chunk. It
//!   records what a REPORT needs (From-Path as received, Message-ID,
//!   Byte-Range start/total, bytes received, Failure-Report).
//! * An outstanding request is one request the relay sent on: an outgoing
//!   SEND chunk (several per incoming chunk when re-chunking) or another
//!   request whose response goes back ([`Return`]). One still unanswered
//!   after [`PUBLISH_AFTER`] also gets an entry in the shared [`TxTable`]
//!   (which RPC lists and the Kamailio timer expires); the many answered
//!   sooner never take its lock, and expire here if they must (their
//!   deadline passes before they are published only with a timeout shorter
//!   than that delay).
//! * "partial" chunks get no 200 (RFC 4975 §7.1.4), so they have no entry
//!   each: their transaction IDs are a per-chunk-group prefix plus a
//!   sequence number, and an error response finds its group by the prefix.
//!
//! Every outcome is accounted once: at most one REPORT per incoming chunk
//! (later failures of the same chunk add nothing the sender can act on),
//! and every table entry is removed exactly once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::connid::ConnId;
use bytes::Bytes;
use msrp_core::{ByteRange, FailureReport};
use rustc_hash::FxHashMap as HashMap;

use crate::report::{self, ReportOrder};
use crate::txtable::{Cause, Event, TxInfo, TxSlot, TxTable};

/// How long an outstanding request is tracked by its worker alone before
/// it goes into the shared table: most are answered within milliseconds, and
/// three lock round trips per chunk (insert, arm, remove) were the largest
/// part of the per-chunk bookkeeping. RPC lists only requests older than
/// this; REPORTs are the same either way (see [`Tracker::expire`]).
pub const PUBLISH_AFTER: Duration = Duration::from_millis(100);

/// Most requests the relay keeps unanswered towards one next hop before it
/// stops sending it more (16 MiB of 16 KiB chunks).
pub const REQUEST_WINDOW: u32 = 1024;

mod answers;
mod link_groups;
mod partial;
mod timers;
mod types;

use types::TidKey;
pub use types::{Answer, InId, InTx, Origin, Outcome, Output, Return};

struct InState {
    tx: InTx,
    /// Body bytes of the chunk received so far.
    received: u64,
    /// Outgoing chunks not yet answered.
    subs: u32,
    /// "partial" group: prefix and next hop, while its chunks may still get
    /// an answer; answers are accepted until `partial_until`.
    partial: Option<(Bytes, ConnId)>,
    partial_seq: u32,
    partial_until: Option<Instant>,
    /// The incoming chunk is still arriving.
    receiving: bool,
    reported: bool,
    /// The sender was told (or, for "no", would have been) that this
    /// chunk is refused while it was still arriving.
    refused: bool,
}

struct Outstanding {
    origin: Origin,
    slot: Option<TxSlot>,
    /// Local expiry while the request has no table slot (not published yet,
    /// or the shared table had no room for it).
    deadline: Option<Instant>,
    /// Not offered to the shared table yet: what its entry will record.
    unpublished: Option<Unpublished>,
}

/// What a request's table entry records besides its transaction ID (the
/// rest comes from its incoming chunk when it is published).
#[derive(Clone, Copy)]
struct Unpublished {
    origin_addr: SocketAddr,
    range_start: u64,
}

type Key = (ConnId, TidKey);

/// Transactions of one worker.
pub struct Tracker {
    ins: HashMap<InId, InState>,
    next_in: InId,
    outstanding: HashMap<Key, Outstanding>,
    by_slot: HashMap<TxSlot, Key>,
    /// Entries without a table slot, in arming order.
    local_deadlines: VecDeque<(Instant, Key)>,
    /// Requests not yet in the shared table, by the time they were sent.
    unpublished: VecDeque<(Instant, Key)>,
    /// "partial" chunk groups: (next hop, tid prefix) -> incoming chunk.
    partial: HashMap<Key, InId>,
    partial_deadlines: VecDeque<(Instant, InId)>,
    /// "partial" groups handed over a link (see `link_groups`).
    link_groups: HashMap<link_groups::GroupKey, link_groups::LinkGroup>,
    link_group_deadlines: VecDeque<(Instant, link_groups::GroupKey)>,
    /// Unanswered requests per next hop (the request window).
    per_dest: HashMap<ConnId, u32>,
    table: Box<dyn TxTable>,
    timeout: Duration,
    table_full_logged: Option<Instant>,
    out: VecDeque<Output>,
}

impl Tracker {
    pub fn new(table: Box<dyn TxTable>, timeout: Duration) -> Self {
        Tracker {
            ins: HashMap::default(),
            next_in: 0,
            outstanding: HashMap::default(),
            by_slot: HashMap::default(),
            local_deadlines: VecDeque::new(),
            unpublished: VecDeque::new(),
            partial: HashMap::default(),
            partial_deadlines: VecDeque::new(),
            link_groups: HashMap::default(),
            link_group_deadlines: VecDeque::new(),
            per_dest: HashMap::default(),
            table,
            timeout,
            table_full_logged: None,
            out: VecDeque::new(),
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Counts an event in the shared table's counters.
    pub fn count(&mut self, event: Event) {
        self.table.count(event);
    }

    /// The shared table (its wake-up descriptor, for the event loop).
    pub fn table(&self) -> &dyn TxTable {
        &*self.table
    }

    /// Incoming chunks and outstanding requests held (for tests and RPC).
    pub fn len(&self) -> (usize, usize) {
        (self.ins.len(), self.outstanding.len())
    }

    pub fn is_empty(&self) -> bool {
        self.ins.is_empty()
            && self.outstanding.is_empty()
            && self.partial.is_empty()
            && self.link_groups.is_empty()
    }

    /// An incoming SEND chunk starts arriving.
    pub fn begin_in(&mut self, tx: InTx) -> InId {
        self.next_in += 1;
        self.ins.insert(
            self.next_in,
            InState {
                tx,
                received: 0,
                subs: 0,
                partial: None,
                partial_seq: 0,
                partial_until: None,
                receiving: true,
                reported: false,
                refused: false,
            },
        );
        self.next_in
    }

    /// `n` body bytes of incoming chunk `id` have arrived so far.
    pub fn set_received(&mut self, id: InId, n: u64) {
        if let Some(s) = self.ins.get_mut(&id) {
            s.received = n;
        }
    }

    /// The incoming chunk has been received (and forwarded as far as it
    /// goes).
    pub fn received_all(&mut self, id: InId, now: Instant) {
        let timeout = self.timeout;
        if let Some(s) = self.ins.get_mut(&id) {
            s.receiving = false;
            // a "partial" group whose timer never started (aborted before a
            // chunk ended) or already ran out still gets its full timeout
            if s.partial.is_some() && s.partial_until.is_none_or(|u| u <= now) {
                let at = now + timeout;
                s.partial_until = Some(at);
                self.partial_deadlines.push_back((at, id));
            }
        }
        self.maybe_done(id);
    }

    fn maybe_done(&mut self, id: InId) {
        if self
            .ins
            .get(&id)
            .is_some_and(|s| !s.receiving && s.subs == 0 && s.partial.is_none())
        {
            self.ins.remove(&id);
        }
    }

    /// Registers request `tid` sent to `dest` (`origin_addr`: the sender,
    /// shown by RPC; `range_start`: the outgoing chunk's Byte-Range start).
    /// It goes into the shared table only if it is still unanswered
    /// [`PUBLISH_AFTER`] from `now` (see [`Tracker::expire`]).
    pub fn track(
        &mut self,
        dest: ConnId,
        tid: impl AsRef<[u8]>,
        origin: Origin,
        origin_addr: SocketAddr,
        range_start: u64,
        now: Instant,
    ) {
        if let Origin::Chunk(id) = &origin {
            match self.ins.get_mut(id) {
                // RFC 4975 §7.1.4: "no" gets no response at all; "partial"
                // is tracked per group (see chunk_tid)
                Some(s) if s.tx.failure_report == FailureReport::Yes => s.subs += 1,
                _ => return,
            }
        }
        // no 200 comes for these (RFC 4975 §7.1.4): never in the window
        let origin = match origin {
            Origin::Link {
                ret,
                answer_timeout: false,
            } => return self.track_unanswered(dest, tid.as_ref(), *ret, now),
            o => o,
        };
        *self.per_dest.entry(dest).or_default() += 1;
        let o = Outstanding {
            origin,
            slot: None,
            deadline: None,
            unpublished: Some(Unpublished {
                origin_addr,
                range_start,
            }),
        };
        let key = (dest, TidKey::new(tid.as_ref()));
        self.unpublished.push_back((now, key));
        self.outstanding.insert(key, o);
    }

    /// Whether `dest` has a full window of unanswered requests.
    pub fn window_full(&self, dest: ConnId) -> bool {
        self.per_dest
            .get(&dest)
            .is_some_and(|n| *n >= REQUEST_WINDOW)
    }

    fn remove(&mut self, key: &Key) -> Option<Outstanding> {
        let o = self.outstanding.remove(key)?;
        self.released(key.0, &o);
        Some(o)
    }

    /// `o`, sent on `dest`, is no longer outstanding (taken out of the
    /// map): its place in the request window and its table slot go.
    fn released(&mut self, dest: ConnId, o: &Outstanding) {
        let left = match self.per_dest.get_mut(&dest) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if left == 0 {
            self.per_dest.remove(&dest);
        }
        // sources wait for a full window only (`window_full`), and answers
        // take one request at a time: on the way down from full the count
        // passes half of it. (Every answer below half made an output for
        // the relay to carry out: one per re-chunked chunk.)
        if left == REQUEST_WINDOW / 2 {
            self.out.push_back(Output::WindowOpen(dest));
        }
        if let Some(slot) = o.slot {
            self.by_slot.remove(&slot);
            self.table.remove(slot);
        }
    }

    /// Ends a forwarded request's transaction and does what its outcome
    /// calls for.
    fn finish(&mut self, key: Key, outcome: Outcome) {
        if let Some(o) = self.remove(&key) {
            self.ended(o, outcome);
        }
    }

    /// What the outcome of a request taken out of the map calls for.
    fn ended(&mut self, o: Outstanding, outcome: Outcome) {
        match o.origin {
            Origin::PassBack(r) => {
                if outcome != Outcome::Ok {
                    self.out.push_back(Output::Fail(*r));
                }
            }
            Origin::Link {
                ret,
                answer_timeout,
            } => {
                if outcome != Outcome::Ok && (outcome != Outcome::Timeout || answer_timeout) {
                    self.out.push_back(match (ret.as_record, outcome) {
                        (true, Outcome::Lost(cause)) => Output::LinkFailed { ret: *ret, cause },
                        (true, _) => Output::LinkFailed {
                            ret: *ret,
                            cause: Cause::Timeout,
                        },
                        (false, _) => Output::Fail(*ret),
                    });
                }
            }
            Origin::Chunk(id) => {
                if let Some(s) = self.ins.get_mut(&id) {
                    s.subs = s.subs.saturating_sub(1);
                }
                match outcome {
                    Outcome::Ok => {}
                    Outcome::Error(code) => self.fail_in(id, Cause::ErrorResponse, code),
                    Outcome::Timeout => self.fail_in(id, Cause::Timeout, 0),
                    Outcome::Lost(cause) => self.fail_in(id, cause, 0),
                }
                self.maybe_done(id);
            }
        }
    }

    /// Incoming chunk `id` failed downstream: its REPORT (once, if its
    /// Failure-Report asks for it); a chunk still arriving is refused (once,
    /// see [`Output::Refuse`]); after a 413 the rest of its message stops.
    pub fn fail_in(&mut self, id: InId, cause: Cause, code: u16) {
        let Some(s) = self.ins.get_mut(&id) else {
            return;
        };
        let (code, comment) = report::status(cause, code);
        if !s.reported && report::wanted(s.tx.failure_report, cause) {
            s.reported = true;
            log::debug!(
                "REPORT {code} for transaction {} ({})",
                String::from_utf8_lossy(&s.tx.src_tid),
                cause.name()
            );
            // range-end: the bytes actually received (RFC 4975 §7.1.2)
            let range = ByteRange::received(
                s.tx.range.map_or(1, |r| r.start),
                s.received,
                s.tx.range.and_then(|r| r.total),
            );
            self.out.push_back(Output::Report(ReportOrder {
                src: s.tx.src,
                to_path: s.tx.src_from_path.clone(),
                relay_uri: s.tx.relay_uri.clone(),
                message_id: s.tx.message_id.clone(),
                range: Some(range),
                code,
                comment,
                cause,
            }));
        }
        // still arriving: no 200 for it, and no more of it read than need be
        if s.receiving && !s.refused {
            s.refused = true;
            self.out.push_back(Output::Refuse {
                src: s.tx.src,
                id,
                message_id: s.tx.message_id.clone(),
            });
        }
        if cause == Cause::ErrorResponse && code == 413 {
            self.out.push_back(Output::StopMessage {
                src: s.tx.src,
                id,
                message_id: s.tx.message_id.clone(),
            });
        }
    }

    /// The connection `dest` (a next hop) failed or closed: every request
    /// sent on it fails.
    pub fn next_hop_lost(&mut self, dest: ConnId, cause: Cause) {
        let keys: Vec<Key> = self
            .outstanding
            .keys()
            .filter(|(d, _)| *d == dest)
            .copied()
            .collect();
        if !keys.is_empty() {
            log::info!(
                "next hop connection {} lost with {} transaction(s) outstanding",
                dest.0,
                keys.len()
            );
        }
        for k in keys {
            self.finish(k, Outcome::Lost(cause));
        }
        let groups: Vec<InId> = self
            .partial
            .iter()
            .filter(|((d, _), _)| *d == dest)
            .map(|(_, id)| *id)
            .collect();
        for id in groups {
            self.fail_in(id, cause, 0);
            self.end_partial(id);
        }
        self.link_groups_lost(dest, cause);
        self.per_dest.remove(&dest);
    }
}

#[cfg(test)]
mod tests;
