//! The transaction tracker driven by random sends, answers, timer
//! expiries, clock steps, failures and lost next hops (the invariants of
//! its proptest, with more operations): no panic; every table entry is
//! removed exactly once (the table below panics otherwise); at most one
//! REPORT per incoming chunk, exactly one for a "yes" chunk whose request
//! failed and none for "no"; every forwarded non-SEND request is accounted
//! exactly once (its response passed back, or a 408 for its sender); and
//! once the senders finish and the next hops are gone, nothing is left.
#![no_main]

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use msrp_core::{ByteRange, FailureReport};
use msrp_engine::connid::ConnId;
use msrp_engine::tid::TidGen;
use msrp_engine::tracker::{Answer, InId, InTx, Origin, Output, Return, Tracker};
use msrp_engine::txtable::{Cause, Event, TableFull, TxInfo, TxSlot, TxTable};

const SRC: ConnId = ConnId(1);
const DESTS: [ConnId; 3] = [ConnId(2), ConnId(3), ConnId(4)];
const TIMEOUT: Duration = Duration::from_secs(30);

/// The shared table as the Kamailio timer sees it: slots with
/// generations; a double or unknown removal panics.
struct TableState {
    /// index -> (generation, armed deadline, expired by the timer)
    live: HashMap<u32, (u32, Option<Instant>, bool)>,
    clock: Instant,
    next: u32,
    capacity: usize,
    inserted: u32,
    removed: u32,
}

#[derive(Clone)]
struct FakeTable(Rc<RefCell<TableState>>);

impl FakeTable {
    fn expire_due(&self) {
        let mut s = self.0.borrow_mut();
        let clock = s.clock;
        for (_, deadline, expired) in s.live.values_mut() {
            if deadline.is_some_and(|d| d <= clock) {
                *expired = true;
            }
        }
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
        // indexes are reused with a new generation, as in shared memory
        let index = s.next % 8;
        if s.live.contains_key(&index) {
            let index = (0..).find(|i| !s.live.contains_key(i)).unwrap_or(0);
            let g = s.next;
            s.live.insert(index, (g, None, false));
            s.inserted += 1;
            return Ok(TxSlot {
                index,
                generation: g,
            });
        }
        let g = s.next;
        s.live.insert(index, (g, None, false));
        s.inserted += 1;
        Ok(TxSlot {
            index,
            generation: g,
        })
    }
    fn arm(&mut self, slot: TxSlot, timeout: Duration) {
        let mut s = self.0.borrow_mut();
        let at = s.clock + timeout;
        let e = s.live.get_mut(&slot.index).expect("arm of a removed slot");
        assert_eq!(e.0, slot.generation, "arm of a stale slot");
        e.1 = Some(at);
    }
    fn remove(&mut self, slot: TxSlot) {
        let mut s = self.0.borrow_mut();
        match s.live.remove(&slot.index) {
            Some((g, _, _)) => assert_eq!(g, slot.generation, "stale slot removed"),
            None => panic!("slot removed twice"),
        }
        s.removed += 1;
    }
    fn take_expired(&mut self) -> Vec<TxSlot> {
        let s = self.0.borrow();
        s.live
            .iter()
            .filter(|(_, (_, _, expired))| *expired)
            .map(|(&index, &(generation, _, _))| TxSlot { index, generation })
            .collect()
    }
    fn count(&mut self, _event: Event) {}
    fn wakeup_fd(&self) -> Option<RawFd> {
        None
    }
    fn clear_wakeup(&mut self) {}
}

#[derive(Debug, Arbitrary)]
enum Op {
    NewIn(u8, Option<(u64, Option<u64>)>),
    Send(u8, u8),
    Arm(u8),
    SetReceived(u8, u16),
    ReceivedAll(u8),
    Respond(u8, u16),
    FailIn(u8, u8, u16),
    PassBack(u8),
    /// A request another worker handed over a link (answer_timeout).
    Link(u8, bool),
    RespondPassBack(u8, u16),
    Timer,
    Clock(u8),
    Lost(u8),
}

fn addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

#[derive(Debug, Arbitrary)]
struct Input {
    capacity: u8,
    ops: Vec<Op>,
}

/// The way back of a forwarded request `tid` from the sender.
fn ret_to(tid: &Bytes) -> Return {
    Return {
        src: SRC,
        src_tid: tid.clone(),
        src_from_path: vec![Bytes::from_static(b"msrp://a:1/s;tcp")],
        relay_uri: Bytes::from_static(b"msrp://relay:2855/r;tcp"),
        as_record: false,
    }
}

