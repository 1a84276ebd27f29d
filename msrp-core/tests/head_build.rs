//! Header value types, FrameHead accessors, path helpers and encoders.

mod common;

use bytes::{Bytes, BytesMut};
use common::{body_of, run_whole, Ev};
use msrp_core::build::{
    body_end, end_line, is_valid_transaction_id, request_head, response_frame, response_head,
};
use msrp_core::{
    path, ByteRange, EndFlag, Event, FailureReport, FrameHead, HeadError, Header, Limits, MsrpUri,
    Parser, StartLine, Status,
};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn byte_range_table() {
    let ok = [
        ("1-25/25", 1, Some(25), Some(25), "1-25/25"),
        (" 1-0/0 ", 1, Some(0), Some(0), "1-0/0"),
        ("26-*/*", 26, None, None, "26-*/*"),
        ("1-10/*", 1, Some(10), None, "1-10/*"),
        ("11-*/100", 11, None, Some(100), "11-*/100"),
        // the largest position accepted (msrp_core::MAX_POSITION)
        (
            "4611686018427387904-*/*",
            1 << 62,
            None,
            None,
            "4611686018427387904-*/*",
        ),
    ];
    for (s, start, end, total, shown) in ok {
        let r = ByteRange::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(r, ByteRange { start, end, total }, "{s}");
        assert_eq!(r.to_string(), shown);
    }
    assert_eq!(ByteRange::parse(b"1-25/25").unwrap().len(), Some(25));
    assert!(ByteRange::parse(b"1-0/0").unwrap().is_empty());
    let bad = [
        "",
        "1",
        "1-2",
        "0-5/5",
        "a-5/5",
        "1-b/5",
        "1-5/c",
        "5-3/10",
        "1-20/10",
        "1/5-3",
        "1-5/5/5",
        "18446744073709551616-*/*",
        // positions a relay cannot add body lengths to
        "18446744073709551615-*/*",
        "4611686018427387905-*/*",
        "1-*/4611686018427387905",
        "-1-5/5",
        "1 -5/5",
    ];
    for s in bad {
        assert!(
            matches!(
                ByteRange::parse(s.as_bytes()),
                Err(HeadError::Invalid {
                    header: "Byte-Range",
                    ..
                })
            ),
            "{s:?}"
        );
    }
}

#[test]
fn failure_report_table() {
    for (s, v) in [
        ("yes", FailureReport::Yes),
        ("No", FailureReport::No),
        ("PARTIAL", FailureReport::Partial),
        (" partial ", FailureReport::Partial),
    ] {
        assert_eq!(FailureReport::parse(s.as_bytes()), Ok(v), "{s}");
    }
    for s in ["", "maybe", "yes no"] {
        assert!(FailureReport::parse(s.as_bytes()).is_err(), "{s}");
    }
    assert_eq!(FailureReport::Partial.to_string(), "partial");
}

#[test]
fn status_table() {
    let ok = [
        ("000 200 OK", 0, 200, Some("OK"), "000 200 OK"),
        ("000 413", 0, 413, None, "000 413"),
        (
            "000 481 No such session here",
            0,
            481,
            Some("No such session here"),
            "000 481 No such session here",
        ),
        (" 000 200 ", 0, 200, None, "000 200"),
    ];
    for (s, ns, code, comment, shown) in ok {
        let st = Status::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(
            st,
            Status {
                namespace: ns,
                code,
                comment: comment.map(b)
            },
            "{s}"
        );
        assert_eq!(st.to_string(), shown);
        assert_eq!(st.to_bytes(), shown.as_bytes());
    }
    for s in [
        "",
        "200",
        "000",
        "000 20",
        "00 200",
        "000 2000",
        "000x200",
        "abc 200",
        "000 200OK",
    ] {
        assert!(Status::parse(s.as_bytes()).is_err(), "{s}");
    }
}

fn parse_head(input: &[u8]) -> FrameHead {
    let mut parser = Parser::new(Limits::default());
    let mut buf = BytesMut::from(input);
    match parser.next(&mut buf) {
        Ok(Some(Event::Head(h))) => h,
        other => panic!("no head: {other:?}"),
    }
}

