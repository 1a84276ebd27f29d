use std::cell::RefCell;
use std::collections::{HashMap as StdMap, HashSet};
use std::os::fd::RawFd;
use std::rc::Rc;

use proptest::prelude::*;

use super::*;
use crate::tid::TidGen;
use crate::txtable::TableFull;
use msrp_core::MAX_POSITION;

/// An in-memory shared table: slots with generations; a double or unknown
/// removal fails the test (every entry is removed exactly once).
struct TableState {
    /// index -> (armed deadline, expired by the timer)
    live: StdMap<u32, (Option<Instant>, bool)>,
    clock: Instant,
    next: u32,
    capacity: usize,
    inserted: u32,
    removed: u32,
    events: Vec<Event>,
}

#[derive(Clone)]
struct FakeTable(Rc<RefCell<TableState>>);

impl FakeTable {
    fn with_capacity(capacity: usize) -> Self {
        FakeTable(Rc::new(RefCell::new(TableState {
            live: StdMap::new(),
            clock: Instant::now(),
            next: 0,
            capacity,
            inserted: 0,
            removed: 0,
            events: Vec::new(),
        })))
    }
    /// The Kamailio timer: armed entries whose deadline passed expire.
    fn expire_due(&self) {
        let mut s = self.0.borrow_mut();
        let clock = s.clock;
        for (deadline, expired) in s.live.values_mut() {
            if deadline.is_some_and(|d| d <= clock) {
                *expired = true;
            }
        }
    }
    /// Every armed entry expires (the clock jumps past all deadlines).
    fn expire_armed(&self) {
        let mut s = self.0.borrow_mut();
        s.clock += TIMEOUT * 10;
        drop(s);
        self.expire_due();
    }
}

impl TxTable for FakeTable {
    fn insert(&mut self, _info: &TxInfo<'_>) -> Result<TxSlot, TableFull> {
        let mut s = self.0.borrow_mut();
        if s.live.len() >= s.capacity {
            return Err(TableFull {
                capacity: s.capacity as u32,
            });
        }
        s.next += 1;
        let index = s.next;
        s.live.insert(index, (None, false));
        s.inserted += 1;
        Ok(TxSlot {
            index,
            generation: 1,
        })
    }
    fn arm(&mut self, slot: TxSlot, timeout: Duration) {
        let mut s = self.0.borrow_mut();
        let at = s.clock + timeout;
        if let Some(e) = s.live.get_mut(&slot.index) {
            e.0 = Some(at);
        }
    }
    fn remove(&mut self, slot: TxSlot) {
        let mut s = self.0.borrow_mut();
        assert!(s.live.remove(&slot.index).is_some(), "slot removed twice");
        s.removed += 1;
    }
    fn take_expired(&mut self) -> Vec<TxSlot> {
        // entries the timer expired (still live: the tracker removes them)
        let s = self.0.borrow();
        let gone: Vec<u32> = s
            .live
            .iter()
            .filter(|(_, (_, expired))| *expired)
            .map(|(k, _)| *k)
            .collect();
        gone.into_iter()
            .map(|index| TxSlot {
                index,
                generation: 1,
            })
            .collect()
    }
    fn count(&mut self, event: Event) {
        self.0.borrow_mut().events.push(event);
    }
    fn wakeup_fd(&self) -> Option<RawFd> {
        None
    }
    fn clear_wakeup(&mut self) {}
}

const SRC: ConnId = ConnId(1);
const DEST: ConnId = ConnId(2);
const DEST2: ConnId = ConnId(3);
const TIMEOUT: Duration = Duration::from_secs(30);

fn addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

fn in_tx(fr: FailureReport, msgid: &str) -> InTx {
    InTx {
        src: SRC,
        src_tid: Bytes::from_static(b"srctid"),
        src_from_path: vec![Bytes::from_static(b"msrp://a:1/s;tcp")],
        relay_uri: Bytes::from_static(b"msrp://relay:2855/r;tcp"),
        message_id: Bytes::copy_from_slice(msgid.as_bytes()),
        failure_report: fr,
        range: Some(ByteRange {
            start: 1,
            end: None,
            total: Some(1000),
        }),
    }
}

