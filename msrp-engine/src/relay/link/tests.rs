//! SEND chunks another worker hands over a link as records
//! ([`crate::link::record`]), through the owner's relay core with the
//! in-memory driver: delivered to the session's connection as rendered,
//! answered with records, under back-pressure and when the connection
//! closes.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use msrp_core::EndFlag;

use crate::config::Config;
use crate::conn::ConnState;
use crate::connid::ConnId;
use crate::link::record::{self, Record};
use crate::testing::fake::{frames, Fake};
use crate::testing::RelayAll;

const HIGH: usize = 16_384;
const B: &str = "192.0.2.11:7777";

fn cfg() -> &'static Config {
    let mut c = crate::testing::config(vec!["127.0.0.1:2855".parse().unwrap()]);
    c.queue_high = HIGH;
    c.queue_low = 4_096;
    Box::leak(Box::new(c))
}

/// The owner's relay with B connected and a link from worker 1.
fn owner() -> (Fake<RelayAll>, ConnId, ConnId) {
    let cfg = cfg();
    let mut f = Fake::new(cfg, RelayAll);
    let b = f.accept(B.parse::<SocketAddr>().unwrap());
    let link = f.relay.alloc_id();
    f.relay.conns.insert(link, ConnState::link(1, cfg, f.now));
    f.relay.links.insert(1, link);
    (f, b, link)
}

fn head(tid: &str, range: &str) -> Vec<u8> {
    format!(
        "MSRP {tid} SEND\r\nTo-Path: msrp://{B}/b;tcp\r\n\
         From-Path: msrp://127.0.0.1:2855/r;tcp msrp://192.0.2.1:7/a;tcp\r\n\
         Message-ID: m1\r\nByte-Range: {range}\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes()
}

/// One chunk as the sending worker writes it: Start, Body records of
/// `piece` bytes, End.
fn chunk(target: ConnId, tid: &str, body: &[u8], piece: usize, flag: EndFlag) -> BytesMut {
    chunk_answered(target, tid, body, piece, flag, true)
}

/// [`chunk`] with the Start record's `answer_timeout`: false for a chunk
/// whose Failure-Report is "partial" or "no" (no 200 comes for it).
fn chunk_answered(
    target: ConnId,
    tid: &str,
    body: &[u8],
    piece: usize,
    flag: EndFlag,
    answer_timeout: bool,
) -> BytesMut {
    let range = format!("1-{n}/{n}", n = body.len());
    let mut w = BytesMut::new();
    w.extend_from_slice(&record::start(
        target.0,
        true,
        answer_timeout,
        tid.as_bytes(),
        &head(tid, &range),
    ));
    for p in body.chunks(piece) {
        record::body(Bytes::copy_from_slice(p), &mut |b| w.extend_from_slice(&b));
    }
    w.extend_from_slice(&record::end(flag));
    w
}

/// The records the owner wrote back over the link.
fn records(mut wire: BytesMut) -> Vec<Record> {
    let mut out = Vec::new();
    while record::starts(&wire) {
        out.push(record::take(&mut wire).unwrap().unwrap());
    }
    assert!(wire.is_empty(), "only records come back: {wire:?}");
    out
}

/// The only record back over `link` says chunk `tid` failed because its
/// connection closed, and nothing is tracked any more.
fn failed_back_as_closed(f: &mut Fake<RelayAll>, link: ConnId, tid: &str) {
    assert_eq!(
        records(f.take_wire(link)),
        vec![Record::Failed {
            tid: Bytes::copy_from_slice(tid.as_bytes()),
            cause: crate::txtable::Cause::NextHopClosed
        }]
    );
    assert!(f.relay.tracker.is_empty());
}

fn answer(tid: &str, code: u16) -> Record {
    Record::Answer {
        tid: Bytes::copy_from_slice(tid.as_bytes()),
        code,
    }
}

#[test]
fn chunk_records_reach_the_connection_as_rendered_split_anywhere() {
    let body = b"hello B, from the other worker";
    let (_, b, link) = owner();
    let wire = chunk(b, "xTid0001", body, 7, EndFlag::Complete);
    for at in 0..=wire.len() {
        let (mut f, b, link2) = owner();
        assert_eq!(link2, link);
        f.feed(link, &wire[..at]);
        f.feed(link, &wire[at..]);
        let got = frames(f.take_wire(b));
        assert_eq!(got.len(), 1, "split at {at}");
        let (h, got_body, end) = &got[0];
        assert_eq!(&h.transaction_id[..], b"xTid0001", "the sender's tid");
        assert_eq!(&got_body[..], body);
        assert_eq!(*end, Some(EndFlag::Complete));
        // B's 200 goes back to the sending worker as a record
        let ok = "MSRP xTid0001 200 OK\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
                  From-Path: msrp://192.0.2.11:7777/b;tcp\r\n-------xTid0001$\r\n";
        f.feed(b, ok.as_bytes());
        assert_eq!(records(f.take_wire(link)), vec![answer("xTid0001", 200)]);
    }
}

#[test]
fn chunk_for_a_connection_gone_is_answered_481_and_swallowed() {
    let (mut f, b, link) = owner();
    let mut wire = chunk(ConnId(9999), "gone0001", b"lost", 2, EndFlag::Complete);
    wire.extend_from_slice(&chunk(b, "next0001", b"kept", 2, EndFlag::Complete));
    f.feed(link, &wire);
    let got = frames(f.take_wire(b));
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].1[..], b"kept");
    assert_eq!(records(f.take_wire(link)), vec![answer("gone0001", 481)]);
}

