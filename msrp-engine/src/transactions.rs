//! Transactions the relay forwarded, and the REPORTs it owes when they fail
//! (RFC 4976 §6.4.1).
//!
//! * An [`InTx`] is the sender's transaction: one incoming SEND chunk. It
//!   records what a REPORT needs (From-Path as received, Message-ID,
//!   Byte-Range start/total, bytes received, Failure-Report).
//! * An [`Outstanding`] is one request the relay sent on: an outgoing SEND
//!   chunk (several per incoming chunk when re-chunking) or another request
//!   whose response goes back. Entries also live in the shared
//!   [`TxTable`](super::txtable::TxTable), which the Kamailio timer expires.
//!
//! At most one REPORT is sent per incoming SEND chunk: the first failure
//! among its outgoing chunks reports; later ones of the same chunk add
//! nothing the sender can act on.

use std::time::Instant;

use bytes::Bytes;
use mio::Token;
use msrp_core::{build, ByteRange, EndFlag, FailureReport, FrameHead, StartLine, Status};
use rustc_hash::FxHashMap as HashMap;

use super::engine::{Engine, Host};
use super::stats::Stat;
use super::txtable::{Cause, Event, TxInfo, TxSlot};

/// The sender's transaction: one incoming SEND chunk.
pub(super) struct InTx {
    src: Token,
    src_tid: Bytes,
    /// From-Path as received: the REPORT's To-Path.
    src_from_path: Vec<Bytes>,
    relay_uri: Bytes,
    message_id: Bytes,
    failure_report: FailureReport,
    range_start: u64,
    total: Option<u64>,
    /// Body bytes of the chunk received so far.
    received: u64,
    /// Outgoing chunks not yet answered.
    subs: u32,
    /// "partial": the chunks' transaction IDs are `prefix` + a 6-character
    /// sequence number, so an error response finds its incoming chunk
    /// without an entry per outgoing chunk (successes are never answered,
    /// RFC 4975 §7.1.4). Set while such chunks may still get an answer.
    partial_prefix: Option<Bytes>,
    partial_dest: Option<Token>,
    partial_seq: u32,
    /// Answers to the group are accepted until then.
    partial_until: Option<Instant>,
    /// The incoming chunk is still arriving.
    receiving: bool,
    reported: bool,
}

impl InTx {
    pub(super) fn new(
        src: Token,
        src_tid: Bytes,
        src_from_path: Vec<Bytes>,
        relay_uri: Bytes,
        message_id: Bytes,
        failure_report: FailureReport,
        range: Option<ByteRange>,
    ) -> Self {
        InTx {
            src,
            src_tid,
            src_from_path,
            relay_uri,
            message_id,
            failure_report,
            range_start: range.map_or(1, |r| r.start),
            total: range.and_then(|r| r.total),
            received: 0,
            subs: 0,
            partial_prefix: None,
            partial_dest: None,
            partial_seq: 0,
            partial_until: None,
            receiving: true,
            reported: false,
        }
    }
}

/// What a forwarded request's response is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxKind {
    /// An outgoing SEND chunk of incoming chunk `InTx` id: the relay
    /// consumes its response itself (RFC 4976 §6.4.1).
    Chunk(u64),
    /// Any other request: its response goes back to the source.
    PassBack,
}

/// A request this worker sent on and that awaits its response.
pub(super) struct Outstanding {
    kind: TxKind,
    src: Token,
    src_tid: Bytes,
    src_from_path: Vec<Bytes>,
    relay_uri: Bytes,
    slot: Option<TxSlot>,
    /// Local expiry when the shared table had no room for the entry.
    deadline: Option<Instant>,
}

impl Outstanding {
    pub(super) fn chunk(src: Token, in_id: u64) -> Self {
        Outstanding {
            kind: TxKind::Chunk(in_id),
            src,
            src_tid: Bytes::new(),
            src_from_path: Vec::new(),
            relay_uri: Bytes::new(),
            slot: None,
            deadline: None,
        }
    }

    pub(super) fn pass_back(
        src: Token,
        src_tid: Bytes,
        src_from_path: Vec<Bytes>,
        relay_uri: Bytes,
    ) -> Self {
        Outstanding {
            kind: TxKind::PassBack,
            src,
            src_tid,
            src_from_path,
            relay_uri,
            slot: None,
            deadline: None,
        }
    }
}

