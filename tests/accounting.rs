//! Per-session accounting (issue 23 item 4): for each Use-Path session,
//! `msrp_relay.sessions` and `event_route[msrp:session-end]` give the
//! messages and bytes each way, start, duration, AUTH user and transport,
//! exactly as the test clients sent them (one message re-chunked by the
//! relay, one sent in two chunks). The route runs when the session's
//! connection closes (closed), when it expires (expired) and when Kamailio
//! stops (shutdown); with two workers and the two clients on different
//! workers the counts are the same.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use msrp_tools::Transport;

/// One xlog line per ended session with every accounting value.
const END_ROUTE: &str = r#"
event_route[msrp:session-end] {
    xlog("L_NOTICE", "ACCT session=$msrp(session) user=$msrp(acct_user) transport=$msrp(transport) msgs_in=$msrp(msgs_in) bytes_in=$msrp(bytes_in) msgs_out=$msrp(msgs_out) bytes_out=$msrp(bytes_out) reason=$msrp(end_reason) peer=$msrp(peer) src=$msrp(srcaddr) si=$si:$sp start=$msrp(session_start) duration=$msrp(session_duration) method=$msrp(method)\n");
}
"#;

/// In a frame's route `$msrp(transport)` is its connection's, and the
/// session-end keys are null.
const ROUTE: &str = r#"if ($msrp(method) == "AUTH") {
        xlog("L_INFO", "FRAME AUTH transport=$msrp(transport) session=$msrp(session) msgs_in=$msrp(msgs_in)\n");
        msrp_cmap_save();
        exit;
    }
    msrp_relay();"#;

