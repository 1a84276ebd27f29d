//! Faults the soak injects every round (issue 21), all at once in threads
//! so a round grows by about `frame_timeout` plus the transaction timeout:
//!
//! * a next hop killed (RST) mid-transfer, and a next hop that accepts and
//!   never reads: the sender, which behaves as RFC 4975 asks (it stops its
//!   chunk with `#` on a 413), must get exactly one REPORT and a 413, never
//!   a 200;
//! * a client killed (RST) mid-chunk, over TCP, and a TLS client reset in
//!   the middle of a TLS record: the next hop must see the chunk end with
//!   `#`;
//! * a slow head trickled after a valid request: the relay must close it
//!   within `frame_timeout` (plus the 1 s sweep).

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use msrp_core::EndFlag;

use super::{client, Secure, T};
use crate::endpoint::Endpoint;
use crate::load::{self, Conn, Pattern};
use crate::peer::{Peer, ReceivedFrame, Request};

/// `frame_timeout` of the spawned relay.
pub const FRAME_TIMEOUT_SECS: i64 = 2;
/// What a sender to a failing next hop announces: more than the relay can
/// have taken before the failure, so its chunk is always still arriving.
const ANNOUNCED: u64 = 64 * 1024 * 1024;
/// What the killed next hop reads first.
const KILLED_AFTER: u64 = 256 * 1024;
/// A client killed mid-chunk announces [`ANNOUNCED`] and sends this much.
const CLIENT_SENT: u64 = 64 * 1024;

/// The faults of one round; `Err` names the first one that went wrong.
pub fn inject(
    relay: SocketAddr,
    relay_uri: &str,
    tls: Option<&Secure>,
    pattern: &Pattern,
) -> Result<(), String> {
    std::thread::scope(|s| {
        let cases = [
            s.spawn(|| next_hop_fails(relay, relay_uri, pattern, true)),
            s.spawn(|| next_hop_fails(relay, relay_uri, pattern, false)),
            s.spawn(|| client_killed(relay, relay_uri, None, pattern)),
            s.spawn(move || match tls {
                Some(t) => client_killed(t.addr, &t.uri, Some(t), pattern),
                None => Ok(()),
            }),
            s.spawn(|| slow_head(relay, relay_uri)),
        ];
        cases
            .into_iter()
            .map(|h| h.join().map_err(|_| "a fault case panicked".to_string())?)
            .collect::<Result<Vec<()>, String>>()
            .map(|_| ())
    })
}

/// A sender streams a large SEND to a next hop that is killed after
/// [`KILLED_AFTER`] bytes (`kill`) or accepts and never reads.
fn next_hop_fails(
    relay: SocketAddr,
    relay_uri: &str,
    pattern: &Pattern,
    kill: bool,
) -> Result<(), String> {
    let case = if kill {
        "next hop killed mid-transfer"
    } else {
        "next hop never reads"
    };
    let b = Endpoint::bind().map_err(|e| format!("{case}: {e}"))?;
    let to = [relay_uri.to_owned(), b.uri("b")];
    std::thread::scope(|s| {
        let sender = s.spawn(|| compliant_send(relay, &to, pattern, case));
        let mut bp = b.accept(T).map_err(|e| format!("{case}: B: {e}"))?;
        if kill {
            let mut seen = 0;
            while seen < KILLED_AFTER {
                let f = bp
                    .read_frame_hashed(T)
                    .map_err(|e| format!("{case}: B: {e}"))?;
                seen += f.body_len;
                bp.send_response(&f, 200, Some("OK"))
                    .map_err(|e| format!("{case}: B: {e}"))?;
            }
            reset(&bp)?;
            drop(bp);
            sender
                .join()
                .map_err(|_| format!("{case}: sender panicked"))?
        } else {
            let r = sender
                .join()
                .map_err(|_| format!("{case}: sender panicked"));
            drop(bp);
            r?
        }
    })
}

/// Streams a SEND of [`ANNOUNCED`] bytes (Failure-Report yes) as a sender
/// that honours a 413: on it, the chunk ends with `#` at once. Checks that
/// exactly one 413 and one REPORT `000 408` come, and nothing else.
fn compliant_send(
    relay: SocketAddr,
    to: &[String],
    pattern: &Pattern,
    case: &str,
) -> Result<(), String> {
    let (mut a, a_uri) = client(relay)?;
    let mut w = a
        .try_clone_stream()
        .map_err(|e| format!("{case}: clone: {e}"))?;
    let tid = crate::ids::transaction_id();
    let mut head = load::send_head(
        tid.as_bytes(),
        &crate::ids::message_id(),
        to,
        &[a_uri],
        ANNOUNCED,
    )
    .to_vec();
    head.splice(head.len() - 2..head.len() - 2, *b"Failure-Report: yes\r\n");
    let stop = AtomicBool::new(false);
    let frames = std::thread::scope(|s| {
        let writer = s.spawn(|| -> Result<(), String> {
            w.write_all(&head).map_err(|e| format!("write: {e}"))?;
            let mut off = 0u64;
            while off < ANNOUNCED && !stop.load(Ordering::Relaxed) {
                let piece = pattern.slice(off, 64 * 1024);
                w.write_all(piece).map_err(|e| format!("write: {e}"))?;
                off += piece.len() as u64;
            }
            let flag = if off < ANNOUNCED { '#' } else { '$' };
            w.write_all(format!("\r\n-------{tid}{flag}\r\n").as_bytes())
                .map_err(|e| format!("write: {e}"))
        });
        let mut frames: Vec<ReceivedFrame> = Vec::new();
        let read = (|| {
            while frames.len() < 2 {
                let f = a.read_frame(T).map_err(|e| e.to_string())?;
                if f.status_code().is_some() {
                    stop.store(true, Ordering::Relaxed);
                }
                frames.push(f);
            }
            Ok::<(), String>(())
        })();
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().map_err(|_| "writer panicked".to_string())?;
        read.and(written)
            .map(|()| frames)
            .map_err(|e| format!("{case}: {e}"))
    })?;
    check_refused(&frames, &tid, case)?;
    a.expect_nothing(Duration::from_millis(300))
        .map_err(|e| format!("{case}: more than a 413 and a REPORT: {e}"))
}