/// How a forwarded request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok,
    /// The next hop answered with this error code.
    Error(u16),
    /// No response within transaction_timeout.
    Timeout,
    /// The next hop's connection failed or closed.
    Lost(Cause),
}

/// Engine-side transaction bookkeeping.
#[derive(Default)]
pub(super) struct Transactions {
    pub(super) in_txs: HashMap<u64, InTx>,
    next_in_id: u64,
    pub(super) outstanding: HashMap<(Token, Bytes), Outstanding>,
    by_slot: HashMap<TxSlot, (Token, Bytes)>,
    /// (deadline, key) for entries without a table slot, in arming order.
    local_deadlines: std::collections::VecDeque<(Instant, Token, Bytes)>,
    /// "partial" chunk groups: (next hop, tid prefix) -> incoming chunk.
    partial: HashMap<(Token, Bytes), u64>,
    partial_deadlines: std::collections::VecDeque<(Instant, u64)>,
    /// Unanswered requests per next hop (the request window).
    per_dest: HashMap<Token, u32>,
    /// Last "table full" warning.
    table_full_logged: Option<Instant>,
}

/// Most requests the relay keeps unanswered towards one next hop before it
/// stops sending it more (16 MiB of 16 KiB chunks).
const REQUEST_WINDOW: u32 = 1024;
/// Length of the prefix of "partial" chunk transaction IDs.
const PARTIAL_PREFIX_LEN: usize = 16;
const PARTIAL_SEQ_LEN: usize = 6;

impl<H: Host> Engine<H> {
    pub(super) fn new_in_tx(&mut self, tx: InTx) -> u64 {
        let tr = &mut self.tx;
        tr.next_in_id += 1;
        tr.in_txs.insert(tr.next_in_id, tx);
        tr.next_in_id
    }

    pub(super) fn in_tx_set_received(&mut self, id: u64, n: u64) {
        if let Some(tx) = self.tx.in_txs.get_mut(&id) {
            tx.received = n;
        }
    }

    /// The incoming chunk has been received (and forwarded as far as it
    /// goes).
    pub(super) fn in_tx_received_all(&mut self, id: u64) {
        let timeout = self.cfg.transaction_timeout;
        if let Some(tx) = self.tx.in_txs.get_mut(&id) {
            tx.receiving = false;
            // a "partial" group whose timer never started (aborted before a
            // chunk ended) or already ran out still gets its full timeout
            if tx.partial_prefix.is_some() && tx.partial_until.is_none_or(|u| u <= Instant::now()) {
                let at = Instant::now() + timeout;
                tx.partial_until = Some(at);
                self.tx.partial_deadlines.push_back((at, id));
            }
        }
        self.in_tx_maybe_done(id);
    }

    fn in_tx_maybe_done(&mut self, id: u64) {
        if self
            .tx
            .in_txs
            .get(&id)
            .is_some_and(|tx| !tx.receiving && tx.subs == 0 && tx.partial_prefix.is_none())
        {
            self.tx.in_txs.remove(&id);
        }
    }

    /// Registers an outgoing request `tid` sent to `dest`.
    pub(super) fn track(
        &mut self,
        dest: Token,
        tid: Bytes,
        mut o: Outstanding,
        origin: std::net::SocketAddr,
        range_start: u64,
    ) {
        let (fr, message_id, total) = match o.kind {
            TxKind::Chunk(id) => match self.tx.in_txs.get_mut(&id) {
                Some(tx) => {
                    // RFC 4975 §7.1.4: with "no" the next hop sends no
                    // response at all: nothing to wait for.
                    if tx.failure_report == FailureReport::No {
                        return;
                    }
                    // "partial": tracked per group, see partial_tid
                    if tx.failure_report == FailureReport::Partial {
                        return;
                    }
                    tx.subs += 1;
                    (tx.failure_report, tx.message_id.clone(), tx.total)
                }
                None => return,
            },
            TxKind::PassBack => (FailureReport::Yes, Bytes::new(), None),
        };
        let info = TxInfo {
            tid: &tid,
            message_id: &message_id,
            origin,
            failure_report: fr,
            range_start,
            total,
        };
        match self.table.insert(&info) {
            Ok(slot) => {
                o.slot = Some(slot);
                self.tx.by_slot.insert(slot, (dest, tid.clone()));
            }
            Err(e) => {
                self.table.count(Event::TableFull);
                // once per second at most: a full table means many of these
                let now = Instant::now();
                if self
                    .tx
                    .table_full_logged
                    .is_none_or(|at| now.duration_since(at).as_secs() >= 1)
                {
                    self.tx.table_full_logged = Some(now);
                    log::warn!(
                        "{e}: transactions are tracked by this worker only (see msrp_relay.reports table_full)"
                    );
                }
            }
        }
        *self.tx.per_dest.entry(dest).or_default() += 1;
        self.tx.outstanding.insert((dest, tid), o);
    }

