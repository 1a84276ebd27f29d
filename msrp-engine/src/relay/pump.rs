//! Streaming a forwarded request: the outgoing chunk events the chunker
//! produced are written as far as the destination allows (stream slot,
//! request window, output watermark), and what happens when either end
//! goes away mid-chunk.

use crate::connid::ConnId;
use bytes::Bytes;
use msrp_core::{ByteRange, ChunkEvent, EndFlag};

use super::{Io, Relay};
use crate::conn::Incoming;
use crate::forward::{Aborted, Forward};
use crate::link::record;
use crate::stats::Stat;
use crate::tracker::Origin;
use crate::txtable::Cause;

/// What became of one outgoing event.
enum Step {
    /// Written (or swallowed): go on.
    Next,
    /// The source must wait (or is gone).
    Wait,
}

impl Relay {
    /// The forward state of `t`, if it is forwarding a frame.
    pub(crate) fn fwd_mut(&mut self, t: ConnId) -> Option<&mut Forward> {
        self.conns.get_mut(&t).and_then(|c| c.forward())
    }

    /// Writes the pending outgoing events of the frame `t` is forwarding, as
    /// far as the destination allows. Returns false when `t` must wait (or is
    /// gone).
    pub fn pump(&mut self, t: ConnId) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(&t) else {
                return false;
            };
            let Incoming::Forward(f) = &mut c.incoming else {
                return true;
            };
            let Some(ev) = f.pending.pop_front() else {
                if f.finished {
                    self.finish_forward(t);
                }
                return true;
            };
            let Some(dest) = f.dest else {
                continue; // next hop failed: swallow
            };
            if !self.conns.contains_key(&dest) {
                self.link_chunk_unsent(t, Cause::NextHopClosed);
                if let Some(f) = self.fwd_mut(t) {
                    f.dest = None;
                }
                continue;
            }
            let step = match ev {
                ChunkEvent::Start(range) => self.start_chunk(t, dest, range),
                ChunkEvent::Body(b) => self.chunk_body(t, dest, b),
                ChunkEvent::End(flag) => self.end_chunk(t, dest, flag),
            };
            if let Step::Wait = step {
                return false;
            }
        }
    }

    /// The incoming frame has been received and forwarded: the relay's own
    /// 200 goes back, the incoming transaction is complete.
    fn finish_forward(&mut self, t: ConnId) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        let Incoming::Forward(f) = std::mem::replace(&mut c.incoming, Incoming::Idle) else {
            return;
        };
        if let Some(r) = f.answer.and_then(|a| a.ok()) {
            self.stats.add(Stat::RepliesSent, 1);
            self.push_frame(t, r, self.now);
        }
        if let Some(id) = f.in_id {
            self.tracker.received_all(id, self.now);
        }
    }

    /// An outgoing chunk starts: it needs room in the next hop's request
    /// window (RFC 4975 has no window, but the relay keeps state per request
    /// it sends: a next hop that stops answering stops getting more) and the
    /// destination's stream slot.
    fn start_chunk(&mut self, t: ConnId, dest: ConnId, range: Option<ByteRange>) -> Step {
        let wait = if self.link_paused(t, dest) {
            true
        } else if self.tracker.window_full(dest) {
            self.sched.wait_window(t, dest);
            true
        } else {
            !self.sched.begin_chunk(t, dest)
        };
        let Some(f) = self.fwd_mut(t) else {
            return Step::Wait;
        };
        if wait {
            f.pending.push_front(ChunkEvent::Start(range));
            return Step::Wait;
        }
        let in_id = f.in_id;
        // a chunk handed over a link keeps the other worker's tid
        let tid = match f.link_head.is_some() {
            true => f.ret.src_tid.clone(),
            false => self.tracker.chunk_tid(in_id, dest, &mut self.tids),
        };
        let Some(c) = self.conns.get_mut(&t) else {
            return Step::Wait;
        };
        let peer = c.peer;
        let Incoming::Forward(f) = &mut c.incoming else {
            return Step::Wait;
        };
        let head = match f.link_head.take() {
            Some(head) => head,
            None => f.chunk_head(&tid, range),
        };
        let extra = range.is_some() && f.chunks_done > 0;
        let origin = match (f.via_link, f.in_id) {
            (Some(answer_timeout), _) => Origin::Link {
                ret: Box::new(f.ret.clone()),
                answer_timeout,
            },
            (None, Some(id)) => Origin::Chunk(id),
            (None, None) => Origin::PassBack(Box::new(f.ret.clone())),
        };
        let start = range.map_or(f.in_start, |r| r.start);
        if !f.is_report {
            self.tracker
                .track(dest, &tid, origin, peer, start, self.now);
        }
        // moved, not cloned: a tid's reference count is an atomic on its
        // slab, whose cache line a large transfer keeps evicting
        f.cur_tid = Some(tid);
        self.stats.add(Stat::ChunksOut, 1);
        if extra {
            self.stats.add(Stat::ChunksSplit, 1);
        }
        self.push_stream(dest, head, false, self.now);
        Step::Next
    }

    fn chunk_body(&mut self, t: ConnId, dest: ConnId, b: Bytes) -> Step {
        let mut link = false;
        if let Some(f) = self.fwd_mut(t) {
            f.sent += b.len() as u64;
            link = f.link_target.is_some();
            if f.heads.is_send() {
                crate::cmap::with(|m| m.body_out(dest.0 as i64, b.len()));
            }
        }
        if link {
            let now = self.now;
            record::body(b, &mut |p| self.push_stream(dest, p, false, now));
        } else {
            self.push_stream(dest, b, false, self.now);
        }
        if !self.link_absorbs(t, dest) && self.hold_back(t, dest) {
            Step::Wait
        } else {
            Step::Next
        }
    }

    /// The outgoing chunk ends: its response timer starts (RFC 4976
    /// §6.4.1), and the slot goes to the next source after the frames that
    /// waited for this chunk.
    fn end_chunk(&mut self, t: ConnId, dest: ConnId, flag: EndFlag) -> Step {
        let Some(f) = self.fwd_mut(t) else {
            return Step::Wait;
        };
        let Some(tid) = f.cur_tid.take() else {
            return Step::Next;
        };
        f.chunks_done += 1;
        if f.heads.is_send() {
            let complete = flag == EndFlag::Complete;
            crate::cmap::with(|m| m.end_out(dest.0 as i64, complete));
        }
        let end = f.chunk_end(&tid, flag);
        self.push_stream(dest, end, true, self.now);
        self.tracker.arm(dest, &tid, self.now);
        self.leave_dest(dest, t);
        Step::Next
    }

    /// `src` no longer feeds `dest`: it stops waiting for it and gives up
    /// its stream slot; frames deferred behind its chunk go out.
    fn leave_dest(&mut self, dest: ConnId, src: ConnId) {
        if self.sched.leave(dest, src) {
            if let Some(d) = self.conns.get_mut(&dest) {
                d.release_deferred(self.now);
            }
            self.mark_dirty(dest);
        }
    }

    /// Stops forwarding what `t` is sending to a failed next hop: the open
    /// chunk is aborted with `#` (RFC 4975 §7.1), the rest is swallowed.
    pub(crate) fn cut_forward(&mut self, t: ConnId) {
        let Some(f) = self.fwd_mut(t) else {
            return;
        };
        let Some(dest) = f.dest.take() else {
            return;
        };
        if let Some(end) = f.cut() {
            self.push_stream(dest, end, true, self.now);
        }
        self.leave_dest(dest, t);
    }

    /// The sender of `f` is gone mid-chunk: its next hop gets what ends the
    /// chunk (see [`Forward::abort`]).
    pub(crate) fn abort_forward(&mut self, src: ConnId, f: &Forward) {
        let Some(dest) = f.dest else {
            return;
        };
        match f.abort(&mut self.tids) {
            Some(Aborted::EndLine(b)) => self.push_stream(dest, b, true, self.now),
            Some(Aborted::Frame(b)) => self.push_frame(dest, b, self.now),
            None => {}
        }
        self.leave_dest(dest, src);
    }

    /// The connection `t` (a next hop) failed or closed: every request sent
    /// on it fails, and sources still sending into it stop (their senders
    /// get REPORTs).
    pub(crate) fn next_hop_lost(&mut self, t: ConnId, cause: Cause, io: &mut dyn Io) {
        if cause == Cause::Unreachable {
            self.stats.add(Stat::ConnectFailures, 1);
        }
        self.tracker.next_hop_lost(t, cause);
        self.apply_outputs(io);
        let feeding: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(&c.incoming, Incoming::Forward(f) if f.dest == Some(t)))
            .map(|(k, _)| *k)
            .collect();
        for s in feeding {
            self.link_chunk_unsent(s, cause);
            let in_id = self.fwd_mut(s).and_then(|f| {
                f.dest = None;
                f.cut();
                f.in_id
            });
            if let Some(id) = in_id {
                self.tracker.fail_in(id, cause, 0);
                self.apply_outputs(io);
            }
            self.sched.wake(s);
        }
    }
}