/// Two chunks of `body` for `b` as the sending worker writes them.
fn two_chunks(b: ConnId, body: &[u8]) -> BytesMut {
    let half = body.len() / 2;
    let mut wire = chunk(b, "big00001", &body[..half], 4096, EndFlag::Continued);
    wire.extend_from_slice(&chunk(
        b,
        "big00002",
        &body[half..],
        4096,
        EndFlag::Complete,
    ));
    wire
}

/// B reads again: every byte reached it in order, in the two chunks.
fn b_reads_everything(f: &mut Fake<RelayAll>, b: ConnId, body: &[u8]) {
    f.takes.remove(&b);
    f.relay.mark_dirty(b);
    f.settle();
    let frames = frames(f.take_wire(b));
    let tids: Vec<_> = frames
        .iter()
        .map(|(h, _, _)| h.transaction_id.clone())
        .collect();
    assert_eq!(
        tids,
        vec![
            Bytes::from_static(b"big00001"),
            Bytes::from_static(b"big00002")
        ]
    );
    let all: Vec<u8> = frames.iter().flat_map(|(_, b, _)| b.to_vec()).collect();
    assert!(all == body, "every byte, in order");
}

/// A slow B: what is under way for it is taken in above its watermark and
/// the sending worker is told to pause B's chunks, so the link goes on
/// for C. Once B reads, it gets every byte in order and the pause ends.
#[test]
fn slow_connection_is_paused_and_the_link_goes_on_for_others() {
    let (mut f, b, link) = owner();
    let c = f.accept("192.0.2.12:7777".parse::<SocketAddr>().unwrap());
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    f.takes.insert(b, 0);
    let mut wire = two_chunks(b, &body);
    wire.extend_from_slice(&chunk(
        c,
        "forC0001",
        b"C is not held",
        5,
        EndFlag::Complete,
    ));
    for piece in wire.chunks(4096) {
        f.feed(link, piece);
    }
    assert!(f.relay.sched.blocked(link).is_none(), "the link goes on");
    let got = frames(f.take_wire(c));
    assert_eq!(got.len(), 1, "C gets its chunk while B reads nothing");
    assert_eq!(&got[0].1[..], b"C is not held");
    assert_eq!(
        records(f.take_wire(link)),
        vec![Record::Pause { target: b.0 }]
    );
    b_reads_everything(&mut f, b, &body);
    assert_eq!(
        records(f.take_wire(link)),
        vec![Record::Resume { target: b.0 }]
    );
}

/// More under way for a slow B than a ring and a queue could hold (the
/// sending worker ignored the pause): past that bound the link is read
/// no further while B's queue is over its high watermark, and every byte
/// reaches B in order once B reads.
#[test]
fn past_the_bound_a_slow_connection_holds_the_link_back() {
    let (mut f, b, link) = owner();
    let body: Vec<u8> = (0..1_200_000u32).map(|i| (i % 251) as u8).collect();
    f.takes.insert(b, 0);
    let bound = super::super::link_flow::absorb_limit(HIGH);
    for piece in two_chunks(b, &body).chunks(4096) {
        f.feed(link, piece);
        let queued = f.relay.conns[&b].queued();
        assert!(
            queued <= bound + 2 * 4096,
            "B's queue stays bounded: {queued}"
        );
    }
    assert!(
        f.relay.sched.blocked(link).is_some(),
        "the link waits for B"
    );
    assert!(
        !f.relay.conns[&link].rbuf.is_empty(),
        "the rest waits in the link"
    );
    b_reads_everything(&mut f, b, &body);
    assert!(f.relay.sched.blocked(link).is_none());
}