/// Kamailio with `ROUTE`, `END_ROUTE` and `opts`' modparams/listeners.
fn start(opts: RelayOpts) -> Kamailio {
    let opts = opts.route(ROUTE).modparam_int("auth_min_expires", 1);
    let so = module_so();
    let transports = opts.transports.clone();
    Kamailio::try_start_custom_with("msrp-relay-it", 1, &transports, move |v| {
        render_cfg(&opts, &so, v) + END_ROUTE
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `from` sends `chunks` (body pieces of one message, each its own SEND
/// chunk with Byte-Range, `+` but the last) to `to` through `to`'s
/// Use-Path; `to` reads the message (as the relay chunks it) and answers
/// every chunk 200; `from` gets a 200 per chunk.
fn send(k: &Kamailio, from: &mut Session, to: &mut Session, chunks: &[&[u8]]) {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let message_id = msrp_tools::ids::message_id();
    let mut start = 1;
    let mut tids = Vec::new();
    for (i, body) in chunks.iter().enumerate() {
        let mut req = Request::send(&[&to.use_path, &to.c.uri], &[&from.c.uri], body);
        let end = start + body.len() - 1;
        req.headers = vec![
            ("Message-ID".into(), message_id.clone()),
            ("Byte-Range".into(), format!("{start}-{end}/{total}")),
            ("Content-Type".into(), "text/plain".into()),
        ];
        if i + 1 < chunks.len() {
            req.flag = EndFlag::Continued;
        }
        start = end + 1;
        from.c.peer.send_request(&req).expect("send SEND");
        tids.push(req.tid);
    }
    let mut got = Vec::new();
    loop {
        let f =
            to.c.peer
                .read_frame(T)
                .unwrap_or_else(|e| panic!("receiver: {e}\n{}", k.log_tail(30)));
        assert_eq!(f.method().as_deref(), Some("SEND"), "{}", f.summary());
        got.extend_from_slice(&f.body);
        to.c.peer.send_hop_response(&f, 200, None).expect("200");
        if f.flag == EndFlag::Complete {
            break;
        }
    }
    assert_eq!(got, chunks.concat(), "the message changed on its way");
    for tid in tids {
        let resp = from.c.peer.read_response(T, &[]).expect("sender's 200");
        assert_eq!((resp.status_code(), resp.tid()), (Some(200), tid));
    }
}

/// `msrp_relay.sessions`' struct of session `id`, if listed.
fn listed(k: &Kamailio, id: &str) -> Option<String> {
    let out = k.kamcmd(&["msrp_relay.sessions"]);
    let needle = format!("SESSION: {id}\n");
    out.split('{')
        .find(|b| b.contains(&needle))
        .map(str::to_owned)
}

fn field<'a>(block: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name} in {block}"))
}

/// Messages in, bytes in, messages out, bytes out.
type Usage = (u64, u64, u64, u64);

/// Waits (the list's counters are at most a second old) until session
/// `id` is listed with `want`; returns its struct.
fn listed_with(k: &Kamailio, id: &str, want: Usage) -> String {
    let deadline = std::time::Instant::now() + T;
    loop {
        let block = listed(k, id).unwrap_or_else(|| panic!("{id} not listed"));
        let n = |name| field(&block, name).parse::<u64>().expect(name);
        let got = (n("MSGS_IN"), n("BYTES_IN"), n("MSGS_OUT"), n("BYTES_OUT"));
        if got == want {
            return block;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id}: listed {got:?}, sent {want:?}\n{block}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The session-end line of session `id`, waited for up to `wait`.
fn end_line(k: &Kamailio, id: &str, wait: Duration) -> String {
    let needle = format!("ACCT session={id} ");
    k.wait_for_log_line(wait, |l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no session-end line for {id}\n{}", k.log_tail(30)))
}

/// Checks a session-end line: exact values, start within `[t0, t1]`,
/// duration at most the time since `t0`; frame keys are null.
fn check_end(line: &str, s: &Who, user: &str, want: Usage, reason: &str, t0: u64, t1: u64) {
    let (mi, bi, mo, bo) = want;
    let expected = format!(
        "ACCT session={} user={user} transport={} msgs_in={mi} bytes_in={bi} msgs_out={mo} \
         bytes_out={bo} reason={reason} peer={} src=msrp://{a} si={a} start=",
        s.id,
        s.transport,
        s.uri,
        a = s.addr,
    );
    assert!(line.contains(&expected), "{line}\nexpected {expected}");
    let value = |name: &str| -> u64 {
        let p = format!(" {name}=");
        let rest = &line[line.find(&p).unwrap_or_else(|| panic!("{name}: {line}")) + p.len()..];
        rest.split(' ').next().unwrap_or("").parse().expect(name)
    };
    let start = value("start");
    assert!(
        (t0..=t1).contains(&start),
        "start {start} not in {t0}..={t1}"
    );
    let duration = value("duration");
    assert!(duration <= unix_now() - t0, "duration {duration}: {line}");
    assert!(line.contains(" method=<null>"), "{line}");
}

fn accounting(workers: i64) {
    let k = start(RelayOpts::default().modparam_int("workers", workers));
    let (ca, cb) = if workers > 1 {
        clients_on_two_workers(&k)
    } else {
        (Client::connect(&k), Client::connect(&k))
    };
    let t0 = unix_now();
    let mut a = auth_unchecked(&k, ca, "alice", 600);
    let mut b = auth_unchecked(&k, cb, "bob", 600);
    let t1 = unix_now();
    // A -> B: 10 bytes; 40,000 bytes the relay re-chunks to 16 KiB; one
    // message of 100 + 50 bytes in two chunks. B -> A: 7 bytes.
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    send(&k, &mut a, &mut b, &[b"0123456789"]);
    send(&k, &mut a, &mut b, &[&big]);
    send(&k, &mut a, &mut b, &[&[b'x'; 100], &[b'y'; 50]]);
    send(&k, &mut b, &mut a, &[b"answer!"]);
    let a_use = (3, 40_160, 1, 7);
    let a_block = listed_with(&k, &a.id, a_use);
    let b_block = listed_with(&k, &b.id, (1, 7, 3, 40_160));
    for (block, user) in [(&a_block, "alice"), (&b_block, "bob")] {
        assert_eq!(field(block, "USER"), user, "{block}");
        assert_eq!(field(block, "TRANSPORT"), "tcp", "{block}");
        let start: u64 = field(block, "START").parse().expect("START");
        assert!((t0..=t1).contains(&start), "{block}");
    }
    if workers > 1 {
        assert_ne!(field(&a_block, "WORKER"), field(&b_block, "WORKER"));
    }

    // A's connection closes: its session ends with exactly what A did.
    let (a_who, b_who) = (who(&a), who(&b));
    drop(a);
    let line = end_line(&k, &a_who.id, T);
    check_end(&line, &a_who, "alice", a_use, "closed", t0, t1);

    // C's session expires (Expires: 2) with its connection open, after
    // one message to B.
    let mut c = auth_unchecked(&k, Client::connect(&k), "carol", 2);
    let c_who = who(&c);
    send(&k, &mut c, &mut b, &[b"hello"]);
    let line = end_line(&k, &c_who.id, Duration::from_secs(10));
    check_end(
        &line,
        &c_who,
        "carol",
        (1, 5, 0, 0),
        "expired",
        t0,
        unix_now(),
    );
    let duration: u64 = line
        .rsplit(" duration=")
        .next()
        .and_then(|r| r.split(' ').next())
        .and_then(|d| d.parse().ok())
        .expect("duration");
    assert!((2..=4).contains(&duration), "{line}");
    assert!(listed(&k, &c_who.id).is_none(), "expired, still listed");
    c.c.peer
        .expect_nothing(Duration::from_millis(100))
        .expect("C's connection stays open after its session expired");

    // Kamailio stops with B's session open: it ends with reason shutdown.
    assert!(
        k.log().matches("ACCT session=").count() == 2,
        "{}",
        k.log_tail(10)
    );
    msrp_tools::process::terminate(k.main_pid()).expect("SIGTERM Kamailio");
    let line = end_line(&k, &b_who.id, Duration::from_secs(10));
    check_end(&line, &b_who, "bob", (1, 7, 4, 40_165), "shutdown", t0, t1);
    drop(b);
}

/// What identifies a session in its session-end line.
struct Who {
    id: String,
    uri: String,
    addr: std::net::SocketAddr,
    transport: &'static str,
}

fn who(s: &Session) -> Who {
    Who {
        id: s.id.clone(),
        uri: s.c.uri.clone(),
        addr: s.c.peer.local_addr(),
        transport: match s.c.peer.transport() {
            Transport::Ws => "ws",
            _ => "tcp",
        },
    }
}

/// Two clients AUTH, exchange messages both ways (one re-chunked by the
/// relay, one sent in two chunks); the list and the session-end route
/// show exactly that; sessions end by close, expiry and shutdown.
#[test]
fn sessions_are_accounted_exactly() {
    accounting(1);
}

/// The same with two workers and A and B on different workers: the
/// worker holding each connection counts both ways (the other worker's
/// messages reach it over the link).
#[test]
fn sessions_are_accounted_exactly_across_workers() {
    accounting(2);
}

/// A WebSocket client's session is accounted as ws (the list and the
/// route say so), with the MSRP bytes it sent and got; the relay re-chunks
/// what it sends to the client.
#[test]
fn websocket_sessions_are_accounted_as_ws() {
    let k = start(RelayOpts::default().listen_transport(Transport::Ws));
    let addr = k.transport_addr(Transport::Ws).expect("ws listener");
    let peer = Peer::connect_ws(addr, &addr.to_string(), "/", None, None)
        .unwrap_or_else(|e| panic!("WebSocket to {addr}: {e}"));
    let host = msrp_tools::ids::random_alnum(10).to_ascii_lowercase();
    let uri = format!(
        "msrp://{host}.invalid:2855/{};ws",
        msrp_tools::ids::session_id()
    );
    let t0 = unix_now();
    let mut w = auth_unchecked(&k, Client { peer, uri }, "wendy", 600);
    let mut b = auth_unchecked(&k, Client::connect(&k), "bob", 600);
    let t1 = unix_now();
    for t in ["ws", "tcp"] {
        let frame = format!("FRAME AUTH transport={t} session=<null> msgs_in=<null>");
        assert!(k.log().contains(&frame), "{frame}\n{}", k.log_tail(10));
    }
    send(&k, &mut w, &mut b, &[b"over ws"]);
    send(&k, &mut b, &mut w, &[&[b'z'; 20_000]]);
    let want = (1, 7, 1, 20_000);
    let block = listed_with(&k, &w.id, want);
    assert_eq!(field(&block, "TRANSPORT"), "ws", "{block}");
    assert_eq!(field(&block, "USER"), "wendy", "{block}");
    let w_who = who(&w);
    assert_eq!(w_who.transport, "ws");
    drop(w);
    let line = end_line(&k, &w_who.id, T);
    check_end(&line, &w_who, "wendy", want, "closed", t0, t1);
    drop(b);
}

/// Kamailio stops with many sessions open (2,000, or `ACCT_SESSIONS`; four
/// connections over two workers, each AUTHed many times): every one of
/// them gets its session-end line with reason shutdown before Kamailio
/// exits. Prints how long the stop took (README Accounting).
#[test]
fn shutdown_ends_every_open_session() {
    let n: usize = std::env::var("ACCT_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let k = start(RelayOpts::default().modparam_int("workers", 2));
    let relay = format!("msrp://127.0.0.1:{};tcp", k.relay_addr().port());
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(&k)).collect();
    for i in 0..n {
        let c = &mut clients[i % 4];
        let req = Request::new("AUTH", &[&relay], &[&c.uri]);
        c.peer.send_request(&req).expect("send AUTH");
        let r = c.peer.read_response(T, &[]).expect("AUTH answer");
        assert_eq!(r.status_code(), Some(200), "{}", r.summary());
    }
    let started = std::time::Instant::now();
    msrp_tools::process::terminate(k.main_pid()).expect("SIGTERM Kamailio");
    let deadline = started + STOP_TIMEOUT;
    while msrp_tools::process::alive(k.main_pid()) {
        assert!(std::time::Instant::now() < deadline, "Kamailio still runs");
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    let log = k.log();
    let ended = log.matches(" reason=shutdown ").count();
    assert_eq!(ended, n, "{}", k.log_tail(10));
    assert_eq!(log.matches("ACCT session=").count(), n);
    eprintln!(
        "{n} sessions open: Kamailio stopped {took:?} after SIGTERM, {ended} session-end lines"
    );
}
