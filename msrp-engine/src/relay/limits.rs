//! Bounds on what one peer can make the relay hold or read for nothing:
//! frame deadlines (`frame_timeout`: a head must complete, a body keep
//! moving) and refused chunks (a SEND the relay knows it cannot deliver
//! while it still arrives gets an error response, not a 200, and the rest
//! of it is read only as far as a sender that stops can have in flight).

use std::net::SocketAddr;
use std::time::Instant;

use crate::connid::ConnId;
use bytes::Bytes;

use super::{Io, Relay};
use crate::conn::Incoming;
use crate::stats::Stat;
use crate::tracker::InId;
use crate::txtable::Cause;

impl Relay {
    /// Incoming chunk `id` on `src` cannot be delivered and is still
    /// arriving. The sender gets 413 instead of the 200 (RFC 4975 §10: the
    /// sender stops sending this message, interrupting the chunk; its REPORT
    /// carries the cause), the chunk already started downstream ends with
    /// `#` (RFC 4975 §7.1), later chunks of the message get 413, and the
    /// rest of the body is discarded up to
    /// [`refusal_slack`](crate::forward::refusal_slack).
    pub(crate) fn refuse(&mut self, src: ConnId, id: InId, message_id: Bytes, io: &mut dyn Io) {
        let Some(c) = self.conns.get_mut(&src) else {
            return;
        };
        let peer = c.peer;
        let slack = crate::forward::refusal_slack(io.recv_buffer(src));
        c.rejected.insert(message_id);
        let Incoming::Forward(f) = &mut c.incoming else {
            return;
        };
        if f.in_id != Some(id) {
            return;
        }
        f.refused_at = Some((f.chunker.consumed(), slack));
        let answer = f.answer.take().map(|a| a.refusal());
        log::info!(
            "SEND {} from {peer} (connection {}) cannot be delivered: {}, rest of the chunk \
             not forwarded",
            String::from_utf8_lossy(&f.ret.src_tid),
            src.0,
            if answer.is_some() {
                "answered 413"
            } else {
                "no response (Failure-Report no)"
            }
        );
        self.cut_forward(src);
        if let Some(r) = answer {
            self.stats.add(Stat::RepliesSent, 1);
            self.push_frame(src, r, self.now);
        }
    }

    /// A refused chunk's sender keeps sending it: past the slack the
    /// relay stops reading it for
    /// [`REFUSAL_PAUSE`](crate::forward::REFUSAL_PAUSE) once, past a second
    /// slack it closes the connection. Returns whether it did.
    pub fn check_refused(&mut self, t: ConnId, io: &mut dyn Io) -> bool {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&t) else {
            return false;
        };
        let peer = c.peer;
        let Incoming::Forward(f) = &mut c.incoming else {
            return false;
        };
        let Some(after) = f.past_refusal() else {
            return false;
        };
        if !f.refusal_paused {
            f.refusal_paused = true;
            f.refused_at = f.refused_at.map(|(_, slack)| (f.chunker.consumed(), slack));
            c.read_paused_until = Some(now + crate::forward::REFUSAL_PAUSE);
            log::debug!(
                "connection {} with {peer}: {after} bytes of a refused chunk after its 413; \
                 not read for a while",
                t.0
            );
            return false;
        }
        log::warn!(
            "closing connection {} with {peer}: it sent {after} bytes of a refused chunk after \
             its 413",
            t.0
        );
        self.close(t, "kept sending a refused chunk", io);
        true
    }

    /// `frame_timeout`: a frame head must complete within it from its first
    /// byte, and a body must not go longer without a byte, unless the relay
    /// itself holds the sender back (flow control). Checked in the 1 s
    /// sweep against one timestamp per frame start and one per read.
    pub(super) fn sweep_frames(&mut self, now: Instant, io: &mut dyn Io) {
        let limit = self.cfg.frame_timeout;
        if limit.is_zero() {
            return;
        }
        let mut late = Vec::new();
        for (t, c) in self.conns.iter_mut() {
            if c.link.is_some() || c.closing() || !c.parser.in_frame() {
                continue;
            }
            if self.sched.blocked(*t).is_some() || c.read_paused_until.is_some() {
                // not read because of the relay: the clock restarts when
                // it is read again
                c.frame_mark = now;
                c.last_read = now;
                continue;
            }
            let in_body = c.parser.current_transaction_id().is_some();
            let since = if in_body {
                c.frame_mark.max(c.last_read)
            } else {
                c.frame_mark
            };
            if now.duration_since(since) > limit {
                late.push((*t, c.peer, in_body));
            }
        }
        for (t, peer, in_body) in late {
            self.frame_late(t, peer, in_body, io);
        }
    }

    /// Reads again the connections whose refusal pause is over.
    pub(super) fn resume_paused(&mut self, now: Instant) {
        for (t, c) in self.conns.iter_mut() {
            if c.read_paused_until.is_some_and(|u| u <= now) {
                c.read_paused_until = None;
                self.sched.wake(*t);
            }
        }
    }

    /// Closes `t`, whose frame ran past `frame_timeout`. A SEND cut short
    /// is failed first: the sender gets its REPORT and 413 (written before
    /// the connection closes), the next hop the chunk's `#`.
    fn frame_late(&mut self, t: ConnId, peer: SocketAddr, in_body: bool, io: &mut dyn Io) {
        let secs = self.cfg.frame_timeout.as_secs();
        if !in_body {
            log::info!(
                "closing connection {} with {peer}: frame head not complete within \
                 frame_timeout ({secs} s)",
                t.0
            );
            self.close(t, "frame_timeout (head)", io);
            return;
        }
        log::info!(
            "closing connection {} with {peer}: frame body stalled for frame_timeout ({secs} s)",
            t.0
        );
        let Some(id) = self.fwd_mut(t).and_then(|f| f.in_id) else {
            self.close(t, "frame_timeout (body)", io);
            return;
        };
        self.tracker.fail_in(id, Cause::SenderStalled, 0);
        self.apply_outputs(io);
        if let Some(c) = self.conns.get_mut(&t) {
            c.close_after_flush();
        }
        self.mark_dirty(t);
    }
}

