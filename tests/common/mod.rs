//! Harness for integration tests: runs a real Kamailio with the msrp_relay
//! module on free 127.0.0.1 ports in its own temporary directory, and stops
//! it (its whole process group) on drop. The Kamailio part lives in
//! `msrp_tools::kamailio` (shared with `msrp-bench`) and is re-exported here.
//!
//! Missing prerequisites (the kamailio binary, the module's .so) make tests
//! fail with a clear message; they never skip.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

pub mod chunks;
pub mod fakedns;
pub mod shipped;
pub mod tlsfiles;

pub use msrp_tools::body::{hex, BodyGen};
pub use msrp_tools::kamailio::{
    free_tcp_port, free_tcp_port_on, free_udp_port, kamailio_modules, module_so, parse_psx,
    render_cfg, require_exe, CfgVars, Kamailio, ModValue, RelayOpts, DEFAULT_ROUTE, START_TIMEOUT,
    STOP_TIMEOUT,
};
pub use msrp_tools::{EndFlag, Endpoint, Peer, PeerError, ReceivedFrame, Request};
pub use shipped::{start_shipped_tls_node, start_shipped_tls_node_at, subst};

/// Default timeout for one expected MSRP frame.
pub const T: Duration = Duration::from_secs(5);

/// `(pid, VmHWM KiB)` of every MSRP worker.
pub fn worker_hwm(k: &Kamailio) -> Vec<(u32, u64)> {
    let w = k.worker_pids();
    assert!(!w.is_empty(), "no MSRP worker in core.psx");
    w.into_iter()
        .map(|p| (p, Kamailio::peak_rss_kib(p)))
        .collect()
}

/// Every worker's VmHWM grew by less than `max_kib` between two
/// [`worker_hwm`] readings (and the workers are the same).
pub fn assert_hwm_growth_below(before: &[(u32, u64)], after: &[(u32, u64)], max_kib: u64) {
    assert_eq!(before.len(), after.len(), "worker set changed");
    for ((pid, before), (pid2, after)) in before.iter().zip(after) {
        assert_eq!(pid, pid2, "worker set changed");
        let growth = after.saturating_sub(*before);
        assert!(
            growth < max_kib,
            "worker {pid}: VmHWM grew by {growth} KiB ({before} -> {after})"
        );
    }
}

