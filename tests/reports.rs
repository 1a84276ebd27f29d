//! REPORT generation by the relay (RFC 4976 §6.4.1, RFC 4975 §7.1.2):
//! failure REPORTs for an unreachable next hop, a next hop that closes, an
//! error response, a missing response (transaction_timeout) and a first
//! To-Path URI that is not the relay's, each over Failure-Report
//! yes / partial / no / absent; the REPORT's exact format; a next hop
//! failing in the middle of a re-chunked SEND; 413 stopping a message; 1000
//! concurrent outstanding transactions with mixed outcomes; the
//! `msrp_relay.reports` / `msrp_relay.transactions` RPC commands.
//!
//! Rules under test (the module's spec):
//! - at most one REPORT per incoming SEND chunk, on the sender's connection,
//!   for Failure-Report `yes`/absent and `partial`, never for `no`;
//!   timeouts report for `yes`/absent only;
//! - the relay's own 200 for `yes`/absent when the incoming chunk is
//!   complete, nothing for `partial`/`no`;
//! - REPORT: new transaction id, To-Path = the SEND's From-Path as sent,
//!   From-Path = the relay URI the sender used, Message-ID copied,
//!   `Byte-Range: start-end/total` with start and total from the SEND and
//!   end = start + (body bytes the relay had received) - 1,
//!   `Status: 000 <code> <comment>`, no Success-/Failure-Report, no body.

mod common;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use msrp_core::ByteRange;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use common::*;

/// How long a peer waits to be sure nothing (more) arrives.
const QUIET: Duration = Duration::from_millis(500);

/// REPORT counters of `msrp_relay.reports`.
const COUNTERS: [&str; 7] = [
    "timeout",
    "error_response",
    "unreachable",
    "next_hop_closed",
    "not_own_uri",
    "dropped_origin_gone",
    "table_full",
];

// ---------------------------------------------------------------- helpers

/// The Failure-Report header of a SEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fr {
    Yes,
    Partial,
    No,
    Absent,
}

const ALL_FR: [Fr; 4] = [Fr::Yes, Fr::Partial, Fr::No, Fr::Absent];

impl Fr {
    fn header(self) -> Option<&'static str> {
        match self {
            Fr::Yes => Some("yes"),
            Fr::Partial => Some("partial"),
            Fr::No => Some("no"),
            Fr::Absent => None,
        }
    }

    /// The relay answers a complete chunk with 200 itself.
    fn gets_200(self) -> bool {
        matches!(self, Fr::Yes | Fr::Absent)
    }

    /// Error REPORTs (anything but a timeout).
    fn reports_errors(self) -> bool {
        self != Fr::No
    }

    /// Timeout REPORTs ("partial" gets no 200, so no timer applies).
    fn reports_timeouts(self) -> bool {
        matches!(self, Fr::Yes | Fr::Absent)
    }

    /// Byte-Range start and total of this case's SEND, so that the cases
    /// between them cover a start other than 1 and an unknown total.
    fn range(self, len: u64) -> (u64, Option<u64>) {
        match self {
            Fr::Yes => (101, Some(100 + len)),
            Fr::Partial => (1, None),
            Fr::No | Fr::Absent => (1, Some(len)),
        }
    }
}

/// A complete SEND chunk (`$`) with explicit Byte-Range start/total and
/// Failure-Report.
fn send_chunk(
    to: &[&str],
    from: &str,
    fr: Fr,
    body: &[u8],
    start: u64,
    total: Option<u64>,
) -> Request {
    let mut r = Request::new("SEND", to, &[from]);
    let end = start + body.len() as u64 - 1;
    let total = total.map_or("*".to_owned(), |t| t.to_string());
    r.headers = vec![
        ("Message-ID".into(), msrp_tools::ids::message_id()),
        ("Byte-Range".into(), format!("{start}-{end}/{total}")),
    ];
    if let Some(v) = fr.header() {
        r.headers.push(("Failure-Report".into(), v.into()));
    }
    r.headers.push(("Content-Type".into(), "text/plain".into()));
    r.body = Some(body.to_vec());
    r
}

/// One sender transaction under test: A's connection and the SEND it sent.
struct Case {
    label: String,
    fr: Fr,
    a: Client,
    req: Request,
    /// The first To-Path URI A used (the REPORT's From-Path).
    relay_uri: String,
    start: u64,
    len: u64,
    total: Option<u64>,
}

impl Case {
    /// Connects A and builds (does not send) a SEND to `relay_uri`, `next`.
    fn new(k: &Kamailio, label: &str, fr: Fr, relay_uri: &str, next: &str) -> Case {
        let a = Client::connect(k);
        let body = format!("REPORT test {label}: Failure-Report {fr:?}.");
        let len = body.len() as u64;
        let (start, total) = fr.range(len);
        let req = send_chunk(
            &[relay_uri, next],
            &a.uri,
            fr,
            body.as_bytes(),
            start,
            total,
        );
        Case {
            label: label.to_owned(),
            fr,
            a,
            req,
            relay_uri: relay_uri.to_owned(),
            start,
            len,
            total,
        }
    }

    fn send(&mut self) {
        let label = self.label.clone();
        self.a
            .peer
            .send_request(&self.req)
            .unwrap_or_else(|e| panic!("{label}: A send: {e}"));
    }

    fn msg_id(&self) -> String {
        self.req.header("Message-ID").unwrap().to_owned()
    }

    /// The REPORT this case expects, with Byte-Range end in `end`.
    fn expected(&self, code: u16, comment: Option<&str>, end: RangeInclusive<u64>) -> ExpReport {
        ExpReport {
            sender_tid: self.req.tid.clone(),
            msg_id: self.msg_id(),
            to_path: vec![self.a.uri.clone()],
            from_path: self.relay_uri.clone(),
            start: self.start,
            total: self.total,
            end,
            code,
            comment: comment.map(str::to_owned),
        }
    }

    /// Byte-Range end when the relay had received the whole chunk.
    fn full_end(&self) -> RangeInclusive<u64> {
        let e = self.start + self.len - 1;
        e..=e
    }

    /// Byte-Range end when the REPORT may leave before the relay read the
    /// body: anything from "nothing received" (start - 1) to the whole chunk.
    fn any_end(&self) -> RangeInclusive<u64> {
        self.start - 1..=self.start + self.len - 1
    }
}

