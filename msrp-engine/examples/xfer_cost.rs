//! User-space cost of relaying one large SEND, without sockets: the relay
//! core driven by the in-memory driver (`testing::fake`), A's bytes handed
//! over as 256 KiB reads (buffers filled before the clock starts, as a
//! socket's `recv` fills the engine's pooled ones), what the relay writes
//! shown to a tap that keeps only the chunks' transaction IDs, B answering
//! 200 to each chunk after each read. Prints nanoseconds per outgoing
//! chunk: the relay's own work; the kernel's side (recv, writev) is not in
//! it, which `msrp-bench` measures. Compare builds on the same machine in
//! the same minutes (the fastest and the median of several rounds).
//!
//! `cargo run --release -p msrp-engine --example xfer_cost [MiB] [rounds]`

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use msrp_engine::testing::fake::Fake;
use msrp_engine::testing::RelayAll;

const A: &str = "192.0.2.1:7777";
mod common;
use common::B;
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

/// One transfer; returns (time in the relay, chunks B got).
fn run(wire: &[u8]) -> (Duration, usize) {
    let c = msrp_engine::testing::config(vec!["127.0.0.1:2855".parse().unwrap()]);
    let mut f = Fake::new(Box::leak(Box::new(c)), RelayAll);
    let a = f.accept(A.parse::<SocketAddr>().unwrap());
    let b = f.accept(B.parse::<SocketAddr>().unwrap());
    // the tids of the chunks B got since its last answers (a head piece
    // starts so; a random body piece does with probability 2^-40)
    let tids = Rc::new(RefCell::new(Vec::<String>::new()));
    let seen = tids.clone();
    f.tap = Some(Box::new(move |t, piece| {
        if let (true, Some(rest)) = (t == b, piece.strip_prefix(b"MSRP ")) {
            let end = rest.iter().position(|&c| c == b' ').unwrap_or(0);
            seen.borrow_mut()
                .push(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
    }));
    let (mut spent, mut chunks) = (Duration::ZERO, 0);
    let mut text = Vec::new();
    for piece in wire.chunks(READ) {
        let piece = BytesMut::from(piece);
        let t0 = Instant::now();
        f.feed_buf(a, piece);
        spent += t0.elapsed();
        text.clear();
        chunks += common::answer_all(&tids, &mut text);
        let answers = BytesMut::from(&text[..]);
        let t0 = Instant::now();
        f.feed_buf(b, answers);
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
        // every chunk reached B (msrp_max_chunk_size is 16384 by default)
        assert_eq!(chunks, (mib << 20).div_ceil(16384), "chunks at B");
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
