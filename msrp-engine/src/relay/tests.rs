//! The relay core without sockets: a fake driver feeds bytes and writes
//! with an injected clock and does what the relay's answers say, as the
//! mio driver (engine/wire.rs, engine/output.rs) does.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msrp_core::{EndFlag, Event, FrameHead};

use super::*;
use crate::conn::Phase;
use crate::route::{self, Plan, Request};
use crate::sched::Blocked;

const SRC: ConnId = ConnId(10);
const DEST: ConnId = ConnId(11);
const HIGH: usize = 16_384;
const LOW: usize = 4_096;

const SEND: &[u8] = b"MSRP a786hjs2 SEND\r\n\
To-Path: msrp://127.0.0.1:2855/r;tcp msrp://192.0.2.7:7777/b;tcp\r\n\
From-Path: msrp://192.0.2.1:7777/a;tcp\r\n\
Message-ID: 87652\r\n\
Byte-Range: 1-25/25\r\n\
Content-Type: text/plain\r\n\r\n\
Hello world, and -------x\r\n\
-------a786hjs2$\r\n";

fn cfg() -> &'static Config {
    let mut c = crate::testing::config(vec!["127.0.0.1:2855".parse().unwrap()]);
    c.queue_high = HIGH;
    c.queue_low = LOW;
    Box::leak(Box::new(c))
}

/// The fake driver: a relay, its connections, and the clock.
struct Driver {
    relay: Relay,
    now: Instant,
}

impl Driver {
    fn new() -> Driver {
        let cfg = cfg();
        let now = Instant::now();
        let mut relay = Relay::new(
            cfg,
            Box::<crate::testing::MemTable>::default(),
            Box::new(crate::testing::NoStats),
            1,
            SRC.0,
            now,
        );
        for t in [SRC, DEST] {
            let a = Accepted {
                peer: std::net::SocketAddr::from(([192, 0, 2, t.0 as u8], 7777)),
                local: std::net::SocketAddr::from(([127, 0, 0, 1], 2855)),
                kind: crate::transport::Kind::Tcp,
                layer: crate::conn::LayerView::NONE,
            };
            relay.accepted(t, a, now);
        }
        Driver { relay, now }
    }

    fn tick(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }

    fn feed(&mut self, t: ConnId, bytes: &[u8]) {
        self.relay.received(t, bytes, self.now);
    }

    /// Parse steps until the relay wants more bytes (or says wait).
    fn drain(&mut self, t: ConnId, seen: &mut Seen) -> Step {
        loop {
            match self.relay.next_event(t) {
                Step::Event(ev) => seen.push(ev),
                other => return other,
            }
        }
    }

    /// What the socket of `t` takes: `n` bytes written at `now`.
    fn write(&mut self, t: ConnId, n: usize) -> Option<&'static str> {
        assert!(self.relay.write_turn(t));
        self.relay.wrote(t, n);
        self.relay
            .write_done(t, Some(n), crate::conn::LayerView::NONE, self.now);
        self.relay.after_write(t)
    }
}

/// What a frame gave: its head, its body, its end flag.
#[derive(Default)]
struct Seen {
    heads: Vec<FrameHead>,
    body: BytesMut,
    ends: Vec<EndFlag>,
}

impl Seen {
    fn push(&mut self, ev: Event) {
        match ev {
            Event::Head(h) => self.heads.push(h),
            Event::Body(b) => self.body.extend_from_slice(&b),
            Event::End(f) => self.ends.push(f),
        }
    }

    /// The route the request takes (RFC 4976 §6.4), as the engine plans it.
    fn plan(&self, cfg: &Config) -> Plan {
        let req = Request::parse(&self.heads[0]).unwrap();
        route::plan(cfg, &req.to, SRC.conid(), |_| None).unwrap()
    }
}

#[test]
fn a_request_split_at_every_byte_routes_the_same() {
    let mut d = Driver::new();
    let mut whole = Seen::default();
    d.feed(SRC, SEND);
    assert!(matches!(d.drain(SRC, &mut whole), Step::NeedBytes));
    assert_eq!(whole.heads.len(), 1);
    assert_eq!(&whole.body[..], b"Hello world, and -------x");
    assert_eq!(whole.ends, vec![EndFlag::Complete]);
    let plan = whole.plan(d.relay.cfg);
    assert_eq!(plan.own, 1);
    for cut in 1..SEND.len() {
        let mut d = Driver::new();
        let mut seen = Seen::default();
        d.feed(SRC, &SEND[..cut]);
        assert!(matches!(d.drain(SRC, &mut seen), Step::NeedBytes));
        d.tick(1);
        d.feed(SRC, &SEND[cut..]);
        assert!(matches!(d.drain(SRC, &mut seen), Step::NeedBytes));
        assert_eq!(
            format!("{:?}", seen.heads),
            format!("{:?}", whole.heads),
            "cut at {cut}"
        );
        assert_eq!(seen.body, whole.body, "cut at {cut}");
        assert_eq!(seen.ends, whole.ends, "cut at {cut}");
        assert_eq!(seen.plan(d.relay.cfg), plan, "cut at {cut}");
        assert!(d.relay.conns[&SRC].rbuf.is_empty());
    }
}