/// What a REPORT must look like.
#[derive(Debug, Clone)]
struct ExpReport {
    /// The SEND's transaction id (the REPORT must use a new one).
    sender_tid: String,
    msg_id: String,
    /// The SEND's From-Path as sent.
    to_path: Vec<String>,
    /// The relay URI the sender used.
    from_path: String,
    start: u64,
    total: Option<u64>,
    end: RangeInclusive<u64>,
    code: u16,
    /// Exact comment, when the spec fixes it.
    comment: Option<String>,
}

/// Checks a REPORT against `e`; returns its Byte-Range end.
fn check_report(f: &ReceivedFrame, e: &ExpReport, ctx: &str) -> u64 {
    let s = f.summary();
    assert_eq!(f.method().as_deref(), Some("REPORT"), "{ctx}: {s}");
    assert!(
        !f.tid().is_empty() && f.tid() != e.sender_tid,
        "{ctx}: REPORT must carry a new transaction id: {s}"
    );
    assert_eq!(f.to_path(), e.to_path, "{ctx}: REPORT To-Path: {s}");
    assert_eq!(
        f.from_path(),
        vec![e.from_path.clone()],
        "{ctx}: REPORT From-Path: {s}"
    );
    assert_eq!(
        f.header("Message-ID").as_deref(),
        Some(e.msg_id.as_str()),
        "{ctx}: REPORT Message-ID: {s}"
    );
    // Status: 000 <code> <comment>
    let status = f
        .header("Status")
        .unwrap_or_else(|| panic!("{ctx}: REPORT without Status: {s}"));
    let prefix = format!("000 {} ", e.code);
    assert!(
        status.starts_with(&prefix) && status.len() > prefix.len(),
        "{ctx}: Status {status:?}, want \"000 {} <comment>\": {s}",
        e.code
    );
    if let Some(c) = &e.comment {
        assert_eq!(&status[prefix.len()..], c, "{ctx}: Status comment: {s}");
    }
    // Byte-Range: start and total from the SEND, end from the bytes received.
    let raw = f
        .header("Byte-Range")
        .unwrap_or_else(|| panic!("{ctx}: REPORT without Byte-Range: {s}"));
    let r = ByteRange::parse(raw.as_bytes())
        .unwrap_or_else(|err| panic!("{ctx}: bad Byte-Range {raw:?}: {err}: {s}"));
    assert_eq!(r.start, e.start, "{ctx}: Byte-Range start ({raw}): {s}");
    assert_eq!(r.total, e.total, "{ctx}: Byte-Range total ({raw}): {s}");
    let end = r
        .end
        .unwrap_or_else(|| panic!("{ctx}: Byte-Range end must be known ({raw}): {s}"));
    assert!(
        e.end.contains(&end),
        "{ctx}: Byte-Range end {end} ({raw}) not in {:?}: {s}",
        e.end
    );
    // Only the five headers; no Success-/Failure-Report; no body section.
    let names: Vec<String> = f
        .header_names()
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    for bad in ["success-report", "failure-report", "content-type"] {
        assert!(
            !names.iter().any(|n| n == bad),
            "{ctx}: REPORT must not carry {bad}: {s}"
        );
    }
    assert_eq!(
        &names[..2],
        ["to-path", "from-path"],
        "{ctx}: To-Path and From-Path first: {s}"
    );
    let rest: HashSet<&str> = names[2..].iter().map(String::as_str).collect();
    assert_eq!(
        rest,
        HashSet::from(["message-id", "byte-range", "status"]),
        "{ctx}: REPORT headers: {s}"
    );
    assert_eq!(names.len(), 5, "{ctx}: duplicate headers: {s}");
    assert!(!f.head.has_body, "{ctx}: REPORT with a body section: {s}");
    assert_eq!(f.body_len, 0, "{ctx}: REPORT body: {s}");
    assert_eq!(
        f.flag,
        EndFlag::Complete,
        "{ctx}: REPORT end-line flag: {s}"
    );
    end
}

/// Checks a response the relay sent A for `req`.
fn check_response(f: &ReceivedFrame, req: &Request, a_uri: &str, code: u16, ctx: &str) {
    let s = f.summary();
    assert_eq!(f.status_code(), Some(code), "{ctx}: response code: {s}");
    assert_eq!(f.tid(), req.tid, "{ctx}: response transaction id: {s}");
    assert_eq!(
        f.to_path(),
        vec![a_uri.to_owned()],
        "{ctx}: response To-Path: {s}"
    );
}

/// Reads exactly `n` frames within `timeout` (panics with the log tail).
fn read_frames(
    k: &Kamailio,
    p: &mut Peer,
    n: usize,
    timeout: Duration,
    ctx: &str,
) -> Vec<ReceivedFrame> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match p.read_frame(left) {
            Ok(f) => got.push(f),
            Err(e) => panic!(
                "{ctx}: frame {} of {n}: {e}; received so far: {:?}\nlog tail:\n{}",
                got.len() + 1,
                got.iter().map(|f| f.summary()).collect::<Vec<_>>(),
                k.log_tail(40)
            ),
        }
    }
    got
}

/// Splits frames into (responses, REPORTs); any other request fails.
fn split(frames: Vec<ReceivedFrame>, ctx: &str) -> (Vec<ReceivedFrame>, Vec<ReceivedFrame>) {
    let mut responses = Vec::new();
    let mut reports = Vec::new();
    for f in frames {
        match f.method().as_deref() {
            None => responses.push(f),
            Some("REPORT") => reports.push(f),
            Some(_) => panic!("{ctx}: unexpected request at A: {}", f.summary()),
        }
    }
    (responses, reports)
}

/// How one case ends at A.
struct Want {
    /// Response code from the relay, if any.
    response: Option<u16>,
    /// The REPORT, if any.
    report: Option<ExpReport>,
}

