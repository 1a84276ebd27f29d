//! Relaying through a real Kamailio with msrp_relay: start-up, path
//! rewriting (RFC 4976 §6.4), connection reuse, `$msrp(...)` variables.

mod common;

use std::time::Duration;

use common::*;

/// Kamailio starts with the module and shows its MSRP worker(s) over RPC.
#[test]
fn starts_and_lists_msrp_worker() {
    let k = Kamailio::start(RelayOpts::default());
    let procs = k.processes();
    let workers: Vec<_> = procs
        .iter()
        .filter(|(_, d)| d.starts_with("MSRP worker"))
        .collect();
    assert!(
        !workers.is_empty(),
        "no \"MSRP worker\" in core.psx: {procs:?}\nlog tail:\n{}",
        k.log_tail(30)
    );
    for (pid, _) in workers {
        assert!(msrp_tools::process::alive(*pid), "worker {pid} not alive");
    }
}

/// A small SEND from A through the relay to B: paths rewritten, new
/// transaction id, other headers/body/flag unchanged; B's 200 reaches A with
/// A's transaction id.
#[test]
fn small_send_is_relayed_with_rewritten_paths() {
    let k = Kamailio::start(RelayOpts::default());
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let relay = k.relay_uri("relay");
    let mut a = Client::connect(&k);

    let body = b"Hello B, this is A.\r\nSecond line with -------dashes.";
    let mut req = Request::send(&[&relay, &b_uri], &[&a.uri], body);
    req.headers
        .insert(2, ("Failure-Report".into(), "yes".into()));
    a.peer.send_request(&req).expect("A send");

    let mut bp = b
        .accept(T)
        .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
    let got = bp
        .read_frame(T)
        .unwrap_or_else(|e| panic!("B read: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(got.method().as_deref(), Some("SEND"), "{}", got.summary());
    assert_ne!(got.tid(), req.tid, "relay must use a new transaction id");
    assert!(!got.tid().is_empty());
    assert_eq!(got.to_path(), vec![b_uri.clone()], "{}", got.summary());
    assert_eq!(
        got.from_path(),
        vec![relay.clone(), a.uri.clone()],
        "{}",
        got.summary()
    );
    for name in ["Message-ID", "Byte-Range", "Failure-Report", "Content-Type"] {
        assert_eq!(
            got.header(name).as_deref(),
            req.header(name),
            "header {name}: {}",
            got.summary()
        );
    }
    // Other headers keep their order after the two paths.
    assert_eq!(
        got.header_names(),
        [
            "To-Path",
            "From-Path",
            "Message-ID",
            "Byte-Range",
            "Failure-Report",
            "Content-Type"
        ],
        "{}",
        got.summary()
    );
    assert_eq!(got.body, body);
    assert_eq!(got.flag, EndFlag::Complete);

    bp.send_response(&got, 200, Some("OK")).expect("B respond");
    let resp = a
        .peer
        .read_response(T, &["REPORT"])
        .unwrap_or_else(|e| panic!("A read response: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    assert_eq!(resp.tid(), req.tid, "{}", resp.summary());
    assert_eq!(resp.to_path(), vec![a.uri.clone()], "{}", resp.summary());
    assert_eq!(
        resp.from_path().first(),
        Some(&relay),
        "response From-Path must start with the relay: {}",
        resp.summary()
    );
    // Nothing else is owed to A (no duplicate response, no REPORT on success).
    a.peer
        .expect_nothing(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("A: {e}"));
}

/// Several SENDs on one connection, then a second client towards the same B:
/// the relay reuses its one outbound connection to B (RFC 4976 §6.4.2).
#[test]
fn outbound_connection_to_b_is_reused() {
    let k = Kamailio::start(RelayOpts::default());
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");

    let mut a1 = Client::connect(&k);
    let mut bp = relay_small_send(&k, &mut a1, &b, &b_uri, None, b"first");
    for i in 0..4 {
        let body = format!("message {i} from A1");
        bp = relay_small_send(&k, &mut a1, &b, &b_uri, Some(bp), body.as_bytes());
    }
    let mut a2 = Client::connect(&k);
    for i in 0..2 {
        let body = format!("message {i} from A2");
        bp = relay_small_send(&k, &mut a2, &b, &b_uri, Some(bp), body.as_bytes());
    }
    b.expect_no_accept(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("relay opened a second connection to B: {e}"));
    // A1 is still usable after A2's traffic.
    relay_small_send(&k, &mut a1, &b, &b_uri, Some(bp), b"last");
}

/// `$msrp(...)` and `$si` inside the event route: `msrp_reply()` with extra
/// header lines reflects them back.
#[test]
fn msrp_pv_keys_reach_the_route() {
    let route = r#"msrp_reply("200", "OK", "X-Info: $msrp(method)|$msrp(transid)|$msrp(msgid)|$msrp(nexthops)|$si\r\n");
    exit;"#;
    let k = Kamailio::start(RelayOpts::default().route(route));
    let b = Endpoint::bind().expect("bind B");
    let relay = k.relay_uri("relay");
    let mut a = Client::connect(&k);
    let req = Request::send(&[&relay, &b.uri("bob")], &[&a.uri], b"pv test");
    a.peer.send_request(&req).expect("A send");
    let resp = a
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("A read response: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    assert_eq!(resp.tid(), req.tid, "{}", resp.summary());
    assert_eq!(resp.to_path(), vec![a.uri.clone()], "{}", resp.summary());
    let expected = format!(
        "SEND|{}|{}|1|127.0.0.1",
        req.tid,
        req.header("Message-ID").unwrap()
    );
    assert_eq!(
        resp.header("X-Info").as_deref(),
        Some(expected.as_str()),
        "{}",
        resp.summary()
    );
    // The route ended with exit: nothing may reach B.
    b.expect_no_accept(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("B: {e}"));
}

/// Operations: `msrp_relay.cmaplist` shows a session saved by
/// `msrp_cmap_save()` until its connection closes, and the statistics
/// (`stats.get_statistics msrp_relay:`, kex) move with the traffic.
#[test]
fn rpc_cmaplist_and_statistics_follow_traffic() {
    let route = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; }
    msrp_relay();"#;
    let k = Kamailio::start(
        RelayOpts::default()
            .route(route)
            .global(&format!("loadmodule \"{}kex.so\"", kamailio_modules())),
    );
    let stat = relay_stat;
    assert_eq!(stat(&k, "requests_in"), 0);
    // The harness's start-up probe (one connect to the first port, made
    // once the port listened) is accepted by the worker some time later:
    // wait for it, so that it is not counted as one of this test's.
    let deadline = std::time::Instant::now() + T;
    while stat(&k, "connections_accepted") < 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let accepted0 = stat(&k, "connections_accepted");
    assert_eq!(accepted0, 1, "the start-up probe is accepted once");

    // AUTH: the session appears in msrp_relay.cmaplist.
    let mut c = Client::connect(&k);
    let auth = Request {
        method: "AUTH".into(),
        ..Request::send(&[&k.relay_uri("relay")], &[&c.uri], b"")
    };
    let auth = Request { body: None, ..auth };
    c.peer.send_request(&auth).expect("AUTH");
    let resp = c
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("AUTH response: {e}\n{}", k.log_tail(20)));
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    let use_path = resp.header("Use-Path").expect("Use-Path");
    let session = use_path
        .rsplit('/')
        .next()
        .and_then(|s| s.split(';').next())
        .expect("session in Use-Path")
        .to_owned();
    let list = k.kamcmd(&["msrp_relay.cmaplist"]);
    assert!(list.contains(&session), "{session} not in:\n{list}");
    assert!(list.contains(&c.uri), "{} not in:\n{list}", c.uri);

    // A relayed SEND moves the counters.
    let b = Endpoint::bind().expect("bind B");
    let b_uri = b.uri("bob");
    let mut a = Client::connect(&k);
    let bp = relay_small_send(&k, &mut a, &b, &b_uri, None, b"counted");
    assert!(stat(&k, "requests_in") >= 2);
    assert_eq!(stat(&k, "requests_forwarded"), 1);
    assert_eq!(stat(&k, "send_in"), 1);
    assert_eq!(stat(&k, "auth_in"), 1);
    assert_eq!(stat(&k, "reports_sent"), 0);
    assert!(stat(&k, "bytes_in") > 0 && stat(&k, "bytes_out") > 0);
    assert_eq!(stat(&k, "connections_accepted") - accepted0, 2);
    assert_eq!(stat(&k, "connections_opened"), 1);
    // A, the AUTHed client and the connection to B (+ the probe if its close
    // is not processed yet)
    let active = stat(&k, "connections_active");
    assert!((3..=4).contains(&active), "connections_active {active}");

    // msrp_relay.connections lists A (in) and the connection to B (out).
    let conns = k.kamcmd(&["msrp_relay.connections"]);
    let a_port = a.peer.local_addr().port();
    assert!(
        conns.contains(&format!("127.0.0.1:{a_port}")) && conns.contains("DIRECTION: in"),
        "A not listed:\n{conns}"
    );
    let b_hostport = b_uri
        .trim_start_matches("msrp://")
        .split('/')
        .next()
        .unwrap_or_default();
    assert!(
        conns.contains("DIRECTION: out") && conns.contains(b_hostport),
        "the connection to B not listed:\n{conns}"
    );

    // The AUTHed connection closes: its session leaves the list.
    drop(c);
    let deadline = std::time::Instant::now() + T;
    loop {
        let list = k.kamcmd(&["msrp_relay.cmaplist"]);
        if !list.contains(&session) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{session} still listed after close:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(bp);
}

/// `{msrpuri.key}` on `$msrp(nexthop)` gives each part of the URI.
#[test]
fn msrpuri_transformation_fields() {
    let route = r#"msrp_reply("200", "OK", "X-Uri: $(msrp(nexthop){msrpuri.scheme})|$(msrp(nexthop){msrpuri.user})|$(msrp(nexthop){msrpuri.userinfo})|$(msrp(nexthop){msrpuri.host})|$(msrp(nexthop){msrpuri.port})|$(msrp(nexthop){msrpuri.session})|$(msrp(nexthop){msrpuri.proto})|$(msrp(nexthop){msrpuri.params})\r\n");
    exit;"#;
    let k = Kamailio::start(RelayOpts::default().route(route));
    let mut a = Client::connect(&k);
    let next = "msrps://bob:secret@example.net:9001/sess42;tcp;foo=bar";
    let req = Request::send(&[&k.relay_uri("relay"), next], &[&a.uri], b"uri");
    a.peer.send_request(&req).expect("A send");
    let resp = a
        .peer
        .read_response(T, &[])
        .unwrap_or_else(|e| panic!("A read response: {e}\n{}", k.log_tail(20)));
    assert_eq!(
        resp.header("X-Uri").as_deref(),
        Some("msrps|bob|bob:secret|example.net|9001|sess42|tcp|foo=bar"),
        "{}",
        resp.summary()
    );
}
