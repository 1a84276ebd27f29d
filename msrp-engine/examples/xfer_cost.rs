//! User-space cost of relaying one large SEND, without sockets: the relay
//! core ([`Relay`]) driven the way `engine/wire.rs` and `engine/output.rs`
//! drive it, A's bytes handed over as 256 KiB reads (buffers filled before
//! the clock starts, as a socket's `recv` fills the engine's pooled ones),
//! every write taken whole and dropped, B answering 200 to each chunk after
//! each read. Prints nanoseconds per outgoing chunk: the relay's own work;
//! the kernel's side (recv, writev) is not in it, which `msrp-bench`
//! measures. Compare builds on the same machine in the same minutes (the
//! fastest and the median of several rounds).
//!
//! `cargo run --release -p msrp-engine --example xfer_cost [MiB] [rounds]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use msrp_core::Event;
use msrp_engine::conn::LayerView;
use msrp_engine::connid::ConnId;
use msrp_engine::engine::Host;
use msrp_engine::relay::{Accepted, BodyCheck, Relay, Step};
use msrp_engine::testing::fake::FakeIo;
use msrp_engine::testing::{MemTable, NoStats, RelayAll};
use msrp_engine::transport::Kind;

const A: &str = "192.0.2.1:7777";
const B: &str = "192.0.2.11:7777";
const READ: usize = 256 * 1024;

fn body(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn send(body: &[u8]) -> Vec<u8> {
    let n = body.len();
    let mut v = format!(
        "MSRP big0000001 SEND\r\n\
         To-Path: msrp://127.0.0.1:2855/r;tcp msrp://{B}/b;tcp\r\n\
         From-Path: msrp://{A}/a;tcp\r\n\
         Message-ID: m-big\r\n\
         Byte-Range: 1-{n}/{n}\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    v.extend_from_slice(body);
    v.extend_from_slice(b"\r\n-------big0000001$\r\n");
    v
}

struct Driver {
    relay: Relay,
    io: FakeIo,
    host: RelayAll,
    /// Transaction IDs of the chunks B got since its last answers.
    tids: Vec<Vec<u8>>,
}

impl Driver {
    fn accept(&mut self, peer: &str) -> ConnId {
        let t = self.relay.alloc_id();
        let a = Accepted {
            peer: peer.parse::<SocketAddr>().unwrap(),
            local: SocketAddr::from(([127, 0, 0, 1], 2855)),
            kind: Kind::Tcp,
            layer: LayerView::NONE,
        };
        self.relay.accepted(t, a, self.relay.now);
        t
    }

    fn feed(&mut self, t: ConnId, bytes: BytesMut) {
        let n = bytes.len();
        if let Some(c) = self.relay.conns.get_mut(&t) {
            c.rbuf.unsplit(bytes);
        }
        self.relay.read(t, n, self.relay.now);
        self.drive(t);
        while self.relay.sched.has_ready() || self.relay.wants_write() {
            while let Some(t) = self.relay.sched.pop_ready() {
                self.drive(t);
            }
            for t in self.relay.take_dirty() {
                self.flush(t);
            }
        }
    }

    fn drive(&mut self, t: ConnId) {
        while self.relay.pump(t) {
            let ev = match self.relay.next_event(t) {
                Step::Event(ev) => ev,
                _ => return,
            };
            match ev {
                Event::Head(head) => {
                    let now = self.relay.now;
                    if let Some(ctx) = self.relay.on_head(t, head, now, &mut self.io) {
                        let ctx = self.host.run_route(ctx);
                        self.relay.script_done(t, ctx, &mut self.io);
                    }
                }
                Event::Body(b) => {
                    if self.relay.body(t, b) != BodyCheck::Fine {
                        panic!("body refused");
                    }
                }
                Event::End(flag) => self.relay.end(t, flag, self.relay.now),
            }
        }
    }

    /// A write turn that takes everything, keeping only the chunks' tids.
    fn flush(&mut self, t: ConnId) {
        if !self.relay.write_turn(t) {
            return;
        }
        let mut n = 0;
        for b in self.relay.transmit(t, usize::MAX) {
            n += b.len();
            // a head piece (a random body piece starting so: 2^-40)
            if let Some(rest) = b.strip_prefix(b"MSRP ") {
                let end = rest.iter().position(|&c| c == b' ').unwrap_or(0);
                self.tids.push(rest[..end].to_vec());
            }
        }
        self.relay.wrote(t, n);
        self.relay
            .write_done(t, Some(n), LayerView::NONE, self.relay.now);
        assert!(self.relay.after_write(t).is_none());
    }
}

/// One transfer; returns (time in the relay, chunks B got).
fn run(wire: &[u8]) -> (Duration, usize) {
    let c = msrp_engine::testing::config(vec!["127.0.0.1:2855".parse().unwrap()]);
    let cfg: &'static _ = Box::leak(Box::new(c));
    let now = Instant::now();
    let relay = Relay::new(
        cfg,
        Box::<MemTable>::default(),
        Box::new(NoStats),
        7,
        1,
        now,
    );
    let mut d = Driver {
        relay,
        io: FakeIo::default(),
        host: RelayAll,
        tids: Vec::new(),
    };
    let a = d.accept(A);
    let b = d.accept(B);
    let (mut spent, mut chunks) = (Duration::ZERO, 0);
    let mut text = Vec::new();
    for piece in wire.chunks(READ) {
        let piece = BytesMut::from(piece);
        let t0 = Instant::now();
        d.feed(a, piece);
        spent += t0.elapsed();
        text.clear();
        for tid in d.tids.drain(..) {
            let tid = String::from_utf8_lossy(&tid);
            text.extend_from_slice(
                format!(
                    "MSRP {tid} 200 OK\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
                     From-Path: msrp://{B}/b;tcp\r\n-------{tid}$\r\n"
                )
                .as_bytes(),
            );
            chunks += 1;
        }
        let answers = BytesMut::from(&text[..]);
        let t0 = Instant::now();
        d.feed(b, answers);
        spent += t0.elapsed();
    }
    (spent, chunks)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(9);
    let wire = send(&body(mib << 20));
    let mut per_chunk = Vec::new();
    for _ in 0..rounds {
        let (spent, chunks) = run(&wire);
        per_chunk.push(spent.as_nanos() as f64 / chunks as f64);
    }
    per_chunk.sort_by(f64::total_cmp);
    let line: Vec<String> = per_chunk.iter().map(|v| format!("{v:.0}")).collect();
    println!(
        "{mib} MiB, {rounds} rounds: fastest {:.0}, median {:.0} ns per 16 KiB chunk (sorted: {})",
        per_chunk[0],
        per_chunk[rounds / 2],
        line.join(" ")
    );
}
