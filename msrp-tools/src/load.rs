//! Load generation for `msrp-bench`: lean MSRP connections, a verifying
//! "B" sink, large single-chunk transfers and request/response sessions.
//!
//! Unlike [`crate::peer`], which favours inspectability (whole frames,
//! SHA-256 of every body), everything here is built to cost the load tool as
//! little CPU as possible, because on a small machine the tool shares the
//! cores with the relay it measures:
//!
//! - bodies are slices of one pre-generated pseudo-random [`Pattern`], so
//!   sending costs no generation and the receiver verifies every byte with a
//!   `memcmp` against the expected position (a lost, duplicated or
//!   misplaced piece shows up as a mismatch, since the pattern period is a
//!   prime number of bytes);
//! - [`Conn`] reads 256 KiB at a time and batches the responses it writes
//!   until it would block on a read.
//!
//! A [`Conn`] can also reach the relay over TLS or a WebSocket
//! ([`Dialer`]); the "B" sinks stay plain TCP.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msrp_core::{build, ByteRange, EndFlag, Event, FrameHead, Header, Limits, Parser};
use rustls::ClientConfig;
use tungstenite::{Message, WebSocket};

use crate::body::BodyGen;
use crate::ids;
use crate::stream::{Stream, Transport};
use crate::tls::{self, Certs};
use crate::ws::WsConnect;

/// Period of the body pattern: a prime, so no chunk size is a multiple of it.
pub const PATTERN_PERIOD: usize = 1_048_573;
/// Longest contiguous slice [`Pattern::slice`] returns.
pub const MAX_SLICE: usize = 256 * 1024;
const READ_SIZE: usize = 256 * 1024;
/// A sink blocked this long writing its responses gives up (the other side
/// stopped reading them).
const SINK_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Shared, cheap errors: these end a run and are shown to the operator.
pub type Result<T> = std::result::Result<T, String>;

/// The cyclic body pattern: byte `i` of every message body is
/// `pattern[i % PATTERN_PERIOD]`.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// One period followed by its first [`MAX_SLICE`] bytes again, so any
    /// slice of up to `MAX_SLICE` bytes is contiguous.
    data: Arc<Vec<u8>>,
}

impl Pattern {
    /// The pattern derived from `seed`.
    pub fn new(seed: u64) -> Pattern {
        let mut data = BodyGen::new(seed, PATTERN_PERIOD as u64).to_vec();
        data.extend_from_within(..MAX_SLICE);
        Pattern {
            data: Arc::new(data),
        }
    }

    /// Expected bytes at message offset `offset` (0-based), at most `len`
    /// (and at most [`MAX_SLICE`]) of them.
    pub fn slice(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset % PATTERN_PERIOD as u64) as usize;
        &self.data[start..start + len.min(MAX_SLICE)]
    }

    /// Whether `piece` is what a body holds at `offset`.
    pub fn matches(&self, mut offset: u64, mut piece: &[u8]) -> bool {
        while !piece.is_empty() {
            let want = self.slice(offset, piece.len());
            if piece[..want.len()] != *want {
                return false;
            }
            offset += want.len() as u64;
            piece = &piece[want.len()..];
        }
        true
    }

    /// Writes `len` body bytes starting at message offset 0.
    pub fn write_body(&self, w: &mut impl Write, len: u64) -> io::Result<()> {
        let mut off = 0u64;
        while off < len {
            let n = usize::try_from(len - off).unwrap_or(MAX_SLICE);
            let s = self.slice(off, n);
            w.write_all(s)?;
            off += s.len() as u64;
        }
        Ok(())
    }
}

mod conn;
mod run;
mod sink;

pub use conn::*;
pub use run::*;
pub use sink::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn pattern_matches_only_its_own_bytes() {
        let p = Pattern::new(1);
        let mut body = Vec::new();
        p.write_body(&mut body, 3 * PATTERN_PERIOD as u64 + 5)
            .unwrap();
        assert!(p.matches(0, &body));
        assert!(p.matches(4097, &body[4097..4097 + 70_000]));
        assert!(!p.matches(4096, &body[4097..4097 + 70_000]));
        // a dropped 16 KiB chunk is noticed
        assert!(!p.matches(100_000, &body[100_000 + 16384..200_000]));
    }

    #[test]
    fn transfer_and_sessions_direct() {
        let p = Pattern::new(2);
        let sink = Sink::start(IpAddr::V4(Ipv4Addr::LOCALHOST), p.clone()).unwrap();
        let t = transfer(
            sink.addr(),
            &[],
            &sink,
            &p,
            3_000_000,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(t.bytes, 3_000_000);
        assert_eq!(t.chunks, 1);
        let counters = RateCounters::default();
        let sent = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let to = vec![sink.uri("x")];
                    let addr = sink.addr();
                    let (p, counters) = (&p, &counters);
                    s.spawn(move || {
                        rate_session(addr, to, 1024, p, counters, Duration::from_secs(5))
                    })
                })
                .collect();
            counters.go.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            counters.stop.store(true, Ordering::Relaxed);
            hs.into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .sum::<u64>()
        });
        assert!(sent > 0);
        assert_eq!(counters.ok.load(Ordering::Relaxed), sent);
        assert_eq!(sink.stats().messages.load(Ordering::Relaxed), sent + 1);
        assert_eq!(sink.stats().error_count(), 0);
    }

    #[test]
    fn sink_reports_corruption() {
        let p = Pattern::new(3);
        let sink = Sink::start(IpAddr::V4(Ipv4Addr::LOCALHOST), p.clone()).unwrap();
        let mut c = Conn::connect(sink.addr(), Some(Duration::from_secs(5))).unwrap();
        let to = vec![sink.uri("s")];
        let from = vec![c.uri("a")];
        let head = send_head(b"tid1", "m1", &to, &from, 10);
        c.send(&head).unwrap();
        c.send(b"0123456789").unwrap();
        c.send(&build::body_end(b"tid1", EndFlag::Complete))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.stats().error_count() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(sink.stats().errors()[0].contains("body mismatch"));
    }
}