/// The connection closes mid-chunk: the sending worker is told the chunk
/// failed because the connection closed (its tracker REPORTs "408 Next Hop
/// Connection Lost"), and the rest of the chunk is swallowed.
#[test]
fn connection_closing_mid_chunk_is_told_with_its_cause() {
    let (mut f, b, link) = owner();
    let wire = chunk(b, "cut00001", &[b'x'; 10_000], 1000, EndFlag::Complete);
    f.feed(link, &wire[..wire.len() / 2]);
    assert!(!f.take_wire(b).is_empty());
    f.peer_closed(b);
    f.feed(link, &wire[wire.len() / 2..]);
    failed_back_as_closed(&mut f, link, "cut00001");
}

/// A chunk that waits for B's stream slot (a local sender is streaming
/// into B) when B closes: not started, so not tracked, it is failed back
/// at once rather than left to the other worker's timeout.
#[test]
fn chunk_waiting_for_the_slot_when_its_connection_closes_is_failed_back() {
    let (mut f, b, link) = owner();
    let a = f.accept("192.0.2.1:7777".parse::<SocketAddr>().unwrap());
    let send = format!(
        "MSRP loc1 SEND\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp msrp://{B}/b;tcp\r\n\
         From-Path: msrp://192.0.2.1:7777/a;tcp\r\nMessage-ID: loc\r\n\
         Byte-Range: 1-20000/20000\r\nContent-Type: text/plain\r\n\r\n{}",
        "y".repeat(5000)
    );
    f.feed(a, send.as_bytes());
    assert!(f.relay.sched.streaming(b), "A's chunk holds B's slot");
    f.feed(link, &chunk(b, "wait0001", b"queued", 6, EndFlag::Complete));
    assert!(
        f.relay.sched.blocked(link).is_some(),
        "the link waits for the slot"
    );
    f.peer_closed(b);
    assert_eq!(
        records(f.take_wire(link)),
        vec![Record::Failed {
            tid: Bytes::from_static(b"wait0001"),
            cause: crate::txtable::Cause::NextHopClosed
        }]
    );
}

/// Chunks whose Failure-Report is "partial" or "no" get no 200 from B
/// (RFC 4975 §7.1.4). They must not fill B's request window at the owner:
/// with them counted, the 1025th such chunk waited for the transaction
/// timeout and held the whole link back with it.
#[test]
fn unanswered_chunks_never_fill_the_window() {
    let (mut f, b, link) = owner();
    let n = crate::tracker::REQUEST_WINDOW as usize + 200;
    let mut wire = BytesMut::new();
    for i in 0..n {
        // "partial" chunks carry a 16-character group prefix and a
        // 6-digit sequence number; "no" chunks a plain tid
        let tid = match i % 2 {
            0 => format!("pGroupPrefix0001{:06}", i),
            _ => format!("noTid{i:08}"),
        };
        wire.extend_from_slice(&chunk_answered(b, &tid, b"x", 1, EndFlag::Complete, false));
    }
    f.feed(link, &wire);
    assert_eq!(frames(f.take_wire(b)).len(), n, "every chunk reaches B");
    assert!(
        f.relay.sched.blocked(link).is_none(),
        "the link is not held"
    );
    assert!(!f.relay.tracker.window_full(b));
    // an error response to a "partial" chunk still goes back
    let err =
        "MSRP pGroupPrefix0001000004 413 Too Large\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
               From-Path: msrp://192.0.2.11:7777/b;tcp\r\n-------pGroupPrefix0001000004$\r\n";
    f.feed(b, err.as_bytes());
    let mut back = records(f.take_wire(link));
    // (B's queue went over its watermark and drained meanwhile)
    back.retain(|r| !matches!(r, Record::Pause { .. } | Record::Resume { .. }));
    assert_eq!(back, vec![answer("pGroupPrefix0001000004", 413)]);
    // the group is kept for the transaction timeout after its last chunk
    let timeout = f.relay.cfg.transaction_timeout.as_millis() as u64;
    f.advance(timeout / 2);
    assert!(!f.relay.tracker.is_empty());
    f.advance(timeout / 2 + 1_000);
    assert!(f.relay.tracker.is_empty(), "then forgotten");
}

/// B closes while "partial" chunks handed over the link may still be
/// failed: the sending worker is told once per group, with the cause.
#[test]
fn unanswered_group_fails_back_when_its_connection_closes() {
    let (mut f, b, link) = owner();
    let mut wire = BytesMut::new();
    for i in 1..=3 {
        let tid = format!("pGroupPrefix0002{i:06}");
        wire.extend_from_slice(&chunk_answered(b, &tid, b"y", 1, EndFlag::Continued, false));
    }
    f.feed(link, &wire);
    assert_eq!(frames(f.take_wire(b)).len(), 3);
    f.peer_closed(b);
    failed_back_as_closed(&mut f, link, "pGroupPrefix0002000003");
}
