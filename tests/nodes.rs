//! Several relay nodes, the RFC 4976 way (issue 19 item 4): three
//! instances of the shipped `cfg/kamailio-tls.cfg` on 127.0.0.2, .3 and .4,
//! each with only its `MSRP_NODE` (listen address and Use-Path host) and
//! `CERTS_DIR` (its own certificate, signed by the test CA every node
//! trusts) set. Nothing is shared between them: each hands out Use-Paths
//! naming itself, and a SEND from a client of node 1 to a client of node 2
//! goes node 1 -> node 2 over mutual TLS (RFC 4976 §9). When node 2 dies
//! with a message in flight, the sender gets its REPORT from node 1; its
//! peer re-AUTHs at node 3 and new SENDs reach it there.

mod common;
#[path = "common/digest.rs"]
mod digest;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use msrp_tools::tls::{self, Certs};

use common::fakedns::{FakeDns, Zone};
use common::*;

/// The password the shipped cfg checks every user's Digest against.
const PASSWD: &str = "xyz123";

/// How long to watch for something that must not arrive.
const QUIET: Duration = Duration::from_millis(300);

/// Node `n` (1, 2, 3) on 127.0.0.(n+1): the shipped TLS cfg with the node's
/// own certificate set (`make-certs.sh --node nodeN IP:127.0.0.(n+1)`).
fn start_node(base: &Certs, n: u8) -> Kamailio {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, n + 1));
    let certs = base
        .node(&format!("node{n}"), &format!("IP:{ip}"))
        .unwrap_or_else(|e| panic!("certificates of node {n}: {e}"));
    start_shipped_tls_node(&certs, ip)
}

/// The node's `tls:` listener (the shipped cfg's first, on the harness's
/// first MSRP port).
fn tls_addr(k: &Kamailio) -> SocketAddr {
    k.relay_addr()
}

/// A user's client on node `k`'s `tls:` listener, presenting the test
/// client certificate (the shipped listener requires one).
fn client(base: &Certs, k: &Kamailio) -> Client {
    let cfg = tls::client_config(&base.ca(), Some(&base.client())).expect("client config");
    let peer = Peer::connect_tls(tls_addr(k), &k.ip().to_string(), &cfg)
        .unwrap_or_else(|e| panic!("TLS to {}: {e}\n{}", tls_addr(k), k.log_tail(20)));
    let uri = format!(
        "msrps://{}/{};tcp",
        peer.local_addr(),
        msrp_tools::ids::session_id()
    );
    Client { peer, uri }
}

/// A client AUTHed at one node, with the Use-Path it was given.
struct User {
    c: Client,
    use_path: String,
}

/// AUTH with Digest (RFC 4976 §5, the shipped cfg's credentials check):
/// 401 with a challenge, then 200 with a Use-Path naming the node (its
/// address, or `name`).
fn auth(k: &Kamailio, mut c: Client, user: &str, name: Option<&str>) -> User {
    let relay = format!("msrps://{};tcp", tls_addr(k));
    let mut transact = |hdrs: Vec<(String, String)>| {
        let mut req = Request::new("AUTH", &[&relay], &[&c.uri]);
        req.headers.extend(hdrs);
        c.peer.send_request(&req).expect("send AUTH");
        let r = c
            .peer
            .read_response(T, &[])
            .unwrap_or_else(|e| panic!("no answer to AUTH at {relay}: {e}\n{}", k.log_tail(20)));
        assert_eq!(r.tid(), req.tid, "{}", r.summary());
        r
    };
    let r = transact(Vec::new());
    assert_eq!(r.status_code(), Some(401), "{}", r.summary());
    let chal = digest::params(&r.header("WWW-Authenticate").expect("WWW-Authenticate"));
    let answer = digest::authorization(&chal, user, PASSWD, &relay, 1);
    let r = transact(vec![("Authorization".into(), answer)]);
    assert_eq!(r.status_code(), Some(200), "{}", r.summary());
    let use_path = r.header("Use-Path").expect("Use-Path").trim().to_owned();
    let own = match name {
        Some(n) => format!("msrps://{n}:{}/", tls_addr(k).port()),
        None => format!("msrps://{}/", tls_addr(k)),
    };
    assert!(
        use_path.starts_with(&own) && use_path.ends_with(";tcp"),
        "Use-Path {use_path} does not name node {own}"
    );
    User { c, use_path }
}

