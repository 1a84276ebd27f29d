//! Chunks handed over a link whose Failure-Report is "partial" or "no"
//! (RFC 4975 §7.1.4: the next hop sends no 200 for them), at the worker
//! that owns the next hop's connection.
//!
//! They get no entry each: an entry per chunk would wait for a 200 that
//! never comes, fill the next hop's request window (after 1,024 such
//! chunks the link stalled until the transaction timeout) and the shared
//! table. A "partial" chunk's transaction ID is its group's prefix and a
//! sequence number (see `chunk_tid`), so one entry per group and next hop
//! is enough to send an error response back to the sending worker, which
//! finds its incoming chunk by the same prefix. A "no" chunk is not
//! tracked at all: nothing is ever answered for it.

use std::time::Instant;

use bytes::Bytes;

use super::partial::{PARTIAL_PREFIX_LEN, PARTIAL_SEQ_LEN};
use super::{Answer, Output, Return, Tracker};
use crate::connid::ConnId;
use crate::txtable::Cause;

/// One "partial" group handed over a link, on one next hop.
pub(super) struct LinkGroup {
    /// Where answers go back (its `src_tid` is the group's latest chunk).
    ret: Return,
    /// Answers are passed back until then: the transaction timeout after
    /// the group's latest chunk.
    until: Instant,
}

/// A group: next hop and transaction-ID prefix.
pub(super) type GroupKey = (ConnId, Bytes);

/// The group key of a "partial" chunk's transaction ID on `dest`.
fn group_key(dest: ConnId, tid: &[u8]) -> Option<GroupKey> {
    (tid.len() == PARTIAL_PREFIX_LEN + PARTIAL_SEQ_LEN)
        .then(|| (dest, Bytes::copy_from_slice(&tid[..PARTIAL_PREFIX_LEN])))
}

impl Tracker {
    /// A chunk handed over a link that gets no 200 was sent on `dest`.
    pub(super) fn track_unanswered(&mut self, dest: ConnId, tid: &[u8], ret: Return, now: Instant) {
        let Some(key) = group_key(dest, tid) else {
            return;
        };
        let until = now + self.timeout;
        let ret = Return {
            src_tid: Bytes::copy_from_slice(tid),
            ..ret
        };
        match self.link_groups.get_mut(&key) {
            Some(g) => {
                g.ret = ret;
                g.until = until;
            }
            None => {
                self.link_group_deadlines.push_back((until, key.clone()));
                self.link_groups.insert(key, LinkGroup { ret, until });
            }
        }
    }

    /// The way back for an answer to `tid` on `dest`, if it belongs to a
    /// group handed over a link.
    pub(super) fn link_group_answer(&self, dest: ConnId, tid: &[u8]) -> Option<Answer> {
        let g = self.link_groups.get(&group_key(dest, tid)?)?;
        Some(Answer::Link(Return {
            src_tid: Bytes::copy_from_slice(tid),
            ..g.ret.clone()
        }))
    }

    /// Whether `tid` on `dest` belongs to a group handed over a link.
    pub(super) fn in_link_group(&self, dest: ConnId, tid: &[u8]) -> bool {
        group_key(dest, tid).is_some_and(|k| self.link_groups.contains_key(&k))
    }

    /// Groups whose time is up are forgotten; a group extended since its
    /// deadline was queued is queued again (one queue entry per group).
    pub(super) fn expire_link_groups(&mut self, now: Instant) {
        while let Some((at, key)) = self.link_group_deadlines.front().cloned() {
            if at > now {
                break;
            }
            self.link_group_deadlines.pop_front();
            match self.link_groups.get(&key).map(|g| g.until) {
                Some(until) if until > now => self.link_group_deadlines.push_back((until, key)),
                Some(_) => {
                    self.link_groups.remove(&key);
                }
                None => {}
            }
        }
    }

    /// `dest` is lost: each group on it fails back once, with `cause`.
    pub(super) fn link_groups_lost(&mut self, dest: ConnId, cause: Cause) {
        let keys: Vec<GroupKey> = self
            .link_groups
            .keys()
            .filter(|(d, _)| *d == dest)
            .cloned()
            .collect();
        for key in keys {
            if let Some(g) = self.link_groups.remove(&key) {
                self.out.push_back(Output::LinkFailed { ret: g.ret, cause });
            }
        }
    }
}
