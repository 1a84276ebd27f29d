//! Answers to what the relay sent: responses from the next hop, and
//! failures reported back over a link (RFC 4976 §6.4.1: a response to one
//! of the relay's own SEND chunks ends there).

use crate::connid::ConnId;

use super::*;

impl Tracker {
    /// Whether a response `tid` on `dest` answers one of the relay's own
    /// outgoing SEND chunks (consumed without running the script).
    pub fn is_own_chunk(&self, dest: ConnId, tid: &[u8]) -> bool {
        self.partial_group(dest, tid).is_some()
            || self.in_link_group(dest, tid)
            || matches!(
                self.outstanding
                    .get(&(dest, TidKey::new(tid)))
                    .map(|o| &o.origin),
                Some(Origin::Chunk(_) | Origin::Link { .. })
            )
    }

    /// A response `code` to `tid` arrived on `dest`. Responses to the
    /// relay's own SEND chunks end their transaction here (RFC 4976 §6.4.1:
    /// they are not forwarded); for another request the way back is
    /// returned.
    pub fn on_response(&mut self, dest: ConnId, tid: &[u8], code: u16) -> Answer {
        if code != 200 && self.is_own_chunk(dest, tid) {
            log::info!(
                "next hop answered {code} to chunk {} (connection {})",
                String::from_utf8_lossy(tid),
                dest.0
            );
        }
        if let Some(id) = self.partial_group(dest, tid) {
            if code != 200 {
                self.fail_in(id, Cause::ErrorResponse, code);
            }
            return Answer::OwnChunk;
        }
        if let Some(a) = self.link_group_answer(dest, tid) {
            return a;
        }
        let key = (dest, TidKey::new(tid));
        match self.outstanding.get(&key).map(|o| &o.origin) {
            None => Answer::Unknown,
            Some(Origin::Chunk(_)) => {
                let outcome = if code == 200 {
                    Outcome::Ok
                } else {
                    Outcome::Error(code)
                };
                self.finish(key, outcome);
                Answer::OwnChunk
            }
            Some(Origin::PassBack(_) | Origin::Link { .. }) => {
                match self.remove(&key).map(|o| o.origin) {
                    Some(Origin::PassBack(r)) => Answer::PassBack(*r),
                    Some(Origin::Link { ret, .. }) => Answer::Link(*ret),
                    _ => Answer::Unknown,
                }
            }
        }
    }

    /// A 200 to `tid` arrived on `dest`: when it answers one of the relay's
    /// own SEND chunks, its transaction ends as [`Tracker::on_response`]
    /// ends it (the only output can be [`Output::WindowOpen`]) and this
    /// returns true; anything else is left alone (false).
    pub fn own_chunk_ok(&mut self, dest: ConnId, tid: &[u8]) -> bool {
        if self.partial_group(dest, tid).is_some() {
            return true;
        }
        // one look-up: taken out, and put back if it is not a chunk
        let key = (dest, TidKey::new(tid));
        let Some(o) = self.outstanding.remove(&key) else {
            return false;
        };
        if !matches!(o.origin, Origin::Chunk(_)) {
            self.outstanding.insert(key, o);
            return false;
        }
        self.released(dest, &o);
        self.ended(o, Outcome::Ok);
        true
    }

    /// Whether requests the relay sent on `dest` await answers.
    pub fn awaits(&self, dest: ConnId) -> bool {
        self.per_dest.contains_key(&dest)
            || !self.partial.is_empty()
            || !self.link_groups.is_empty()
    }

    /// Chunk `tid` sent on `dest` (a link) failed beyond it for `cause`
    /// (the other worker's [`Output::LinkFailed`]): it ends as if `dest`
    /// were the next hop and had failed so. Returns whether it was one of
    /// the relay's own chunks.
    pub fn on_failed(&mut self, dest: ConnId, tid: &[u8], cause: Cause) -> bool {
        if let Some(id) = self.partial_group(dest, tid) {
            self.fail_in(id, cause, 0);
            return true;
        }
        let key = (dest, TidKey::new(tid));
        if !matches!(
            self.outstanding.get(&key).map(|o| &o.origin),
            Some(Origin::Chunk(_))
        ) {
            return false;
        }
        self.finish(key, Outcome::Lost(cause));
        true
    }
}