/// A tracker over a fake table of `capacity` entries, a tid generator and
/// the start time.
fn setup(capacity: usize) -> (FakeTable, Tracker, TidGen, Instant) {
    let table = FakeTable::with_capacity(capacity);
    let t = Tracker::new(Box::new(table.clone()), TIMEOUT);
    (table, t, TidGen::new(1), Instant::now())
}

fn outputs(t: &mut Tracker) -> Vec<Output> {
    std::iter::from_fn(|| t.poll_output()).collect()
}

fn reports(out: &[Output]) -> Vec<&ReportOrder> {
    out.iter()
        .filter_map(|o| match o {
            Output::Report(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn send_chunk(t: &mut Tracker, id: InId, dest: ConnId, tids: &mut TidGen, now: Instant) -> Bytes {
    let tid = t.chunk_tid(Some(id), dest, tids);
    t.track(dest, tid.clone(), Origin::Chunk(id), addr(), 1, now);
    t.arm(dest, tid.clone(), now);
    tid
}

#[test]
fn error_response_reports_once_with_bytes_received() {
    let (table, mut t, mut tids, now) = setup(100);
    let id = t.begin_in(in_tx(FailureReport::Yes, "m1"));
    let a = send_chunk(&mut t, id, DEST, &mut tids, now);
    let b = send_chunk(&mut t, id, DEST, &mut tids, now);
    t.set_received(id, 300);
    t.received_all(id, now);
    // both in the shared table by now
    t.expire(now + PUBLISH_AFTER);
    assert!(t.is_own_chunk(DEST, &a));
    assert_eq!(t.on_response(DEST, &a, 403), Answer::OwnChunk);
    assert_eq!(t.on_response(DEST, &b, 500), Answer::OwnChunk);
    let out = outputs(&mut t);
    let r = reports(&out);
    assert_eq!(r.len(), 1, "{out:?}");
    assert_eq!((r[0].code, r[0].comment), (403, "Forbidden"));
    assert_eq!(r[0].range.and_then(|r| r.end), Some(300));
    assert_eq!(r[0].src, SRC);
    assert!(t.is_empty());
    let s = table.0.borrow();
    assert_eq!((s.inserted, s.removed), (2, 2));
}

#[test]
fn requests_answered_before_publication_never_reach_the_table() {
    let (table, mut t, mut tids, now) = setup(100);
    let id = t.begin_in(in_tx(FailureReport::Yes, "m1"));
    let a = send_chunk(&mut t, id, DEST, &mut tids, now);
    let b = send_chunk(&mut t, id, DEST, &mut tids, now);
    t.received_all(id, now);
    t.expire(now + PUBLISH_AFTER - Duration::from_millis(1));
    assert_eq!(table.0.borrow().inserted, 0, "published too early");
    assert_eq!(t.on_response(DEST, &a, 200), Answer::OwnChunk);
    // an error answer before publication reports as after it
    assert_eq!(t.on_response(DEST, &b, 403), Answer::OwnChunk);
    let out = outputs(&mut t);
    let r = reports(&out);
    assert_eq!(r.len(), 1, "{out:?}");
    assert_eq!((r[0].code, r[0].comment), (403, "Forbidden"));
    t.expire(now + PUBLISH_AFTER * 2);
    assert!(t.is_empty());
    let s = table.0.borrow();
    assert_eq!((s.inserted, s.removed), (0, 0));
}

#[test]
fn a_published_request_keeps_its_deadline() {
    let (table, mut t, mut tids, now) = setup(100);
    let id = t.begin_in(in_tx(FailureReport::Yes, "late"));
    send_chunk(&mut t, id, DEST, &mut tids, now);
    t.received_all(id, now);
    let later = now + PUBLISH_AFTER + Duration::from_millis(5);
    table.0.borrow_mut().clock = later;
    t.expire(later);
    {
        let s = table.0.borrow();
        assert_eq!(s.inserted, 1);
        let deadline = s.live.values().next().and_then(|e| e.0);
        assert_eq!(deadline, Some(now + TIMEOUT), "armed with the time left");
    }
    // the Kamailio timer expires it at the same deadline
    table.0.borrow_mut().clock = now + TIMEOUT - Duration::from_millis(1);
    table.expire_due();
    t.on_timer_wakeup();
    t.expire(now + TIMEOUT - Duration::from_millis(1));
    assert!(reports(&outputs(&mut t)).is_empty(), "expired early");
    table.0.borrow_mut().clock = now + TIMEOUT;
    table.expire_due();
    t.on_timer_wakeup();
    let out = outputs(&mut t);
    let r = reports(&out);
    assert_eq!(r.len(), 1, "{out:?}");
    assert_eq!((r[0].code, &r[0].message_id[..]), (408, &b"late"[..]));
    assert!(t.is_empty());
    let s = table.0.borrow();
    assert_eq!((s.inserted, s.removed), (1, 1));
}

#[test]
fn a_request_published_before_its_last_byte_is_armed_later() {
    let (table, mut t, mut tids, now) = setup(100);
    let id = t.begin_in(in_tx(FailureReport::Yes, "slow"));
    let tid = t.chunk_tid(Some(id), DEST, &mut tids);
    t.track(DEST, tid.clone(), Origin::Chunk(id), addr(), 1, now);
    t.expire(now + PUBLISH_AFTER);
    assert_eq!(table.0.borrow().live.values().next(), Some(&(None, false)));
    let armed_at = now + Duration::from_secs(5);
    table.0.borrow_mut().clock = armed_at;
    t.arm(DEST, tid, armed_at);
    let deadline = table.0.borrow().live.values().next().and_then(|e| e.0);
    assert_eq!(deadline, Some(armed_at + TIMEOUT));
}

#[test]
fn an_unpublished_request_times_out_locally_with_the_same_report() {
    // no loop pass between sending and the deadline (a stalled worker):
    // the request was never published, and times out all the same
    let (table, mut t, mut tids, now) = setup(100);
    let id = t.begin_in(in_tx(FailureReport::Yes, "quiet"));
    send_chunk(&mut t, id, DEST, &mut tids, now);
    t.received_all(id, now);
    t.expire(now + TIMEOUT - Duration::from_millis(1));
    assert!(reports(&outputs(&mut t)).is_empty(), "expired early");
    // (that pass published it; a tracker that saw no pass at all:)
    let (table2, mut t2, mut tids2, now2) = setup(100);
    let id2 = t2.begin_in(in_tx(FailureReport::Yes, "quiet"));
    send_chunk(&mut t2, id2, DEST, &mut tids2, now2);
    t2.received_all(id2, now2);
    t2.expire(now2 + TIMEOUT);
    let out = outputs(&mut t2);
    let r = reports(&out);
    assert_eq!(r.len(), 1, "{out:?}");
    assert_eq!((r[0].code, r[0].comment), (408, "Request Timeout"));
    assert!(t2.is_empty());
    assert_eq!(table2.0.borrow().inserted, 0);
    assert_eq!(table.0.borrow().inserted, 1);
}

#[test]
fn success_reports_nothing_and_frees_everything() {
    let (_, mut t, mut tids, now) = setup(100);
    let id = t.begin_in(in_tx(FailureReport::Yes, "m1"));
    let a = send_chunk(&mut t, id, DEST, &mut tids, now);
    t.received_all(id, now);
    t.on_response(DEST, &a, 200);
    assert!(reports(&outputs(&mut t)).is_empty());
    assert!(t.is_empty());
    assert_eq!(t.on_response(DEST, &a, 200), Answer::Unknown);
}

#[test]
fn timeout_reports_for_yes_but_not_partial() {
    let (table, mut t, mut tids, now) = setup(100);
    let yes = t.begin_in(in_tx(FailureReport::Yes, "yes"));
    let partial = t.begin_in(in_tx(FailureReport::Partial, "partial"));
    send_chunk(&mut t, yes, DEST, &mut tids, now);
    send_chunk(&mut t, partial, DEST, &mut tids, now);
    t.received_all(yes, now);
    t.received_all(partial, now);
    table.expire_armed();
    t.on_timer_wakeup();
    t.expire(now + TIMEOUT + Duration::from_millis(1));
    let out = outputs(&mut t);
    let r = reports(&out);
    assert_eq!(r.len(), 1, "{out:?}");
    assert_eq!(&r[0].message_id[..], b"yes");
    assert_eq!(r[0].code, 408);
    assert!(t.is_empty(), "{:?}", t.len());
}

#[test]
fn partial_chunks_share_one_group_and_report_errors() {
    let (table, mut t, mut tids, now) = setup(100);
    let id = t.begin_in(in_tx(FailureReport::Partial, "p"));
    let a = send_chunk(&mut t, id, DEST, &mut tids, now);
    let b = send_chunk(&mut t, id, DEST, &mut tids, now);
    assert_eq!(a[..16], b[..16], "one prefix per group");
    assert_ne!(a, b);
    assert_eq!(table.0.borrow().inserted, 0, "no entry per partial chunk");
    assert_eq!(t.on_response(DEST, &b, 413), Answer::OwnChunk);
    let out = outputs(&mut t);
    assert_eq!(reports(&out).len(), 1);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::StopMessage { id: i, .. } if *i == id)));
}

#[test]
fn lost_next_hop_fails_its_requests_only() {
    let (_, mut t, mut tids, now) = setup(100);
    let a = t.begin_in(in_tx(FailureReport::Yes, "a"));
    let b = t.begin_in(in_tx(FailureReport::Yes, "b"));
    send_chunk(&mut t, a, DEST, &mut tids, now);
    let kept = send_chunk(&mut t, b, DEST2, &mut tids, now);
    let ret = Return {
        src: SRC,
        src_tid: Bytes::from_static(b"auth1"),
        src_from_path: vec![],
        relay_uri: Bytes::from_static(b"msrp://relay:2855/r;tcp"),
        as_record: false,
    };
    t.track(
        DEST,
        Bytes::from_static(b"fwd1"),
        Origin::PassBack(Box::new(ret.clone())),
        addr(),
        1,
        now,
    );
    t.next_hop_lost(DEST, Cause::NextHopClosed);
    let out = outputs(&mut t);
    let r = reports(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].code, r[0].comment, &r[0].message_id[..]),
        (408, "Next Hop Connection Lost", &b"a"[..])
    );
    assert!(out.contains(&Output::Fail(ret)));
    assert!(t.is_own_chunk(DEST2, &kept));
}

