use super::*;

/// A configuration from `params` after `listen tcp:127.0.0.1:2855`.
pub(super) fn built(params: &[(Param, ParamValue<'_>)]) -> Result<Config, Vec<ConfigError>> {
    let mut b = ConfigBuilder::new();
    b.set(Param::Listen, ParamValue::Str("tcp:127.0.0.1:2855"))
        .expect("listen");
    for (p, v) in params {
        b.set(*p, *v).expect("set");
    }
    b.build()
}

fn errors(params: &[(Param, ParamValue<'_>)]) -> Vec<String> {
    match built(params) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn defaults() {
    let c = built(&[]).expect("defaults are valid");
    assert_eq!(c.listen[0].addr, "127.0.0.1:2855".parse().expect("addr"));
    assert!(c.aliases.is_empty());
    assert_eq!(c.max_chunk_size, 16384);
    assert_eq!(c.workers, 1);
    assert_eq!(c.queue_high, 512 * 1024);
    assert_eq!(c.queue_low, 128 * 1024);
    assert_eq!((c.so_rcvbuf, c.so_sndbuf), (0, 0));
    assert_eq!(c.max_connections, 65_536);
    assert_eq!(c.limits.max_head, 65536);
    assert_eq!(c.limits.max_head, msrp_core::Limits::default().max_head);
    assert_eq!(c.transaction_timeout, Duration::from_secs(30));
    assert_eq!(c.max_transactions, 16384);
    assert_eq!(c.first_request_timeout, Duration::from_secs(30));
    assert_eq!(c.idle_timeout, Duration::from_secs(3600));
    assert_eq!((c.auth_min_expires, c.auth_max_expires), (60, 3600));
    assert_eq!(c.use_path_addr, None);
    assert_eq!(c.event_callback, None);
    assert!(!c.test_mode);
    // the named constants follow the declaration
    assert_eq!(DEFAULT_MAX_CHUNK_SIZE, c.max_chunk_size);
    assert_eq!(DEFAULT_WORKERS, c.workers);
    assert_eq!((MIN_MAX_CHUNK_SIZE, MAX_MAX_CHUNK_SIZE), (2048, 16 << 20));
    assert_eq!(MAX_WORKERS, 64);
}

#[test]
fn values_reach_their_fields() {
    use ParamValue::{Int, Str};
    let c = built(&[
        (Param::Alias, Str(" Relay.Example.NET ")),
        (Param::Alias, Str("192.0.2.1:2855")),
        (Param::Listen, Str("tcp:[::1]:2856")),
        (Param::MaxChunkSize, Int(2048)),
        (Param::Workers, Int(64)),
        (Param::QueueHighWatermark, Int(65536)),
        (Param::QueueLowWatermark, Int(0)),
        (Param::SocketRcvbuf, Int(4096)),
        (Param::SocketSndbuf, Int(8192)),
        (Param::MaxConnections, Int(2)),
        (Param::MaxHeaderSize, Int(1024)),
        (Param::TransactionTimeout, Int(3600)),
        (Param::MaxTransactions, Int(16)),
        (Param::FirstRequestTimeout, Int(0)),
        (Param::IdleTimeout, Int(604_800)),
        (Param::AuthMinExpires, Int(10)),
        (Param::AuthMaxExpires, Int(20)),
        (Param::UsePathAddr, Str(" relay.example.net:2855 ")),
        (Param::EventCallback, Str(" ksr_msrp_event ")),
        (Param::TestMode, Int(1)),
        (Param::CmapSize, Int(-5)),
        (Param::TimerInterval, Int(10)),
        (Param::Sipmsg, Int(1)),
    ])
    .expect("valid");
    assert_eq!(c.aliases, vec!["relay.example.net", "192.0.2.1:2855"]);
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.listen[1].addr, "[::1]:2856".parse().expect("addr"));
    assert_eq!(c.max_chunk_size, 2048);
    assert_eq!(c.workers, 64);
    assert_eq!((c.queue_high, c.queue_low), (65536, 0));
    assert_eq!((c.so_rcvbuf, c.so_sndbuf), (4096, 8192));
    assert_eq!(c.max_connections, 2);
    assert_eq!(c.limits.max_head, 1024);
    assert_eq!(c.limits.max_line, 1024, "max_line never above max_head");
    assert_eq!(c.transaction_timeout, Duration::from_secs(3600));
    assert_eq!(c.max_transactions, 16);
    assert_eq!(c.first_request_timeout, Duration::ZERO);
    assert_eq!(c.idle_timeout, Duration::from_secs(604_800));
    assert_eq!((c.auth_min_expires, c.auth_max_expires), (10, 20));
    assert_eq!(c.use_path_addr.as_deref(), Some("relay.example.net:2855"));
    assert_eq!(c.event_callback.as_deref(), Some("ksr_msrp_event"));
    assert!(c.test_mode);
    // the last value wins; an empty event_callback means the event route
    let c = built(&[
        (Param::Workers, Int(3)),
        (Param::Workers, Int(4)),
        (Param::EventCallback, Str("f")),
        (Param::EventCallback, Str("  ")),
    ])
    .expect("valid");
    assert_eq!(c.workers, 4);
    assert_eq!(c.event_callback, None);
}

#[test]
fn special_value_zero_disables_rechunking() {
    let c = built(&[(Param::MaxChunkSize, ParamValue::Int(0))]).expect("0 allowed");
    assert_eq!(c.max_chunk_size, 0);
    assert_eq!(
        errors(&[(Param::MaxChunkSize, ParamValue::Int(1))]),
        ["msrp_max_chunk_size = 1 is out of range (0 or 2048..=16777216)"]
    );
    assert_eq!(
        errors(&[(Param::MaxChunkSize, ParamValue::Int(16_777_217))]),
        ["msrp_max_chunk_size = 16777217 is out of range (0 or 2048..=16777216)"]
    );
}

#[test]
fn every_int_bound_is_enforced() {
    for &p in Param::ALL {
        let d = p.decl();
        let ParamKind::Int(spec) = d.kind else {
            continue;
        };
        for ok in [spec.min, spec.max, spec.default] {
            let r = built(&[(p, ParamValue::Int(ok))]);
            // a bound can invert the watermarks or the AUTH bounds:
            // that is not a range error of this parameter
            if let Err(e) = r {
                assert!(
                    e.iter()
                        .all(|e| !matches!(e, ConfigError::OutOfRange { name, range, .. }
                        if *name == d.name && *range == spec.range_text())),
                    "{} = {ok}: {e:?}",
                    d.name
                );
            }
        }
        for bad in [spec.min - 1, spec.max + 1, i64::MIN, i64::MAX] {
            if spec.allows(bad) {
                continue;
            }
            let e = errors(&[(p, ParamValue::Int(bad))]);
            let want = format!("{} = {bad} is out of range ({})", d.name, spec.range_text());
            assert!(e.contains(&want), "{}: {e:?}", d.name);
        }
    }
}

#[test]
fn out_of_range_values_are_all_reported_and_not_applied() {
    use ParamValue::Int;
    let e = errors(&[
        (Param::Workers, Int(0)),
        (Param::Workers, Int(65)),
        (Param::TestMode, Int(2)),
    ]);
    assert_eq!(
        e,
        [
            "workers = 0 is out of range (1..=64)",
            "workers = 65 is out of range (1..=64)",
            "test_mode = 2 is out of range (0..=1)",
        ]
    );
}

#[test]
fn inverted_watermarks() {
    use ParamValue::Int;
    for (low, high) in [(65536, 65536), (131072, 65536)] {
        let e = errors(&[
            (Param::QueueLowWatermark, Int(low)),
            (Param::QueueHighWatermark, Int(high)),
        ]);
        assert_eq!(
            e,
            [format!(
                "queue_low_watermark ({low}) must be below queue_high_watermark ({high})"
            )]
        );
    }
    // default low (131072) above a small high
    let e = errors(&[(Param::QueueHighWatermark, Int(16384))]);
    assert_eq!(
        e,
        ["queue_low_watermark (131072) must be below queue_high_watermark (16384)"]
    );
}

#[test]
fn auth_bounds_in_order() {
    use ParamValue::Int;
    let e = errors(&[(Param::AuthMinExpires, Int(7200))]);
    assert_eq!(
        e,
        ["auth_min_expires = 7200 is out of range (at most auth_max_expires (3600))"]
    );
}

#[test]
fn missing_listen() {
    let e = ConfigBuilder::new().build().expect_err("no listen");
    assert_eq!(e.len(), 1);
    assert!(matches!(e[0], ConfigError::NoListen));
    assert_eq!(
        e[0].to_string(),
        "no listen address: add modparam(\"msrp_relay\", \"listen\", \"tcp:IP:PORT\")"
    );
}

#[test]
fn bad_listen_is_refused_when_set() {
    let mut b = ConfigBuilder::new();
    for bad in [
        "garbage",
        "tcp:127.0.0.1",
        "udp:127.0.0.1:2855",
        "tcp:1.2.3.4:99999",
        "",
    ] {
        let e = b.set(Param::Listen, ParamValue::Str(bad)).expect_err(bad);
        assert_eq!(
            e.to_string(),
            format!("listen: '{bad}' is not of the form PROTO:IP:PORT (PROTO tcp, tls, ws or wss)")
        );
    }
    for (good, kind) in [
        ("tls:127.0.0.1:2856", Kind::Tls),
        ("WS:127.0.0.1:80", Kind::Ws),
        ("wss:[::1]:443", Kind::Wss),
    ] {
        assert_eq!(parse_listen(good).expect(good).kind, kind);
    }
    for good in ["tcp:127.0.0.1:2855", "TCP:[::1]:2855", " 10.0.0.1:1 "] {
        assert_eq!(parse_listen(good).expect(good).kind, Kind::Tcp);
        b.set(Param::Listen, ParamValue::Str(good)).expect(good);
    }
    assert_eq!(b.build().expect("valid").listen.len(), 3);
}

#[test]
fn wrong_value_type_is_an_error() {
    let mut b = ConfigBuilder::new();
    let e = b
        .set(Param::Workers, ParamValue::Str("2"))
        .expect_err("string for int");
    assert_eq!(e.to_string(), "workers: expects an integer");
    let e = b
        .set(Param::Listen, ParamValue::Int(2855))
        .expect_err("int for string");
    assert_eq!(e.to_string(), "listen: expects a string");
}

#[test]
fn declaration_is_consistent() {
    assert_eq!(Param::COUNT, PARAMS.len());
    for (i, &p) in Param::ALL.iter().enumerate() {
        assert_eq!(p as usize, i);
        let d = p.decl();
        assert_eq!(d.c_name.to_str(), Ok(d.name));
        assert!(!d.doc.trim().is_empty(), "{} has no doc", d.name);
        assert!(
            !d.doc.contains('|') && !d.doc.contains('\n'),
            "{}: doc must fit one table cell",
            d.name
        );
        assert_eq!(
            PARAMS.iter().filter(|o| o.name == d.name).count(),
            1,
            "{} declared twice",
            d.name
        );
    }
    for name in ["cmap_size", "timer_interval", "sipmsg"] {
        assert!(
            PARAMS
                .iter()
                .any(|d| d.name == name && matches!(d.kind, ParamKind::Accepted)),
            "stock-compat {name} must stay accepted"
        );
    }
}

/// README.md's parameter table is the declaration's: names, types,
/// defaults, ranges and meanings cannot drift.
#[test]
fn readme_lists_every_parameter() {
    let readme = include_str!("../../../README.md");
    let table = readme_table();
    assert!(
        readme.contains(&table),
        "README.md's parameter table differs from the declaration in \
         msrp-engine/src/config.rs; replace it with:\n\n{table}"
    );
}

/// TLS parameters: choices parse, and what they need of each other is
/// checked at start-up with a message naming the parameter.
#[test]
fn tls_parameters_need_each_other() {
    use ParamValue::{Int, Str};
    let c = built(&[
        (Param::Listen, Str("tls:127.0.0.1:2856")),
        (Param::TlsCertificate, Str(" /etc/relay.pem ")),
        (Param::TlsPrivateKey, Str("/etc/relay.key")),
        (Param::TlsCaList, Str("/etc/ca.pem")),
        (Param::TlsVerifyClient, Str("Required")),
        (Param::TlsMinVersion, Str("TLSv1.3")),
        (Param::WsAllowedOrigins, Str("https://chat.example.com/")),
        (Param::WsMaxMessageSize, Int(0)),
    ])
    .expect("valid");
    assert_eq!(
        c.tls.certificate.as_deref(),
        Some(std::path::Path::new("/etc/relay.pem"))
    );
    assert_eq!(c.tls.verify_client, VerifyClient::Required);
    assert_eq!(c.tls.min_version, TlsVersion::V1_3);
    assert_eq!(c.ws_origins, vec!["https://chat.example.com"]);
    assert_eq!(c.ws_max_message, 0);
    assert_eq!(
        errors(&[(Param::Listen, Str("wss:127.0.0.1:443"))]),
        vec!["listen wss:127.0.0.1:443: a tls:/wss: listener needs tls_certificate and tls_private_key"]
    );
    assert_eq!(
        errors(&[
            (Param::TlsCertificate, Str("/etc/relay.pem")),
            (Param::TlsVerifyClient, Str("optional")),
        ]),
        vec![
            "tls_certificate and tls_private_key go together: set both",
            "tls_verify_client optional needs tls_ca_list (the CAs client certificates are checked against)",
        ]
    );
    let mut b = ConfigBuilder::new();
    let e = b
        .set(Param::TlsVerifyClient, Str("sometimes"))
        .expect_err("bad choice");
    assert_eq!(
        e.to_string(),
        "tls_verify_client: 'sometimes' is not one of off, optional, required"
    );
    let e = b
        .set(Param::TlsMinVersion, Str("1.1"))
        .expect_err("bad version");
    assert_eq!(
        e.to_string(),
        "tls_min_version: '1.1' is not one of 1.2, 1.3"
    );
}

/// A `tls:`/`wss:` listener's own TLS options override the global
/// `tls_*` values for that listener only; the global ones stay the
/// default of listeners that set nothing (old configurations keep working).
#[test]
fn listener_tls_options_override_the_global_policy() {
    use ParamValue::Str;
    let c = built(&[
        (
            Param::Listen,
            Str("tls:127.0.0.1:2856; verify_client=Required ;min_version=TLSv1.3"),
        ),
        (Param::Listen, Str("wss:127.0.0.1:8443;verify_client=off")),
        (
            Param::Listen,
            Str("wss:127.0.0.1:8444;verify_client=optional;ca_list=/etc/web-ca.pem"),
        ),
        (Param::Listen, Str("tls:127.0.0.1:2857")),
        (Param::TlsCertificate, Str("/etc/relay.pem")),
        (Param::TlsPrivateKey, Str("/etc/relay.key")),
        (Param::TlsCaList, Str("/etc/ca.pem")),
        (Param::TlsVerifyClient, Str("optional")),
    ])
    .expect("valid");
    // `built` adds a tcp: listener first
    let tls: Vec<_> = c.listen.iter().filter(|l| l.kind.tls()).collect();
    let policies: Vec<_> = tls.iter().map(|l| c.tls.policy(&l.tls)).collect();
    let path = |p: &str| Some(std::path::Path::new(p).to_path_buf());
    let want = [
        (
            VerifyClient::Required,
            path("/etc/ca.pem"),
            TlsVersion::V1_3,
        ),
        (VerifyClient::Off, path("/etc/ca.pem"), TlsVersion::V1_2),
        (
            VerifyClient::Optional,
            path("/etc/web-ca.pem"),
            TlsVersion::V1_2,
        ),
        (
            VerifyClient::Optional,
            path("/etc/ca.pem"),
            TlsVersion::V1_2,
        ),
    ];
    for (i, (p, (v, ca, min))) in policies.iter().zip(want).enumerate() {
        let got = (
            p.verify_client,
            p.ca_list.map(|p| p.to_path_buf()),
            p.min_version,
        );
        assert_eq!(got, (v, ca, min), "listener {i}: {}", tls[i]);
    }
    assert_eq!(
        tls[0].to_string(),
        "tls:127.0.0.1:2856;verify_client=required;min_version=1.3"
    );
    assert_eq!(tls[3].to_string(), "tls:127.0.0.1:2857");
    let e = parse_listen("tls:127.0.0.1:2856;verify_client=maybe").expect_err("bad value");
    assert_eq!(
        e.to_string(),
        "listen tls:127.0.0.1:2856: option verify_client=maybe is not one of off, optional, required"
    );
    let e = parse_listen("wss:127.0.0.1:443;cert=/x.pem").expect_err("unknown option");
    assert_eq!(
        e.to_string(),
        "listen wss:127.0.0.1:443: option cert=/x.pem is not one of verify_client=, ca_list=FILE, min_version="
    );
    assert_eq!(
        errors(&[
            (Param::Listen, Str("ws:127.0.0.1:80;verify_client=off")),
            (Param::Listen, Str("tls:127.0.0.1:2856;verify_client=required")),
            (Param::TlsCertificate, Str("/etc/relay.pem")),
            (Param::TlsPrivateKey, Str("/etc/relay.key")),
        ]),
        vec![
            "listen ws:127.0.0.1:80;verify_client=off: verify_client=, ca_list= and min_version= are for tls:/wss: listeners",
            "listen tls:127.0.0.1:2856;verify_client=required: verify_client needs ca_list= or tls_ca_list (the CAs client certificates are checked against)",
        ]
    );
}

#[test]
fn dns_parameters() {
    use ParamValue::{Int, Str};
    let c = built(&[]).expect("defaults");
    assert_eq!(c.dns.server, None, "the servers of /etc/resolv.conf");
    assert_eq!(c.dns.timeout, Duration::from_secs(5));
    assert_eq!(c.dns.concurrency, 16);
    assert_eq!(c.dns.negative_ttl, Duration::from_secs(5));
    let server = |v: &str| built(&[(Param::DnsServer, Str(v))]).map(|c| c.dns.server);
    assert_eq!(
        server("127.0.0.53").unwrap(),
        Some("127.0.0.53:53".parse().unwrap())
    );
    assert_eq!(
        server(" 10.0.0.2:5353 ").unwrap(),
        Some("10.0.0.2:5353".parse().unwrap())
    );
    assert_eq!(server("::1").unwrap(), Some("[::1]:53".parse().unwrap()));
    assert_eq!(
        server("[::1]:5300").unwrap(),
        Some("[::1]:5300".parse().unwrap())
    );
    assert_eq!(server("").unwrap(), None);
    let mut b = ConfigBuilder::new();
    let e = b
        .set(Param::DnsServer, Str("dns.example.com"))
        .expect_err("a name is refused");
    assert!(e.to_string().contains("dns_server"), "{e}");
    let c = built(&[
        (Param::DnsTimeout, Int(2)),
        (Param::DnsConcurrency, Int(1)),
        (Param::DnsNegativeTtl, Int(0)),
    ])
    .expect("in range");
    assert_eq!(c.dns.timeout, Duration::from_secs(2));
    assert_eq!(c.dns.concurrency, 1);
    assert_eq!(c.dns.negative_ttl, Duration::ZERO);
    let e = errors(&[(Param::DnsTimeout, Int(0)), (Param::DnsConcurrency, Int(0))]);
    assert_eq!(e.len(), 2, "{e:?}");
}
