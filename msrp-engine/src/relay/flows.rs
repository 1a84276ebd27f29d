//! Whole flows through the relay core with the in-memory driver
//! ([`crate::testing::fake`]): routing to a known connection, re-chunking,
//! REPORTs (RFC 4976 §6.4.1, RFC 4975 §7.1.2) and back-pressure, with
//! injected time and no socket. (Moved down from msrp-engine/tests/engine.rs
//! where they needed no socket.)

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use msrp_core::{EndFlag, FrameHead};

use super::*;
use crate::testing::fake::{frames, Fake};
use crate::testing::RelayAll;

const HIGH: usize = 16_384;

fn cfg(f: impl FnOnce(&mut Config)) -> &'static Config {
    let mut c = crate::testing::config(vec!["127.0.0.1:2855".parse().unwrap()]);
    c.queue_high = HIGH;
    c.queue_low = 4_096;
    f(&mut c);
    Box::leak(Box::new(c))
}

const A: &str = "192.0.2.1:7777";
const B: &str = "192.0.2.11:7777";

/// A SEND from A to B through the relay.
fn send(tid: &str, body: &[u8], failure_report: &str) -> Vec<u8> {
    let mut v = format!(
        "MSRP {tid} SEND\r\n\
         To-Path: msrp://127.0.0.1:2855/r;tcp msrp://{B}/b;tcp\r\n\
         From-Path: msrp://{A}/a;tcp\r\n\
         Message-ID: m-{tid}\r\n\
         Failure-Report: {failure_report}\r\n\
         Byte-Range: 1-{n}/{n}\r\n\
         Content-Type: text/plain\r\n\r\n",
        n = body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v.extend_from_slice(format!("\r\n-------{tid}$\r\n").as_bytes());
    v
}

/// The relay, with A and B connected to it.
fn relay(cfg: &'static Config) -> (Fake<RelayAll>, ConnId, ConnId) {
    let mut f = Fake::new(cfg, RelayAll);
    let a = f.accept(A.parse::<SocketAddr>().unwrap());
    let b = f.accept(B.parse::<SocketAddr>().unwrap());
    (f, a, b)
}

fn paths(h: &FrameHead) -> (String, String) {
    let s = |v: Option<&[u8]>| header_text(v);
    (s(h.header("To-Path")), s(h.header("From-Path")))
}

fn header_text(v: Option<&[u8]>) -> String {
    v.map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn header(h: &FrameHead, name: &str) -> Option<String> {
    h.header(name).map(|v| header_text(Some(v)))
}

/// The REPORT statuses A received, and whether it got a 200.
fn reports_and_ok(wire: BytesMut) -> (Vec<String>, bool) {
    let mut reports = Vec::new();
    let mut ok = false;
    for (h, _, _) in frames(wire) {
        if h.method() == Some(b"REPORT") {
            reports.push(header(&h, "Status").unwrap_or_default());
        } else if h.status_code() == Some(200) {
            ok = true;
        }
    }
    (reports, ok)
}

#[test]
fn send_goes_to_the_known_connection_rewritten_split_anywhere() {
    let cfg = cfg(|_| {});
    let wire = send("tx0001", b"hello B", "yes");
    for at in 0..=wire.len() {
        let (mut f, a, b) = relay(cfg);
        f.feed(a, &wire[..at]);
        f.feed(a, &wire[at..]);
        assert!(f.io.dialled.is_empty(), "B's connection is reused");
        let got = frames(f.take_wire(b));
        assert_eq!(got.len(), 1, "split at {at}");
        let (h, body, end) = &got[0];
        assert_eq!(&body[..], b"hello B");
        assert_eq!(*end, Some(EndFlag::Complete));
        assert_ne!(&h.transaction_id[..], b"tx0001");
        let want_from = format!("msrp://127.0.0.1:2855/r;tcp msrp://{A}/a;tcp");
        assert_eq!(paths(h), (format!("msrp://{B}/b;tcp"), want_from));
        // the relay's own 200 (RFC 4976 §6.4.1)
        let (reports, ok) = reports_and_ok(f.take_wire(a));
        assert!(ok && reports.is_empty(), "split at {at}");
    }
}

/// Relays everything and keeps what the script saw of each body.
struct SeesBody(Vec<(Vec<u8>, bool)>);

impl crate::engine::Host for SeesBody {
    fn run_route(&mut self, mut ctx: crate::script::FrameCtx) -> crate::script::FrameCtx {
        self.0.push((ctx.body.to_vec(), ctx.body_complete));
        ctx.relay();
        ctx
    }

    fn tick(&mut self) {}
}

#[test]
fn the_script_sees_a_body_already_read_and_b_gets_it_once() {
    let cfg = cfg(|_| {});
    let wire = send("tx0001", b"hello B", "yes");
    // whole in one read; its end-line not complete yet; an empty body
    let empty = send("tx0002", b"", "yes");
    let cases = [
        (&wire, wire.len()),
        (&wire, wire.len() - 1),
        (&empty, empty.len()),
    ];
    for (wire, at) in cases {
        let mut f = Fake::new(cfg, SeesBody(Vec::new()));
        let a = f.accept(A.parse::<SocketAddr>().unwrap());
        let b = f.accept(B.parse::<SocketAddr>().unwrap());
        f.feed(a, &wire[..at]);
        f.feed(a, &wire[at..]);
        let body: &[u8] = if wire.len() == empty.len() {
            b""
        } else {
            b"hello B"
        };
        let whole = at == wire.len();
        let seen = if whole { body.to_vec() } else { Vec::new() };
        assert_eq!(f.host.0, [(seen, whole)], "split at {at}");
        let got = frames(f.take_wire(b));
        assert_eq!(got.len(), 1, "split at {at}");
        assert_eq!((&got[0].1[..], got[0].2), (body, Some(EndFlag::Complete)));
        let (reports, ok) = reports_and_ok(f.take_wire(a));
        assert!(ok && reports.is_empty(), "split at {at}");
    }
}

#[test]
fn unknown_next_hop_is_dialled_and_written_once_connected() {
    let (mut f, a, _) = relay(cfg(|_| {}));
    let wire = send("tx0001", b"x", "yes").replace_b(B, "192.0.2.99:9");
    f.feed(a, &wire);
    assert_eq!(f.io.dialled.len(), 1);
    let (d, hop) = f.io.dialled[0].clone();
    assert_eq!(hop.addr, "192.0.2.99:9".parse().unwrap());
    assert!(
        f.take_wire(d).is_empty(),
        "nothing is written before connect"
    );
    f.connected(d);
    let got = frames(f.take_wire(d));
    assert_eq!((got.len(), &got[0].1[..]), (1, &b"x"[..]));
}

#[test]
fn big_send_leaves_in_chunks_with_ranges_and_fresh_ids() {
    let (mut f, a, b) = relay(cfg(|c| c.max_chunk_size = 1024));
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let wire = send("big", &body, "yes");
    for piece in wire.chunks(777) {
        f.feed(a, piece);
    }
    let got = frames(f.take_wire(b));
    assert_eq!(got.len(), 5);
    let mut all = Vec::new();
    let mut tids = std::collections::HashSet::new();
    for (i, (h, chunk, end)) in got.iter().enumerate() {
        assert!(chunk.len() <= 1024);
        let r = h.byte_range().unwrap().unwrap();
        assert_eq!(r.start, all.len() as u64 + 1);
        assert_eq!(r.end, Some(all.len() as u64 + chunk.len() as u64));
        assert_eq!(r.total, Some(5000));
        let last = i == got.len() - 1;
        let want = if last {
            EndFlag::Complete
        } else {
            EndFlag::Continued
        };
        assert_eq!(*end, Some(want));
        assert!(
            tids.insert(h.transaction_id.clone()),
            "fresh transaction IDs"
        );
        assert_ne!(&h.transaction_id[..], b"big");
        all.extend_from_slice(chunk);
    }
    assert_eq!(all, body);
}

/// Forwards a SEND asking for `fr` to B, then lets `fail` happen; returns
/// the REPORT statuses A got and whether it got a 200.
fn report_after(
    fr: &str,
    fail: impl FnOnce(&mut Fake<RelayAll>, ConnId, &FrameHead),
) -> (Vec<String>, bool) {
    let (mut f, a, b) = relay(cfg(|c| c.transaction_timeout = Duration::from_secs(2)));
    f.feed(a, &send("tx0001", b"x", fr));
    let got = frames(f.take_wire(b));
    assert_eq!(got.len(), 1);
    fail(&mut f, b, &got[0].0);
    reports_and_ok(f.take_wire(a))
}

fn answer(f: &mut Fake<RelayAll>, b: ConnId, h: &FrameHead, code: u16) {
    let tid = String::from_utf8_lossy(&h.transaction_id).into_owned();
    let r = format!(
        "MSRP {tid} {code} Forbidden\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
         From-Path: msrp://{B}/b;tcp\r\n-------{tid}$\r\n"
    );
    f.feed(b, r.as_bytes());
}

/// Relays every frame, counting the frames the script saw.
struct Counted(u32);

impl crate::engine::Host for Counted {
    fn run_route(&mut self, mut ctx: crate::script::FrameCtx) -> crate::script::FrameCtx {
        self.0 += 1;
        ctx.relay();
        ctx
    }

    fn tick(&mut self) {}
}

#[test]
fn next_hop_200s_end_their_chunks_without_the_script_however_they_arrive() {
    let cfg = cfg(|c| c.max_chunk_size = 1024);
    let wire = send("tx0001", &[b'k'; 5000], "yes");
    for at in 0..=700 {
        let mut f = Fake::new(cfg, Counted(0));
        let a = f.accept(A.parse::<SocketAddr>().unwrap());
        let b = f.accept(B.parse::<SocketAddr>().unwrap());
        f.feed(a, &wire);
        let chunks = frames(f.take_wire(b));
        assert_eq!((chunks.len(), f.host.0), (5, 1));
        // B's 200s, then one for a transaction the relay never sent (the
        // script sees that one: RFC 4976 §6.4.1 only consumes the relay's)
        let mut text = String::new();
        let tids = chunks.iter().map(|(h, _, _)| h.transaction_id.to_vec());
        for tid in tids.chain([b"unknown01".to_vec()]) {
            let tid = String::from_utf8(tid).unwrap();
            text.push_str(&format!(
                "MSRP {tid} 200 OK\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
                 From-Path: msrp://{B}/b;tcp\r\n-------{tid}$\r\n"
            ));
        }
        let at = at.min(text.len());
        f.feed(b, &text.as_bytes()[..at]);
        f.feed(b, &text.as_bytes()[at..]);
        assert!(f.relay.tracker.is_empty(), "split at {at}");
        assert_eq!(f.host.0, 2, "split at {at}");
        assert!(f.relay.conns.contains_key(&b));
        let (reports, ok) = reports_and_ok(f.take_wire(a));
        assert!(ok && reports.is_empty(), "split at {at}");
    }
}

#[test]
fn a_full_request_window_reopens_once_half_of_it_is_answered() {
    use crate::tracker::REQUEST_WINDOW;
    let window = REQUEST_WINDOW as usize;
    let (mut f, a, b) = relay(cfg(|c| c.max_chunk_size = 16));
    let chunks = window + 100;
    f.feed(a, &send("win001", &vec![b'w'; 16 * chunks], "yes"));
    let sent = frames(f.take_wire(b));
    assert_eq!(sent.len(), window, "no more than a window unanswered");
    let ok = |h: &FrameHead| {
        let tid = String::from_utf8_lossy(&h.transaction_id).into_owned();
        format!(
            "MSRP {tid} 200 OK\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
             From-Path: msrp://{B}/b;tcp\r\n-------{tid}$\r\n"
        )
    };
    let answers = |hs: &[(FrameHead, BytesMut, Option<EndFlag>)]| {
        hs.iter().map(|(h, _, _)| ok(h)).collect::<String>()
    };
    // one short of half: still full enough to wait
    f.feed(b, answers(&sent[..window / 2 - 1]).as_bytes());
    assert!(frames(f.take_wire(b)).is_empty());
    f.feed(b, answers(&sent[window / 2 - 1..window / 2]).as_bytes());
    let rest = frames(f.take_wire(b));
    assert_eq!(rest.len(), 100, "the rest goes once half is answered");
    f.feed(b, answers(&sent[window / 2..]).as_bytes());
    f.feed(b, answers(&rest).as_bytes());
    assert!(f.relay.tracker.is_empty());
}

#[test]
fn next_hop_closing_is_reported_unless_no() {
    let lost = |fr| report_after(fr, |f, b, _| f.peer_closed(b));
    let want = vec!["000 408 Next Hop Connection Lost".to_string()];
    assert_eq!(lost("yes"), (want.clone(), true));
    assert_eq!(lost("partial"), (want, false));
    assert_eq!(lost("no"), (vec![], false));
}

#[test]
fn error_response_becomes_a_report_unless_no() {
    let refused = |fr| report_after(fr, |f, b, h| answer(f, b, h, 403));
    let want = vec!["000 403 Forbidden".to_string()];
    assert_eq!(refused("yes"), (want.clone(), true));
    assert_eq!(refused("partial"), (want, false));
    assert_eq!(refused("no"), (vec![], false));
}

#[test]
fn silent_next_hop_times_out_for_yes_only() {
    let silent = |fr| report_after(fr, |f, _, _| f.advance(2_500));
    let want = vec!["000 408 Request Timeout".to_string()];
    assert_eq!(silent("yes"), (want, true));
    // "partial" gets no 200, so no response timer applies (RFC 4975 §7.1.2)
    assert_eq!(silent("partial"), (vec![], false));
    assert_eq!(silent("no"), (vec![], false));
}

#[test]
fn a_next_hop_that_does_not_read_holds_its_sender_back() {
    let (mut f, a, b) = relay(cfg(|c| c.max_chunk_size = 4096));
    let body = vec![b'z'; 10 * HIGH];
    f.takes.insert(b, 0);
    // (read by read, as the driver reads at most READ_CHUNK at a time)
    for piece in send("bp0001", &body, "yes").chunks(4096) {
        f.feed(a, piece);
        // B's queue stops at the high watermark (plus what crossed it)
        let queued = f.relay.conns[&b].queued();
        assert!(queued <= HIGH + 2 * 4096, "{queued}");
    }
    assert!(f.relay.sched.blocked(a).is_some());
    // B reads: A goes on
    f.takes.remove(&b);
    f.relay.mark_dirty(b);
    f.settle();
    let got: usize = frames(f.take_wire(b)).iter().map(|(_, c, _)| c.len()).sum();
    assert_eq!(got, body.len());
    assert!(f.relay.sched.blocked(a).is_none());
}

#[test]
fn a_dial_that_fails_later_is_reported_unless_no() {
    let failed = |fr| {
        let (mut f, a, _) = relay(cfg(|_| {}));
        let wire = send("tx0001", b"x", fr).replace_b(B, "192.0.2.99:9");
        f.feed(a, &wire);
        let (d, _) = f.io.dialled[0].clone();
        f.connect_failed(d);
        assert!(!f.relay.conns.contains_key(&d), "the dial is closed");
        assert!(f.relay.conns.contains_key(&a), "its sender stays");
        reports_and_ok(f.take_wire(a))
    };
    let lost = |r: (Vec<String>, bool)| {
        assert!(r.0.iter().all(|s| s.starts_with("000 408")), "{:?}", r.0);
        (r.0.len(), r.1)
    };
    assert_eq!(lost(failed("yes")), (1, true));
    assert_eq!(lost(failed("partial")), (1, false));
    assert_eq!(lost(failed("no")), (0, false));
}

#[test]
fn a_client_half_closing_after_its_send_gets_its_200_then_is_closed() {
    let (mut f, a, b) = relay(cfg(|_| {}));
    f.takes.insert(a, 0);
    f.feed(a, &send("tx0001", b"bye", "yes"));
    f.peer_closed(a);
    assert!(
        f.relay.conns.contains_key(&a),
        "its 200 is still to be written"
    );
    assert_eq!(f.relay.read_gate(a), ReadGate::Skip, "nothing more is read");
    f.takes.remove(&a);
    f.relay.mark_dirty(a);
    f.settle();
    let (reports, ok) = reports_and_ok(f.take_wire(a));
    assert!(ok && reports.is_empty());
    assert!(!f.relay.conns.contains_key(&a), "closed once flushed");
    assert_eq!(frames(f.take_wire(b)).len(), 1, "the SEND went on");
}

#[test]
fn a_sender_closing_mid_send_ends_its_chunk_and_is_closed() {
    let (mut f, a, b) = relay(cfg(|_| {}));
    let wire = send("tx0001", &[b'q'; 3000], "yes");
    f.feed(a, &wire[..2000]);
    f.peer_closed(a);
    assert!(!f.relay.conns.contains_key(&a));
    let got = frames(f.take_wire(b));
    assert_eq!(got.len(), 1);
    assert!(got[0].1.len() < 3000, "the rest never came");
    assert!(got[0].2.is_some(), "B's chunk is ended, not left open");
    assert!(f.relay.conns.contains_key(&b), "B stays");
}

#[test]
fn an_accepted_connection_gets_the_read_rate_and_first_request_timers() {
    let (mut f, a, b) = relay(cfg(|c| {
        c.max_read_rate = 4096;
        c.first_request_timeout = Duration::from_secs(2);
    }));
    assert!(f.relay.conns[&a].read_rate.is_some());
    f.feed(b, &send("tx0001", b"x", "no").replace_b(B, A));
    f.advance(1_500);
    f.advance(1_500);
    // RFC 4976 §6.1: a connection that sent no request in time is closed
    assert!(!f.relay.conns.contains_key(&a), "silent A is closed");
    assert!(f.relay.conns.contains_key(&b), "B sent its first request");
}

/// `replace` for byte strings (a test's SEND to another next hop).
trait ReplaceB {
    fn replace_b(self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceB for Vec<u8> {
    fn replace_b(self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self)
            .unwrap()
            .replace(from, to)
            .into_bytes()
    }
}