/// `from` sends to `to` by both Use-Paths (RFC 4976 §6.4: To-Path <U_from>
/// <U_to> <to>): `to` gets it over its AUTHed connection with From-Path
/// <U_to> <U_from> <from>, answers 200, and `from` gets one 200.
fn send(from: &mut User, to: &mut User, body: &[u8], nodes: &[&Kamailio]) {
    let req = Request::send(
        &[&from.use_path, &to.use_path, &to.c.uri],
        &[&from.c.uri],
        body,
    );
    from.c.peer.send_request(&req).expect("send SEND");
    let got = to.c.peer.read_frame(T).unwrap_or_else(|e| {
        let logs: Vec<String> = nodes.iter().map(|k| k.log_tail(15)).collect();
        panic!("SEND did not arrive: {e}\n{}", logs.join("\n---\n"))
    });
    assert_eq!(got.method().as_deref(), Some("SEND"), "{}", got.summary());
    assert_eq!(got.to_path(), vec![to.c.uri.clone()], "{}", got.summary());
    let want_from = vec![
        to.use_path.clone(),
        from.use_path.clone(),
        from.c.uri.clone(),
    ];
    assert_eq!(got.from_path(), want_from, "{}", got.summary());
    assert_eq!(
        got.header("Message-ID").as_deref(),
        req.header("Message-ID")
    );
    assert_eq!(got.body, body);
    to.c.peer.send_hop_response(&got, 200, None).expect("200");
    let r = from.c.peer.read_response(T, &[]).expect("the sender's 200");
    assert_eq!((r.status_code(), r.tid()), (Some(200), req.tid));
}

/// `msrp_relay.connections` of `k`: one map of fields per connection.
fn connections(k: &Kamailio) -> Vec<HashMap<String, String>> {
    let out = k.kamcmd(&["msrp_relay.connections"]);
    out.split('{')
        .skip(1)
        .map(|block| {
            block
                .lines()
                .filter_map(|l| l.trim().split_once(": "))
                .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
                .collect()
        })
        .collect()
}

/// `k` holds an outgoing TLS connection to `to`'s `tls:` listener, and no
/// outgoing connection of any other transport.
fn assert_dials_only_tls(k: &Kamailio, to: &Kamailio) {
    let conns = connections(k);
    let out: Vec<_> = conns
        .iter()
        .filter(|c| c.get("DIRECTION").map(String::as_str) == Some("out"))
        .collect();
    let peer = tls_addr(to).to_string();
    assert!(
        out.iter()
            .any(|c| c["TRANSPORT"] == "tls" && c["PEER"] == peer),
        "no outgoing TLS connection to {peer}: {conns:?}"
    );
    assert!(
        out.iter().all(|c| c["TRANSPORT"] == "tls"),
        "an outgoing connection that is not TLS: {conns:?}"
    );
}

/// Whether a TLS peer presenting `id` (or nothing) gets a SEND for
/// `target`'s session answered on node `k`.
fn served_on(k: &Kamailio, base: &Certs, id: Option<&tls::TlsFiles>, target: &User) -> bool {
    let cfg = tls::client_config(&base.ca(), id).expect("client config");
    Peer::connect_tls(tls_addr(k), &k.ip().to_string(), &cfg)
        .and_then(|mut p| {
            let req = Request::send(
                &[&target.use_path, &target.c.uri],
                &["msrps://127.0.0.9:2856/impostor;tcp"],
                b"from nowhere",
            );
            p.send_request(&req)?;
            p.read_frame(T)
        })
        .is_ok()
}

