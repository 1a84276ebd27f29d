//! `msrp-bench soak`: a long run of mixed load against a spawned Kamailio
//! with the module, checking that nothing grows without bound and that
//! nothing is lost, corrupted, unreported or reported twice.
//!
//! Every round: 1 KiB SENDs over a few sessions (half through the relay
//! connecting to B, half through AUTHed B endpoints' Use-Paths), one
//! re-chunked 8 MiB transfer, one of each REPORT trigger (unreachable next
//! hop, error response, silent next hop, next hop closing mid-message), and
//! connections opening and closing (idle ones, ones that send a SEND and go
//! away). The relay also has a `tls:` and a `wss:` listener, and each round
//! carries their traffic too: a TLS and a WSS session among the 1 KiB
//! senders, a re-chunked 4 MiB transfer from each, TLS and WSS connections
//! in the churn (idle, after a SEND, mid-transfer) and plain text to both
//! TLS ports (a failed handshake each). Each round also injects faults
//! ([`faults`]): a next hop killed mid-transfer, one that never reads, a
//! client killed mid-chunk, a TLS client reset mid-record, a slow head;
//! every sender whose chunk was dropped gets one REPORT and a 413, never a
//! 200. After each round it samples the
//! MSRP workers' RSS and open descriptors, the shared transaction table's
//! outstanding entries and the relay's open connections.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;
use crate::kamailio::{kamailio_modules, Kamailio, RelayOpts};
use crate::load::{self, AuthedSink, Conn, Dialer, Pattern, RateCounters, Sink};
use crate::peer::{Peer, ReceivedFrame, Request};
use crate::process;
use crate::stream::Transport;
use crate::tls::Certs;

mod faults;
mod samples;

pub use samples::Sample;
use samples::*;

const T: Duration = Duration::from_secs(10);
/// transaction_timeout of the spawned relay (the silent next hop case).
const TX_TIMEOUT_SECS: i64 = 2;
const BIG: u64 = 8 * 1024 * 1024;
/// The transfer from each TLS and WSS client, every round.
const SECURE_BIG: u64 = 4 * 1024 * 1024;
/// Plain TCP connections of the churn, every round.
const TCP_CHURN: usize = 20;
/// TLS (and WSS) connections of the churn, every round: idle, after a
/// SEND, mid-transfer, in turn.
const SECURE_CHURN: usize = 6;
/// A churned connection that goes away mid-transfer announces this much
/// body and sends [`CUT_SENT`] of it.
const CUT_TOTAL: u64 = 1024 * 1024;
const CUT_SENT: u64 = 64 * 1024;

/// A client's way into the relay over TLS or a secure WebSocket, and what
/// went that way (verified at B).
struct Secure {
    transport: Transport,
    addr: SocketAddr,
    /// The relay's URI on that listener, first in To-Path.
    uri: String,
    dialer: Dialer,
    messages: u64,
    transfers: u64,
}

impl Secure {
    fn new(k: &Kamailio, t: Transport, certs: &Certs) -> Result<Secure, String> {
        let addr = k
            .transport_addr(t)
            .ok_or_else(|| format!("the relay has no {t} listener"))?;
        Ok(Secure {
            transport: t,
            addr,
            uri: t.uri("127.0.0.1", addr.port(), "relay"),
            dialer: Dialer::to_test_relay(t, Some(certs), None)?,
            messages: 0,
            transfers: 0,
        })
    }
}