#[test]
fn frame_head_accessors() {
    let h = parse_head(
        b"MSRP abcd SEND\r\nTo-Path: msrp://r.example.com;tcp  msrp://b.example.com/s;tcp\r\n\
          From-Path: msrp://a.example.com/x;tcp\r\nmessage-id: m1\r\nByte-Range: 1-5/5\r\n\
          Failure-Report: partial\r\nSuccess-Report: yes\r\nX-Thing: 1\r\n\r\n",
    );
    assert!(h.is_request());
    assert!(h.has_body);
    assert_eq!(h.method(), Some(&b"SEND"[..]));
    assert_eq!(h.status_code(), None);
    assert_eq!(
        h.to_path().unwrap(),
        vec![
            b("msrp://r.example.com;tcp"),
            b("msrp://b.example.com/s;tcp")
        ]
    );
    assert_eq!(
        h.from_path().unwrap(),
        vec![b("msrp://a.example.com/x;tcp")]
    );
    assert_eq!(h.message_id(), Some(&b"m1"[..]));
    assert_eq!(h.header("MESSAGE-ID"), Some(&b"m1"[..]));
    assert_eq!(
        h.byte_range().unwrap(),
        Some(ByteRange {
            start: 1,
            end: Some(5),
            total: Some(5)
        })
    );
    assert_eq!(h.failure_report().unwrap(), FailureReport::Partial);
    assert!(h.success_report().unwrap());
    assert_eq!(h.status().unwrap(), None);
    let others: Vec<bytes::Bytes> = h.other_headers().map(|h| h.name).collect();
    assert_eq!(
        others,
        [
            &b"message-id"[..],
            b"Byte-Range",
            b"Failure-Report",
            b"Success-Report",
            b"X-Thing"
        ]
    );

    let r = parse_head(b"MSRP abcd 200 OK\r\nTo-Path: msrp://a;tcp\r\n-------abcd$\r\n");
    assert!(!r.is_request());
    assert!(!r.has_body);
    assert_eq!(r.status_code(), Some(200));
    assert_eq!(r.method(), None);
    assert_eq!(r.from_path(), Err(HeadError::Missing("From-Path")));
    assert_eq!(r.failure_report().unwrap(), FailureReport::Yes);
    assert!(!r.success_report().unwrap());
    assert_eq!(r.byte_range().unwrap(), None);

    let bad = parse_head(
        b"MSRP abcd REPORT\r\nTo-Path: \r\nByte-Range: x\r\nFailure-Report: maybe\r\n\
          Success-Report: perhaps\r\nStatus: 000 2\r\n-------abcd$\r\n",
    );
    assert!(matches!(
        bad.to_path(),
        Err(HeadError::Invalid {
            header: "To-Path",
            ..
        })
    ));
    assert!(bad.byte_range().is_err());
    assert!(bad.failure_report().is_err());
    assert!(bad.success_report().is_err());
    assert!(bad.status().is_err());
    let report = parse_head(b"MSRP abcd REPORT\r\nStatus: 000 200 OK\r\n-------abcd$\r\n");
    assert_eq!(report.status().unwrap().map(|s| s.code), Some(200));
}