/// Reads what every case must get (frames in any order), then checks that
/// nothing else arrives on any A connection for [`QUIET`]. Returns the
/// Byte-Range ends of the REPORTs, by case label.
fn check_cases(
    k: &Kamailio,
    cases: &mut [Case],
    timeout: Duration,
    want: impl Fn(&Case) -> Want,
) -> HashMap<String, u64> {
    let mut ends = HashMap::new();
    let deadline = Instant::now() + timeout;
    for c in cases.iter_mut() {
        let w = want(c);
        let n = usize::from(w.response.is_some()) + usize::from(w.report.is_some());
        let ctx = format!("case {} (Failure-Report {:?})", c.label, c.fr);
        let left = deadline.saturating_duration_since(Instant::now());
        let frames = read_frames(k, &mut c.a.peer, n, left, &ctx);
        let (responses, reports) = split(frames, &ctx);
        match w.response {
            Some(code) => {
                assert_eq!(
                    responses.len(),
                    1,
                    "{ctx}: want one {code} response, got {:?} and REPORTs {:?}",
                    responses.iter().map(|f| f.summary()).collect::<Vec<_>>(),
                    reports.iter().map(|f| f.summary()).collect::<Vec<_>>()
                );
                check_response(&responses[0], &c.req, &c.a.uri, code, &ctx);
            }
            None => assert!(
                responses.is_empty(),
                "{ctx}: no response expected, got {:?}",
                responses.iter().map(|f| f.summary()).collect::<Vec<_>>()
            ),
        }
        match &w.report {
            Some(e) => {
                assert_eq!(
                    reports.len(),
                    1,
                    "{ctx}: want one REPORT, got {:?}",
                    reports.iter().map(|f| f.summary()).collect::<Vec<_>>()
                );
                ends.insert(c.label.clone(), check_report(&reports[0], e, &ctx));
            }
            None => assert!(
                reports.is_empty(),
                "{ctx}: no REPORT expected, got {:?}",
                reports.iter().map(|f| f.summary()).collect::<Vec<_>>()
            ),
        }
    }
    std::thread::sleep(QUIET);
    for c in cases.iter_mut() {
        c.a.peer
            .expect_nothing(Duration::from_millis(20))
            .unwrap_or_else(|e| {
                panic!(
                    "case {} (Failure-Report {:?}): A got more than expected: {e}\nlog tail:\n{}",
                    c.label,
                    c.fr,
                    k.log_tail(30)
                )
            });
    }
    ends
}