/// The whole story of the issue: A AUTHed at node 1, B at node 2, every
/// flow over node 1 -> node 2 (and back) mutual TLS; a peer without a
/// certificate of the CA is refused; node 2 killed with a message in
/// flight gives A exactly one REPORT 408 from node 1; B re-AUTHs at node 3
/// and new SENDs reach it there.
#[test]
fn three_nodes_chain_over_mutual_tls_and_survive_a_node() {
    let base = Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"));
    let n1 = start_node(&base, 1);
    let mut n2 = start_node(&base, 2);
    let n3 = start_node(&base, 3);
    let mut a = auth(&n1, client(&base, &n1), "alice", None);
    let mut b = auth(&n2, client(&base, &n2), "bob", None);

    // both ways, each node dialling the other's Use-Path host over TLS
    send(&mut a, &mut b, b"from A at node 1", &[&n1, &n2]);
    send(&mut b, &mut a, b"from B at node 2", &[&n1, &n2]);
    assert_dials_only_tls(&n1, &n2);
    assert_dials_only_tls(&n2, &n1);
    a.c.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("A got more than its answers: {e}"));

    // node 2 serves only peers with a certificate of the CA (the shipped
    // `verify_client=required`): a relay presenting none, or one of
    // another CA, is refused and B gets nothing
    let failures = relay_stat(&n2, "tls_handshake_failures");
    assert!(
        !served_on(&n2, &base, None, &b),
        "node 2 served a peer without a client certificate"
    );
    assert!(
        !served_on(&n2, &base, Some(&base.other()), &b),
        "node 2 served a peer whose certificate is of another CA"
    );
    assert!(relay_stat(&n2, "tls_handshake_failures") >= failures + 2);
    b.c.peer
        .expect_nothing(QUIET)
        .unwrap_or_else(|e| panic!("B got a refused peer's SEND: {e}"));

    let mut a = kill_mid_message(a, &mut b, &n1, &mut n2);
    to_dead_node(&mut a, &b, &n1);

    // B's client finds node 2 gone, AUTHs at node 3 (and would tell A its
    // new path in SIP); A's node dials node 3
    let mut b3 = auth(&n3, client(&base, &n3), "bob", None);
    send(&mut a, &mut b3, b"to B at node 3", &[&n1, &n3]);
    send(&mut b3, &mut a, b"from B at node 3", &[&n1, &n3]);
    assert_dials_only_tls(&n1, &n3);
    drop(b);
}

/// A's next two frames, a response and a request (the REPORT), in either
/// order.
fn response_and_report(a: &mut User, n1: &Kamailio) -> (ReceivedFrame, ReceivedFrame) {
    let mut frames = [T, T].map(|t| {
        a.c.peer
            .read_frame(t)
            .unwrap_or_else(|e| panic!("A: a response and a REPORT: {e}\n{}", n1.log_tail(20)))
    });
    frames.sort_by_key(|f| f.method().is_some());
    let [response, report] = frames;
    (response, report)
}

/// A SEND to a Use-Path of the dead node: A gets node 1's 200 and a
/// REPORT `000 408 Next Hop Unreachable` (its host refuses).
fn to_dead_node(a: &mut User, b: &User, n1: &Kamailio) {
    let req = Request::send(
        &[&a.use_path, &b.use_path, &b.c.uri],
        &[&a.c.uri],
        b"too late",
    );
    a.c.peer.send_request(&req).expect("send SEND");
    let (response, report) = response_and_report(a, n1);
    assert_eq!(
        (response.status_code(), response.tid()),
        (Some(200), req.tid.clone()),
        "{}",
        response.summary()
    );
    assert_eq!(
        report.header("Status").as_deref(),
        Some("000 408 Next Hop Unreachable"),
        "{}",
        report.summary()
    );
    assert_eq!(
        report.header("Message-ID").as_deref(),
        req.header("Message-ID")
    );
}