    /// Whether `dest` has a full window of unanswered requests.
    pub(super) fn window_full(&self, dest: Token) -> bool {
        self.tx
            .per_dest
            .get(&dest)
            .is_some_and(|n| *n >= REQUEST_WINDOW)
    }

    /// Transaction ID for the next outgoing chunk of incoming chunk `id`
    /// when its Failure-Report is "partial" (None otherwise).
    pub(super) fn partial_tid(&mut self, id: u64, dest: Token) -> Option<Bytes> {
        let tx = self.tx.in_txs.get(&id)?;
        if tx.failure_report != FailureReport::Partial {
            return None;
        }
        let prefix = match (&tx.partial_prefix, tx.partial_dest) {
            (Some(p), Some(d)) if d == dest => p.clone(),
            _ => {
                let p = self.tids.next_tid();
                self.tx.partial.insert((dest, p.clone()), id);
                let tx = self.tx.in_txs.get_mut(&id)?;
                if let (Some(old), Some(d)) = (tx.partial_prefix.take(), tx.partial_dest) {
                    self.tx.partial.remove(&(d, old));
                }
                tx.partial_prefix = Some(p.clone());
                tx.partial_dest = Some(dest);
                p
            }
        };
        let tx = self.tx.in_txs.get_mut(&id)?;
        tx.partial_seq += 1;
        let mut tid = prefix.to_vec();
        tid.extend_from_slice(
            format!("{:0width$}", tx.partial_seq, width = PARTIAL_SEQ_LEN).as_bytes(),
        );
        Some(Bytes::from(tid))
    }

    /// The incoming chunk a "partial" chunk's transaction ID belongs to.
    fn partial_group(&self, t: Token, tid: &[u8]) -> Option<u64> {
        if tid.len() != PARTIAL_PREFIX_LEN + PARTIAL_SEQ_LEN {
            return None;
        }
        let prefix = Bytes::copy_from_slice(&tid[..PARTIAL_PREFIX_LEN]);
        self.tx.partial.get(&(t, prefix)).copied()
    }

    /// Ends a "partial" group: its chunks can no longer be answered.
    fn end_partial(&mut self, id: u64) {
        if let Some(tx) = self.tx.in_txs.get_mut(&id) {
            if let (Some(p), Some(d)) = (tx.partial_prefix.take(), tx.partial_dest.take()) {
                self.tx.partial.remove(&(d, p));
            }
            tx.partial_until = None;
        }
        self.in_tx_maybe_done(id);
    }

    /// The request's last byte is queued: its response timer starts
    /// (RFC 4976 §6.4.1).
    pub(super) fn arm(&mut self, dest: Token, tid: Bytes) {
        let timeout = self.cfg.transaction_timeout;
        if let Some(id) = self.partial_group(dest, &tid) {
            // answers to a "partial" group are awaited until the timeout
            // after its last chunk
            let at = Instant::now() + timeout;
            if let Some(tx) = self.tx.in_txs.get_mut(&id) {
                tx.partial_until = Some(at);
                self.tx.partial_deadlines.push_back((at, id));
            }
            return;
        }
        let key = (dest, tid);
        let Some(o) = self.tx.outstanding.get_mut(&key) else {
            return;
        };
        match o.slot {
            Some(slot) => self.table.arm(slot, timeout),
            None => {
                let at = Instant::now() + timeout;
                o.deadline = Some(at);
                self.tx.local_deadlines.push_back((at, key.0, key.1));
            }
        }
    }