/// Parses kamcmd output into its structs (`{` ... `}` blocks of
/// `name: value` lines), in order.
fn parse_structs(out: &str) -> Vec<HashMap<String, String>> {
    let mut res = Vec::new();
    let mut cur: Option<HashMap<String, String>> = None;
    for line in out.lines() {
        let l = line.trim();
        if l == "{" {
            cur = Some(HashMap::new());
        } else if l == "}" {
            if let Some(m) = cur.take() {
                res.push(m);
            }
        } else if let Some((n, v)) = l.split_once(':') {
            if let Some(m) = cur.as_mut() {
                m.insert(n.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    res
}

/// `kamcmd msrp_relay.reports` as name -> number.
fn rpc_reports(k: &Kamailio) -> HashMap<String, i64> {
    let out = k.kamcmd(&["msrp_relay.reports"]);
    let s = parse_structs(&out);
    assert_eq!(s.len(), 1, "msrp_relay.reports: want one struct:\n{out}");
    let m: HashMap<String, i64> = s[0]
        .iter()
        .map(|(n, v)| {
            let v = v
                .parse()
                .unwrap_or_else(|e| panic!("msrp_relay.reports {n}: {v:?}: {e}\n{out}"));
            (n.clone(), v)
        })
        .collect();
    for n in ["outstanding", "capacity"].iter().chain(COUNTERS.iter()) {
        assert!(m.contains_key(*n), "msrp_relay.reports lacks {n}:\n{out}");
    }
    m
}

/// Asserts the REPORT counters: those in `want` have these values, every
/// other counter is 0.
fn assert_counters(m: &HashMap<String, i64>, want: &[(&str, i64)], ctx: &str) {
    for n in COUNTERS {
        let w = want.iter().find(|(x, _)| *x == n).map_or(0, |(_, v)| *v);
        assert_eq!(m[n], w, "{ctx}: counter {n} (all: {m:?})");
    }
}

/// Polls `msrp_relay.reports` until `pred` holds (or `timeout`); returns
/// the last snapshot.
fn wait_reports(
    k: &Kamailio,
    timeout: Duration,
    pred: impl Fn(&HashMap<String, i64>) -> bool,
) -> HashMap<String, i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let m = rpc_reports(k);
        if pred(&m) || Instant::now() >= deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The table ends empty and the counters are as wanted.
fn assert_final_rpc(k: &Kamailio, want: &[(&str, i64)], ctx: &str) {
    let m = wait_reports(k, Duration::from_secs(3), |m| m["outstanding"] == 0);
    assert_eq!(
        m["outstanding"], 0,
        "{ctx}: table not empty at the end: {m:?}"
    );
    assert_counters(&m, want, ctx);
    let tx = parse_structs(&k.kamcmd(&["msrp_relay.transactions"]));
    assert_eq!(
        tx.first().and_then(|s| s.get("used")).map(String::as_str),
        Some("0"),
        "{ctx}: msrp_relay.transactions: {tx:?}"
    );
    assert_eq!(tx.len(), 1, "{ctx}: entries listed: {tx:?}");
}

/// A port on 127.0.0.1 nobody listens on (bound, then released).
fn closed_port() -> u16 {
    free_tcp_port()
}

/// A "B" listener that can also reset accepted connections (and give them
/// a small SO_RCVBUF).
struct BListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl BListener {
    fn bind(rcvbuf: Option<usize>) -> BListener {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        if let Some(n) = rcvbuf {
            sock.set_recv_buffer_size(n).expect("SO_RCVBUF");
        }
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        sock.bind(&addr.into()).expect("bind B");
        sock.listen(16).expect("listen B");
        sock.set_nonblocking(true).expect("nonblocking");
        let listener: TcpListener = sock.into();
        let addr = listener.local_addr().expect("local_addr");
        BListener { listener, addr }
    }

    fn uri(&self, session: &str) -> String {
        format!("msrp://127.0.0.1:{}/{session};tcp", self.addr.port())
    }

    /// Accepts the relay's connection: the peer and a handle on its socket.
    fn accept(&self, k: &Kamailio) -> (Peer, TcpStream) {
        let deadline = Instant::now() + T;
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    let h = s.try_clone().expect("clone stream");
                    return (Peer::from_stream(s).expect("wrap stream"), h);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("accept on {}: {e}", self.addr),
            }
            assert!(
                Instant::now() < deadline,
                "relay did not connect to B {} within {T:?}\nlog tail:\n{}",
                self.addr,
                k.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Closes a connection with RST instead of FIN.
fn reset(peer: Peer, handle: TcpStream) {
    SockRef::from(&handle)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(peer);
    drop(handle);
}

/// Reads one SEND at B and checks it is `c`'s (Message-ID, body).
fn b_reads(k: &Kamailio, bp: &mut Peer, c: &Case) -> ReceivedFrame {
    let f = bp
        .read_frame(T)
        .unwrap_or_else(|e| panic!("{}: B read: {e}\nlog tail:\n{}", c.label, k.log_tail(30)));
    assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
    assert_eq!(
        f.header("Message-ID"),
        Some(c.msg_id()),
        "{}: {}",
        c.label,
        f.summary()
    );
    assert_eq!(f.body_len, c.len, "{}: {}", c.label, f.summary());
    f
}

// ------------------------------------------------------------------ tests

/// Trigger 1: the next hop refuses the connection. `yes`/absent: 200 and
/// REPORT `000 408 Next Hop Unreachable`; `partial`: the REPORT only; `no`:
/// nothing. The REPORT may leave before the relay has read the body, so its
/// Byte-Range end is anything from start - 1 to the chunk's end.
#[test]
fn unreachable_next_hop_reports_408() {
    let k = Kamailio::start(RelayOpts::default());
    let relay = k.relay_uri("relay");
    let mut cases: Vec<Case> = ALL_FR
        .iter()
        .map(|&fr| {
            let next = format!("msrp://127.0.0.1:{}/bob;tcp", closed_port());
            Case::new(&k, &format!("{fr:?}"), fr, &relay, &next)
        })
        .collect();
    for c in cases.iter_mut() {
        c.send();
    }
    let ends = check_cases(&k, &mut cases, T, |c| Want {
        response: c.fr.gets_200().then_some(200),
        report: c
            .fr
            .reports_errors()
            .then(|| c.expected(408, Some("Next Hop Unreachable"), c.any_end())),
    });
    eprintln!("unreachable: Byte-Range ends {ends:?}");
    assert_final_rpc(&k, &[("unreachable", 3)], "unreachable");
}

/// Trigger 2: the next hop accepts, reads the chunk and closes without
/// answering (FIN), plus one `yes` case closed with RST. REPORT
/// `000 408 Next Hop Connection Lost`; B saw the whole chunk, so the relay
/// had received it all: Byte-Range end = the chunk's end.
#[test]
fn next_hop_close_reports_408_connection_lost() {
    let k = Kamailio::start(RelayOpts::default());
    let relay = k.relay_uri("relay");
    let mut cases = Vec::new();
    let mut listeners = Vec::new();
    for (label, fr) in ALL_FR
        .iter()
        .map(|&fr| (format!("{fr:?}-fin"), fr))
        .chain([("Yes-rst".to_owned(), Fr::Yes)])
    {
        let b = BListener::bind(None);
        cases.push(Case::new(&k, &label, fr, &relay, &b.uri("bob")));
        listeners.push(b);
    }
    for (c, b) in cases.iter_mut().zip(&listeners) {
        c.send();
        let (mut bp, h) = b.accept(&k);
        b_reads(&k, &mut bp, c);
        if c.label.ends_with("-rst") {
            reset(bp, h);
        } else {
            drop(bp);
            drop(h);
        }
    }
    check_cases(&k, &mut cases, T, |c| Want {
        response: c.fr.gets_200().then_some(200),
        report: c
            .fr
            .reports_errors()
            .then(|| c.expected(408, Some("Next Hop Connection Lost"), c.full_end())),
    });
    assert_final_rpc(&k, &[("next_hop_closed", 4)], "next hop closed");
}

/// Trigger 3: B answers with an error; the REPORT carries B's code. B also
/// (wrongly) answers the `no` chunk: still no REPORT for it.
#[test]
fn error_response_is_reported_with_its_code() {
    let k = Kamailio::start(RelayOpts::default());
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let code_of = |fr: Fr| match fr {
        Fr::Yes | Fr::Partial => 415,
        Fr::No | Fr::Absent => 403,
    };
    let mut cases: Vec<Case> = ALL_FR
        .iter()
        .map(|&fr| Case::new(&k, &format!("{fr:?}"), fr, &relay, &b_uri))
        .collect();
    let mut bp: Option<Peer> = None;
    for c in cases.iter_mut() {
        c.send();
        let mut p = match bp.take() {
            Some(p) => p,
            None => b
                .accept(T)
                .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30))),
        };
        let f = b_reads(&k, &mut p, c);
        let code = code_of(c.fr);
        p.send_response(
            &f,
            code,
            Some(if code == 415 {
                "Unsupported Media Type"
            } else {
                "Forbidden"
            }),
        )
        .expect("B respond");
        bp = Some(p);
    }
    check_cases(&k, &mut cases, T, |c| Want {
        response: c.fr.gets_200().then_some(200),
        report: c
            .fr
            .reports_errors()
            .then(|| c.expected(code_of(c.fr), None, c.full_end())),
    });
    assert_final_rpc(&k, &[("error_response", 3)], "error response");
    let mut bp = bp.unwrap();
    bp.expect_nothing(Duration::from_millis(50))
        .unwrap_or_else(|e| panic!("B: {e}"));
}

/// Trigger 4: B reads every chunk and never answers; transaction_timeout 2:
/// `yes`/absent get REPORT `000 408 Request Timeout` between timeout - 1 s
/// (timer resolution) and timeout + 3 s after B got the chunk; `partial` and
/// `no` get nothing. While waiting, `msrp_relay.transactions` lists them.
#[test]
fn timeout_reports_408_for_yes_and_absent_only() {
    const TIMEOUT: u64 = 2;
    let k =
        Kamailio::start(RelayOpts::default().modparam_int("transaction_timeout", TIMEOUT as i64));
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut cases: Vec<Case> = ALL_FR
        .iter()
        .map(|&fr| Case::new(&k, &format!("{fr:?}"), fr, &relay, &b_uri))
        .collect();
    let mut bp: Option<Peer> = None;
    let mut got_at = HashMap::new();
    for c in cases.iter_mut() {
        c.send();
        let mut p = match bp.take() {
            Some(p) => p,
            None => b
                .accept(T)
                .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30))),
        };
        b_reads(&k, &mut p, c);
        got_at.insert(c.label.clone(), Instant::now());
        bp = Some(p);
    }
    // Before the timer fires: the yes/absent transactions are outstanding
    // (listed once they have been for PUBLISH_AFTER, 100 ms: the relay keeps
    // requests answered sooner out of the shared table).
    let want = cases.iter().filter(|c| c.fr.reports_timeouts()).count() as i64;
    wait_reports(&k, Duration::from_secs(2), |m| m["outstanding"] >= want);
    let listing = parse_structs(&k.kamcmd(&["msrp_relay.transactions"]));
    let listed: HashSet<&str> = listing[1..]
        .iter()
        .filter_map(|e| e.get("message_id").map(String::as_str))
        .collect();
    for c in cases.iter().filter(|c| c.fr.reports_timeouts()) {
        assert!(
            listed.contains(c.msg_id().as_str()),
            "{}: not in msrp_relay.transactions: {listing:?}",
            c.label
        );
    }
    let used: usize = listing[0]["used"].parse().expect("used");
    assert_eq!(used, listing.len() - 1, "used vs entries: {listing:?}");
    assert!(rpc_reports(&k)["outstanding"] >= 2);

    // The 200s come at once; the REPORTs after the timeout.
    let limit = Duration::from_secs(TIMEOUT + 3);
    for c in cases.iter_mut().filter(|c| c.fr.reports_timeouts()) {
        let ctx = format!("case {}", c.label);
        let (responses, reports) = split(read_frames(&k, &mut c.a.peer, 2, limit, &ctx), &ctx);
        assert_eq!(responses.len(), 1, "{ctx}: one 200");
        check_response(&responses[0], &c.req, &c.a.uri, 200, &ctx);
        assert_eq!(reports.len(), 1, "{ctx}: one REPORT");
        let after = got_at[&c.label].elapsed();
        check_report(
            &reports[0],
            &c.expected(408, Some("Request Timeout"), c.full_end()),
            &ctx,
        );
        assert!(
            after >= Duration::from_secs(TIMEOUT - 1) && after <= limit,
            "{ctx}: REPORT {after:?} after B got the chunk, transaction_timeout {TIMEOUT} s"
        );
        eprintln!("{ctx}: timeout REPORT {after:?} after B got the chunk");
    }
    // partial / no: nothing, not even after the timeout; nothing more for
    // yes / absent.
    std::thread::sleep(Duration::from_secs(1));
    for c in cases.iter_mut() {
        c.a.peer
            .expect_nothing(Duration::from_millis(20))
            .unwrap_or_else(|e| panic!("case {}: A got more than expected: {e}", c.label));
    }
    assert_final_rpc(&k, &[("timeout", 2)], "timeout");
}

