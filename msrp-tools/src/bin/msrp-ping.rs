//! `msrp-ping`: relays one small MSRP SEND through a running relay and checks
//! it arrives. Used by `make deb-test` against the installed package; also a
//! quick check for operators (`msrp-ping --relay 127.0.0.1:2855`).
//!
//! It plays both ends: B listens on 127.0.0.1 (an ephemeral port), A connects
//! to the relay and sends a SEND with To-Path `relay, B` and
//! `Failure-Report: yes`. B must receive it with the relay's URI prepended to
//! From-Path and the body unchanged, and answers 200; A must get the relay's
//! 200 for its transaction. Exit 0 on success, 1 (with the reason) otherwise.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use msrp_tools::{ids, Endpoint, Peer, Request};

const USAGE: &str = "\
msrp-ping: relay one MSRP SEND through a relay and check it arrives

USAGE:
    msrp-ping --relay HOST:PORT [--timeout SECS]

    --relay HOST:PORT   the relay's MSRP listen address (modparam listen)
    --timeout SECS      how long each step may take (default 5)

A connects to the relay; B listens on 127.0.0.1, so the relay must be able
to connect to 127.0.0.1. Exit status 0 when B got the SEND and A the 200.";

fn main() -> ExitCode {
    match run() {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("msrp-ping: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let mut relay: Option<SocketAddr> = None;
    let mut timeout = Duration::from_secs(5);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or(format!("{name} needs a value\n\n{USAGE}"))
        };
        match a.as_str() {
            "--relay" => {
                let v = value("--relay")?;
                relay = v
                    .to_socket_addrs()
                    .map_err(|e| format!("--relay {v}: {e}"))?
                    .next();
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout {v}: not a number of seconds"))?;
                timeout = Duration::from_secs(secs.max(1));
            }
            "-h" | "--help" => return Ok(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    let relay = relay.ok_or(format!("--relay is required\n\n{USAGE}"))?;
    let started = Instant::now();

    let b = Endpoint::bind().map_err(|e| format!("bind B on 127.0.0.1: {e}"))?;
    let b_uri = b.uri(&ids::session_id());
    let relay_uri = format!(
        "msrp://{}:{}/{};tcp",
        relay.ip(),
        relay.port(),
        ids::session_id()
    );
    let mut a = Peer::connect(relay).map_err(|e| format!("connect to relay {relay}: {e}"))?;
    let la = a.local_addr();
    let a_uri = format!("msrp://{}:{}/{};tcp", la.ip(), la.port(), ids::session_id());

    let body = format!("msrp-ping {}", ids::message_id());
    let req = Request::send(&[&relay_uri, &b_uri], &[&a_uri], body.as_bytes())
        .with_header("Failure-Report", "yes");
    a.send_request(&req)
        .map_err(|e| format!("A: sending SEND to {relay}: {e}"))?;

    let mut bp = b
        .accept(timeout)
        .map_err(|e| format!("the relay did not connect to B ({}): {e}", b.addr()))?;
    let got = bp
        .read_frame(timeout)
        .map_err(|e| format!("B: reading the relayed SEND: {e}"))?;
    if got.method().as_deref() != Some("SEND") {
        return Err(format!(
            "B got something else than the SEND: {}",
            got.summary()
        ));
    }
    if got.body != body.as_bytes() {
        return Err(format!("B got another body: {}", got.summary()));
    }
    if got.to_path() != [b_uri.clone()] || got.from_path() != [relay_uri.clone(), a_uri.clone()] {
        return Err(format!("B got unexpected paths: {}", got.summary()));
    }
    bp.send_response(&got, 200, Some("OK"))
        .map_err(|e| format!("B: answering 200: {e}"))?;

    let resp = a
        .read_response(timeout, &["REPORT"])
        .map_err(|e| format!("A: waiting for the relay's response: {e}"))?;
    if resp.tid() != req.tid || resp.status_code() != Some(200) {
        return Err(format!(
            "A expected 200 for {}, got {}",
            req.tid,
            resp.summary()
        ));
    }
    Ok(format!(
        "msrp-ping: SEND relayed {relay} -> {} and answered 200 in {} ms",
        b.addr(),
        started.elapsed().as_millis()
    ))
}