#[test]
fn pass_back_answers_return_their_way() {
    let table = FakeTable::with_capacity(100);
    let mut t = Tracker::new(Box::new(table.clone()), TIMEOUT);
    let now = Instant::now();
    let ret = Return {
        src: SRC,
        src_tid: Bytes::from_static(b"auth1"),
        src_from_path: vec![],
        relay_uri: Bytes::from_static(b"r"),
        as_record: false,
    };
    let tid = Bytes::from_static(b"fwd1");
    t.track(
        DEST,
        tid.clone(),
        Origin::PassBack(Box::new(ret.clone())),
        addr(),
        1,
        now,
    );
    assert!(!t.is_own_chunk(DEST, &tid));
    assert_eq!(t.on_response(DEST, &tid, 401), Answer::PassBack(ret));
    assert!(t.is_empty());
    assert_eq!(table.0.borrow().live.len(), 0);
}

#[test]
fn the_window_closes_and_reopens() {
    let (table, mut t, mut tids, now) = setup(4);
    let id = t.begin_in(in_tx(FailureReport::Yes, "w"));
    let mut sent = Vec::new();
    for _ in 0..REQUEST_WINDOW {
        assert!(!t.window_full(DEST));
        sent.push(send_chunk(&mut t, id, DEST, &mut tids, now));
    }
    assert!(t.window_full(DEST));
    t.expire(now + PUBLISH_AFTER);
    // the table held 4, the rest expire locally
    let events = table.0.borrow().events.clone();
    assert_eq!(events.len(), REQUEST_WINDOW as usize - 4);
    assert!(events.iter().all(|e| *e == Event::TableFull));
    outputs(&mut t);
    for tid in &sent[..REQUEST_WINDOW as usize / 2] {
        t.on_response(DEST, tid, 200);
    }
    assert!(!t.window_full(DEST));
    assert!(outputs(&mut t).contains(&Output::WindowOpen(DEST)));
    t.received_all(id, now);
    t.expire(now + TIMEOUT);
    table.expire_armed();
    t.on_timer_wakeup();
    let out = outputs(&mut t);
    assert_eq!(reports(&out).len(), 1);
    assert!(t.is_empty());
}

