use super::*;

fn cfg(listen: &str, aliases: &[&str], use_path: Option<&str>) -> Config {
    let mut c = crate::testing::config(Vec::new());
    c.listen = vec![crate::config::parse_listen(listen).unwrap()];
    c.aliases = aliases.iter().map(|a| a.to_string()).collect();
    c.use_path_addr = use_path.map(str::to_string);
    c
}

#[test]
fn own_uris() {
    let c = cfg("127.0.0.1:2855", &[], None);
    assert!(is_own_uri(&c, b"msrp://127.0.0.1:2855/x;tcp"));
    assert!(!is_own_uri(&c, b"msrp://127.0.0.2:2855/x;tcp"));
    assert!(!is_own_uri(&c, b"msrp://127.0.0.1:2856/x;tcp"));
    assert!(is_own_uri(&c, b"msrp://localhost:2855/x;tcp"));
    assert!(!is_own_uri(&c, b"not a uri"));
    let c = cfg("0.0.0.0:2855", &["relay.example"], Some("pub.example:9000"));
    assert!(is_own_uri(&c, b"msrp://10.1.2.3:2855/x;tcp"));
    assert!(is_own_uri(&c, b"msrp://RELAY.example:1234/x;tcp"));
    assert!(is_own_uri(&c, b"msrp://pub.example:9000/s;tcp"));
    assert!(!is_own_uri(&c, b"msrp://other.example:2855/x;tcp"));
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Sessions: "ua" bound to connection 1 (A), "ub" to connection 2 (B)
/// of this worker,
/// ... and "uc" to connection 7 of worker 1.
fn sessions(s: &str) -> Option<Bound> {
    match s {
        "ua" => Some(Bound::Here(1)),
        "ub" => Some(Bound::Here(2)),
        "uc" => Some(Bound::Worker(1, 7)),
        _ => None,
    }
}

#[test]
fn plans_rfc_4976_flows() {
    let c = cfg("127.0.0.1:2855", &[], None);
    let (ua, ub) = (
        b("msrp://127.0.0.1:2855/ua;tcp"),
        b("msrp://127.0.0.1:2855/ub;tcp"),
    );
    let (bb, x) = (
        b("msrp://10.0.0.2:7000/b;tcp"),
        b("msrp://10.0.0.9:7000/x;tcp"),
    );
    let plan = |to: &[Bytes], from_conn| super::plan(&c, to, from_conn, sessions);
    // [U_B, B] from A: over B's session
    assert_eq!(
        plan(&[ub.clone(), bb.clone()], 1),
        Ok(Plan {
            hop: Hop::Session(2),
            own: 1
        })
    );
    // [U_A, U_B, B] from A: both relay URIs stripped, over B's session
    assert_eq!(
        plan(&[ua.clone(), ub.clone(), bb.clone()], 1),
        Ok(Plan {
            hop: Hop::Session(2),
            own: 2
        })
    );
    // [U_A, X] from A: A's own session, on to X
    assert_eq!(
        plan(&[ua.clone(), x.clone()], 1),
        Ok(Plan {
            hop: Hop::Uri(x.clone()),
            own: 1
        })
    );
    // a relay URI without a known session, then X
    let plain = b("msrp://127.0.0.1:2855/whatever;tcp");
    assert_eq!(
        plan(&[plain.clone(), x.clone()], 5),
        Ok(Plan {
            hop: Hop::Uri(x.clone()),
            own: 1
        })
    );
    // two plain relay URIs: never a connection to itself
    assert_eq!(
        plan(&[plain.clone(), plain.clone(), x.clone()], 5),
        Ok(Plan {
            hop: Hop::Uri(x),
            own: 2
        })
    );
    // a session another worker holds, first or after the sender's own
    let uc = b("msrp://127.0.0.1:2855/uc;tcp");
    assert_eq!(
        plan(&[uc.clone(), bb.clone()], 1),
        Ok(Plan {
            hop: Hop::Remote(1, 7),
            own: 1
        })
    );
    assert_eq!(
        plan(&[ua.clone(), uc, bb.clone()], 1),
        Ok(Plan {
            hop: Hop::Remote(1, 7),
            own: 2
        })
    );
    // only this relay's URIs: no next hop
    assert!(plan(std::slice::from_ref(&ua), 1).is_err());
    assert!(plan(&[ua, plain], 1).is_err());
    // another host on the same port is not this relay when it is a
    // next hop
    let other = b("msrp://relay2.example:2855/s;tcp");
    assert_eq!(
        plan(&[ub.clone(), bb.clone()], 2),
        Ok(Plan {
            hop: Hop::Uri(bb),
            own: 1
        })
    );
    assert_eq!(
        plan(&[b("msrp://127.0.0.1:2855/r;tcp"), other.clone()], 1),
        Ok(Plan {
            hop: Hop::Uri(other),
            own: 1
        })
    );
}

#[test]
fn plans_with_names_of_this_relay() {
    let c = cfg(
        "0.0.0.0:2855",
        &["relay.example", "10.1.2.3:2855"],
        Some("msrp://pub.example:9000"),
    );
    let x = b("msrp://10.0.0.9:7000/x;tcp");
    let plan = |to: &[Bytes]| super::plan(&c, to, 1, sessions);
    // an alias, an alias host:port, the Use-Path authority, a loopback
    // URI of the wildcard listener: all this relay's, in any position
    for own in [
        "msrp://RELAY.example:2855/s;tcp",
        "msrp://10.1.2.3:2855/s;tcp",
        "msrp://pub.example:9000/s;tcp",
        "msrp://127.0.0.1:2855/s;tcp",
    ] {
        assert_eq!(
            plan(&[b("msrp://relay.example:2855/ua;tcp"), b(own), x.clone()]),
            Ok(Plan {
                hop: Hop::Uri(x.clone()),
                own: 2
            }),
            "{own}"
        );
    }
    // another name, or an alias's address on another port: a next hop
    for other in [
        "msrp://relay2.example:2855/s;tcp",
        "msrp://10.1.2.3:2856/s;tcp",
    ] {
        assert_eq!(
            plan(&[b("msrp://relay.example:2855/r;tcp"), b(other), x.clone()]),
            Ok(Plan {
                hop: Hop::Uri(b(other)),
                own: 1
            }),
            "{other}"
        );
    }
}

#[test]
fn session_parts() {
    assert_eq!(session_of(b"msrp://h:1/abc;tcp"), Some(&b"abc"[..]));
    assert_eq!(session_of(b"msrp://h:1/abc"), Some(&b"abc"[..]));
    assert_eq!(session_of(b"msrp://h:1;tcp"), None);
    assert_eq!(session_of(b"msrp://h:1/;tcp"), None);
}

#[test]
fn targets_literals_names_and_refuses_other_transports() {
    let addr = |h: NextHop| Ok(Target::Addr(h));
    assert_eq!(
        target(b"msrp://127.0.0.1:9/s;tcp"),
        addr(NextHop::tcp(SocketAddr::from(([127, 0, 0, 1], 9))))
    );
    assert_eq!(
        target(b"msrp://[::1]/s;tcp"),
        addr(NextHop::tcp("[::1]:2855".parse().unwrap()))
    );
    assert_eq!(
        target(b"msrp://127.0.0.1:9/s;udp"),
        Err(RouteError::Transport("udp".to_string()))
    );
    assert_eq!(
        target(b"msrp://abc.invalid:9/s;ws"),
        Err(RouteError::WebSocketClient)
    );
    assert_eq!(
        target(b"msrps://127.0.0.1:9/s;tcp"),
        addr(NextHop {
            addr: "127.0.0.1:9".parse().unwrap(),
            tls: Some("127.0.0.1".to_string())
        })
    );
    // a name is looked up off the loop: lower case, port and TLS kept
    assert_eq!(
        target(b"msrps://Relay.Example.COM/s;tcp"),
        Ok(Target::Name {
            name: "relay.example.com".to_string(),
            port: 2855,
            secure: true
        })
    );
    assert_eq!(
        Target::at("relay.example.com", 2855, true, [10, 0, 0, 1].into()),
        NextHop {
            addr: "10.0.0.1:2855".parse().unwrap(),
            tls: Some("relay.example.com".to_string())
        }
    );
}

#[test]
fn finds_complete_bodies() {
    assert_eq!(
        complete_body(b"hello\r\n-------t1$\r\n", b"t1"),
        Some((Bytes::from_static(b"hello"), b'$'))
    );
    assert_eq!(
        complete_body(b"-------t1+\r\n", b"t1"),
        Some((Bytes::new(), b'+'))
    );
    assert_eq!(complete_body(b"hello\r\n---", b"t1"), None);
    // the end-line of another tid that starts with this one is content
    assert_eq!(
        complete_body(b"a\r\n-------t12$\r\nb\r\n-------t1#\r\n", b"t1"),
        Some((Bytes::from_static(b"a\r\n-------t12$\r\nb"), b'#'))
    );
    // an end-line still missing its CRLF: the body is not complete yet
    assert_eq!(complete_body(b"hello\r\n-------t1$", b"t1"), None);
}

#[test]
fn route_errors_read_as_the_log_lines_always_did() {
    let why = |uri: &[u8]| target(uri).unwrap_err().to_string();
    assert_eq!(
        why(b"msrp://127.0.0.1:9/s;sctp"),
        "transport sctp not supported"
    );
    assert_eq!(
        why(b"msrp://h:9/s;wss"),
        "a WebSocket client is reached only over its own connection, \
         and no session of it is known here"
    );
    assert_eq!(
        why(b"http://h/s;tcp"),
        msrp_core::UriError::BadScheme.to_string()
    );
    assert_eq!(RouteError::EmptyToPath.to_string(), "empty To-Path");
}

/// `own_hops` is `path::forward` applied once per own URI (at least once).
#[test]
fn own_hops_move_each_own_uri_to_from_path() {
    let uri = |i: usize| Bytes::from(format!("msrp://h{i}:1/s{i};tcp"));
    for to_len in 1..5 {
        for own in 0..5 {
            let req = Request {
                is_send: true,
                to: (0..to_len).map(uri).collect(),
                from: vec![uri(10), uri(11)],
                range: None,
                failure_report: FailureReport::Yes,
                message_id: Bytes::new(),
            };
            let mut want = Some((req.to.clone(), req.from.clone()));
            for _ in 0..own.max(1) {
                want = want.and_then(|(to, from)| {
                    let first = to.first()?.clone();
                    msrp_core::path::forward(&to, &from, &first)
                });
            }
            assert_eq!(own_hops(&req, own), want, "{to_len} URIs, {own} own");
        }
    }
}
