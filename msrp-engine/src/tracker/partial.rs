//! "partial" chunk groups (RFC 4975 §7.1.4: no 200 for "partial", so no
//! entry per chunk): the chunks of one incoming chunk towards one next hop
//! get transaction IDs made of a group prefix and a sequence number, and an
//! error response finds its incoming chunk by the prefix.

use crate::connid::ConnId;
use bytes::Bytes;
use msrp_core::FailureReport;

use super::{InId, TidKey, Tracker};
use crate::tid::TidGen;

/// Length of the prefix of "partial" chunk transaction IDs.
pub(super) const PARTIAL_PREFIX_LEN: usize = 16;
pub(super) const PARTIAL_SEQ_LEN: usize = 6;

impl Tracker {
    /// Transaction ID for the next outgoing chunk of incoming chunk `id`
    /// towards `dest`: a "partial" group's prefix and sequence number, or a
    /// fresh one.
    pub fn chunk_tid(&mut self, id: Option<InId>, dest: ConnId, tids: &mut TidGen) -> Bytes {
        let Some(s) = id.and_then(|id| self.ins.get_mut(&id).map(|s| (id, s))) else {
            return tids.next_tid();
        };
        let (id, s) = s;
        if s.tx.failure_report != FailureReport::Partial {
            return tids.next_tid();
        }
        let prefix = match &s.partial {
            Some((p, d)) if *d == dest => p.clone(),
            old => {
                let p = tids.next_tid();
                if let Some((op, od)) = old.clone() {
                    self.partial.remove(&(od, TidKey::new(&op)));
                }
                s.partial = Some((p.clone(), dest));
                self.partial.insert((dest, TidKey::new(&p)), id);
                p
            }
        };
        let s = match self.ins.get_mut(&id) {
            Some(s) => s,
            None => return tids.next_tid(),
        };
        s.partial_seq += 1;
        let mut tid = prefix.to_vec();
        tid.extend_from_slice(
            format!("{:0width$}", s.partial_seq, width = PARTIAL_SEQ_LEN).as_bytes(),
        );
        Bytes::from(tid)
    }
    /// The incoming chunk a "partial" chunk's transaction ID belongs to.
    pub(super) fn partial_group(&self, dest: ConnId, tid: &[u8]) -> Option<InId> {
        if tid.len() != PARTIAL_PREFIX_LEN + PARTIAL_SEQ_LEN {
            return None;
        }
        let prefix = TidKey::new(&tid[..PARTIAL_PREFIX_LEN]);
        self.partial.get(&(dest, prefix)).copied()
    }
    /// Ends a "partial" group: its chunks can no longer be answered.
    pub(super) fn end_partial(&mut self, id: InId) {
        if let Some(s) = self.ins.get_mut(&id) {
            if let Some((p, d)) = s.partial.take() {
                self.partial.remove(&(d, TidKey::new(&p)));
            }
            s.partial_until = None;
        }
        self.maybe_done(id);
    }
}