#[test]
fn transaction_id_validity() {
    for ok in ["abc", "a786hjs2", "a.-+%=", "9zz", &"a".repeat(32)] {
        assert!(is_valid_transaction_id(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "",
        "ab",
        ".abc",
        "-abc",
        "ab c",
        "ab/c",
        "ab$c",
        &"a".repeat(33),
    ] {
        assert!(!is_valid_transaction_id(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn encoders_are_exact() {
    let to = [
        b("msrp://b.example.com/s;tcp"),
        b("msrp://c.example.com/t;tcp"),
    ];
    let from = [b("msrp://a.example.com/x;tcp")];
    let other = [
        Header::new("Message-ID", "m1"),
        Header::new("Byte-Range", "1-3/3"),
    ];
    assert_eq!(
        &request_head(b"tid1", b"SEND", &to, &from, &other, true)[..],
        &b"MSRP tid1 SEND\r\nTo-Path: msrp://b.example.com/s;tcp msrp://c.example.com/t;tcp\r\n\
           From-Path: msrp://a.example.com/x;tcp\r\nMessage-ID: m1\r\nByte-Range: 1-3/3\r\n\r\n"[..]
    );
    assert_eq!(
        &request_head(b"tid1", b"SEND", &to[..1], &from, &[], false)[..],
        &b"MSRP tid1 SEND\r\nTo-Path: msrp://b.example.com/s;tcp\r\nFrom-Path: msrp://a.example.com/x;tcp\r\n"[..]
    );
    assert_eq!(
        &response_head(b"tid1", 200, Some(b"OK"), &from, &to[..1], &[])[..],
        &b"MSRP tid1 200 OK\r\nTo-Path: msrp://a.example.com/x;tcp\r\nFrom-Path: msrp://b.example.com/s;tcp\r\n"[..]
    );
    assert_eq!(
        &response_frame(b"tid1", 481, None, &from, &to[..1], &[])[..],
        &b"MSRP tid1 481\r\nTo-Path: msrp://a.example.com/x;tcp\r\nFrom-Path: msrp://b.example.com/s;tcp\r\n-------tid1$\r\n"[..]
    );
    assert_eq!(
        &end_line(b"tid1", EndFlag::Continued)[..],
        b"-------tid1+\r\n"
    );
    assert_eq!(
        &body_end(b"tid1", EndFlag::Aborted)[..],
        b"\r\n-------tid1#\r\n"
    );
}

#[test]
fn encoders_round_trip_through_parser() {
    let to = [b("msrp://b.example.com/s;tcp")];
    let from = [
        b("msrp://relay.example.net:2855/r;tcp"),
        b("msrp://a.example.com/x;tcp"),
    ];
    let other = [
        Header::new("Message-ID", "m1"),
        Header::new("Content-Type", "text/plain"),
    ];
    for flag in [EndFlag::Complete, EndFlag::Continued, EndFlag::Aborted] {
        let mut wire = request_head(b"rt01", b"SEND", &to, &from, &other, true);
        wire.extend_from_slice(b"payload \r\n-------rt01");
        wire.extend_from_slice(&body_end(b"rt01", flag));
        wire.extend_from_slice(&request_head(b"rt02", b"REPORT", &to, &from, &other, false));
        wire.extend_from_slice(&end_line(b"rt02", EndFlag::Complete));
        wire.extend_from_slice(&response_frame(b"rt03", 200, Some(b"OK"), &to, &from, &[]));
        let out = run_whole(Limits::default(), &wire);
        assert_eq!(out.error, None);
        assert_eq!(body_of(&out.events, 0), b"payload \r\n-------rt01");
        let ends: Vec<&Ev> = out
            .events
            .iter()
            .filter(|e| matches!(e, Ev::End(_)))
            .collect();
        assert_eq!(
            ends,
            [
                &Ev::End(flag),
                &Ev::End(EndFlag::Complete),
                &Ev::End(EndFlag::Complete)
            ]
        );
        let heads: Vec<(&StartLine, &Vec<(Bytes, Bytes)>)> = out
            .events
            .iter()
            .filter_map(|e| match e {
                Ev::Head { start, headers, .. } => Some((start, headers)),
                _ => None,
            })
            .collect();
        assert_eq!(heads[0].0, &StartLine::Request { method: b("SEND") });
        assert_eq!(
            heads[2].0,
            &StartLine::Response {
                code: 200,
                comment: Some(b("OK"))
            }
        );
        assert_eq!(heads[0].1[1], (b("From-Path"), path::join(&from)));
        assert_eq!(heads[0].1[3], (b("Content-Type"), b("text/plain")));
    }

    // Re-encoding a parsed head with its own paths and other headers
    // reproduces its raw bytes.
    let h = parse_head(
        b"MSRP abcd SEND\r\nTo-Path: msrp://b;tcp\r\nFrom-Path: msrp://a;tcp\r\nMessage-ID: 1\r\n\r\n",
    );
    let other: Vec<Header> = h.other_headers().collect();
    let mut again = request_head(
        &h.transaction_id,
        h.method().unwrap(),
        &h.to_path().unwrap(),
        &h.from_path().unwrap(),
        &other,
        false,
    );
    assert_eq!(&again[..], &h.raw[..]);
    again.clear();
}

#[test]
fn path_helpers() {
    let v = b(" msrp://r;tcp \t msrp://b/s;tcp ");
    let uris = path::split(&v);
    assert_eq!(uris, vec![b("msrp://r;tcp"), b("msrp://b/s;tcp")]);
    assert_eq!(path::join(&uris), b("msrp://r;tcp msrp://b/s;tcp"));
    let parsed = path::parse(&uris).unwrap();
    assert_eq!(parsed.len(), 2);
    assert!(path::parse(&[b("http://x")]).is_err());

    let own = b("msrp://r;tcp");
    let (to, from) = path::forward(&uris, &[b("msrp://a/x;tcp")], &own).unwrap();
    assert_eq!(to, vec![b("msrp://b/s;tcp")]);
    assert_eq!(from, vec![b("msrp://r;tcp"), b("msrp://a/x;tcp")]);
    assert!(path::forward(std::slice::from_ref(&own), &[], &own).is_none());

    let me = MsrpUri::parse(b"msrp://R:2855;TCP").unwrap();
    assert!(path::token_is(b"msrp://r;tcp", &me));
    assert!(!path::token_is(b"garbage", &me));
}

/// Heads fill their buffer exactly: a `Bytes` frozen from a buffer with
/// room left costs one more allocation per frame.
#[test]
fn heads_are_built_in_buffers_of_their_size() {
    let to = [
        Bytes::from_static(b"msrp://b:2/s1;tcp"),
        Bytes::from_static(b"msrp://c:3/s2;tcp"),
    ];
    let from = [Bytes::from_static(b"msrp://a:1/s0;tcp")];
    let other = [Header::new(&b"Message-ID"[..], &b"m1"[..])];
    for has_body in [false, true] {
        let h = request_head(b"tid1", b"SEND", &to, &from, &other, has_body);
        assert_eq!(h.len(), h.capacity());
    }
    for (code, comment) in [
        (200, None),
        (413, Some(&b"Too Large"[..])),
        (5, None),
        (1000, None),
    ] {
        let h = response_head(b"tid1", code, comment, &to, &from, &other);
        assert_eq!(h.len(), h.capacity(), "{code}");
        let h = response_head(b"tid1", code, comment, &[], &[], &[]);
        assert_eq!(h.len(), h.capacity(), "{code}");
    }
}