#[test]
fn huge_byte_range_start_does_not_overflow() {
    // positions near u64::MAX never pass the parser; the arithmetic still
    // must not wrap, and the REPORT range-end stops at MAX_POSITION (2^62),
    // the largest position a Byte-Range may name
    for (start, end) in [(u64::MAX, MAX_POSITION), (MAX_POSITION - 3, MAX_POSITION)] {
        let table = FakeTable::with_capacity(10);
        let mut t = Tracker::new(Box::new(table), TIMEOUT);
        let mut tx = in_tx(FailureReport::Yes, "big");
        tx.range = Some(ByteRange {
            start,
            end: None,
            total: None,
        });
        let id = t.begin_in(tx);
        t.set_received(id, 10);
        t.fail_in(id, Cause::Unreachable, 0);
        let out = outputs(&mut t);
        assert_eq!(reports(&out)[0].range.and_then(|r| r.end), Some(end));
    }
}

/// Found by fuzz/ (target tracker): a sender that sent more bytes than
/// its Byte-Range total got a REPORT whose range-end lies beyond that
/// total ("3330-56833/3357"), which its parser rejects.
#[test]
fn report_range_of_an_overrun_chunk_is_valid() {
    let (_table, mut t, _tids, _now) = setup(100);
    let mut tx = in_tx(FailureReport::Yes, "m1");
    tx.range = Some(ByteRange {
        start: 3330,
        end: None,
        total: Some(3357),
    });
    let id = t.begin_in(tx);
    t.set_received(id, 53504);
    t.fail_in(id, Cause::Unreachable, 0);
    let out = outputs(&mut t);
    let r = reports(&out)[0].range.expect("a range");
    assert_eq!(
        r,
        ByteRange {
            start: 3330,
            end: Some(56833),
            total: None
        }
    );
    assert_eq!(ByteRange::parse(r.to_string().as_bytes()), Ok(r));
}

