//! Helpers of tests/ws.rs: WebSocket clients and URIs, the shipped
//! `cfg/kamailio-tls.cfg` with free ports, counters.

use std::time::Duration;

use msrp_tools::pyws::{parse_frame, PyWsClient};
use msrp_tools::tls::Certs;
use msrp_tools::ws::opcode;
use msrp_tools::Transport;

use crate::common::*;
use crate::rawws::WsMsg;

/// How long to watch for something that must not arrive.
pub const QUIET: Duration = Duration::from_millis(300);

pub fn kex() -> String {
    format!("loadmodule \"{}kex.so\"", kamailio_modules())
}

/// `msrp_relay:NAME` from `stats.get_statistics` (kex).
pub fn stat(k: &Kamailio, name: &str) -> i64 {
    let out = k.kamcmd(&["stats.get_statistics", "msrp_relay:"]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("msrp_relay:{name} = ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no msrp_relay:{name} in:\n{out}"))
}

/// A WebSocket client's own URI (RFC 7977 §5.2: a random `.invalid` host).
pub fn ws_uri(scheme: &str) -> String {
    let host = msrp_tools::ids::random_alnum(10).to_ascii_lowercase();
    let session = msrp_tools::ids::session_id();
    format!("{scheme}://{host}.invalid:2855/{session};ws")
}

/// A tungstenite client on the relay's `ws:` listener.
pub fn ws_client(k: &Kamailio) -> Client {
    let addr = k.transport_addr(Transport::Ws).expect("a ws listener");
    let peer = Peer::connect_ws(addr, &addr.to_string(), "/", None, None)
        .unwrap_or_else(|e| panic!("WebSocket to {addr}: {e}"));
    client_on(peer, "msrp")
}

/// A WebSocket peer as a [`Client`] with an URI of `scheme` ([`ws_uri`]).
pub fn client_on(peer: Peer, scheme: &str) -> Client {
    assert_eq!(peer.ws_protocol(), Some("msrp"), "selected subprotocol");
    Client {
        peer,
        uri: ws_uri(scheme),
    }
}

/// A 200 answering request `f` hop by hop.
pub fn ok_for(f: &ReceivedFrame) -> Vec<u8> {
    let tid = f.tid();
    let (to, from) = (&f.from_path()[0], &f.to_path()[0]);
    format!("MSRP {tid} 200 OK\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\n-------{tid}$\r\n")
        .into_bytes()
}

/// The MSRP frame of a WebSocket message, which must be binary and hold
/// exactly one complete frame.
pub fn one_frame(m: &WsMsg, what: &str) -> ReceivedFrame {
    assert_eq!(m.opcode, opcode::BINARY, "{what}: opcode ({m:?})");
    parse_frame(&m.payload).unwrap_or_else(|e| {
        panic!(
            "{what}: a WebSocket message of {} bytes in {} frames is not exactly one MSRP frame: \
             {e}\nit starts {:?}",
            m.payload.len(),
            m.frames,
            String::from_utf8_lossy(&m.payload[..m.payload.len().min(300)])
        )
    })
}

/// `cfg/kamailio-tls.cfg` as shipped, with only ports and paths changed:
/// `tls:` on the harness's first MSRP port, `wss:` on a free one, the
/// certificates of [`Certs::for_tests`].
pub fn start_shipped_tls_cfg(certs: &Certs) -> Kamailio {
    start_shipped_tls_node(certs, std::net::Ipv4Addr::LOCALHOST.into())
}

/// Sends `req` from the Python client; its response must be `code` with
/// the request's transaction id and To-Path = the request's From-Path.
#[track_caller]
pub fn py_transact(py: &mut PyWsClient, req: &Request, code: u16, what: &str) -> ReceivedFrame {
    py.send_frame(&req.to_wire())
        .expect("frame to ws_client.py");
    let r = py
        .read_frame(T)
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    assert_answer(&r, code, &req.tid, what);
    assert_eq!(r.to_path(), req.from_path, "{what}: To-Path");
    r
}

/// Asserts that `r` is a response `code` to transaction `tid`.
#[track_caller]
pub fn assert_answer(r: &ReceivedFrame, code: u16, tid: &str, what: &str) {
    let got = (r.status_code(), r.tid());
    assert_eq!(got, (Some(code), tid.to_owned()), "{what}: {}", r.summary());
}

/// Asserts that `f` is `req` relayed: a complete SEND with To-Path `to`,
/// From-Path `from`, `req`'s Message-ID and body.
#[track_caller]
pub fn assert_relayed(f: &ReceivedFrame, req: &Request, to: &[&str], from: &[&str], what: &str) {
    let s = f.summary();
    assert_eq!(f.method().as_deref(), Some("SEND"), "{what}: {s}");
    assert_eq!(f.to_path(), to, "{what}: To-Path");
    assert_eq!(f.from_path(), from, "{what}: From-Path");
    assert_eq!(
        f.header("Message-ID").as_deref(),
        req.header("Message-ID"),
        "{what}: {s}"
    );
    assert_eq!(Some(&f.body), req.body.as_ref(), "{what}: body");
    assert_eq!(f.flag, EndFlag::Complete, "{what}: {s}");
}

/// Asserts that a log line names `peer` and says `what` (within [`T`]).
#[track_caller]
pub fn assert_logged(k: &Kamailio, peer: &str, what: &str) {
    let line = k.wait_for_log_line(T, |l| l.contains(peer) && l.contains(what));
    assert!(
        line.is_some(),
        "no log line with {peer} and {what:?}:\n{}",
        k.log_tail(20)
    );
}

/// [`stat`] once it has reached `want` (within [`T`]).
pub fn stat_reaching(k: &Kamailio, name: &str, want: i64) -> i64 {
    let deadline = std::time::Instant::now() + T;
    loop {
        let v = stat(k, name);
        if v >= want || std::time::Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