/// Trigger 5: the first To-Path URI is not the relay's (another address on
/// the relay's port, or the relay's address with another port). `yes` /
/// absent: 481 response and REPORT `000 481 ...` whose From-Path is that
/// URI; `partial`: the 481 only; `no`: nothing. Nothing reaches B.
#[test]
fn foreign_to_path_uri_gets_481_and_report() {
    let k = Kamailio::start(RelayOpts::default());
    let port = k.relay_addr().port();
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut cases: Vec<Case> = ALL_FR
        .iter()
        .enumerate()
        .map(|(i, &fr)| {
            let foreign = if i % 2 == 0 {
                format!("msrp://127.0.0.2:{port}/x;tcp")
            } else {
                format!("msrp://127.0.0.1:{}/x;tcp", closed_port())
            };
            Case::new(&k, &format!("{fr:?}"), fr, &foreign, &b_uri)
        })
        .collect();
    for c in cases.iter_mut() {
        c.send();
    }
    let ends = check_cases(&k, &mut cases, T, |c| Want {
        response: (c.fr != Fr::No).then_some(481),
        report: c
            .fr
            .reports_timeouts()
            .then(|| c.expected(481, None, c.any_end())),
    });
    eprintln!("not own URI: Byte-Range ends {ends:?}");
    b.expect_no_accept(Duration::from_millis(100))
        .unwrap_or_else(|e| panic!("a SEND to a foreign relay URI was forwarded: {e}"));
    assert_final_rpc(&k, &[("not_own_uri", 2)], "not own URI");
}

/// A 413 from B: REPORT 413 upstream; the next chunk of that Message-ID
/// from A gets a 413 response and is not forwarded; another message still
/// goes through.
#[test]
fn error_413_stops_the_rest_of_the_message() {
    let k = Kamailio::start(RelayOpts::default());
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let msg_id = msrp_tools::ids::message_id();
    let chunk = |start: u64, flag: EndFlag| {
        let mut r = send_chunk(
            &[&relay, &b_uri],
            &a.uri,
            Fr::Yes,
            &[b'x'; 100],
            start,
            Some(300),
        );
        r.headers[0].1 = msg_id.clone();
        r.flag = flag;
        r
    };
    let c1 = chunk(1, EndFlag::Continued);
    let c2 = chunk(101, EndFlag::Continued);
    a.peer.send_request(&c1).expect("A send chunk 1");
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
    let f = bp.read_frame(T).expect("B read chunk 1");
    assert_eq!(f.header("Message-ID").as_deref(), Some(msg_id.as_str()));
    bp.send_response(&f, 413, Some("Message Too Large"))
        .expect("B 413");
    let (responses, reports) = split(read_frames(&k, &mut a.peer, 2, T, "413"), "413");
    assert_eq!(
        (responses.len(), reports.len()),
        (1, 1),
        "413: one 200, one REPORT"
    );
    check_response(&responses[0], &c1, &a.uri, 200, "chunk 1");
    let e = ExpReport {
        sender_tid: c1.tid.clone(),
        msg_id: msg_id.clone(),
        to_path: vec![a.uri.clone()],
        from_path: relay.clone(),
        start: 1,
        total: Some(300),
        end: 100..=100,
        code: 413,
        comment: None,
    };
    check_report(&reports[0], &e, "413 REPORT");
    a.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|err| panic!("A after the 413 REPORT: {err}"));

    // Chunk 2 of the same message: 413 response, not forwarded.
    a.peer.send_request(&c2).expect("A send chunk 2");
    let r = a.peer.read_frame(T).unwrap_or_else(|err| {
        panic!(
            "A: response to chunk 2: {err}\nlog tail:\n{}",
            k.log_tail(30)
        )
    });
    check_response(&r, &c2, &a.uri, 413, "chunk 2");
    a.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|err| panic!("A after chunk 2's 413: {err}"));
    bp.expect_nothing(Duration::from_millis(50))
        .unwrap_or_else(|err| panic!("B got chunk 2 of a 413'd message: {err}"));

    // Another message still goes through.
    relay_small_send(&k, &mut a, &b, &b_uri, Some(bp), b"another message");
    a.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|err| panic!("A after the second message: {err}"));
    assert_final_rpc(&k, &[("error_response", 1)], "413");
}