#[derive(Debug, Clone)]
enum Op {
    NewIn(u8),
    Send(usize, bool),
    ReceivedAll(usize),
    Respond(usize, u16),
    Timer,
    Clock(u64),
    Lost(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::NewIn),
        (0usize..8, any::<bool>()).prop_map(|(i, d)| Op::Send(i, d)),
        (0usize..8).prop_map(Op::ReceivedAll),
        (
            0usize..40,
            prop_oneof![Just(200u16), Just(403), Just(413), Just(481)]
        )
            .prop_map(|(i, c)| Op::Respond(i, c)),
        Just(Op::Timer),
        // milliseconds: within or past PUBLISH_AFTER, or past the timeout
        prop_oneof![0u64..250, (0u64..40).prop_map(|s| s * 1000)].prop_map(Op::Clock),
        any::<bool>().prop_map(Op::Lost),
    ]
}

proptest! {
    /// Any sequence of sends, answers, timeouts and lost next hops: every
    /// table entry is removed exactly once (the fake table panics on a
    /// second removal), each incoming chunk gets at most one REPORT, a
    /// "yes" chunk that had a failure gets exactly one and a "no" chunk
    /// none, and once everything is answered, expired or lost the tracker
    /// holds nothing.
    #[test]
    fn every_outcome_is_accounted_once(
        ops in proptest::collection::vec(op(), 0..150),
        capacity in 0usize..20,
    ) {
        let table = FakeTable::with_capacity(capacity);
        let mut t = Tracker::new(Box::new(table.clone()), TIMEOUT);
        let mut tids = TidGen::new(7);
        let start = Instant::now();
        let mut now = start;
        let mut ins: Vec<(InId, FailureReport, String)> = Vec::new();
        let mut sent: Vec<(ConnId, Bytes, usize)> = Vec::new();
        let mut failed: HashSet<usize> = HashSet::new();
        let mut reported: StdMap<String, usize> = StdMap::new();
        let collect = |t: &mut Tracker, reported: &mut StdMap<String, usize>| {
            for o in std::iter::from_fn(|| t.poll_output()) {
                if let Output::Report(r) = o {
                    *reported.entry(String::from_utf8_lossy(&r.message_id).into_owned()).or_default() += 1;
                }
            }
        };
        for o in ops {
            // which of the relay's chunks are awaited before this step: one
            // that is no longer awaited after it ended with this step's
            // outcome (OK only for a 200 to that very chunk)
            let before: Vec<bool> = sent.iter().map(|(d, tid, _)| t.is_own_chunk(*d, tid)).collect();
            let mut ok_idx = None;
            match o {
                Op::NewIn(f) => {
                    let fr = [FailureReport::Yes, FailureReport::Partial, FailureReport::No][f as usize];
                    let msgid = format!("m{}", ins.len());
                    let id = t.begin_in(in_tx(fr, &msgid));
                    ins.push((id, fr, msgid));
                }
                Op::Send(i, d2) if !ins.is_empty() => {
                    let k = i % ins.len();
                    let dest = if d2 { DEST2 } else { DEST };
                    if !t.window_full(dest) {
                        let tid = send_chunk(&mut t, ins[k].0, dest, &mut tids, now);
                        sent.push((dest, tid, k));
                    }
                }
                Op::ReceivedAll(i) if !ins.is_empty() => {
                    t.received_all(ins[i % ins.len()].0, now);
                }
                Op::Respond(i, code) if !sent.is_empty() => {
                    let j = i % sent.len();
                    let (dest, tid, _) = sent[j].clone();
                    if code == 200 {
                        ok_idx = Some(j);
                    }
                    t.on_response(dest, &tid, code);
                }
                Op::Timer => {
                    table.0.borrow_mut().clock = now;
                    table.expire_due();
                    t.on_timer_wakeup();
                }
                Op::Clock(ms) => {
                    now += Duration::from_millis(ms);
                    table.0.borrow_mut().clock = now;
                    t.expire(now);
                }
                Op::Lost(d2) => {
                    t.next_hop_lost(if d2 { DEST2 } else { DEST }, Cause::NextHopClosed);
                }
                _ => {}
            }
            for (j, was) in before.iter().enumerate() {
                let (d, tid, k) = &sent[j];
                if *was && !t.is_own_chunk(*d, tid) && ok_idx != Some(j) {
                    failed.insert(*k);
                }
            }
            collect(&mut t, &mut reported);
            for n in reported.values() {
                prop_assert!(*n <= 1, "two REPORTs for one chunk: {reported:?}");
            }
        }
        // everything ends: the sender finished, the next hops go away
        for (id, _, _) in &ins {
            t.received_all(*id, now);
        }
        for (dest, tid, k) in &sent {
            if t.is_own_chunk(*dest, tid) {
                failed.insert(*k);
            }
        }
        // every request was armed when sent: past every deadline (the
        // Kamailio timer's, or the local one) none is left
        table.expire_armed();
        t.on_timer_wakeup();
        t.expire(now + TIMEOUT * 2);
        prop_assert_eq!(t.len().1, 0, "requests that never time out");
        t.next_hop_lost(DEST, Cause::NextHopClosed);
        t.next_hop_lost(DEST2, Cause::NextHopClosed);
        t.expire(now + TIMEOUT * 2);
        collect(&mut t, &mut reported);
        prop_assert!(t.is_empty(), "left: {:?}", t.len());
        let s = table.0.borrow();
        prop_assert_eq!(s.inserted, s.removed);
        for (k, (_, fr, msgid)) in ins.iter().enumerate() {
            let n = reported.get(msgid).copied().unwrap_or(0);
            match fr {
                FailureReport::No => prop_assert_eq!(n, 0),
                FailureReport::Yes if failed.contains(&k) => prop_assert_eq!(n, 1, "{} failed, no REPORT", msgid),
                _ => prop_assert!(n <= 1),
            }
        }
    }
}