    /// The Kamailio timer expired entries of this worker.
    pub(super) fn on_timer_wakeup(&mut self) {
        self.table.clear_wakeup();
        for slot in self.table.take_expired() {
            match self.tx.by_slot.get(&slot).cloned() {
                Some(key) => self.finish(key, Outcome::Timeout),
                None => self.table.remove(slot),
            }
        }
    }

    /// Expiry of entries that found no room in the shared table, and of
    /// "partial" groups.
    pub(super) fn expire_local(&mut self, now: Instant) {
        while let Some((at, id)) = self.tx.partial_deadlines.front().copied() {
            if at > now {
                break;
            }
            self.tx.partial_deadlines.pop_front();
            let Some(tx) = self.tx.in_txs.get(&id) else {
                continue;
            };
            if tx.partial_until == Some(at) && !tx.receiving {
                self.end_partial(id);
            }
        }
        while let Some((at, _, _)) = self.tx.local_deadlines.front() {
            if *at > now {
                break;
            }
            let Some((at, dest, tid)) = self.tx.local_deadlines.pop_front() else {
                break;
            };
            let key = (dest, tid);
            if self.tx.outstanding.get(&key).and_then(|o| o.deadline) == Some(at) {
                self.finish(key, Outcome::Timeout);
            }
        }
    }

    /// A response arrived on `t`. Responses to the relay's own SEND chunks
    /// are consumed here (RFC 4976 §6.4.1: downstream responses to a SEND are
    /// not forwarded); a response to another request goes back to the
    /// connection and transaction it answers when the script called
    /// `msrp_relay()`.
    pub(super) fn on_response(&mut self, t: Token, head: &FrameHead, relay: bool) {
        let key = (t, head.transaction_id.clone());
        if let Some(id) = self.partial_group(t, &head.transaction_id) {
            let code = head.status_code().unwrap_or(0);
            if code != 200 {
                log::info!(
                    "next hop answered {code} to chunk {} (connection {})",
                    String::from_utf8_lossy(&head.transaction_id),
                    t.0
                );
                self.report(id, code, reason(code), Cause::ErrorResponse);
                if code == 413 {
                    self.stop_message(id);
                }
            }
            return;
        }
        let Some(kind) = self.tx.outstanding.get(&key).map(|o| o.kind) else {
            log::info!(
                "response {} for unknown transaction {} on connection {}: dropped",
                head.status_code().unwrap_or(0),
                String::from_utf8_lossy(&head.transaction_id),
                t.0
            );
            return;
        };
        let code = head.status_code().unwrap_or(0);
        match kind {
            TxKind::Chunk(_) => {
                let outcome = if code == 200 {
                    Outcome::Ok
                } else {
                    log::info!(
                        "next hop answered {code} to chunk {} (connection {})",
                        String::from_utf8_lossy(&head.transaction_id),
                        t.0
                    );
                    Outcome::Error(code)
                };
                self.finish(key, outcome);
            }
            TxKind::PassBack => {
                if let Some(o) = self.remove_outstanding(&key) {
                    if relay {
                        self.pass_back(head, &o);
                    }
                }
            }
        }
    }

    /// Whether `head` answers one of the relay's own outgoing SEND chunks.
    pub(super) fn is_own_chunk_response(&self, t: Token, head: &FrameHead) -> bool {
        self.partial_group(t, &head.transaction_id).is_some()
            || matches!(
                self.tx
                    .outstanding
                    .get(&(t, head.transaction_id.clone()))
                    .map(|o| o.kind),
                Some(TxKind::Chunk(_))
            )
    }

    fn remove_outstanding(&mut self, key: &(Token, Bytes)) -> Option<Outstanding> {
        let o = self.tx.outstanding.remove(key)?;
        let dest = key.0;
        let left = match self.tx.per_dest.get_mut(&dest) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if left == 0 {
            self.tx.per_dest.remove(&dest);
        }
        if left <= REQUEST_WINDOW / 2 {
            if let Some(d) = self.conns.get_mut(&dest) {
                self.ready.extend(d.window_waiters.drain(..));
            }
        }
        if let Some(slot) = o.slot {
            self.tx.by_slot.remove(&slot);
            self.table.remove(slot);
        }
        Some(o)
    }

