//! MSRP URI parsing, printing and comparison (RFC 4975 §6, §9).

use std::net::{Ipv4Addr, Ipv6Addr};

use msrp_core::{Host, MsrpUri, UriError};

fn parse(s: &str) -> Result<MsrpUri, UriError> {
    MsrpUri::parse(s.as_bytes())
}

#[test]
fn valid_uris() {
    let cases: Vec<(&str, MsrpUri)> = vec![
        (
            "msrp://atlanta.example.com:7654/jshA7weztas;tcp",
            MsrpUri {
                secure: false,
                user: None,
                host: Host::Name("atlanta.example.com".into()),
                port: Some(7654),
                session_id: Some("jshA7weztas".into()),
                transport: "tcp".into(),
                params: vec![],
            },
        ),
        (
            "msrps://bob@192.0.2.7/s+=/x;tcp;foo=bar;baz",
            MsrpUri {
                secure: true,
                user: Some("bob".into()),
                host: Host::Ipv4(Ipv4Addr::new(192, 0, 2, 7)),
                port: None,
                session_id: Some("s+=/x".into()),
                transport: "tcp".into(),
                params: vec![("foo".into(), Some("bar".into())), ("baz".into(), None)],
            },
        ),
        (
            "MSRP://[2001:db8::1]:2855;TCP",
            MsrpUri {
                secure: false,
                user: None,
                host: Host::Ipv6("2001:db8::1".parse::<Ipv6Addr>().unwrap()),
                port: Some(2855),
                session_id: None,
                transport: "TCP".into(),
                params: vec![],
            },
        ),
        (
            "msrp://relay.example.net;ws",
            MsrpUri {
                secure: false,
                user: None,
                host: Host::Name("relay.example.net".into()),
                port: None,
                session_id: None,
                transport: "ws".into(),
                params: vec![],
            },
        ),
    ];
    for (s, expected) in cases {
        let uri = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(uri, expected, "{s}");
        // Display round-trip.
        let printed = uri.to_string();
        assert_eq!(parse(&printed).unwrap(), uri, "{s} -> {printed}");
    }
    assert_eq!(
        parse("MSRP://[2001:db8::1]:2855;TCP").unwrap().to_string(),
        "msrp://[2001:db8::1]:2855;TCP"
    );
    assert_eq!(
        parse("msrps://bob@192.0.2.7/s+=/x;tcp;foo=bar;baz")
            .unwrap()
            .to_string(),
        "msrps://bob@192.0.2.7/s+=/x;tcp;foo=bar;baz"
    );
}

#[test]
fn invalid_uris() {
    let cases = [
        ("sip://a.example.com;tcp", UriError::BadScheme),
        ("msrp:/a.example.com;tcp", UriError::BadScheme),
        ("msrpx://a.example.com;tcp", UriError::BadScheme),
        ("msrp://a.example.com", UriError::BadTransport),
        ("msrp://a.example.com/abc", UriError::BadTransport),
        ("msrp://a.example.com;", UriError::BadTransport),
        ("msrp://a.example.com;t-cp", UriError::BadTransport),
        ("msrp://;tcp", UriError::BadHost),
        ("msrp://a.example.com:;tcp", UriError::BadPort),
        ("msrp://a.example.com:99999;tcp", UriError::BadPort),
        ("msrp://a.example.com:0;tcp", UriError::BadPort),
        ("msrp://a.example.com:12a;tcp", UriError::BadPort),
        ("msrp://1.2.3.999;tcp", UriError::BadHost),
        ("msrp://[::1;tcp", UriError::BadHost),
        ("msrp://[zz::1]:1;tcp", UriError::BadHost),
        ("msrp://a..b/;tcp", UriError::BadSessionId),
        ("msrp://a/s?x;tcp", UriError::BadSessionId),
        ("msrp://@a;tcp", UriError::BadUserinfo),
        ("msrp://a b;tcp", UriError::BadCharacter),
        ("msrp://a\u{e9};tcp", UriError::BadCharacter),
        ("msrp://a;tcp;=x", UriError::BadParam),
        ("msrp://a;tcp;x=", UriError::BadParam),
        ("msrp://a;tcp;x=(y)", UriError::BadParam),
        ("", UriError::BadScheme),
    ];
    for (s, expected) in cases {
        assert_eq!(parse(s), Err(expected.clone()), "{s}");
    }
}