/// Runs `scripts/msrp-auth-db.sh` (the credentials database of
/// `cfg/kamailio-auth.cfg`) with `args`; panics with its output when it
/// fails.
pub fn auth_db(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/msrp-auth-db.sh");
    let out = std::process::Command::new(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(
        out.status.success(),
        "msrp-auth-db.sh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The SQLite URL cfg/kamailio-auth.cfg ships with.
pub const SHIPPED_AUTH_DB_URL: &str = "sqlite:////etc/kamailio/msrp-auth.sqlite";

/// A new credentials database `msrp-auth.sqlite` in `dir` holding `users`
/// (name, password; realm `myrealm`); returns its path.
pub fn make_auth_db(dir: &std::path::Path, users: &[(&str, &str)]) -> std::path::PathBuf {
    let db = dir.join("msrp-auth.sqlite");
    let path = db.to_str().expect("UTF-8 path");
    auth_db(&["create", path]);
    for (user, password) in users {
        auth_db(&["add", path, user, password]);
    }
    db
}

/// The value of `name` in the connections RPC entry of `peer`.
pub fn conn_field(k: &Kamailio, peer: &str, name: &str) -> String {
    let conns = k.kamcmd(&["msrp_relay.connections"]);
    let block = conns
        .split('{')
        .find(|c| c.contains(&format!("PEER: {peer}\n")))
        .unwrap_or_else(|| panic!("no connection with PEER {peer}:\n{conns}"));
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {block}"))
        .trim()
        .to_owned()
}

/// The worker that accepted `c`'s connection (`msrp_relay.connections`).
pub fn worker_of(k: &Kamailio, c: &Client) -> Option<u64> {
    let peer = format!("PEER: {}", c.peer.local_addr());
    let out = k.kamcmd(&["msrp_relay.connections"]);
    out.split('{')
        .find(|block| block.contains(&peer))
        .and_then(|block| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix("WORKER: "))
                .and_then(|v| v.trim().parse().ok())
        })
}

/// Two clients whose connections different workers accepted.
pub fn clients_on_two_workers(k: &Kamailio) -> (Client, Client) {
    let mut seen: Vec<(u64, Client)> = Vec::new();
    for _ in 0..60 {
        let c = Client::connect(k);
        let w = (0..100)
            .find_map(|_| {
                let w = worker_of(k, &c);
                if w.is_none() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                w
            })
            .unwrap_or_else(|| panic!("connection not listed\n{}", k.log_tail(20)));
        if let Some(i) = seen.iter().position(|(x, _)| *x != w) {
            let (_, first) = seen.swap_remove(i);
            return (first, c);
        }
        seen.push((w, c));
    }
    panic!("60 connections all landed on one worker");
}

/// An "A" client connected to the relay, with its own URI.
pub struct Client {
    pub peer: Peer,
    pub uri: String,
}

impl Client {
    /// Connects to the relay; the client's URI names its own local address.
    pub fn connect(k: &Kamailio) -> Client {
        let peer = Peer::connect(k.relay_addr())
            .unwrap_or_else(|e| panic!("connect to relay {}: {e}", k.relay_addr()));
        let a = peer.local_addr();
        let uri = format!(
            "msrp://{}:{}/{};tcp",
            a.ip(),
            a.port(),
            msrp_tools::ids::session_id()
        );
        Client { peer, uri }
    }
}

/// Streams `req` from `peer` in a thread of its own, with a generated body
/// of `len` bytes (`seed`); the thread returns the peer and what the send
/// gave (a sender whose connection the relay closes gets an error).
pub fn send_in_background(
    mut peer: Peer,
    req: &Request,
    seed: u64,
    len: u64,
) -> std::thread::JoinHandle<(Peer, Result<[u8; 32], PeerError>)> {
    let req = req.clone();
    std::thread::spawn(move || {
        let r = peer.send_request_streaming(&req, BodyGen::new(seed, len));
        (peer, r)
    })
}

/// Sends a small SEND A -> relay -> B, answers 200 at B, and checks what B
/// and A receive. `b_conn` is B's side of the relay's connection (accepted on
/// first use when `None`). Returns B's connection.
pub fn relay_small_send(
    k: &Kamailio,
    a: &mut Client,
    b: &Endpoint,
    b_uri: &str,
    b_conn: Option<Peer>,
    body: &[u8],
) -> Peer {
    let relay = k.relay_uri("relay");
    let req = Request::send(&[&relay, b_uri], &[&a.uri], body);
    a.peer
        .send_request(&req)
        .unwrap_or_else(|e| panic!("A send: {e}"));
    let mut bp = match b_conn {
        Some(p) => p,
        None => b
            .accept(T)
            .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30))),
    };
    let got = bp
        .read_frame(T)
        .unwrap_or_else(|e| panic!("B read: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(got.method().as_deref(), Some("SEND"), "{}", got.summary());
    assert_ne!(got.tid(), req.tid, "relay must use a new transaction id");
    assert_eq!(got.to_path(), vec![b_uri.to_owned()]);
    assert_eq!(got.from_path(), vec![relay.clone(), a.uri.clone()]);
    assert_eq!(
        got.header("Message-ID").as_deref(),
        req.header("Message-ID")
    );
    assert_eq!(got.body, body);
    assert_eq!(got.flag, EndFlag::Complete);
    bp.send_response(&got, 200, Some("OK"))
        .unwrap_or_else(|e| panic!("B respond: {e}"));
    let resp = a
        .peer
        .read_response(T, &["REPORT"])
        .unwrap_or_else(|e| panic!("A read response: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    assert_eq!(resp.tid(), req.tid);
    assert_eq!(resp.to_path(), vec![a.uri.clone()]);
    bp
}

/// Reads what a sender gets for a SEND (transaction `tid`) the relay
/// refused: exactly a 413 and one REPORT with Status `status`, then nothing
/// for 300 ms. Returns the REPORT.
pub fn read_413_and_report(k: &Kamailio, a: &mut Peer, tid: &str, status: &str) -> ReceivedFrame {
    let mut frames = [a.read_frame(T), a.read_frame(T)]
        .map(|f| f.unwrap_or_else(|e| panic!("A: 413 and REPORT: {e}\n{}", k.log_tail(20))));
    frames.sort_by_key(|f| f.method().is_some());
    let [response, report] = frames;
    assert_eq!(response.status_code(), Some(413), "{}", response.summary());
    assert_eq!(response.tid(), tid);
    assert_eq!(
        report.header("Status").as_deref(),
        Some(status),
        "{}",
        report.summary()
    );
    a.expect_nothing(std::time::Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("A after the 413 and the REPORT: {e}"));
    report
}

/// `msrp_relay:NAME` from `stats.get_statistics` (kex).
pub fn relay_stat(k: &Kamailio, name: &str) -> i64 {
    let out = k.kamcmd(&["stats.get_statistics", "msrp_relay:"]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("msrp_relay:{name} = ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no msrp_relay:{name} in:\n{out}"))
}

/// A client with a session (`msrp_cmap_save()`).
pub struct Session {
    pub c: Client,
    pub use_path: String,
    /// The session ID of its Use-Path.
    pub id: String,
}

/// AUTHs `c` as `user` (an Authorization header the test route does not
/// check: the relay records its user name) for `expires` seconds.
pub fn auth_unchecked(k: &Kamailio, mut c: Client, user: &str, expires: u64) -> Session {
    let relay = format!("msrp://127.0.0.1:{};tcp", k.relay_addr().port());
    let req = Request::new("AUTH", &[&relay], &[&c.uri])
        .with_header(
            "Authorization",
            &format!(
                r#"Digest username="{user}", realm="test", nonce="n", uri="{relay}", response="0""#
            ),
        )
        .with_header("Expires", &expires.to_string());
    c.peer.send_request(&req).expect("send AUTH");
    let resp = c
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("AUTH: {e}\n{}", k.log_tail(20)));
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    let use_path = resp.header("Use-Path").expect("Use-Path").trim().to_owned();
    let id = use_path
        .rsplit('/')
        .next()
        .and_then(|s| s.split(';').next())
        .expect("session in Use-Path")
        .to_owned();
    Session { c, use_path, id }
}

/// Whether the relay closed `s` (EOF or reset) within `wait`.
pub fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let _ = s.set_read_timeout(Some(wait));
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}