    /// Ends a forwarded request's transaction and does what its outcome
    /// calls for.
    pub(super) fn finish(&mut self, key: (Token, Bytes), outcome: Outcome) {
        let Some(o) = self.remove_outstanding(&key) else {
            return;
        };
        match o.kind {
            TxKind::PassBack => {
                // RFC 4975 §7.1 / 4976 §6.4: the previous hop gets a 408
                // when the request cannot complete downstream.
                if outcome != Outcome::Ok {
                    let frame = build::response_frame(
                        &o.src_tid,
                        408,
                        Some(b"Request Timeout"),
                        &o.src_from_path,
                        std::slice::from_ref(&o.relay_uri),
                        &[],
                    );
                    self.push_frame(o.src, frame);
                }
            }
            TxKind::Chunk(id) => {
                if let Some(tx) = self.tx.in_txs.get_mut(&id) {
                    tx.subs = tx.subs.saturating_sub(1);
                }
                match outcome {
                    Outcome::Ok => {}
                    Outcome::Error(code) => {
                        self.report(id, code, reason(code), Cause::ErrorResponse);
                        if code == 413 {
                            self.stop_message(id);
                        }
                    }
                    Outcome::Timeout => {
                        self.report(id, 408, "Request Timeout", Cause::Timeout);
                    }
                    Outcome::Lost(cause) => {
                        let text = match cause {
                            Cause::Unreachable => "Next Hop Unreachable",
                            _ => "Next Hop Connection Lost",
                        };
                        self.report(id, 408, text, cause);
                    }
                }
                self.in_tx_maybe_done(id);
            }
        }
    }

    /// Sends the REPORT for incoming chunk `id`, once, if its Failure-Report
    /// asks for it: "yes" for everything, "partial" for everything but
    /// timeouts (a "partial" SEND gets no 200, so no timer applies to it),
    /// "no" never (RFC 4976 §6.4.1, RFC 4975 §7.1.4).
    pub(super) fn report(&mut self, id: u64, code: u16, comment: &str, cause: Cause) {
        let Some(tx) = self.tx.in_txs.get_mut(&id) else {
            return;
        };
        let wanted = match tx.failure_report {
            FailureReport::Yes => true,
            FailureReport::Partial => cause != Cause::Timeout,
            FailureReport::No => false,
        };
        if tx.reported || !wanted {
            return;
        }
        tx.reported = true;
        let range = ByteRange {
            start: tx.range_start,
            // range-end: the bytes actually received (RFC 4975 §7.1.2)
            end: Some(tx.range_start + tx.received - 1),
            total: tx.total,
        };
        let (src, from, relay_uri, msgid) = (
            tx.src,
            tx.src_from_path.clone(),
            tx.relay_uri.clone(),
            tx.message_id.clone(),
        );
        log::debug!(
            "REPORT {code} for transaction {} ({})",
            String::from_utf8_lossy(&tx.src_tid),
            cause.name()
        );
        self.send_report(
            src,
            &from,
            &relay_uri,
            &msgid,
            Some(range),
            code,
            comment,
            cause,
        );
    }

