//! Table-driven parser vectors, fed whole, split in two at every position
//! and byte by byte.

mod common;

use bytes::{Bytes, BytesMut};
use common::{body_of, run_bytewise, run_chunks, run_split, run_whole, Ev, Outcome};
use msrp_core::{EndFlag, Event, Limits, ParseError, Parser, StartLine};

const TO: &str = "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp";
const FROM: &str = "From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp";

/// A request frame; `body: None` means no body section.
fn request(tid: &str, method: &str, extra: &[&str], body: Option<&[u8]>, flag: u8) -> Vec<u8> {
    let mut v = format!("MSRP {tid} {method}\r\n{TO}\r\n{FROM}\r\n").into_bytes();
    for h in extra {
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    if let Some(b) = body {
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(b);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(format!("-------{tid}").as_bytes());
    v.push(flag);
    v.extend_from_slice(b"\r\n");
    v
}

fn response(tid: &str, status: &str) -> Vec<u8> {
    format!("MSRP {tid} {status}\r\n{FROM}\r\n{TO}\r\n-------{tid}$\r\n").into_bytes()
}

/// Expected shape of one frame.
struct Frame {
    start: StartLine,
    has_body: bool,
    body: Vec<u8>,
    flag: EndFlag,
}

fn req_frame(method: &str, body: Option<&[u8]>, flag: EndFlag) -> Frame {
    Frame {
        start: StartLine::Request {
            method: Bytes::copy_from_slice(method.as_bytes()),
        },
        has_body: body.is_some(),
        body: body.unwrap_or_default().to_vec(),
        flag,
    }
}

fn resp_frame(code: u16, comment: Option<&str>) -> Frame {
    Frame {
        start: StartLine::Response {
            code,
            comment: comment.map(|c| Bytes::copy_from_slice(c.as_bytes())),
        },
        has_body: false,
        body: Vec::new(),
        flag: EndFlag::Complete,
    }
}

struct Valid {
    name: &'static str,
    input: Vec<u8>,
    frames: Vec<Frame>,
}

fn all_bytes() -> Vec<u8> {
    (0..=255u8).chain((0..=255u8).rev()).collect()
}

fn tricky_body(tid: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"-------\r\n");
    b.extend_from_slice(format!("\r\n-------{tid}X\r\n").as_bytes());
    b.extend_from_slice(format!("\r\n-------{tid}$x").as_bytes());
    b.extend_from_slice(format!("\r\n-------{tid}$\r").as_bytes());
    b.extend_from_slice(format!("\r\n-------{tid}+\n").as_bytes());
    b.extend_from_slice(b"\r\n-------other$\r\n");
    b.extend_from_slice(format!("\r\n-------{}", &tid[..tid.len() - 1]).as_bytes());
    b.extend_from_slice(format!("\r\r\n------{tid}$\r\n").as_bytes());
    b.extend_from_slice(format!("\r\n-------{tid}").as_bytes());
    b
}

fn valid_vectors() -> Vec<Valid> {
    let tid = "a786hjs2";
    let mut v = vec![
        Valid {
            name: "send with body (RFC 4975 §7.1 example)",
            input: request(
                tid,
                "SEND",
                &["Message-ID: 87652491", "Byte-Range: 1-25/25", "Content-Type: text/plain"],
                Some(b"Hey Bob, are you there?"),
                b'$',
            ),
            frames: vec![req_frame("SEND", Some(b"Hey Bob, are you there?"), EndFlag::Complete)],
        },
        Valid {
            name: "send without body",
            input: request(tid, "SEND", &["Message-ID: 1", "Byte-Range: 1-0/0"], None, b'$'),
            frames: vec![req_frame("SEND", None, EndFlag::Complete)],
        },
        Valid {
            name: "response with comment",
            input: response(tid, "200 OK"),
            frames: vec![resp_frame(200, Some("OK"))],
        },
        Valid {
            name: "response with long comment",
            input: response(tid, "403 Not  allowed here"),
            frames: vec![resp_frame(403, Some("Not  allowed here"))],
        },
        Valid {
            name: "response without comment",
            input: response(tid, "200"),
            frames: vec![resp_frame(200, None)],
        },
        Valid {
            name: "empty body",
            input: request(tid, "SEND", &["Content-Type: text/plain"], Some(b""), b'$'),
            frames: vec![req_frame("SEND", Some(b""), EndFlag::Complete)],
        },
        Valid {
            name: "empty body without CRLF before end-line (tolerated)",
            input: format!("MSRP {tid} SEND\r\n{TO}\r\n{FROM}\r\n\r\n-------{tid}$\r\n").into_bytes(),
            frames: vec![req_frame("SEND", Some(b""), EndFlag::Complete)],
        },
        Valid {
            name: "body starting with dashes and tid but no end-line",
            input: request(tid, "SEND", &[], Some(format!("-------{tid}X").as_bytes()), b'$'),
            frames: vec![req_frame("SEND", Some(format!("-------{tid}X").as_bytes()), EndFlag::Complete)],
        },
        Valid {
            name: "body with fake end-lines",
            input: request(tid, "SEND", &[], Some(&tricky_body(tid)), b'$'),
            frames: vec![req_frame("SEND", Some(&tricky_body(tid)), EndFlag::Complete)],
        },
        Valid {
            name: "body ending in CR",
            input: request(tid, "SEND", &[], Some(b"abc\r"), b'$'),
            frames: vec![req_frame("SEND", Some(b"abc\r"), EndFlag::Complete)],
        },
        Valid {
            name: "body ending in CRLF",
            input: request(tid, "SEND", &[], Some(b"abc\r\n"), b'$'),
            frames: vec![req_frame("SEND", Some(b"abc\r\n"), EndFlag::Complete)],
        },
        Valid {
            name: "continued chunk",
            input: request(tid, "SEND", &["Byte-Range: 1-3/*"], Some(b"abc"), b'+'),
            frames: vec![req_frame("SEND", Some(b"abc"), EndFlag::Continued)],
        },
        Valid {
            name: "aborted chunk",
            input: request(tid, "SEND", &["Byte-Range: 1-*/*"], Some(b"ab"), b'#'),
            frames: vec![req_frame("SEND", Some(b"ab"), EndFlag::Aborted)],
        },
        Valid {
            name: "binary body with all byte values",
            input: request(tid, "SEND", &["Content-Type: application/octet-stream"], Some(&all_bytes()), b'$'),
            frames: vec![req_frame("SEND", Some(&all_bytes()), EndFlag::Complete)],
        },
        Valid {
            name: "transaction id with every ident-char",
            input: response("a.-+%=Z9", "200 OK"),
            frames: vec![resp_frame(200, Some("OK"))],
        },
        Valid {
            name: "header names in other case, odd whitespace",
            input: format!(
                "MSRP {tid} SEND\r\nto-path:msrp://b.example.com;tcp\r\nFROM-PATH: \t msrp://a.example.com;tcp \r\n-------{tid}$\r\n"
            )
            .into_bytes(),
            frames: vec![req_frame("SEND", None, EndFlag::Complete)],
        },
        Valid {
            name: "frame without headers",
            input: format!("MSRP {tid} NICKNAME\r\n-------{tid}$\r\n").into_bytes(),
            frames: vec![req_frame("NICKNAME", None, EndFlag::Complete)],
        },
    ];
    // Several frames back to back in one buffer.
    let mut multi = Vec::new();
    multi.extend(request(
        "t1aa",
        "SEND",
        &["Byte-Range: 1-3/6"],
        Some(b"abc"),
        b'+',
    ));
    multi.extend(response("t1aa", "200 OK"));
    multi.extend(request(
        "t2bb",
        "SEND",
        &["Byte-Range: 4-6/6"],
        Some(b"de\r\n"),
        b'$',
    ));
    multi.extend(request(
        "t3cc",
        "REPORT",
        &["Status: 000 200 OK"],
        None,
        b'$',
    ));
    multi.extend(request("t4dd", "SEND", &[], Some(b""), b'#'));
    v.push(Valid {
        name: "back to back frames",
        input: multi,
        frames: vec![
            req_frame("SEND", Some(b"abc"), EndFlag::Continued),
            resp_frame(200, Some("OK")),
            req_frame("SEND", Some(b"de\r\n"), EndFlag::Complete),
            req_frame("REPORT", None, EndFlag::Complete),
            req_frame("SEND", Some(b""), EndFlag::Aborted),
        ],
    });
    v
}

fn check_valid(vector: &Valid, out: &Outcome) {
    let name = vector.name;
    assert_eq!(out.error, None, "{name}");
    assert!(!out.in_frame, "{name}: in_frame after the last End");
    assert_eq!(out.leftover, 0, "{name}");
    let mut events = out.events.iter();
    for (i, frame) in vector.frames.iter().enumerate() {
        match events.next() {
            Some(Ev::Head {
                start, has_body, ..
            }) => {
                assert_eq!(start, &frame.start, "{name} frame {i}");
                assert_eq!(*has_body, frame.has_body, "{name} frame {i}");
            }
            other => panic!("{name} frame {i}: expected Head, got {other:?}"),
        }
        let mut next = events.next();
        if !frame.body.is_empty() {
            assert_eq!(
                next,
                Some(&Ev::Body(frame.body.clone())),
                "{name} frame {i}"
            );
            next = events.next();
        }
        assert_eq!(next, Some(&Ev::End(frame.flag)), "{name} frame {i}");
    }
    assert_eq!(events.next(), None, "{name}: extra events");
}

#[test]
fn valid_vectors_whole() {
    for v in valid_vectors() {
        check_valid(&v, &run_whole(Limits::default(), &v.input));
    }
}

#[test]
fn valid_vectors_split_everywhere_and_bytewise() {
    for v in valid_vectors() {
        let whole = run_whole(Limits::default(), &v.input);
        for at in 0..=v.input.len() {
            let split = run_split(Limits::default(), &v.input, at);
            assert_eq!(split, whole, "{} split at {at}", v.name);
        }
        assert_eq!(
            run_bytewise(Limits::default(), &v.input),
            whole,
            "{} bytewise",
            v.name
        );
    }
}

#[test]
fn head_fields_are_exact() {
    let input = request(
        "a786hjs2",
        "SEND",
        &["Message-ID: 87652491", "Byte-Range:  1-25/25 "],
        Some(b"x"),
        b'$',
    );
    let out = run_whole(Limits::default(), &input);
    let Ev::Head {
        raw, tid, headers, ..
    } = &out.events[0]
    else {
        panic!("no head");
    };
    let head_len = input.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    assert_eq!(&raw[..], &input[..head_len]);
    assert_eq!(&tid[..], b"a786hjs2");
    let names: Vec<&[u8]> = headers.iter().map(|(n, _)| &n[..]).collect();
    assert_eq!(
        names,
        [&b"To-Path"[..], b"From-Path", b"Message-ID", b"Byte-Range"]
    );
    assert_eq!(&headers[3].1[..], b"1-25/25");
    assert_eq!(body_of(&out.events, 0), b"x");
}

// ---------------------------------------------------------------- invalid

struct Invalid {
    name: &'static str,
    input: Vec<u8>,
    limits: Limits,
    expected: ParseError,
}

fn invalid(name: &'static str, input: impl Into<Vec<u8>>, expected: ParseError) -> Invalid {
    Invalid {
        name,
        input: input.into(),
        limits: Limits::default(),
        expected,
    }
}

fn bad_start(s: &str) -> ParseError {
    ParseError::BadStartLine(s.into())
}

fn invalid_vectors() -> Vec<Invalid> {
    let small = Limits {
        max_line: 200,
        max_head: 1000,
        max_headers: 8,
    };
    let mut many_headers = b"MSRP abcd SEND\r\n".to_vec();
    for i in 0..9 {
        many_headers.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"-------abcd$\r\n");
    let mut big_head = b"MSRP abcd SEND\r\n".to_vec();
    for _ in 0..7 {
        big_head.extend_from_slice(format!("X-Big: {}\r\n", "v".repeat(180)).as_bytes());
    }
    // A line breaking both size limits: the error is the limit crossed
    // first (the smaller of max_line and the head room left), however the
    // input is split; on a tie the line limit wins.
    let mut head_room_first = b"MSRP abcd SEND\r\n".to_vec();
    for _ in 0..5 {
        head_room_first.extend_from_slice(format!("X-Big: {}\r\n", "v".repeat(181)).as_bytes());
    }
    // 16 + 5 * 190 = 966: 34 bytes of room, less than max_line.
    head_room_first.extend_from_slice(format!("X-Long: {}\r\n", "w".repeat(300)).as_bytes());
    let mut limits_tie = b"MSRP abcd SEND\r\n".to_vec();
    for _ in 0..4 {
        limits_tie.extend_from_slice(format!("X-Big: {}\r\n", "v".repeat(187)).as_bytes());
    }
    // 16 + 4 * 196 = 800: exactly max_line of room.
    limits_tie.extend_from_slice(format!("X-Long: {}\r\n", "w".repeat(300)).as_bytes());
    vec![
        invalid("garbage", "hello world\r\n", bad_start("")),
        invalid("http", "HTTP/1.1 200 OK\r\n\r\n", bad_start("")),
        invalid("tls hello", &[0x16u8, 3, 1, 0, 0xa5][..], bad_start("")),
        invalid("lowercase protocol", "msrp abcd SEND\r\n", bad_start("")),
        invalid(
            "lowercase method",
            "MSRP abcd send\r\n-------abcd$\r\n",
            bad_start(""),
        ),
        invalid(
            "missing method",
            "MSRP abcd\r\n-------abcd$\r\n",
            bad_start(""),
        ),
        invalid(
            "empty method",
            "MSRP abcd \r\n-------abcd$\r\n",
            bad_start(""),
        ),
        invalid(
            "control char in comment",
            "MSRP abcd 200 O\x01K\r\n",
            bad_start(""),
        ),
        invalid(
            "tid too short",
            "MSRP ab SEND\r\n",
            ParseError::BadTransactionId,
        ),
        invalid(
            "tid too long",
            format!("MSRP {} SEND\r\n", "a".repeat(33)),
            ParseError::BadTransactionId,
        ),
        invalid(
            "tid bad char",
            "MSRP ab$c SEND\r\n",
            ParseError::BadTransactionId,
        ),
        invalid(
            "tid starting with dot",
            "MSRP .abc SEND\r\n",
            ParseError::BadTransactionId,
        ),
        invalid(
            "status code two digits",
            "MSRP abcd 20 OK\r\n",
            ParseError::BadStatusCode(String::new()),
        ),
        invalid(
            "status code four digits",
            "MSRP abcd 2000\r\n",
            ParseError::BadStatusCode(String::new()),
        ),
        invalid(
            "status code below 100",
            "MSRP abcd 099 x\r\n",
            ParseError::BadStatusCode(String::new()),
        ),
        invalid(
            "status code letters",
            "MSRP abcd 2x0 x\r\n",
            ParseError::BadStatusCode(String::new()),
        ),
        invalid(
            "LF-only start line",
            "MSRP abcd SEND\nTo-Path: x\n",
            ParseError::BadLineEnding,
        ),
        invalid(
            "LF-only header line",
            format!("MSRP abcd SEND\r\n{TO}\n"),
            ParseError::BadLineEnding,
        ),
        invalid(
            "LF-only blank line",
            format!("MSRP abcd SEND\r\n{TO}\r\n\n"),
            ParseError::BadLineEnding,
        ),
        invalid(
            "header without colon",
            "MSRP abcd SEND\r\nTo-Path msrp://x;tcp\r\n",
            ParseError::BadHeader(String::new()),
        ),
        invalid(
            "header name with space",
            "MSRP abcd SEND\r\nTo Path: msrp://x;tcp\r\n",
            ParseError::BadHeader(String::new()),
        ),
        invalid(
            "empty header name",
            "MSRP abcd SEND\r\n: x\r\n",
            ParseError::BadHeader(String::new()),
        ),
        invalid(
            "control char in header",
            "MSRP abcd SEND\r\nX: a\x00b\r\n",
            ParseError::BadHeader(String::new()),
        ),
        invalid(
            "bare CR in header",
            "MSRP abcd SEND\r\nX: a\rb\r\n",
            ParseError::BadHeader(String::new()),
        ),
        invalid(
            "end-line with other tid",
            "MSRP abcd SEND\r\n-------abce$\r\n",
            ParseError::BadEndLine,
        ),
        invalid(
            "end-line with bad flag",
            "MSRP abcd SEND\r\n-------abcd!\r\n",
            ParseError::BadEndLine,
        ),
        invalid(
            "end-line too long",
            "MSRP abcd SEND\r\n-------abcd$$\r\n",
            ParseError::BadEndLine,
        ),
        invalid(
            "frame after frame is garbage",
            format!(
                "{}GET / HTTP/1.0\r\n",
                String::from_utf8_lossy(&response("abcd", "200 OK"))
            ),
            bad_start(""),
        ),
        Invalid {
            name: "too many headers",
            input: many_headers,
            limits: small,
            expected: ParseError::TooManyHeaders { limit: 8 },
        },
        Invalid {
            name: "head too large",
            input: big_head,
            limits: small,
            expected: ParseError::HeadTooLarge { limit: 1000 },
        },
        Invalid {
            name: "start line too long",
            input: format!("MSRP abcd SEND{}\r\n", "A".repeat(300)).into_bytes(),
            limits: small,
            expected: ParseError::LineTooLong { limit: 200 },
        },
        Invalid {
            name: "line over both limits, head room smaller",
            input: head_room_first,
            limits: small,
            expected: ParseError::HeadTooLarge { limit: 1000 },
        },
        Invalid {
            name: "line over both limits, tie",
            input: limits_tie,
            limits: small,
            expected: ParseError::LineTooLong { limit: 200 },
        },
        Invalid {
            name: "header line too long, no CRLF",
            input: format!("MSRP abcd SEND\r\nX: {}", "a".repeat(300)).into_bytes(),
            limits: small,
            expected: ParseError::LineTooLong { limit: 200 },
        },
    ]
}

fn same_kind(a: &ParseError, b: &ParseError) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn check_invalid(v: &Invalid, out: &Outcome, how: &str) {
    let name = v.name;
    match &out.error {
        Some(e) => assert!(
            same_kind(e, &v.expected),
            "{name} ({how}): got {e:?}, expected {:?}",
            v.expected
        ),
        None => panic!("{name} ({how}): no error, events {:?}", out.events),
    }
    if !matches!(
        v.expected,
        ParseError::BadStatusCode(_) | ParseError::BadStartLine(_) | ParseError::BadHeader(_)
    ) {
        assert_eq!(out.error.as_ref(), Some(&v.expected), "{name} ({how})");
    }
    assert_eq!(v.expected.response_code(), 400);
}

#[test]
fn invalid_vectors_whole_split_bytewise() {
    for v in invalid_vectors() {
        let whole = run_whole(v.limits, &v.input);
        check_invalid(&v, &whole, "whole");
        for at in 0..=v.input.len() {
            let split = run_split(v.limits, &v.input, at);
            check_invalid(&v, &split, &format!("split at {at}"));
            assert_eq!(split.events, whole.events, "{} split at {at}", v.name);
        }
        let bytewise = run_bytewise(v.limits, &v.input);
        check_invalid(&v, &bytewise, "bytewise");
        assert_eq!(bytewise.events, whole.events, "{} bytewise", v.name);
    }
}

/// A peer streaming 100 KB without CRLF is rejected as soon as the buffered
/// line exceeds max_line, not when the CRLF (never) arrives.
#[test]
fn long_line_is_rejected_early() {
    let limits = Limits::default();
    for prefix in [&b"MSRP "[..], b"MSRP abcd SEND\r\nTo-Path: "] {
        let mut parser = Parser::new(limits);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(prefix);
        assert!(parser.next(&mut buf).unwrap().is_none());
        let mut fed = prefix.len();
        let err = loop {
            buf.extend_from_slice(&[b'a'; 100]);
            fed += 100;
            assert!(fed <= 100 * 1024, "never rejected");
            match parser.next(&mut buf) {
                Ok(None) => {}
                Ok(Some(ev)) => panic!("unexpected {ev:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            err,
            ParseError::LineTooLong {
                limit: limits.max_line
            }
        );
        assert!(
            buf.len() <= limits.max_line + prefix.len() + 100,
            "rejected late: {}",
            buf.len()
        );
        assert!(parser.in_frame());
        // Sticky.
        assert_eq!(parser.next(&mut buf).unwrap_err(), err);
    }
}

#[test]
fn whole_100k_line() {
    let mut input = b"MSRP ".to_vec();
    input.extend(std::iter::repeat_n(b'a', 100 * 1024));
    let out = run_whole(Limits::default(), &input);
    assert_eq!(out.error, Some(ParseError::LineTooLong { limit: 16384 }));
}

#[test]
fn default_limits() {
    let l = Limits::default();
    assert_eq!((l.max_line, l.max_head, l.max_headers), (16384, 65536, 64));
    let mut many = b"MSRP abcd SEND\r\n".to_vec();
    for _ in 0..65 {
        many.extend_from_slice(b"X: y\r\n");
    }
    assert_eq!(
        run_whole(l, &many).error,
        Some(ParseError::TooManyHeaders { limit: 64 })
    );
    let mut ok = b"MSRP abcd SEND\r\n".to_vec();
    for _ in 0..64 {
        ok.extend_from_slice(b"X: y\r\n");
    }
    ok.extend_from_slice(b"-------abcd$\r\n");
    assert_eq!(run_whole(l, &ok).error, None);
    // Head too large with lines under max_line.
    let mut big = b"MSRP abcd SEND\r\n".to_vec();
    for _ in 0..7 {
        big.extend_from_slice(format!("X: {}\r\n", "v".repeat(10_000)).as_bytes());
    }
    assert_eq!(
        run_whole(l, &big).error,
        Some(ParseError::HeadTooLarge { limit: 65536 })
    );
}

#[test]
fn truncated_frames_are_in_frame() {
    let full = request("abcd", "SEND", &[], Some(b"hello"), b'$');
    for cut in 1..full.len() {
        let out = run_whole(Limits::default(), &full[..cut]);
        assert_eq!(out.error, None, "cut {cut}");
        assert!(out.in_frame, "cut {cut}");
    }
    let out = run_whole(Limits::default(), &full);
    assert!(!out.in_frame);
    let out = run_whole(Limits::default(), b"");
    assert!(!out.in_frame);
}

#[test]
fn current_transaction_id_tracks_frame() {
    let mut input = request("tid111", "SEND", &[], Some(b"body"), b'$');
    input.extend(response("tid222", "200 OK"));
    let mut parser = Parser::new(Limits::default());
    let mut buf = BytesMut::from(&input[..]);
    let mut seen = Vec::new();
    while let Some(ev) = parser.next(&mut buf).unwrap() {
        let tid = parser.current_transaction_id().map(|t| t.to_vec());
        seen.push((matches!(ev, Event::End(_)), tid));
    }
    assert_eq!(
        seen,
        vec![
            (false, Some(b"tid111".to_vec())),
            (false, Some(b"tid111".to_vec())),
            (true, None),
            (false, Some(b"tid222".to_vec())),
            (true, None),
        ]
    );
}

/// The parser keeps back at most len("\r\n-------" + tid) + 2 bytes of a body.
#[test]
fn body_streaming_keeps_little() {
    let tid = "abcdefgh";
    let bound = "\r\n-------".len() + tid.len() + 2;
    let mut parser = Parser::new(Limits::default());
    let mut buf = BytesMut::new();
    buf.extend_from_slice(format!("MSRP {tid} SEND\r\n{TO}\r\n{FROM}\r\n\r\n").as_bytes());
    assert!(matches!(parser.next(&mut buf), Ok(Some(Event::Head(_)))));
    assert!(parser.next(&mut buf).unwrap().is_none());
    let pieces: [&[u8]; 5] = [
        b"plain data, nothing held",
        b"ends with CR\r",
        b"\n-------abcd",
        b"efgh",
        b"X more",
    ];
    let mut total = Vec::new();
    for p in pieces {
        buf.extend_from_slice(p);
        while let Some(ev) = parser.next(&mut buf).unwrap() {
            match ev {
                Event::Body(b) => total.extend_from_slice(&b),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(buf.len() <= bound, "holding {} bytes", buf.len());
    }
    assert!(buf.is_empty(), "nothing can start an end-line: {buf:?}");
    buf.extend_from_slice(format!("\r\n-------{tid}$\r\n").as_bytes());
    while let Some(ev) = parser.next(&mut buf).unwrap() {
        match ev {
            Event::Body(b) => total.extend_from_slice(&b),
            Event::End(f) => assert_eq!(f, EndFlag::Complete),
            Event::Head(_) => panic!("head"),
        }
    }
    assert_eq!(total, pieces.concat());
}

/// A large body is streamed in pieces no larger than what was read.
#[test]
fn large_body_is_streamed() {
    let tid = "big1";
    let mut parser = Parser::new(Limits::default());
    let mut buf = BytesMut::new();
    buf.extend_from_slice(format!("MSRP {tid} SEND\r\n{TO}\r\n{FROM}\r\n\r\n").as_bytes());
    assert!(matches!(parser.next(&mut buf), Ok(Some(Event::Head(_)))));
    let chunk = vec![b'z'; 64 * 1024];
    let mut received = 0usize;
    for _ in 0..64 {
        buf.extend_from_slice(&chunk);
        while let Some(ev) = parser.next(&mut buf).unwrap() {
            let Event::Body(b) = ev else { panic!() };
            received += b.len();
        }
        assert!(buf.len() < 64);
    }
    buf.extend_from_slice(format!("\r\n-------{tid}+\r\n").as_bytes());
    let mut end = None;
    while let Some(ev) = parser.next(&mut buf).unwrap() {
        match ev {
            Event::Body(b) => received += b.len(),
            Event::End(f) => end = Some(f),
            Event::Head(_) => panic!(),
        }
    }
    assert_eq!(received, 64 * 64 * 1024);
    assert_eq!(end, Some(EndFlag::Continued));
}

#[test]
fn three_chunk_split_points() {
    // Spot-check three-piece splits on the trickiest vector.
    let v = request(
        "a786hjs2",
        "SEND",
        &[],
        Some(&tricky_body("a786hjs2")),
        b'$',
    );
    let whole = run_whole(Limits::default(), &v);
    for a in (0..v.len()).step_by(3) {
        for b in (a..v.len()).step_by(5) {
            let out = run_chunks(Limits::default(), [&v[..a], &v[a..b], &v[b..]]);
            assert_eq!(out, whole, "split {a} {b}");
        }
    }
}

#[test]
fn end_flag_bytes() {
    for (f, b) in [
        (EndFlag::Complete, b'$'),
        (EndFlag::Continued, b'+'),
        (EndFlag::Aborted, b'#'),
    ] {
        assert_eq!(f.as_byte(), b);
        assert_eq!(EndFlag::from_byte(b), Some(f));
    }
    assert_eq!(EndFlag::from_byte(b'!'), None);
}