/// Runs the soak for `duration` against Kamailio with `so`; returns the
/// report (a table of samples and the verdict), or what failed.
pub fn run(so: &Path, duration: Duration, workers: i64) -> Result<String, String> {
    let certs = Certs::for_tests().map_err(|e| format!("test certificates: {e}"))?;
    let k = start_relay(so, workers, &certs)?;
    let relay = k.relay_addr();
    let relay_uri = k.relay_uri("relay");
    let mut secure = [Transport::Tls, Transport::Wss]
        .into_iter()
        .map(|t| Secure::new(&k, t, &certs))
        .collect::<Result<Vec<_>, _>>()?;
    let pattern = Pattern::new(0x50_4b);
    let sink = Sink::start(relay.ip(), pattern.clone())?;
    let authed = AuthedSink::start(relay, &relay_uri, pattern.clone())?;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut rounds = 0u64;
    let mut messages = 0u64;
    while started.elapsed() < duration || rounds == 0 {
        let at = |e: String| format!("round {rounds}: {e}");
        messages +=
            messages_burst(relay, &relay_uri, &sink, &authed, &mut secure, &pattern).map_err(at)?;
        big_transfer(&Dialer::tcp(), relay, &relay_uri, &sink, &pattern, BIG).map_err(at)?;
        for s in &mut secure {
            big_transfer(&s.dialer, s.addr, &s.uri, &sink, &pattern, SECURE_BIG).map_err(at)?;
            s.transfers += 1;
        }
        report_cases(relay, &relay_uri).map_err(at)?;
        let tls = secure.iter().find(|s| s.transport == Transport::Tls);
        faults::inject(relay, &relay_uri, tls, &pattern).map_err(at)?;
        churn(relay, &relay_uri, &secure, &pattern).map_err(at)?;
        for s in [sink.stats(), authed.stats()] {
            if let Some(e) = s.errors().first() {
                return Err(format!("round {rounds}: B: {e}"));
            }
        }
        rounds += 1;
        samples.push(sample(&k, started.elapsed())?);
    }
    // settle: every transaction answered or expired, churned connections gone
    std::thread::sleep(Duration::from_secs(TX_TIMEOUT_SECS as u64 + 2));
    let end = sample(&k, started.elapsed())?;
    let handshake_failures = stat(&k, "tls_handshake_failures")?;
    let counts = Counts {
        rounds,
        messages,
        handshake_failures,
    };
    summary(&counts, &secure, &samples, end)
}

/// Kamailio with the module: plain TCP, TLS and WSS listeners, short
/// timeouts, kex for the statistics.
fn start_relay(so: &Path, workers: i64, certs: &Certs) -> Result<Kamailio, String> {
    let route = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; } msrp_relay();"#;
    let opts = RelayOpts::default()
        .route(route)
        .modparam_int("workers", workers)
        .modparam_int("transaction_timeout", TX_TIMEOUT_SECS)
        .modparam_int("frame_timeout", faults::FRAME_TIMEOUT_SECS)
        .listen_transport(Transport::Tls)
        .listen_transport(Transport::Wss)
        .tls_certs(certs)
        .global(&format!("loadmodule \"{}kex.so\"", kamailio_modules()));
    Kamailio::try_start("msrp-soak", so, &opts)
}