/// Checks a sender's two frames: one 413 answering `tid`, one REPORT 408.
fn check_refused(frames: &[ReceivedFrame], tid: &str, case: &str) -> Result<(), String> {
    let response = frames.iter().find(|f| f.status_code().is_some());
    let report = frames
        .iter()
        .find(|f| f.method().as_deref() == Some("REPORT"));
    match (response, report) {
        (Some(r), Some(rep))
            if r.status_code() == Some(413)
                && r.tid() == tid
                && rep
                    .header("Status")
                    .is_some_and(|s| s.starts_with("000 408")) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{case}: want a 413 and one REPORT 408, got {:?}",
            frames.iter().map(|f| f.summary()).collect::<Vec<_>>()
        )),
    }
}

/// A client (plain TCP, or over `tls`) announces [`ANNOUNCED`] bytes,
/// sends [`CLIENT_SENT`] and is reset; over TLS the reset comes in the
/// middle of a record. The next hop must get the chunk ended with `#`.
fn client_killed(
    addr: SocketAddr,
    via: &str,
    tls: Option<&Secure>,
    pattern: &Pattern,
) -> Result<(), String> {
    let case = if tls.is_some() {
        "TLS client reset mid-record"
    } else {
        "client killed mid-chunk"
    };
    let b = Endpoint::bind().map_err(|e| format!("{case}: {e}"))?;
    let tcp = load::Dialer::tcp();
    let dialer = tls.map_or(&tcp, |t| &t.dialer);
    let mut c = Conn::dial(addr, dialer, Some(T)).map_err(|e| format!("{case}: {e}"))?;
    let from = [c.uri("c")];
    let to = [via.to_owned(), b.uri("b")];
    let tid = crate::ids::transaction_id();
    let head = load::send_head(
        tid.as_bytes(),
        &crate::ids::message_id(),
        &to,
        &from,
        ANNOUNCED,
    );
    c.send(&head)
        .and_then(|()| c.send_body(pattern, CLIENT_SENT))
        .map_err(|e| format!("{case}: {e}"))?;
    let mut bp = b.accept(T).map_err(|e| format!("{case}: B: {e}"))?;
    // let the relay read what was sent, so the reset cuts the body
    std::thread::sleep(Duration::from_millis(200));
    if tls.is_some() {
        // a record header announcing 16 KiB, and 100 bytes of it
        let mut partial = vec![0x17, 0x03, 0x03, 0x40, 0x00];
        partial.extend_from_slice(&[0x5a; 100]);
        let mut raw = c.tcp();
        raw.write_all(&partial)
            .map_err(|e| format!("{case}: {e}"))?;
    }
    reset_tcp(c.tcp())?;
    drop(c);
    let mut seen = 0;
    loop {
        let f = bp
            .read_frame_hashed(T)
            .map_err(|e| format!("{case}: B: {e}"))?;
        seen += f.body_len;
        match f.flag {
            EndFlag::Continued => bp
                .send_response(&f, 200, Some("OK"))
                .map_err(|e| format!("{case}: B: {e}"))?,
            EndFlag::Aborted if seen <= CLIENT_SENT => return Ok(()),
            _ => {
                return Err(format!(
                    "{case}: B got {seen} bytes, the chunk ending {}",
                    f.summary()
                ))
            }
        }
    }
}

/// A client AUTHs (200), then trickles a SEND head one byte per 200 ms:
/// the relay must close it within `frame_timeout` + 2.5 s.
fn slow_head(relay: SocketAddr, relay_uri: &str) -> Result<(), String> {
    let case = "slow head";
    let (mut a, a_uri) = client(relay)?;
    let auth = Request::new("AUTH", &[relay_uri], &[&a_uri]);
    a.send_request(&auth).map_err(|e| format!("{case}: {e}"))?;
    let r = a.read_frame(T).map_err(|e| format!("{case}: {e}"))?;
    if r.status_code() != Some(200) {
        return Err(format!("{case}: AUTH: {}", r.summary()));
    }
    let head = Request::send(&[relay_uri, "msrp://127.0.0.1:9/x;tcp"], &[&a_uri], b"x").to_wire();
    let started = Instant::now();
    let limit = Duration::from_millis(FRAME_TIMEOUT_SECS as u64 * 1000 + 2500);
    for byte in head.chunks(1) {
        let _ = a.send_raw(byte);
        if a.expect_closed(Duration::from_millis(200)).is_ok() {
            let took = started.elapsed();
            return if took >= Duration::from_secs(FRAME_TIMEOUT_SECS as u64) && took < limit {
                Ok(())
            } else {
                Err(format!("{case}: closed after {took:?}"))
            };
        }
        if started.elapsed() > limit {
            break;
        }
    }
    Err(format!("{case}: still open after {:?}", started.elapsed()))
}

/// Makes the close of `p`'s connection (when the last handle on it is
/// dropped) a RST.
fn reset(p: &Peer) -> Result<(), String> {
    let s = p.try_clone_stream().map_err(|e| e.to_string())?;
    reset_tcp(&s)
}

/// SO_LINGER 0: closing the socket sends RST instead of FIN.
fn reset_tcp(s: &TcpStream) -> Result<(), String> {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .map_err(|e| format!("SO_LINGER: {e}"))
}