#[test]
fn answered_requests_do_not_pile_up_in_the_deadline_queue() {
    // a long-lived unanswered request among 100,000 answered ones: the
    // queue stays proportional to what is outstanding, and the one left
    // still times out at its own deadline
    let (_, mut t, mut tids, now) = setup(100);
    let quiet = t.begin_in(in_tx(FailureReport::Yes, "quiet"));
    send_chunk(&mut t, quiet, DEST, &mut tids, now);
    t.received_all(quiet, now);
    for i in 0..100_000u32 {
        let id = t.begin_in(in_tx(FailureReport::Yes, "busy"));
        let tid = send_chunk(&mut t, id, DEST, &mut tids, now);
        t.received_all(id, now);
        assert_eq!(
            t.on_response(DEST, &tid, 200),
            Answer::OwnChunk,
            "chunk {i}"
        );
        assert!(
            t.local_deadlines.len() <= 2 * t.outstanding.len() + super::timers::COMPACT_SLACK + 2
        );
    }
    assert!(reports(&outputs(&mut t)).is_empty());
    t.shrink_to_fit();
    assert_eq!(t.local_deadlines.len(), 1);
    // no pass published it (see an_unpublished_request_times_out_locally..):
    // its local deadline survived the compactions
    t.expire(now + TIMEOUT);
    let out = outputs(&mut t);
    let r = reports(&out);
    assert_eq!(r.len(), 1, "{out:?}");
    assert_eq!((r[0].code, r[0].comment), (408, "Request Timeout"));
    assert!(t.is_empty());
}