/// 1 KiB SENDs for a second over 8 plain sessions, half to the plain B
/// endpoint, half through the AUTHed one's Use-Path, and one session over
/// each of `secure` to the plain B; returns the plain sessions' messages
/// and counts the others' in `secure`.
fn messages_burst(
    relay: SocketAddr,
    relay_uri: &str,
    sink: &Sink,
    authed: &AuthedSink,
    secure: &mut [Secure],
    pattern: &Pattern,
) -> Result<u64, String> {
    let counters = RateCounters::default();
    let delivered = || {
        [sink.stats(), authed.stats()]
            .iter()
            .map(|s| s.messages.load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>()
    };
    let tcp = Dialer::tcp();
    let mut sessions: Vec<(&Dialer, SocketAddr, Vec<String>)> = (0..8)
        .map(|i| {
            let to = if i % 2 == 0 {
                vec![relay_uri.to_owned(), sink.uri(&crate::ids::session_id())]
            } else {
                vec![authed.use_path().to_owned(), authed.uri().to_owned()]
            };
            (&tcp, relay, to)
        })
        .collect();
    sessions.extend(secure.iter().map(|s| {
        let to = vec![s.uri.clone(), sink.uri(&crate::ids::session_id())];
        (&s.dialer, s.addr, to)
    }));
    let before = delivered();
    let sent = std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .into_iter()
            .map(|(dialer, addr, to)| {
                let c = &counters;
                s.spawn(move || load::rate_session_with(dialer, addr, to, 1024, pattern, c, T))
            })
            .collect();
        counters.go.store(true, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(1));
        counters
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a session panicked".to_string())?)
            .collect::<Result<Vec<u64>, String>>()
    })?;
    let total = sent.iter().sum::<u64>();
    let deadline = Instant::now() + T;
    loop {
        let got = delivered() - before;
        if got == total {
            break;
        }
        if got > total || Instant::now() > deadline {
            return Err(format!(
                "{total} messages sent and answered, B received {got}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (plain, rest) = sent.split_at(8);
    for (s, n) in secure.iter_mut().zip(rest) {
        if *n == 0 {
            return Err(format!("the {} session sent nothing", s.transport));
        }
        s.messages += n;
    }
    Ok(plain.iter().sum())
}

/// One single-chunk SEND of `size` bytes from a client dialling `addr` as
/// `dialer` says, through the relay (`relay_uri`) to B, which verifies it
/// byte for byte; the relay must have re-chunked it.
fn big_transfer(
    dialer: &Dialer,
    addr: SocketAddr,
    relay_uri: &str,
    sink: &Sink,
    pattern: &Pattern,
    size: u64,
) -> Result<(), String> {
    let what = format!("{} MiB transfer over {}", size >> 20, dialer.transport());
    let t = load::transfer_with(
        dialer,
        addr,
        &[relay_uri.to_owned()],
        sink,
        pattern,
        size,
        T,
    )
    .map_err(|e| format!("{what}: {e}"))?;
    if t.bytes != size || t.chunks < 2 {
        return Err(format!(
            "{what}: B got {} bytes in {} chunk(s)",
            t.bytes, t.chunks
        ));
    }
    Ok(())
}

/// Reads what A gets for one SEND: the relay's 200 and exactly one REPORT
/// whose status starts with `want` (nothing more within a quiet period).
fn expect_report(a: &mut Peer, req: &Request, want: &str, case: &str) -> Result<(), String> {
    let mut frames: Vec<ReceivedFrame> = Vec::new();
    for _ in 0..2 {
        frames.push(a.read_frame(T).map_err(|e| format!("{case}: {e}"))?);
    }
    a.expect_nothing(Duration::from_millis(300))
        .map_err(|e| format!("{case}: a second REPORT or more: {e}"))?;
    frames.sort_by_key(|f| f.method().is_some());
    if frames[0].status_code() != Some(200) || frames[0].tid() != req.tid {
        return Err(format!("{case}: no 200: {}", frames[0].summary()));
    }
    let status = frames[1].header("Status").unwrap_or_default();
    if frames[1].method().as_deref() != Some("REPORT") || !status.starts_with(want) {
        return Err(format!(
            "{case}: want REPORT {want}: {}",
            frames[1].summary()
        ));
    }
    Ok(())
}

fn client(relay: SocketAddr) -> Result<(Peer, String), String> {
    let p = Peer::connect(relay).map_err(|e| format!("connect: {e}"))?;
    let uri = format!("msrp://{}/a;tcp", p.local_addr());
    Ok((p, uri))
}

/// One of each REPORT trigger, each answered exactly once.
fn report_cases(relay: SocketAddr, relay_uri: &str) -> Result<(), String> {
    // unreachable next hop
    let dead = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let dead_uri = format!(
        "msrp://{}/x;tcp",
        dead.local_addr().map_err(|e| e.to_string())?
    );
    drop(dead);
    let (mut a, a_uri) = client(relay)?;
    let req = Request::send(&[relay_uri, &dead_uri], &[&a_uri], b"nowhere");
    a.send_request(&req).map_err(|e| e.to_string())?;
    expect_report(&mut a, &req, "000 408 Next Hop Unreachable", "unreachable")?;
    // error response, silent next hop, next hop closing: one endpoint each
    let b = Endpoint::bind().map_err(|e| e.to_string())?;
    for (case, want) in [
        ("error response", "000 403"),
        ("silent next hop", "000 408 Request Timeout"),
        ("next hop closing", "000 408 Next Hop Connection Lost"),
    ] {
        let (mut a, a_uri) = client(relay)?;
        let req = Request::send(&[relay_uri, &b.uri("b")], &[&a_uri], b"x");
        a.send_request(&req).map_err(|e| e.to_string())?;
        let mut bp = b.accept(T).map_err(|e| format!("{case}: {e}"))?;
        let got = bp.read_frame(T).map_err(|e| format!("{case}: {e}"))?;
        // the silent one stays open (never answering) until its REPORT came
        let mut held = None;
        match case {
            "error response" => bp
                .send_response(&got, 403, Some("Forbidden"))
                .map_err(|e| e.to_string())?,
            "next hop closing" => drop(bp),
            _ => held = Some(bp),
        }
        expect_report(&mut a, &req, want, case)?;
        drop(held);
    }
    Ok(())
}

/// How a churned connection goes away (without a TLS close_notify or a
/// WebSocket Close).
#[derive(Debug, Clone, Copy)]
enum Leaving {
    Idle,
    /// Right after writing a SEND, before its answer.
    AfterSend,
    /// After [`CUT_SENT`] bytes of a [`CUT_TOTAL`]-byte SEND.
    MidTransfer,
}

/// Connections that open and go away: plain TCP ones (idle, or after
/// sending a SEND), TLS and WSS ones (idle, after a SEND, mid-transfer),
/// all to a B that never answers; then plain text to each TLS port, which
/// the relay must close.
fn churn(
    relay: SocketAddr,
    relay_uri: &str,
    secure: &[Secure],
    pattern: &Pattern,
) -> Result<(), String> {
    let b = Endpoint::bind().map_err(|e| e.to_string())?;
    let b_uri = b.uri("b");
    let tcp = Dialer::tcp();
    let plain = (0..TCP_CHURN).map(|i| {
        let how = [Leaving::Idle, Leaving::AfterSend][i % 2];
        (&tcp, relay, relay_uri, how)
    });
    let layered = secure.iter().flat_map(|s| {
        (0..SECURE_CHURN).map(|i| {
            let how = [Leaving::Idle, Leaving::AfterSend, Leaving::MidTransfer][i % 3];
            (&s.dialer, s.addr, s.uri.as_str(), how)
        })
    });
    for (dialer, addr, via, how) in plain.chain(layered) {
        let t = dialer.transport();
        let mut c = Conn::dial(addr, dialer, Some(T)).map_err(|e| format!("churn {t}: {e}"))?;
        let from = [c.uri("c")];
        let sent = match how {
            Leaving::Idle => Ok(()),
            Leaving::AfterSend => {
                let req = Request::send(&[via, &b_uri], &[&from[0]], b"bye");
                c.send(&req.to_wire())
            }
            Leaving::MidTransfer => {
                let tid = crate::ids::transaction_id();
                let to = [via.to_owned(), b_uri.clone()];
                let head = load::send_head(
                    tid.as_bytes(),
                    &crate::ids::message_id(),
                    &to,
                    &from,
                    CUT_TOTAL,
                );
                c.send(&head).and_then(|()| c.send_body(pattern, CUT_SENT))
            }
        };
        sent.map_err(|e| format!("churn {t} {how:?}: {e}"))?;
    }
    for s in secure {
        closes_plain_text(s).map_err(|e| format!("plain text to the {} port: {e}", s.transport))?;
    }
    Ok(())
}

/// Writes plain MSRP to a TLS listener: the handshake fails and the relay
/// must close the connection (an alert it may send first is read and
/// dropped).
fn closes_plain_text(s: &Secure) -> Result<(), String> {
    let mut c = TcpStream::connect_timeout(&s.addr, T).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(T)).map_err(|e| e.to_string())?;
    c.write_all(b"MSRP abcd1234 SEND\r\nTo-Path: msrp://x/y;tcp\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("still open after {T:?}"))
            }
            Err(_) => return Ok(()), // reset
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: u64, rss_kib: u64, fds: u64, outstanding: i64, connections: i64) -> Sample {
        Sample {
            at: Duration::from_secs(at),
            rss_kib,
            fds,
            outstanding,
            connections,
        }
    }

    #[test]
    fn verdict_passes_flat_runs_and_fails_growth_and_leftovers() {
        let flat: Vec<Sample> = (0..9).map(|i| s(i, 11_000, 12, 3, 2)).collect();
        assert!(verdict(&flat, s(10, 11_000, 12, 0, 2)).is_ok());
        let mut fds = flat.clone();
        fds[8].fds = 40;
        assert!(verdict(&fds, s(10, 11_000, 40, 0, 2)).is_err());
        let mut rss = flat.clone();
        rss[7].rss_kib = 30_000;
        assert!(verdict(&rss, s(10, 30_000, 12, 0, 2)).is_err());
        let mut conns = flat.clone();
        conns[6].connections = 50;
        assert!(verdict(&conns, s(10, 11_000, 12, 0, 50)).is_err());
        assert!(verdict(&flat, s(10, 11_000, 12, 5, 2)).is_err());
        assert!(table(&flat, s(10, 11_000, 12, 0, 2)).lines().count() > 2);
    }
}
