//! What the transaction tracker asks for (REPORTs, failure answers,
//! windows, refusals), closing a connection's protocol side, and the
//! connection timers of the once-a-second sweep.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Io, Relay};
use crate::conn::Incoming;
use crate::connid::ConnId;
use crate::report::ReportOrder;
use crate::stats::Stat;
use crate::tracker::Output;
use crate::txtable::{Cause, Event};

/// Why a connection that never sent a request is closed (RFC 4976 §6.1).
pub const FIRST_REQUEST_LATE: &str = "no request within first_request_timeout";

impl Relay {
    /// Carries out what the transaction tracker asks for.
    pub fn apply_outputs(&mut self, io: &mut dyn Io) {
        while let Some(o) = self.tracker.poll_output() {
            match o {
                Output::Report(r) => self.send_report(r),
                Output::Fail(r) => {
                    let frame = crate::forward::fail_frame(&r);
                    self.push_frame(r.src, frame, self.now);
                }
                Output::LinkFailed { ret, cause } => {
                    let rec = crate::link::record::failed(&ret.src_tid, cause);
                    self.push_frame(ret.src, rec, self.now);
                }
                Output::WindowOpen(dest) => self.sched.window_open(dest),
                Output::Refuse {
                    src,
                    id,
                    message_id,
                } => self.refuse(src, id, message_id, io),
                Output::StopMessage {
                    src,
                    id,
                    message_id,
                } => {
                    if let Some(c) = self.conns.get_mut(&src) {
                        c.rejected.insert(message_id);
                    }
                    let current = self.fwd_mut(src).is_some_and(|f| f.in_id == Some(id));
                    if current {
                        self.cut_forward(src);
                    }
                }
            }
        }
    }

    /// Queues a REPORT on its sender's connection; counts it, or counts it
    /// dropped when the connection is gone (RFC 4976 §6.4.3).
    pub(crate) fn send_report(&mut self, r: ReportOrder) {
        if !self.conns.contains_key(&r.src) {
            self.tracker.count(Event::ReportDropped);
            self.stats.add(Stat::ReportsDropped, 1);
            log::info!("REPORT {} dropped: the sender's connection is gone", r.code);
            return;
        }
        let tid = self.tids.next_tid();
        self.tracker.count(Event::Report(r.cause));
        self.stats.add(Stat::ReportsSent, 1);
        self.stats.add(Stat::report(r.cause), 1);
        self.push_frame(r.src, r.frame(&tid), self.now);
    }

    /// The shared table's timer woke the worker: transactions it expired.
    pub fn table_expired(&mut self, io: &mut dyn Io) {
        self.tracker.on_timer_wakeup();
        self.apply_outputs(io);
    }

    /// Transaction deadlines passed by `now` (RFC 4976 §6.4.1: REPORTs
    /// for chunks without a response).
    pub fn handle_timeout(&mut self, now: Instant, io: &mut dyn Io) {
        self.now = now;
        self.tracker.expire(now);
        self.apply_outputs(io);
    }

    /// The once-a-second sweep at `now` (after the driver closed
    /// [`Relay::idle_connections`]): frames past `frame_timeout`, refusal
    /// pauses that are over, sessions of the connection map that expired.
    pub fn sweep(&mut self, now: Instant, io: &mut dyn Io) {
        self.now = now;
        self.sweep_frames(now, io);
        self.resume_paused(now);
        crate::cmap::with(|m| {
            m.expire(now);
            m.publish();
        });
    }

    /// Tears down the protocol side of connection `t` and fixes everything
    /// that referred to it; the driver closes its socket
    /// ([`Relay::take_closed`]).
    pub fn close(&mut self, t: ConnId, why: &str, io: &mut dyn Io) {
        let Some(mut c) = self.conns.remove(&t) else {
            return;
        };
        if c.outbound.is_none() && c.link.is_none() {
            self.accepted_open = self.accepted_open.saturating_sub(1);
        }
        if let Some(addr) = c.outbound {
            let key = crate::route::NextHop {
                addr,
                tls: c.tls_name.take(),
            };
            if self.outbound.get(&key) == Some(&t) {
                self.outbound.remove(&key);
            }
        }
        log::debug!("connection {} with {} closed: {why}", t.0, c.peer);
        self.stats.add(Stat::ConnectionsActive, -1);
        if let Some(slot) = c.listed {
            self.stats.conn_closed(slot);
        }
        crate::cmap::with(|m| m.remove_connection(t.conid()));
        // A chunk this connection was streaming downstream is cut: abort it
        // there with '#' (RFC 4975 §7.1) so the next hop resynchronises.
        if let Incoming::Forward(f) = std::mem::replace(&mut c.incoming, Incoming::Idle) {
            let in_id = f.in_id;
            self.abort_forward(t, &f);
            if let Some(id) = in_id {
                self.tracker.received_all(id, self.now);
            }
        }
        // Sources waiting for this connection go on (and find it gone).
        self.sched.conn_closed(t);
        self.link_resume(t);
        let cause = if c.established() {
            Cause::NextHopClosed
        } else {
            Cause::Unreachable
        };
        self.closed.push((t, c));
        // Requests sent on this connection will get no response; sources
        // still sending into it stop (and their senders get REPORTs).
        self.next_hop_lost(t, cause, io);
    }

    /// RFC 4976 §6.1: a new connection must send its first request within
    /// `first_request_timeout`; §6.5: idle connections MAY be closed
    /// (`idle_timeout`). A peer that has not taken a byte of what is queued
    /// for it within `transaction_timeout` is closed too: the chunk
    /// streaming into it is aborted, its senders get REPORTs (as for a next
    /// hop that closed) and are read again. Returns the connections to
    /// close at `now`, with their peer and why ([`FIRST_REQUEST_LATE`]: the
    /// driver may know of a handshake the peer abandoned).
    pub fn idle_connections(&self, now: Instant) -> Vec<(ConnId, SocketAddr, &'static str)> {
        let first = self.cfg.first_request_timeout;
        let idle = self.cfg.idle_timeout;
        let stall = self.cfg.transaction_timeout;
        let mut close = Vec::new();
        for (t, c) in &self.conns {
            if c.link.is_some() {
                continue;
            }
            if c.is_connected() && c.stalled_for(now).is_some_and(|d| d > stall) {
                close.push((
                    *t,
                    c.peer,
                    "peer took nothing of its queue within transaction_timeout",
                ));
            } else if !first.is_zero()
                && c.outbound.is_none()
                && !c.got_frame
                && now.duration_since(c.opened) > first
            {
                close.push((*t, c.peer, FIRST_REQUEST_LATE));
            } else if !idle.is_zero()
                && now.duration_since(c.last_active) > idle
                && !c.has_output()
                && !self.sched.is_busy(*t)
                && matches!(c.incoming, Incoming::Idle)
            {
                close.push((*t, c.peer, "idle_timeout"));
            }
        }
        close
    }
}