/// A 1 MiB single-chunk SEND re-chunked to 16384; B takes ~300 KiB of
/// chunks (answering 200 to each), then closes (RST: unread data is left in
/// its buffers anyway). A's chunk is still arriving, so A gets a 413 and no
/// 200 (the relay dropped the rest), and one REPORT
/// `000 408 Next Hop Connection Lost` with
/// `Byte-Range: 1-<end>/1048576`, where:
/// - end >= the bytes B received in complete chunks (the relay cannot have
///   forwarded more than it had received);
/// - end <= those bytes + 512 KiB: the relay reads A only as fast as B
///   drains (flow control) and with B's SO_RCVBUF 16 KiB, the relay's
///   SO_SNDBUF 16 KiB and queue_high_watermark 64 KiB, no more than
///   ~2x16 KiB + 2x16 KiB kernel buffers + the queue + one read piece +
///   B's unparsed read buffer (64 KiB) can lie between; so end < 1 MiB and
///   a REPORT copying the SEND's Byte-Range (1-1048576/1048576) fails.
#[test]
fn next_hop_failure_mid_message_reports_bytes_received() {
    const LEN: u64 = 1024 * 1024;
    const B_TAKES: u64 = 300 * 1024;
    const SLACK: u64 = 512 * 1024;
    let k = Kamailio::start(
        RelayOpts::default()
            .modparam_int("msrp_max_chunk_size", 16384)
            .modparam_int("socket_sndbuf", 16384)
            .modparam_int("queue_high_watermark", 65536)
            .modparam_int("queue_low_watermark", 16384),
    );
    let relay = k.relay_uri("relay");
    let b = BListener::bind(Some(16384));
    let b_uri = b.uri("bob");
    let a = Client::connect(&k);
    let a_uri = a.uri.clone();
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a_uri], LEN)
        .with_header("Failure-Report", "yes");
    let msg_id = req.header("Message-ID").unwrap().to_owned();
    let sender = send_in_background(a.peer, &req, 7, LEN);
    let (mut bp, h) = b.accept(&k);
    let mut seen = 0u64;
    let mut chunks = 0;
    while seen < B_TAKES {
        let f = bp.read_frame_hashed(T).unwrap_or_else(|e| {
            panic!(
                "B read after {seen} bytes: {e}\nlog tail:\n{}",
                k.log_tail(30)
            )
        });
        assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
        assert_eq!(f.header("Message-ID").as_deref(), Some(msg_id.as_str()));
        assert!(f.body_len <= 16384, "{}", f.summary());
        seen += f.body_len;
        chunks += 1;
        bp.send_response(&f, 200, Some("OK")).expect("B respond");
    }
    // Let the 200s reach the relay, then close mid-message.
    std::thread::sleep(Duration::from_millis(100));
    reset(bp, h);

    let (mut a_peer, sent) = sender.join().expect("sender thread");
    sent.unwrap_or_else(|e| panic!("A streaming send: {e}"));
    let (responses, reports) = split(
        read_frames(&k, &mut a_peer, 2, T, "mid-message"),
        "mid-message",
    );
    assert_eq!(
        (responses.len(), reports.len()),
        (1, 1),
        "one 413, one REPORT"
    );
    check_response(&responses[0], &req, &a_uri, 413, "mid-message");
    let e = ExpReport {
        sender_tid: req.tid.clone(),
        msg_id,
        to_path: vec![a_uri.clone()],
        from_path: relay.clone(),
        start: 1,
        total: Some(LEN),
        end: seen..=(seen + SLACK).min(LEN - 1),
        code: 408,
        comment: Some("Next Hop Connection Lost".into()),
    };
    let end = check_report(&reports[0], &e, "mid-message REPORT");
    eprintln!("mid-message: B saw {seen} bytes in {chunks} chunks; REPORT Byte-Range end {end}");
    a_peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|err| panic!("A after the REPORT: {err}"));
    assert_final_rpc(&k, &[("next_hop_closed", 1)], "mid-message");
}

/// What B does with one of the 1000 SENDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fate {
    Ok,
    Forbidden,
    Silent,
}