/// A SEND chunk handed over a link as records (at the owner): its failure
/// goes back with the cause, for every Failure-Report; a text request's
/// stays a 408 frame.
#[test]
fn link_chunks_fail_back_with_their_cause() {
    let (_, mut t, _, now) = setup(100);
    let link = |tid: &'static [u8], as_record| Return {
        src: SRC,
        src_tid: Bytes::from_static(tid),
        src_from_path: vec![],
        relay_uri: Bytes::new(),
        as_record,
    };
    for (tid, as_record, answer_timeout) in [
        (&b"rec1"[..], true, true),
        // "partial" (no 200 comes): one group, failed back once
        (b"pGroupPrefix0001000001", true, false),
        (b"pGroupPrefix0001000002", true, false),
        // "no": not tracked, nothing to tell
        (b"rec2", true, false),
        (b"txt1", false, true),
    ] {
        let origin = Origin::Link {
            ret: Box::new(link(tid, as_record)),
            answer_timeout,
        };
        t.track(DEST, Bytes::from_static(tid), origin, addr(), 1, now);
    }
    t.next_hop_lost(DEST, Cause::NextHopClosed);
    let mut out = outputs(&mut t);
    out.retain(|o| !matches!(o, Output::WindowOpen(_)));
    out.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        out,
        vec![
            Output::Fail(link(b"txt1", false)),
            Output::LinkFailed {
                ret: link(b"pGroupPrefix0001000002", true),
                cause: Cause::NextHopClosed
            },
            Output::LinkFailed {
                ret: link(b"rec1", true),
                cause: Cause::NextHopClosed
            },
        ]
    );
    // a timeout fails only what is answered on timeout
    for (tid, answer_timeout) in [(&b"rec3"[..], true), (b"rec4", false)] {
        let origin = Origin::Link {
            ret: Box::new(link(tid, true)),
            answer_timeout,
        };
        t.track(DEST, Bytes::from_static(tid), origin, addr(), 1, now);
        t.arm(DEST, Bytes::from_static(tid), now);
    }
    t.expire(now + TIMEOUT * 2);
    let mut out = outputs(&mut t);
    out.retain(|o| !matches!(o, Output::WindowOpen(_)));
    assert_eq!(
        out,
        vec![Output::LinkFailed {
            ret: link(b"rec3", true),
            cause: Cause::Timeout
        }]
    );
}

/// At the sending worker: a failure record ends its chunk as a lost next
/// hop would (the REPORT names the cause), a partial group too; anything
/// else is not its chunk.
#[test]
fn a_failure_over_a_link_reports_its_cause() {
    let (_, mut t, mut tids, now) = setup(100);
    let id = t.begin_in(in_tx(FailureReport::Yes, "y"));
    let tid = send_chunk(&mut t, id, DEST, &mut tids, now);
    assert!(t.on_failed(DEST, &tid, Cause::NextHopClosed));
    let out = outputs(&mut t);
    let r = reports(&out);
    assert_eq!(
        (r.len(), r[0].code, r[0].comment),
        (1, 408, "Next Hop Connection Lost")
    );
    assert!(!t.on_failed(DEST, &tid, Cause::NextHopClosed), "once");
    let p = t.begin_in(in_tx(FailureReport::Partial, "p"));
    let ptid = send_chunk(&mut t, p, DEST, &mut tids, now);
    assert!(t.on_failed(DEST, &ptid, Cause::NextHopClosed));
    let out = outputs(&mut t);
    assert_eq!(reports(&out)[0].comment, "Next Hop Connection Lost");
    assert!(!t.on_failed(DEST, &Bytes::from_static(b"nope"), Cause::Timeout));
}