    /// Builds and queues a REPORT on the origin connection `src`; counts it,
    /// or counts it dropped when the connection is gone (RFC 4976 §6.4.3).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_report(
        &mut self,
        src: Token,
        to_path: &[Bytes],
        relay_uri: &Bytes,
        message_id: &[u8],
        range: Option<ByteRange>,
        code: u16,
        comment: &str,
        cause: Cause,
    ) {
        if !self.conns.contains_key(&src) {
            self.table.count(Event::ReportDropped);
            self.stats.add(Stat::ReportsDropped, 1);
            log::info!("REPORT {code} dropped: the sender's connection is gone");
            return;
        }
        let tid = self.tids.next_tid();
        let status = Status {
            namespace: 0,
            code,
            comment: Some(Bytes::copy_from_slice(comment.as_bytes())),
        };
        let frame = build::report_frame(&tid, to_path, relay_uri, message_id, range, &status);
        self.table.count(Event::Report(cause));
        self.stats.add(Stat::ReportsSent, 1);
        self.stats.add(Stat::report(cause), 1);
        self.push_frame(src, frame);
    }

    /// RFC 4975 §10 (413): the rest of this message is not forwarded; later
    /// chunks of it from the same sender are refused.
    fn stop_message(&mut self, id: u64) {
        let Some(tx) = self.tx.in_txs.get(&id) else {
            return;
        };
        let (src, msgid) = (tx.src, tx.message_id.clone());
        if let Some(c) = self.conns.get_mut(&src) {
            c.rejected.insert(msgid);
        }
        if self.fwd_mut(src).is_some_and(|f| f.in_id == Some(id)) {
            self.cut_forward(src);
        }
    }

    /// Whether the sender on `t` was told to stop sending this message.
    pub(super) fn rejected(&self, t: Token, message_id: &Bytes) -> bool {
        self.conns
            .get(&t)
            .is_some_and(|c| c.rejected.contains(message_id))
    }

    /// The connection `t` (a next hop) failed or closed: every request sent
    /// on it fails, and sources still sending into it stop.
    pub(super) fn next_hop_lost(&mut self, t: Token, cause: Cause) {
        if cause == Cause::Unreachable {
            self.stats.add(Stat::ConnectFailures, 1);
        }
        let keys: Vec<(Token, Bytes)> = self
            .tx
            .outstanding
            .keys()
            .filter(|(d, _)| *d == t)
            .cloned()
            .collect();
        if !keys.is_empty() {
            log::info!(
                "next hop connection {} lost with {} transaction(s) outstanding",
                t.0,
                keys.len()
            );
        }
        for k in keys {
            self.finish(k, Outcome::Lost(cause));
        }
        let groups: Vec<u64> = self
            .tx
            .partial
            .iter()
            .filter(|((d, _), _)| *d == t)
            .map(|(_, id)| *id)
            .collect();
        for id in groups {
            let text = match cause {
                Cause::Unreachable => "Next Hop Unreachable",
                _ => "Next Hop Connection Lost",
            };
            self.report(id, 408, text, cause);
            self.end_partial(id);
        }
        self.tx.per_dest.remove(&t);
        let feeding: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(&c.incoming, super::engine::Incoming::Forward(f) if f.dest == Some(t))
            })
            .map(|(k, _)| *k)
            .collect();
        for s in feeding {
            let in_id = self.fwd_mut(s).and_then(|f| {
                f.dest = None;
                f.cur_tid = None;
                f.pending
                    .retain(|e| !matches!(e, msrp_core::ChunkEvent::Body(_)));
                f.in_id
            });
            if let Some(id) = in_id {
                let text = match cause {
                    Cause::Unreachable => "Next Hop Unreachable",
                    _ => "Next Hop Connection Lost",
                };
                self.report(id, 408, text, cause);
            }
            self.ready.push_back(s);
        }
    }

    /// Sends a response back with the original transaction ID.
    fn pass_back(&mut self, head: &FrameHead, o: &Outstanding) {
        if !self.conns.contains_key(&o.src) {
            // RFC 4976 §6.4.3: the return connection is gone: discard silently.
            log::debug!("response for a connection that is gone: dropped");
            return;
        }
        let (code, comment) = match &head.start {
            StartLine::Response { code, comment } => (*code, comment.clone()),
            StartLine::Request { .. } => return,
        };
        let rto = head.to_path().unwrap_or_default();
        let rfrom = head.from_path().unwrap_or_default();
        let (to_path, from_path) = match msrp_core::path::forward(&rto, &rfrom, &o.relay_uri) {
            Some(p) if rto.len() >= 2 => p,
            _ => {
                let mut f = vec![o.relay_uri.clone()];
                f.extend(rfrom);
                (o.src_from_path.clone(), f)
            }
        };
        let others: Vec<_> = head.other_headers().cloned().collect();
        let mut frame = build::response_head(
            &o.src_tid,
            code,
            comment.as_deref(),
            &to_path,
            &from_path,
            &others,
        );
        frame.extend_from_slice(&build::end_line(&o.src_tid, EndFlag::Complete));
        self.stats.add(Stat::RepliesForwarded, 1);
        self.push_frame(o.src, frame.freeze());
    }
}

/// Reason phrase for a REPORT status (RFC 4975 §10).
fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        413 => "Message Too Large",
        415 => "Unsupported Media Type",
        423 => "Interval Out-of-Bounds",
        481 => "Session Does Not Exist",
        501 => "Not Implemented",
        506 => "Wrong Connection",
        _ => "Error",
    }
}
