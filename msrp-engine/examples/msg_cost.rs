//! User-space cost of relaying one 1 KiB SEND and its 200, without sockets:
//! the relay core driven by the in-memory driver (`testing::fake`), as
//! `msrp-bench`'s message-rate phase drives it: A sends a SEND as one read,
//! the relay forwards it to B and answers A itself, B's 200 comes back as
//! one read. Prints nanoseconds per message: the relay's own work per
//! message (parsing, script context, routing, tracking, queueing); the
//! kernel's side (recv, writev) and Kamailio's script are not in it, which
//! `msrp-bench` measures. Compare builds on the same machine in the same
//! minutes (the fastest and the median of several rounds).
//!
//! `cargo run --release -p msrp-engine --example msg_cost [messages] [rounds]`

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

fn send(i: usize, body: &[u8]) -> Vec<u8> {
    let n = body.len();
    let mut v = format!(
        "MSRP a{i:09} SEND\r\n\
         To-Path: msrp://127.0.0.1:2855/r;tcp msrp://{B}/b;tcp\r\n\
         From-Path: msrp://{A}/a;tcp\r\n\
         Message-ID: m{i:09}\r\n\
         Byte-Range: 1-{n}/{n}\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    v.extend_from_slice(body);
    v.extend_from_slice(format!("\r\n-------a{i:09}$\r\n").as_bytes());
    v
}

/// `n` messages; returns (time in the relay, 200s A got).
fn run(n: usize, body: &[u8]) -> (Duration, usize) {
    let c = msrp_engine::testing::config(vec!["127.0.0.1:2855".parse().unwrap()]);
    let mut f = Fake::new(Box::leak(Box::new(c)), RelayAll);
    let a = f.accept(A.parse::<SocketAddr>().unwrap());
    let b = f.accept(B.parse::<SocketAddr>().unwrap());
    // the tid of each head B got, and how many 200s A got
    let tids = Rc::new(RefCell::new(Vec::<String>::new()));
    let oks = Rc::new(RefCell::new(0usize));
    let (seen, got) = (tids.clone(), oks.clone());
    f.tap = Some(Box::new(move |t, piece| {
        if let Some(rest) = piece.strip_prefix(b"MSRP ") {
            let end = rest.iter().position(|&c| c == b' ').unwrap_or(0);
            if t == b {
                seen.borrow_mut()
                    .push(String::from_utf8_lossy(&rest[..end]).into_owned());
            } else if rest[end + 1..].starts_with(b"200") {
                *got.borrow_mut() += 1;
            }
        }
    }));
    let mut spent = Duration::ZERO;
    for i in 0..n {
        // filled before the clock starts, as a socket's recv fills a buffer
        let wire = BytesMut::from(&send(i, body)[..]);
        let t0 = Instant::now();
        f.feed_buf(a, wire);
        spent += t0.elapsed();
        let mut text = Vec::new();
        common::answer_all(&tids, &mut text);
        let answers = BytesMut::from(&text[..]);
        let t0 = Instant::now();
        f.feed_buf(b, answers);
        spent += t0.elapsed();
    }
    let oks = *oks.borrow();
    (spent, oks)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(9);
    let body = vec![b'x'; 1024];
    let mut per_msg = Vec::new();
    for _ in 0..rounds {
        let (spent, oks) = run(n, &body);
        // every SEND reached B and got the relay's 200 at A
        assert_eq!(oks, n, "200s at A");
        per_msg.push(spent.as_nanos() as f64 / n as f64);
    }
    per_msg.sort_by(f64::total_cmp);
    let line: Vec<String> = per_msg.iter().map(|v| format!("{v:.0}")).collect();
    println!(
        "{n} messages of 1 KiB, {rounds} rounds: fastest {:.0}, median {:.0} ns per message \
         (sorted: {})",
        per_msg[0],
        per_msg[rounds / 2],
        line.join(" ")
    );
}