#[test]
fn back_pressure_pauses_the_source_above_the_high_watermark_until_below_the_low() {
    let mut d = Driver::new();
    let piece = Bytes::from(vec![b'x'; 4096]);
    let mut queued = 0;
    while !d.relay.hold_back(SRC, DEST) {
        assert!(queued <= HIGH, "not held back at {queued} bytes");
        d.relay
            .conns
            .get_mut(&DEST)
            .unwrap()
            .queue(piece.clone(), false, d.now);
        queued += piece.len();
    }
    assert!(queued > HIGH);
    assert_eq!(d.relay.sched.blocked(SRC), Some(Blocked::OnDrain(DEST)));
    // a paused source is not parsed: its bytes stay in its buffer
    d.feed(SRC, SEND);
    let mut seen = Seen::default();
    assert!(matches!(d.drain(SRC, &mut seen), Step::Wait));
    assert!(seen.heads.is_empty());
    // writes above the low watermark do not wake it
    d.tick(5);
    assert_eq!(d.write(DEST, queued - LOW - 1), None);
    assert_eq!(d.relay.sched.pop_ready(), None);
    assert!(matches!(d.drain(SRC, &mut seen), Step::Wait));
    // at the low watermark it goes on, and reads what waited
    assert_eq!(d.write(DEST, 1), None);
    assert_eq!(d.relay.sched.pop_ready(), Some(SRC));
    assert_eq!(d.relay.sched.blocked(SRC), None);
    assert!(matches!(d.drain(SRC, &mut seen), Step::NeedBytes));
    assert_eq!(seen.heads.len(), 1);
}

#[test]
fn answers_the_sender_does_not_read_stop_reading_it() {
    let mut d = Driver::new();
    let answer = Bytes::from(vec![b'a'; 1024]);
    while !d.relay.own_queue_full(SRC) {
        d.relay
            .conns
            .get_mut(&SRC)
            .unwrap()
            .queue_own(answer.clone(), d.now);
    }
    d.feed(SRC, SEND);
    let mut seen = Seen::default();
    assert!(matches!(d.drain(SRC, &mut seen), Step::Wait));
    assert_eq!(d.relay.sched.blocked(SRC), Some(Blocked::OnDrain(SRC)));
    assert!(seen.heads.is_empty());
    let queued = d.relay.conns[&SRC].queued();
    assert_eq!(d.write(SRC, queued), None);
    assert_eq!(d.relay.sched.pop_ready(), Some(SRC));
    assert!(matches!(d.drain(SRC, &mut seen), Step::NeedBytes));
    assert_eq!(seen.heads.len(), 1);
}

#[test]
fn a_peer_that_takes_nothing_of_a_huge_queue_is_closed() {
    let mut d = Driver::new();
    let c = d.relay.conns.get_mut(&DEST).unwrap();
    c.queue_own(
        Bytes::from(vec![b'r'; HIGH * OUT_QUEUE_LIMIT_FACTOR]),
        d.now,
    );
    assert_eq!(d.write(DEST, 0), None);
    let c = d.relay.conns.get_mut(&DEST).unwrap();
    c.queue_own(Bytes::from_static(b"one more"), d.now);
    assert_eq!(d.write(DEST, 0), Some("peer not reading"));
    d.tick(1_000);
    let stalled = d.relay.conns[&DEST].stalled_for(d.now);
    assert_eq!(stalled, Some(Duration::from_millis(1_000)));
}

#[test]
fn eof_between_frames_writes_the_answers_then_closes() {
    let mut d = Driver::new();
    d.relay
        .conns
        .get_mut(&SRC)
        .unwrap()
        .queue_own(Bytes::from_static(b"MSRP a786hjs2 200 OK\r\n"), d.now);
    d.relay.peer_closed(SRC);
    assert_eq!(d.relay.read_gate(SRC), ReadGate::Eof);
    assert_eq!(d.relay.on_eof(SRC), Some(EofAction::HalfClosed));
    assert_eq!(
        d.relay.conns[&SRC].phase,
        Phase::Draining { flushing: true }
    );
    // nothing more is read; the answer still goes out
    assert_eq!(d.relay.read_gate(SRC), ReadGate::Skip);
    assert_eq!(d.write(SRC, 10), None);
    assert_eq!(d.write(SRC, 12), Some("flushed"));
}