#[test]
fn same_resource() {
    let same = [
        (
            "msrp://a.example.com/s1;tcp",
            "MSRP://A.EXAMPLE.COM:2855/s1;TCP",
        ),
        (
            "msrp://alice@a.example.com/s1;tcp",
            "msrp://bob@a.example.com/s1;tcp;x=y",
        ),
        (
            "msrp://[2001:db8:0::1]:9/s;tcp",
            "msrp://[2001:db8::1]:9/s;tcp",
        ),
        ("msrp://10.0.0.1;tcp", "msrp://10.0.0.1:2855;tcp"),
    ];
    for (a, b) in same {
        let (ua, ub) = (parse(a).unwrap(), parse(b).unwrap());
        assert!(ua.same_resource(&ub), "{a} == {b}");
        assert!(ub.same_resource(&ua), "{b} == {a}");
    }
    let different = [
        (
            "msrp://a.example.com/s1;tcp",
            "msrps://a.example.com/s1;tcp",
        ),
        ("msrp://a.example.com/s1;tcp", "msrp://a.example.com/S1;tcp"),
        (
            "msrp://a.example.com/s1;tcp",
            "msrp://a.example.com:2856/s1;tcp",
        ),
        ("msrp://a.example.com/s1;tcp", "msrp://b.example.com/s1;tcp"),
        ("msrp://a.example.com/s1;tcp", "msrp://a.example.com;tcp"),
        ("msrp://a.example.com/s1;tcp", "msrp://a.example.com/s1;ws"),
        ("msrp://10.0.0.1;tcp", "msrp://10.0.0.2;tcp"),
    ];
    for (a, b) in different {
        let (ua, ub) = (parse(a).unwrap(), parse(b).unwrap());
        assert!(!ua.same_resource(&ub), "{a} != {b}");
    }
}

#[test]
fn default_port() {
    assert_eq!(parse("msrp://a;tcp").unwrap().port_or_default(), 2855);
    assert_eq!(parse("msrp://a:1;tcp").unwrap().port_or_default(), 1);
    assert_eq!("msrp://a:1;tcp".parse::<MsrpUri>().unwrap().port, Some(1));
}

/// The borrowed parts the relay routes by are those of the owned URI.
#[test]
fn borrowed_parts() {
    let s = b"msrps://u%20x@Relay.Example:9/s+1=/x;tcp;a=b;c";
    let p = msrp_core::UriParts::parse(s).unwrap();
    assert!(p.secure);
    assert_eq!(p.user, Some("u%20x"));
    assert_eq!(p.host, msrp_core::HostRef::Name("Relay.Example"));
    assert_eq!(p.port_or_default(), 9);
    assert_eq!(p.session_id, Some("s+1=/x"));
    assert_eq!(p.transport, "tcp");
    let u = p.to_uri();
    assert_eq!(
        u.params,
        [("a".into(), Some("b".into())), ("c".into(), None)]
    );
    assert_eq!(u.to_string().as_bytes(), s);
    let v6 = msrp_core::UriParts::parse(b"msrp://[::1];ws").unwrap();
    assert_eq!(
        v6.host,
        msrp_core::HostRef::Ipv6(std::net::Ipv6Addr::LOCALHOST)
    );
    assert_eq!((v6.port_or_default(), v6.session_id), (2855, None));
    assert_eq!(
        msrp_core::UriParts::parse(b"msrp://h:1/s;tcp;=x"),
        Err(UriError::BadParam)
    );
}

/// `scheme_end` finds the first `://`, as `memmem::find` does, for any
/// placement of colons and slashes.
#[test]
fn scheme_end_is_the_first_separator() {
    let cases: [&[u8]; 9] = [
        b"msrp://h;tcp",
        b"msrps://h;tcp",
        b"",
        b":",
        b":/",
        b"a:/:/x://y://",
        b"::://",
        b"msrp:/h;tcp",
        b"x//:a://",
    ];
    for c in cases {
        assert_eq!(
            msrp_core::uri::scheme_end(c),
            memchr::memmem::find(c, b"://"),
            "{}",
            String::from_utf8_lossy(c)
        );
    }
}
