//! The sans-IO relay core (`Relay`) driven by random inputs through the
//! in-memory driver (`msrp_engine::testing::fake`): bytes split anywhere
//! (random bytes, or SENDs and responses the relay can route), peers that
//! close, connections that fail, peers that read little or nothing, dials
//! that complete, time that passes; and a link from another worker that
//! hands over SEND chunks as records (or random bytes). It must never panic, and the
//! scheduler's invariants hold after every step (`Scheduler::check`).
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use msrp_core::EndFlag;
use msrp_engine::config::Config;
use msrp_engine::conn::ConnState;
use msrp_engine::connid::ConnId;
use msrp_engine::link::record;
use msrp_engine::testing::fake::Fake;
use msrp_engine::testing::RelayAll;

#[derive(Debug, Arbitrary)]
enum Op {
    /// Raw bytes on a connection.
    Bytes(u8, Vec<u8>),
    /// A SEND to peer `to` (or elsewhere), split in two at `split`.
    Send {
        on: u8,
        to: u8,
        tid: u8,
        len: u16,
        report: u8,
        split: u16,
        complete: bool,
    },
    /// A response with `code` to transaction `tid`.
    Response {
        on: u8,
        tid: u8,
        code: u16,
    },
    PeerClosed(u8),
    Fail(u8),
    /// The peer takes at most this many bytes per write (0: nothing;
    /// u16::MAX: all).
    Takes(u8, u16),
    Connected(u8),
    Advance(u16),
    Accept,
    /// Raw bytes on the link from another worker.
    LinkBytes(Vec<u8>),
    /// A SEND chunk handed over the link as records for connection
    /// `to`, its body in pieces of `piece` bytes, split at `split`.
    LinkChunk {
        to: u8,
        tid: u8,
        len: u16,
        piece: u16,
        flag: u8,
        answer_timeout: bool,
        split: u16,
    },
}

/// One configuration for every run (a leaked one per run would be a leak
/// to LeakSanitizer).
fn cfg() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let mut c = msrp_engine::testing::config(vec!["127.0.0.1:2855".parse().unwrap()]);
        c.queue_high = 8192;
        c.queue_low = 2048;
        c.max_chunk_size = 2048;
        c
    })
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n % 6], 7777))
}

fn send(tid: u8, to: u8, len: u16, report: u8, complete: bool) -> Vec<u8> {
    let fr = ["yes", "no", "partial"][usize::from(report % 3)];
    let n = usize::from(len % 12_000);
    let total = if complete { n.to_string() } else { "*".into() };
    let mut v = format!(
        "MSRP tid{tid:03} SEND\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp msrp://{}/b;tcp\r\n\
         From-Path: msrp://192.0.2.9:7777/a;tcp\r\nMessage-ID: m{tid}\r\n\
         Failure-Report: {fr}\r\nByte-Range: 1-{}/{total}\r\n\
         Content-Type: text/plain\r\n\r\n",
        peer(to),
        n.max(1),
    )
    .into_bytes();
    v.extend(std::iter::repeat_n(b'q', n));
    let flag = if complete { '$' } else { '+' };
    v.extend_from_slice(format!("\r\n-------tid{tid:03}{flag}\r\n").as_bytes());
    v
}

/// A SEND chunk as another worker hands it over (see
/// `msrp_engine::link::record`).
fn link_chunk(
    target: ConnId,
    tid: u8,
    len: u16,
    piece: u16,
    flag: u8,
    answer_timeout: bool,
) -> Vec<u8> {
    let n = usize::from(len % 12_000);
    let tid = format!("tid{tid:03}");
    let head = format!(
        "MSRP {tid} SEND\r\nTo-Path: msrp://192.0.2.1:7777/b;tcp\r\n\
         From-Path: msrp://127.0.0.1:2855/r;tcp msrp://192.0.2.9:7777/a;tcp\r\n\
         Message-ID: l{tid}\r\nByte-Range: 1-{}/*\r\n\r\n",
        n.max(1)
    );
    let mut v = record::start(
        target.0,
        n > 0,
        answer_timeout,
        tid.as_bytes(),
        head.as_bytes(),
    )
    .to_vec();
    let body = Bytes::from(vec![b'l'; n]);
    let piece = usize::from(piece).max(1);
    let mut at = 0;
    while at < n {
        let end = (at + piece).min(n);
        record::body(body.slice(at..end), &mut |b| v.extend_from_slice(&b));
        at = end;
    }
    let flag = [EndFlag::Complete, EndFlag::Continued, EndFlag::Aborted][usize::from(flag % 3)];
    v.extend_from_slice(&record::end(flag));
    v
}

fuzz_target!(|ops: Vec<Op>| {
    let mut f = Fake::new(cfg(), RelayAll);
    for n in 0..3 {
        f.accept(peer(n));
    }
    // the link to worker 1 (never closed, as in the engine)
    let link = f.relay.alloc_id();
    f.relay.conns.insert(link, ConnState::link(1, cfg(), f.now));
    f.relay.links.insert(1, link);
    for op in ops.into_iter().take(64) {
        let mut ids: Vec<ConnId> = f
            .relay
            .conns
            .keys()
            .copied()
            .filter(|t| *t != link)
            .collect();
        ids.sort();
        let conn = |n: u8| ids.get(usize::from(n) % ids.len().max(1)).copied();
        match op {
            Op::Bytes(n, b) => {
                if let Some(t) = conn(n) {
                    f.feed(t, &b);
                }
            }
            Op::Send {
                on,
                to,
                tid,
                len,
                report,
                split,
                complete,
            } => {
                if let Some(t) = conn(on) {
                    let w = send(tid, to, len, report, complete);
                    let at = usize::from(split) % (w.len() + 1);
                    f.feed(t, &w[..at]);
                    f.feed(t, &w[at..]);
                }
            }
            Op::Response { on, tid, code } => {
                if let Some(t) = conn(on) {
                    let code = 200 + code % 400;
                    let r = format!(
                        "MSRP tid{tid:03} {code} X\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
                         From-Path: msrp://192.0.2.1:7777/b;tcp\r\n-------tid{tid:03}$\r\n"
                    );
                    f.feed(t, r.as_bytes());
                }
            }
            Op::PeerClosed(n) => {
                if let Some(t) = conn(n) {
                    f.peer_closed(t);
                }
            }
            Op::Fail(n) => {
                if let Some(t) = conn(n) {
                    f.close(t, "fuzz");
                    f.settle();
                }
            }
            Op::Takes(n, k) => {
                if let Some(t) = conn(n) {
                    if k == u16::MAX {
                        f.takes.remove(&t);
                    } else {
                        f.takes.insert(t, usize::from(k));
                    }
                    f.relay.mark_dirty(t);
                    f.settle();
                }
            }
            Op::Connected(n) => {
                if let Some(t) = conn(n) {
                    f.connected(t);
                }
            }
            Op::Advance(ms) => f.advance(u64::from(ms) * 8),
            Op::Accept => {
                if ids.len() < 8 {
                    f.accept(peer(ids.len() as u8));
                }
            }
            Op::LinkBytes(b) => f.feed(link, &b),
            Op::LinkChunk {
                to,
                tid,
                len,
                piece,
                flag,
                answer_timeout,
                split,
            } => {
                // a connection here, or one that is gone
                let target = conn(to).unwrap_or(ConnId(u64::from(to) + 1000));
                let w = link_chunk(target, tid, len, piece, flag, answer_timeout);
                let at = usize::from(split) % (w.len() + 1);
                f.feed(link, &w[..at]);
                f.feed(link, &w[at..]);
            }
        }
        f.relay.sched.check();
    }
});