/// 1000 small SENDs (Failure-Report yes) from 4 A connections to one B,
/// all outstanding at once (`msrp_relay.reports` outstanding >= 1000,
/// `msrp_relay.transactions` used >= 1000 with well-formed entries); then B
/// answers a third 200, a third 403 and leaves a third unanswered. Every A
/// transaction is accounted for exactly once: the relay's 200 for all 1000,
/// REPORT 403 for exactly the 403 third, REPORT 408 for exactly the silent
/// third, none for the 200 third (matched by Message-ID); the counters
/// follow (error_response while the silent third is still outstanding,
/// timeout later) and the table ends empty.
///
/// transaction_timeout is 4 s rather than 2: the two RPC calls with 1000
/// entries take ~1.3 s, and B's 200s must reach the relay before the timer
/// of the earliest chunks can fire.
#[test]
fn thousand_outstanding_transactions_mixed_outcomes() {
    const N: usize = 1000;
    const CONNS: usize = 4;
    const TIMEOUT: u64 = 4;
    let t0 = Instant::now();
    let k =
        Kamailio::start(RelayOpts::default().modparam_int("transaction_timeout", TIMEOUT as i64));
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let m0 = rpc_reports(&k);
    assert_eq!(m0["outstanding"], 0, "{m0:?}");
    assert!(m0["capacity"] >= N as i64, "{m0:?}");
    assert_counters(&m0, &[], "at start");

    let fate = |i: usize| match i % 3 {
        0 => Fate::Ok,
        1 => Fate::Forbidden,
        _ => Fate::Silent,
    };
    let clients: Vec<Client> = (0..CONNS).map(|_| Client::connect(&k)).collect();
    // (request, fate) per connection; Message-ID -> (connection, fate).
    let mut plan: Vec<Vec<(Request, Fate)>> = vec![Vec::new(); CONNS];
    let mut by_msg: HashMap<String, (usize, Fate)> = HashMap::new();
    for i in 0..N {
        let c = i % CONNS;
        let body = format!("message {i} of {N}");
        let req = send_chunk(
            &[&relay, &b_uri],
            &clients[c].uri,
            Fr::Yes,
            body.as_bytes(),
            1,
            Some(body.len() as u64),
        );
        by_msg.insert(req.header("Message-ID").unwrap().to_owned(), (c, fate(i)));
        plan[c].push((req, fate(i)));
    }

    // Each A sends its SENDs, then collects its 200s and REPORTs.
    let read_limit = Duration::from_secs(TIMEOUT + 15);
    let threads: Vec<_> = clients
        .into_iter()
        .zip(plan.clone())
        .map(|(mut cl, reqs)| {
            std::thread::spawn(move || -> Result<(Client, Vec<ReceivedFrame>), String> {
                for (r, _) in &reqs {
                    cl.peer
                        .send_request(r)
                        .map_err(|e| format!("A send: {e}"))?;
                }
                let want = reqs.len() + reqs.iter().filter(|(_, f)| *f != Fate::Ok).count();
                let deadline = Instant::now() + read_limit;
                let mut got = Vec::new();
                while got.len() < want {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let f = cl.peer.read_frame(left).map_err(|e| {
                        format!("A {}: frame {} of {want}: {e}", cl.uri, got.len() + 1)
                    })?;
                    got.push(f);
                }
                std::thread::sleep(QUIET);
                cl.peer
                    .expect_nothing(Duration::from_millis(20))
                    .map_err(|e| format!("A {}: more than expected: {e}", cl.uri))?;
                Ok((cl, got))
            })
        })
        .collect();

    // B receives all 1000 before answering any.
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
    let mut at_b = Vec::with_capacity(N);
    let mut seen = HashSet::new();
    let mut first_at = None;
    for i in 0..N {
        let f = bp
            .read_frame(T)
            .unwrap_or_else(|e| panic!("B read {i} of {N}: {e}\nlog tail:\n{}", k.log_tail(30)));
        first_at.get_or_insert_with(Instant::now);
        assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
        let id = f.header("Message-ID").unwrap_or_default();
        assert!(
            by_msg.contains_key(&id),
            "unknown Message-ID at B: {}",
            f.summary()
        );
        assert!(seen.insert(id), "Message-ID twice at B: {}", f.summary());
        at_b.push(f);
    }
    let first_at = first_at.unwrap();
    let received_in = first_at.elapsed();

    // All 1000 are outstanding now (in the shared table once they have been
    // for PUBLISH_AFTER, 100 ms).
    let m1 = wait_reports(&k, Duration::from_secs(2), |m| m["outstanding"] >= N as i64);
    // The listing is checked at the end, so that a failing listing does not
    // hide the outcome checks.
    let tx_res = k.try_kamcmd(&["msrp_relay.transactions"]);
    let before_answers = first_at.elapsed();
    assert!(
        m1["outstanding"] >= N as i64,
        "outstanding before B answers: {m1:?} (B got all {N} in {received_in:?})"
    );
    assert_counters(&m1, &[], "before B answers");
    eprintln!("1000: B got all in {received_in:?}; RPC done {before_answers:?} after the first");

    // B answers: 200 / 403 / nothing.
    let mut n_fate: HashMap<Fate, i64> = HashMap::new();
    for f in &at_b {
        let id = f.header("Message-ID").unwrap();
        let fate = by_msg[&id].1;
        *n_fate.entry(fate).or_default() += 1;
        match fate {
            Fate::Ok => bp.send_response(f, 200, Some("OK")),
            Fate::Forbidden => bp.send_response(f, 403, Some("Forbidden")),
            Fate::Silent => Ok(()),
        }
        .expect("B respond");
    }
    let (n_forbidden, n_silent) = (n_fate[&Fate::Forbidden], n_fate[&Fate::Silent]);

    // Counters as traffic flows: the 403 REPORTs first, the silent third
    // still outstanding (as long as its timer cannot have fired yet).
    let m2 = wait_reports(&k, Duration::from_secs(2), |m| {
        m["error_response"] >= n_forbidden
    });
    let early = first_at.elapsed() < Duration::from_secs(TIMEOUT - 1);
    assert_eq!(m2["error_response"], n_forbidden, "after B answers: {m2:?}");
    if early {
        assert_eq!(
            m2["timeout"], 0,
            "timeouts before transaction_timeout: {m2:?}"
        );
        assert_eq!(
            m2["outstanding"], n_silent,
            "the silent third stays outstanding: {m2:?}"
        );
    } else {
        eprintln!(
            "1000: B answered late ({:?}); skipped the mid-run counter check",
            first_at.elapsed()
        );
    }

    // Every A transaction exactly once.
    let mut n200 = 0;
    let mut reported: HashMap<String, u16> = HashMap::new();
    for th in threads {
        let (cl, frames) = th
            .join()
            .expect("A thread panicked")
            .unwrap_or_else(|e| panic!("{e}\nlog tail:\n{}", k.log_tail(30)));
        let mine: Vec<&(Request, Fate)> = plan
            .iter()
            .flatten()
            .filter(|(r, _)| r.from_path == [cl.uri.clone()])
            .collect();
        let by_tid: HashMap<&str, &Request> =
            mine.iter().map(|(r, _)| (r.tid.as_str(), r)).collect();
        let mut got_200 = HashSet::new();
        for f in &frames {
            match f.method().as_deref() {
                None => {
                    let r = by_tid
                        .get(f.tid().as_str())
                        .unwrap_or_else(|| panic!("response for an unknown tid: {}", f.summary()));
                    check_response(f, r, &cl.uri, 200, "1000");
                    assert!(got_200.insert(f.tid()), "two responses: {}", f.summary());
                    n200 += 1;
                }
                Some("REPORT") => {
                    let id = f.header("Message-ID").unwrap_or_default();
                    let &(c, fate) = by_msg.get(&id).unwrap_or_else(|| {
                        panic!("REPORT for an unknown Message-ID: {}", f.summary())
                    });
                    let (r, _) = mine
                        .iter()
                        .find(|(r, _)| r.header("Message-ID") == Some(id.as_str()))
                        .unwrap_or_else(|| {
                            panic!(
                                "REPORT on connection {} for connection {c}'s message: {}",
                                cl.uri,
                                f.summary()
                            )
                        });
                    let (code, comment) = match fate {
                        Fate::Ok => {
                            panic!("REPORT for a transaction B answered 200: {}", f.summary())
                        }
                        Fate::Forbidden => (403, None),
                        Fate::Silent => (408, Some("Request Timeout".to_owned())),
                    };
                    let len = r.body.as_ref().unwrap().len() as u64;
                    let e = ExpReport {
                        sender_tid: r.tid.clone(),
                        msg_id: id.clone(),
                        to_path: vec![cl.uri.clone()],
                        from_path: relay.clone(),
                        start: 1,
                        total: Some(len),
                        end: len..=len,
                        code,
                        comment,
                    };
                    check_report(f, &e, "1000");
                    assert!(
                        reported.insert(id, code).is_none(),
                        "two REPORTs: {}",
                        f.summary()
                    );
                }
                Some(m) => panic!("unexpected {m} at A: {}", f.summary()),
            }
        }
    }
    assert_eq!(n200, N, "200s from the relay");
    for (id, (_, fate)) in &by_msg {
        let want = match fate {
            Fate::Ok => None,
            Fate::Forbidden => Some(403),
            Fate::Silent => Some(408),
        };
        assert_eq!(
            reported.get(id).copied(),
            want,
            "REPORT for {id} ({fate:?})"
        );
    }
    assert_final_rpc(
        &k,
        &[("error_response", n_forbidden), ("timeout", n_silent)],
        "1000 at the end",
    );
    bp.expect_nothing(Duration::from_millis(50))
        .unwrap_or_else(|e| panic!("B: {e}"));
    eprintln!("1000: done in {:?}", t0.elapsed());
    // msrp_relay.transactions while all 1000 were outstanding.
    let tx_out = tx_res.unwrap_or_else(|e| {
        panic!("msrp_relay.transactions with {N} outstanding transactions failed: {e}")
    });
    let tx = parse_structs(&tx_out);
    let used: usize = tx[0]["used"].parse().expect("used");
    assert!(used >= N, "msrp_relay.transactions used {used} < {N}");
    let listed: Vec<&HashMap<String, String>> = tx[1..].iter().collect();
    assert!(
        !listed.is_empty() && listed.len() <= used,
        "{} listed, used {used}",
        listed.len()
    );
    for e in &listed {
        for key in [
            "tid",
            "worker",
            "state",
            "message_id",
            "origin",
            "failure_report",
            "byte_range",
            "expires_in",
            "age_ms",
        ] {
            assert!(e.contains_key(key), "entry without {key}: {e:?}");
        }
        assert!(by_msg.contains_key(&e["message_id"]), "unknown entry {e:?}");
        assert_eq!(e["failure_report"], "yes", "{e:?}");
        assert!(e["byte_range"].starts_with("1-"), "{e:?}");
    }
    eprintln!("1000: {} entries listed", listed.len());
}