#[test]
fn eof_mid_frame_truncates_and_eof_idle_closes() {
    let mut d = Driver::new();
    d.feed(SRC, &SEND[..SEND.len() - 5]);
    let mut seen = Seen::default();
    assert!(matches!(d.drain(SRC, &mut seen), Step::NeedBytes));
    d.relay.peer_closed(SRC);
    assert_eq!(d.relay.on_eof(SRC), Some(EofAction::Truncated));
    d.relay.peer_closed(DEST);
    assert_eq!(d.relay.on_eof(DEST), Some(EofAction::Closed));
    assert_eq!(d.relay.on_eof(ConnId(99)), None);
    assert_eq!(d.relay.read_gate(ConnId(99)), ReadGate::Gone);
}

#[test]
fn a_next_hop_closing_with_answers_queued_closes_at_once() {
    let mut d = Driver::new();
    let cfg = d.relay.cfg;
    let hop = std::net::SocketAddr::from(([192, 0, 2, 9], 7777));
    let mut c = ConnState::new(hop, hop, Some(hop), cfg, d.now);
    assert_eq!(c.phase, Phase::Dialling);
    c.queue_own(Bytes::from_static(b"MSRP x 200 OK\r\n"), d.now);
    d.relay.conns.insert(ConnId(12), c);
    assert_eq!(d.relay.read_gate(ConnId(12)), ReadGate::Skip);
    let mut io = crate::testing::fake::FakeIo::default();
    assert!(d.relay.dialled(ConnId(12), Ok(()), &mut io));
    assert_eq!(d.relay.read_gate(ConnId(12)), ReadGate::Read);
    d.relay.peer_closed(ConnId(12));
    assert_eq!(d.relay.on_eof(ConnId(12)), Some(EofAction::Closed));
}

#[test]
fn malformed_input_is_reported_not_parsed_further() {
    let mut d = Driver::new();
    d.feed(SRC, b"MSRP a786hjs2 SEND\r\nTo-Path msrp://x\r\n\r\n");
    let mut seen = Seen::default();
    assert!(matches!(d.drain(SRC, &mut seen), Step::Malformed(_)));
}

/// What is queued on `t`, in the order it would be written.
fn queue_of(d: &Driver, t: ConnId) -> Vec<Bytes> {
    d.relay.conns[&t].transmit(usize::MAX).cloned().collect()
}

#[test]
fn a_frame_for_a_destination_mid_chunk_waits_for_the_chunks_end() {
    let mut d = Driver::new();
    assert!(d.relay.sched.begin_chunk(SRC, DEST));
    let head = Bytes::from_static(b"MSRP c1 SEND\r\n...\r\n\r\nbody");
    d.relay.push_stream(DEST, head.clone(), false, d.now);
    let report = Bytes::from_static(b"MSRP r1 REPORT\r\n...\r\n-------r1$\r\n");
    d.relay.push_frame(DEST, report.clone(), d.now);
    assert_eq!(queue_of(&d, DEST), vec![head.clone()]);
    let end = Bytes::from_static(b"\r\n-------c1$\r\n");
    d.relay.push_stream(DEST, end.clone(), true, d.now);
    // the chunk ends: the slot is given up and the REPORT follows it
    assert!(d.relay.sched.leave(DEST, SRC));
    d.relay
        .conns
        .get_mut(&DEST)
        .unwrap()
        .release_deferred(d.now);
    assert_eq!(queue_of(&d, DEST), vec![head, end, report]);
    // between chunks a frame goes out at once
    let ok = Bytes::from_static(b"MSRP a 200 OK\r\n-------a$\r\n");
    d.relay.push_frame(DEST, ok.clone(), d.now);
    assert_eq!(queue_of(&d, DEST).last(), Some(&ok));
}

#[test]
fn a_connection_is_written_once_per_pass_however_much_is_queued() {
    let mut d = Driver::new();
    assert!(!d.relay.wants_write());
    for _ in 0..3 {
        d.relay
            .push_stream(DEST, Bytes::from_static(b"x"), false, d.now);
        d.relay.push_frame(SRC, Bytes::from_static(b"y"), d.now);
    }
    d.relay.push_stream(SRC, Bytes::new(), true, d.now);
    assert!(d.relay.wants_write());
    assert_eq!(d.relay.take_dirty(), vec![DEST, SRC]);
    assert!(!d.relay.wants_write());
    // until the driver wrote it, more output does not list it again
    d.relay
        .push_stream(DEST, Bytes::from_static(b"z"), false, d.now);
    assert_eq!(d.relay.take_dirty(), vec![]);
    assert_eq!(d.write(DEST, 2), None);
    d.relay
        .push_stream(DEST, Bytes::from_static(b"w"), false, d.now);
    assert_eq!(d.relay.take_dirty(), vec![DEST]);
    // a connection gone is not listed
    d.relay.mark_dirty(ConnId(99));
    assert!(!d.relay.wants_write());
}