fn pick<T>(v: &[T], i: u8) -> Option<&T> {
    (!v.is_empty()).then(|| &v[usize::from(i) % v.len()])
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let table = FakeTable(Rc::new(RefCell::new(TableState {
        live: HashMap::new(),
        clock: start,
        next: 0,
        capacity: usize::from(input.capacity % 24),
        inserted: 0,
        removed: 0,
    })));
    let mut t = Tracker::new(Box::new(table.clone()), TIMEOUT);
    let mut tids = TidGen::new(7);
    let mut now = start;
    // incoming chunks: (id, Failure-Report, Message-ID)
    let mut ins: Vec<(InId, FailureReport, String)> = Vec::new();
    // the relay's chunks: (next hop, tid, incoming chunk index)
    let mut sent: Vec<(ConnId, Bytes, usize)> = Vec::new();
    // forwarded non-SEND requests: (next hop, tid) and how often accounted
    let mut passbacks: Vec<(ConnId, Bytes)> = Vec::new();
    let mut accounted: HashMap<Bytes, usize> = HashMap::new();
    // link requests whose timeout is not answered (a "partial"/"no" SEND)
    let mut silent_ok: std::collections::HashSet<Bytes> = std::collections::HashSet::new();
    let mut failed: HashSet<usize> = HashSet::new();
    let mut reported: HashMap<String, usize> = HashMap::new();
    // incoming chunks refused while arriving (413 instead of 200)
    let mut refused: HashSet<InId> = HashSet::new();

    let collect = |t: &mut Tracker,
                   reported: &mut HashMap<String, usize>,
                   accounted: &mut HashMap<Bytes, usize>,
                   refused: &mut HashSet<InId>| {
        while let Some(o) = t.poll_output() {
            match o {
                Output::Report(r) => {
                    let range = r.range.expect("a REPORT has a Byte-Range");
                    assert!(
                        ByteRange::parse(range.to_string().as_bytes()).is_ok(),
                        "REPORT Byte-Range {range}"
                    );
                    *reported
                        .entry(String::from_utf8_lossy(&r.message_id).into_owned())
                        .or_default() += 1;
                }
                Output::Fail(r) | Output::LinkFailed { ret: r, .. } => {
                    *accounted.entry(r.src_tid).or_default() += 1
                }
                // a chunk is refused at most once
                Output::Refuse { id, .. } => {
                    assert!(refused.insert(id), "chunk {id} refused twice")
                }
                Output::WindowOpen(_) | Output::StopMessage { .. } => {}
            }
        }
    };

    for op in input.ops.into_iter().take(400) {
        // an own chunk that stops being awaited in this step, other than by
        // a 200 to it, failed
        let before: Vec<bool> = sent
            .iter()
            .map(|(d, tid, _)| t.is_own_chunk(*d, tid))
            .collect();
        let mut ok_idx = None;
        match op {
            Op::NewIn(f, start_pos) => {
                let fr = [
                    FailureReport::Yes,
                    FailureReport::Partial,
                    FailureReport::No,
                ][usize::from(f % 3)];
                let msgid = format!("m{}", ins.len());
                // any range the parser accepts, e.g. one whose total the
                // sender then overruns
                let range = start_pos.and_then(|(s, total)| {
                    let r = ByteRange {
                        start: 1 + s % 4096,
                        end: None,
                        total: total.map(|t| t % 4096),
                    };
                    ByteRange::parse(r.to_string().as_bytes()).ok()
                });
                let id = t.begin_in(InTx {
                    src: SRC,
                    src_tid: Bytes::from(format!("src{}", ins.len())),
                    src_from_path: vec![Bytes::from_static(b"msrp://a:1/s;tcp")],
                    relay_uri: Bytes::from_static(b"msrp://relay:2855/r;tcp"),
                    message_id: Bytes::from(msgid.clone()),
                    failure_report: fr,
                    range,
                });
                ins.push((id, fr, msgid));
            }
            Op::Send(i, d) => {
                if let Some(k) = (!ins.is_empty()).then(|| usize::from(i) % ins.len()) {
                    let dest = DESTS[usize::from(d) % DESTS.len()];
                    if !t.window_full(dest) {
                        let tid = t.chunk_tid(Some(ins[k].0), dest, &mut tids);
                        t.track(dest, tid.clone(), Origin::Chunk(ins[k].0), addr(), 1, now);
                        sent.push((dest, tid, k));
                    }
                }
            }
            Op::Arm(j) => {
                if let Some((dest, tid, _)) = pick(&sent, j) {
                    t.arm(*dest, tid.clone(), now);
                }
                if let Some((dest, tid)) = pick(&passbacks, j) {
                    t.arm(*dest, tid.clone(), now);
                }
            }
            Op::SetReceived(i, n) => {
                if let Some((id, _, _)) = pick(&ins, i) {
                    t.set_received(*id, u64::from(n));
                }
            }
            Op::ReceivedAll(i) => {
                if let Some((id, _, _)) = pick(&ins, i) {
                    t.received_all(*id, now);
                }
            }
            Op::Respond(j, code) => {
                if !sent.is_empty() {
                    let j = usize::from(j) % sent.len();
                    let (dest, tid, _) = sent[j].clone();
                    let code = 100 + code % 900;
                    if code == 200 {
                        ok_idx = Some(j);
                    }
                    let own = t.is_own_chunk(dest, &tid);
                    let answer = t.on_response(dest, &tid, code);
                    assert_eq!(own, answer == Answer::OwnChunk, "{answer:?}");
                }
            }
            Op::FailIn(i, c, code) => {
                // (a chunk the tracker no longer holds is not reported)
                if let Some((id, _, _)) = pick(&ins, i) {
                    let cause = Cause::ALL[usize::from(c) % Cause::ALL.len()];
                    t.fail_in(*id, cause, 100 + code % 900);
                }
            }
            Op::PassBack(d) => {
                let dest = DESTS[usize::from(d) % DESTS.len()];
                if !t.window_full(dest) {
                    let tid = tids.next_tid();
                    t.track(
                        dest,
                        tid.clone(),
                        Origin::PassBack(Box::new(ret_to(&tid))),
                        addr(),
                        1,
                        now,
                    );
                    passbacks.push((dest, tid));
                }
            }
            Op::Link(d, answer_timeout) => {
                let dest = DESTS[usize::from(d) % DESTS.len()];
                if !t.window_full(dest) {
                    let tid = tids.next_tid();
                    let origin = Origin::Link {
                        ret: Box::new(ret_to(&tid)),
                        answer_timeout,
                    };
                    t.track(dest, tid.clone(), origin, addr(), 1, now);
                    if !answer_timeout {
                        silent_ok.insert(tid.clone());
                    }
                    passbacks.push((dest, tid));
                }
            }
            Op::RespondPassBack(j, code) => {
                if let Some((dest, tid)) = pick(&passbacks, j).cloned() {
                    match t.on_response(dest, &tid, 100 + code % 900) {
                        Answer::PassBack(r) | Answer::Link(r) => {
                            assert_eq!(r.src_tid, tid);
                            *accounted.entry(tid).or_default() += 1;
                        }
                        Answer::Unknown => {}
                        Answer::OwnChunk => panic!("a pass-back answer taken as own chunk"),
                    }
                }
            }
            Op::Timer => {
                table.0.borrow_mut().clock = now;
                table.expire_due();
                t.on_timer_wakeup();
            }
            Op::Clock(s) => {
                // milliseconds around PUBLISH_AFTER (high bit), or seconds
                now += if s & 0x80 != 0 {
                    Duration::from_millis(u64::from(s & 0x7f) * 2)
                } else {
                    Duration::from_secs(u64::from(s % 64))
                };
                table.0.borrow_mut().clock = now;
                t.expire(now);
            }
            Op::Lost(d) => {
                t.next_hop_lost(DESTS[usize::from(d) % DESTS.len()], Cause::NextHopClosed);
            }
        }
        for (j, was) in before.iter().enumerate() {
            let (d, tid, k) = &sent[j];
            if *was && !t.is_own_chunk(*d, tid) && ok_idx != Some(j) {
                failed.insert(*k);
            }
        }
        collect(&mut t, &mut reported, &mut accounted, &mut refused);
        for (m, n) in &reported {
            assert!(*n <= 1, "{n} REPORTs for chunk {m}");
        }
        for (tid, n) in &accounted {
            assert!(*n <= 1, "request {tid:?} accounted {n} times");
        }
    }
    // everything ends: the senders finish, the next hops go away
    for (id, _, _) in &ins {
        t.received_all(*id, now);
    }
    for (dest, tid, k) in &sent {
        if t.is_own_chunk(*dest, tid) {
            failed.insert(*k);
        }
    }
    for d in DESTS {
        t.next_hop_lost(d, Cause::NextHopClosed);
    }
    t.expire(now + TIMEOUT * 2);
    collect(&mut t, &mut reported, &mut accounted, &mut refused);
    assert!(t.is_empty(), "left: {:?}", t.len());
    let s = table.0.borrow();
    assert_eq!(s.inserted, s.removed, "table entries not removed");
    assert!(s.live.is_empty());
    for (k, (_, fr, msgid)) in ins.iter().enumerate() {
        let n = reported.get(msgid).copied().unwrap_or(0);
        match fr {
            FailureReport::No => assert_eq!(n, 0, "REPORT for Failure-Report no"),
            FailureReport::Yes if failed.contains(&k) => {
                assert_eq!(n, 1, "{msgid} failed, no REPORT")
            }
            _ => assert!(n <= 1),
        }
    }
    for (_, tid) in &passbacks {
        let n = accounted.get(tid).copied().unwrap_or(0);
        if silent_ok.contains(tid) {
            assert!(n <= 1, "request {tid:?} accounted {n} times");
        } else {
            assert_eq!(n, 1, "request {tid:?} not accounted once");
        }
    }
});