/// Failure-Report `partial` on a large message: the relay does not keep an
/// entry per outgoing chunk (successes are never answered, RFC 4975
/// §7.1.4), so a table of 16 entries does not fill up over 512 chunks; an
/// error answer to one chunk still finds its message and reports it once.
#[test]
fn partial_bulk_transfer_keeps_no_entry_per_chunk() {
    const LEN: u64 = 1024 * 1024;
    const CHUNK: u64 = 2048;
    let k = Kamailio::start(
        RelayOpts::default()
            .modparam_int("msrp_max_chunk_size", CHUNK as i64)
            .modparam_int("max_transactions", 16),
    );
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let a = Client::connect(&k);
    let a_uri = a.uri.clone();
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a_uri], LEN)
        .with_header("Failure-Report", "partial");
    let msg_id = req.header("Message-ID").unwrap().to_owned();
    let sender = send_in_background(a.peer, &req, 9, LEN);
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(20)));
    let mut seen = 0u64;
    let mut chunks = 0u64;
    while seen < LEN {
        let f = bp
            .read_frame_hashed(T)
            .unwrap_or_else(|e| panic!("B after {seen} bytes: {e}\n{}", k.log_tail(20)));
        assert_eq!(f.header("Message-ID").as_deref(), Some(msg_id.as_str()));
        assert!(f.body_len <= CHUNK, "{}", f.summary());
        seen += f.body_len;
        chunks += 1;
        if chunks == 300 {
            bp.send_response(&f, 415, Some("Unsupported Media Type"))
                .expect("B answers 415");
        }
    }
    assert_eq!(chunks, LEN / CHUNK);
    let (mut a_peer, sent) = sender.join().expect("sender thread");
    sent.unwrap_or_else(|e| panic!("A streaming send: {e}"));
    let (responses, reports) = split(
        read_frames(&k, &mut a_peer, 1, T, "partial bulk"),
        "partial bulk",
    );
    assert!(responses.is_empty(), "no 200 for partial: {responses:?}");
    assert_eq!(reports.len(), 1, "one REPORT");
    assert_eq!(
        reports[0].header("Status").as_deref(),
        Some("000 415 Unsupported Media Type")
    );
    a_peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("A after the REPORT: {e}"));
    let m = rpc_reports(&k);
    assert_eq!(m["table_full"], 0, "{m:?}");
    assert_eq!(m["error_response"], 1, "{m:?}");
    assert!(!k.log().contains("table full"), "log:\n{}", k.log_tail(20));
}

/// A next hop that reads but never answers gets at most a window of 1024
/// unanswered chunks; once those time out the relay knows the chunk still
/// arriving is lost: the sender gets exactly one REPORT 408 and a 413 (no
/// 200), and nothing more of the message reaches the next hop.
#[test]
fn silent_next_hop_is_held_to_a_request_window() {
    const CHUNK: u64 = 2048;
    const WINDOW: u64 = 1024;
    const LEN: u64 = 2 * WINDOW * CHUNK;
    let k = Kamailio::start(
        RelayOpts::default()
            .modparam_int("msrp_max_chunk_size", CHUNK as i64)
            .modparam_int("transaction_timeout", 2),
    );
    let relay = k.relay_uri("relay");
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let a = Client::connect(&k);
    let a_uri = a.uri.clone();
    let req = Request::send_streaming(&[&relay, &b_uri], &[&a_uri], LEN)
        .with_header("Failure-Report", "yes");
    let sender = send_in_background(a.peer, &req, 11, LEN);
    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(20)));
    let started = Instant::now();
    let mut chunks = 0u64;
    // Within the first second (timeout 2 s) only the window can arrive.
    while let Ok(f) = bp.read_frame_hashed(Duration::from_millis(500)) {
        if started.elapsed() > Duration::from_secs(1) {
            chunks += 1;
            break;
        }
        assert!(f.body_len <= CHUNK);
        chunks += 1;
        assert!(
            chunks <= WINDOW,
            "{chunks} unanswered chunks reached B within {:?}",
            started.elapsed()
        );
    }
    assert!(
        chunks >= WINDOW / 2,
        "only {chunks} chunks before the pause"
    );
    // After the timeouts nothing more of it arrives (no chunk was open:
    // the relay waited for the window before starting one).
    while let Ok(f) = bp.read_frame_hashed(Duration::from_secs(4)) {
        assert_eq!(f.flag, EndFlag::Continued, "{}", f.summary());
        chunks += 1;
        assert!(
            chunks <= WINDOW,
            "chunk {chunks} reached B: {}",
            f.summary()
        );
    }
    let (mut a_peer, sent) = sender.join().expect("sender thread");
    sent.unwrap_or_else(|e| panic!("A streaming send: {e}"));
    let (responses, reports) = split(
        read_frames(&k, &mut a_peer, 2, Duration::from_secs(10), "window"),
        "window",
    );
    assert_eq!(
        (responses.len(), reports.len()),
        (1, 1),
        "one 413, one REPORT"
    );
    check_response(&responses[0], &req, &a_uri, 413, "window");
    assert_eq!(
        reports[0].header("Status").as_deref(),
        Some("000 408 Request Timeout")
    );
    a_peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("A after the REPORT: {e}"));
}