/// A streams 16 MiB to B through node 1 and node 2; B takes 1 MiB of
/// it, then stops reading, so the rest waits in A's flow; node 2 is
/// SIGKILLed. A gets from node 1 a 413 for the chunk it was still sending
/// (a 200 if node 1 had all of it by then) and exactly one REPORT `408`
/// (Failure-Report yes) whose Byte-Range ends where node 1's receipt did.
fn kill_mid_message(a: User, b: &mut User, n1: &Kamailio, n2: &mut Kamailio) -> User {
    // mostly still with A or in the kernel buffers between A, node 1,
    // node 2 and B (~11 MiB) when node 2 dies; under the 16 MiB a sender
    // may go on sending after its 413 (this one does not stop)
    const LEN: u64 = 16 * 1024 * 1024;
    const B_TAKES: u64 = 1024 * 1024;
    let req = Request::send_streaming(&[&a.use_path, &b.use_path, &b.c.uri], &[&a.c.uri], LEN)
        .with_header("Failure-Report", "yes");
    let User { c, use_path } = a;
    let a_uri = c.uri;
    let sender = send_in_background(c.peer, &req, 19, LEN);
    let mut seen = 0u64;
    while seen < B_TAKES {
        let f = b.c.peer.read_frame_hashed(T).unwrap_or_else(|e| {
            panic!(
                "B after {seen} bytes: {e}\n{}\n---\n{}",
                n1.log_tail(15),
                n2.log_tail(15)
            )
        });
        assert_eq!(f.header("Message-ID").as_deref(), req.header("Message-ID"));
        seen += f.body_len;
        b.c.peer.send_hop_response(&f, 200, None).expect("200");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(n2.is_running(), "node 2 stopped by itself");
    msrp_tools::process::kill_group(n2.main_pid()).expect("SIGKILL node 2");
    let (peer, sent) = sender.join().expect("sender thread");
    let mut a = User {
        c: Client { peer, uri: a_uri },
        use_path,
    };
    sent.unwrap_or_else(|e| panic!("A's streaming send: {e}\n{}", n1.log_tail(20)));
    let (response, report) = response_and_report(&mut a, n1);
    assert_eq!(response.tid(), req.tid, "{}", response.summary());
    assert_eq!(
        report.method().as_deref(),
        Some("REPORT"),
        "{}",
        report.summary()
    );
    assert_eq!(
        report.header("Message-ID").as_deref(),
        req.header("Message-ID")
    );
    let status = report.header("Status").unwrap_or_default();
    assert!(status.starts_with("000 408 "), "{}", report.summary());
    assert_eq!(
        report.from_path(),
        vec![a.use_path.clone()],
        "{}",
        report.summary()
    );
    let range = report.header("Byte-Range").unwrap_or_default();
    let end: u64 = range
        .strip_prefix("1-")
        .and_then(|r| r.split_once('/'))
        .filter(|(_, total)| *total == LEN.to_string())
        .and_then(|(end, _)| end.parse().ok())
        .unwrap_or_else(|| panic!("Byte-Range {range:?} of the REPORT"));
    // node 1 answers 413 while the chunk is still arriving, 200 once it
    // had all of it (then still in flight beyond node 1)
    let code = response.status_code();
    assert!(
        (code == Some(413) && (seen..LEN).contains(&end)) || (code == Some(200) && end == LEN),
        "{} with Byte-Range {range}: B took {seen}, the message has {LEN}",
        response.summary()
    );
    eprintln!(
        "node 2 killed after B took {seen} bytes: A got {}, then {status}, Byte-Range {range}",
        code.unwrap_or_default()
    );
    a.c.peer
        .expect_nothing(Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("A got more than one 413 and one REPORT: {e}"));
    a
}

/// A port free on every one of `ips` (as the same port on several hosts).
fn common_port(ips: &[Ipv4Addr]) -> u16 {
    for _ in 0..50 {
        let p = free_tcp_port_on(ips[0].into());
        if ips[1..]
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, p)).is_ok())
        {
            return p;
        }
    }
    panic!("no port free on all of {ips:?}");
}

/// Nodes named in DNS, on one port (as on several hosts): the shipped cfg
/// on 127.0.0.2 and .3 with the same `tls:` port, `use_path_addr`
/// node1.test / node2.test (the cfg's public name in place of MSRP_NODE),
/// names resolved by a fake DNS server (`dns_server`), each certificate
/// carrying its node's name. A and B chat both ways, node 1 dialling
/// `msrps://node2.test:PORT` and node 2 `msrps://node1.test:PORT`: another
/// node's name on the same port is not taken for this relay's (the first
/// To-Path URI may be any name on a listen port, a next hop only a name the
/// relay was given, `route::is_named_own`).
#[test]
fn nodes_named_in_dns_on_one_port() {
    let base = Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"));
    let ips = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    let names = ["node1.test", "node2.test"];
    let dns = FakeDns::start(&[
        (names[0], Zone::A(ips[0], 60)),
        (names[1], Zone::A(ips[1], 60)),
    ]);
    let port = common_port(&ips);
    let nodes: Vec<Kamailio> = ips
        .iter()
        .zip(names)
        .map(|(ip, name)| {
            let certs = base
                .node(&format!("named-{name}"), &format!("IP:{ip}, DNS:{name}"))
                .unwrap_or_else(|e| panic!("certificates of {name}: {e}"));
            let named = format!(
                "modparam(\"msrp_relay\", \"use_path_addr\", \"{name}\")\n\
                 modparam(\"msrp_relay\", \"dns_server\", \"{}\")",
                dns.addr()
            );
            let shipped = r#"modparam("msrp_relay", "use_path_addr", "MSRP_NODE")"#;
            start_shipped_tls_node_at(&certs, (*ip).into(), port, &[(shipped, named)])
        })
        .collect();
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let mut a = auth(n1, client(&base, n1), "alice", Some(names[0]));
    let mut b = auth(n2, client(&base, n2), "bob", Some(names[1]));
    send(&mut a, &mut b, b"by name to node 2", &[n1, n2]);
    send(&mut b, &mut a, b"by name to node 1", &[n1, n2]);
    assert_dials_only_tls(n1, n2);
    assert_dials_only_tls(n2, n1);
    assert!(
        dns.queries(names[1]) >= 1,
        "node 1 did not look node2.test up"
    );
}