impl Relay {
    /// Body bytes a SEND chunk from `t` may carry within the connection's
    /// message size limit (`Ok(None)`: no limit); `Err` when its Byte-Range
    /// already says the message is larger (RFC 4975 §10: 413).
    pub(crate) fn size_allowance(
        &self,
        t: ConnId,
        req: &crate::route::Request,
    ) -> Result<Option<u64>, ()> {
        let Some(c) = self.conns.get(&t) else {
            return Ok(None);
        };
        let limit = c.max_message;
        if !req.is_send || limit == 0 {
            return Ok(None);
        }
        let (before, end, total) = req.range.map_or((0, None, None), |r| {
            (r.start.saturating_sub(1), r.end, r.total)
        });
        let declared = total.into_iter().chain(end).max();
        if before > limit || declared.is_some_and(|n| n > limit) {
            log::info!(
                "SEND from {} (connection {}): message of {} bytes over max_message_size \
                 ({limit}): 413",
                c.peer,
                t.0,
                declared.unwrap_or(before)
            );
            return Err(());
        }
        Ok(Some(limit - before))
    }

    /// The chunk arriving on `t` passed the connection's message size
    /// limit mid-body: refused (413, REPORT, `#` downstream).
    pub fn too_large(&mut self, t: ConnId, io: &mut dyn Io) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        let (peer, limit) = (c.peer, c.max_message);
        let Some(f) = c.forward() else {
            return;
        };
        f.size_left = None;
        let Some(id) = f.in_id else {
            return;
        };
        log::info!(
            "SEND from {peer} (connection {}): message over max_message_size ({limit}) \
             mid-chunk: 413",
            t.0
        );
        self.tracker.fail_in(id, Cause::TooLarge, 0);
        self.apply_outputs(io);
    }

    /// A request that failed before anything was forwarded (next hop
    /// unreachable at once, message too large) is failed now that it is
    /// `t`'s incoming frame, so its refusal finds it.
    pub(crate) fn fail_at_start(&mut self, t: ConnId, io: &mut dyn Io) {
        let Some(f) = self.fwd_mut(t) else {
            return;
        };
        let (Some(cause), Some(id)) = (f.fail_at_start.take(), f.in_id) else {
            return;
        };
        self.tracker.fail_in(id, cause, 0);
        self.apply_outputs(io);
    }
}
