use super::*;
use bytes::{Bytes, BytesMut};
use msrp_core::{build, Event, Header, Limits, Parser};

fn head(text: &str) -> FrameHead {
    let mut buf = BytesMut::from(text.as_bytes());
    match Parser::new(Limits::default()).next(&mut buf) {
        Ok(Some(Event::Head(head))) => head,
        other => panic!("test frame does not parse: {other:?}"),
    }
}

/// The response as `build::response_head` writes it from the parsed paths
/// (what `reply_frame` wrote before it built the frame in one buffer).
fn reference(head: &FrameHead, code: u16, text: &[u8], hdrs: &[u8]) -> Bytes {
    let from = head.from_path().expect("From-Path");
    let to = head.to_path().expect("To-Path");
    let to_path: Vec<Bytes> = if head.method() == Some(b"SEND") {
        from[..1].to_vec()
    } else {
        from
    };
    let extra: Vec<Header> = head
        .message_id()
        .map(|m| Header::new(&b"Message-ID"[..], head.bytes_of(m)))
        .into_iter()
        .collect();
    let text = (!text.is_empty()).then_some(text);
    let tid = &head.transaction_id;
    let mut f = build::response_head(tid, code, text, &to_path, &to[..1], &extra).to_vec();
    f.extend_from_slice(hdrs);
    if !hdrs.is_empty() && !hdrs.ends_with(b"\r\n") {
        f.extend_from_slice(b"\r\n");
    }
    f.extend_from_slice(&build::end_line(tid, msrp_core::EndFlag::Complete));
    Bytes::from(f)
}

const FRAMES: [&str; 4] = [
    "MSRP tx001 SEND\r\nTo-Path: msrp://127.0.0.1:2855/r;tcp msrp://127.0.0.1:9/b;tcp\r\n\
     From-Path: msrp://127.0.0.1:8/a;tcp\r\nMessage-ID: m1\r\n-------tx001$\r\n",
    // several From-Path URIs, tabs and double spaces between them
    "MSRP t2345 SEND\r\nTo-Path: msrp://r:1/r;tcp\tmsrp://b:2/b;tcp\r\n\
     From-Path: msrp://x:3/x;tcp  msrp://a:4/a;tcp\r\n-------t2345$\r\n",
    "MSRP abc NICKNAME\r\nTo-Path: msrp://r:1/r;tcp msrp://b:2/b;tcp\r\n\
     From-Path: msrp://x:3/x;tcp \tmsrp://a:4/a;tcp msrp://c:5/c;tcp\r\nUse-Nickname: \"n\"\r\n\
     -------abc$\r\n",
    "MSRP auth7 AUTH\r\nTo-Path: msrp://r:1;tcp\r\nFrom-Path: msrp://a:4/a;tcp\r\n\
     Message-ID: id-9\r\n-------auth7$\r\n",
];

#[test]
fn replies_are_byte_for_byte_those_of_the_path_lists() {
    let cases: [(u16, &[u8], &[u8]); 5] = [
        (200, b"OK", b""),
        (413, b"Message Too Large", b""),
        (481, b"", b""),
        (423, b"Interval Out-of-Bounds", b"Min-Expires: 60\r\n"),
        (200, b"OK", b"Use-Path: msrp://r:1/s;tcp"),
    ];
    for text in FRAMES {
        let h = head(text);
        for (code, reason, hdrs) in cases {
            assert_eq!(
                reply_frame(&h, code, reason, hdrs),
                Ok(reference(&h, code, reason, hdrs)),
                "{text}"
            );
        }
    }
}

#[test]
fn no_reply_without_paths_or_to_responses_and_reports() {
    let no_from = head("MSRP tx1 SEND\r\nTo-Path: msrp://r:1/r;tcp\r\n-------tx1$\r\n");
    assert_eq!(
        reply_frame(&no_from, 200, b"OK", b""),
        Err(ScriptError::MissingHeader("From-Path"))
    );
    let no_to = head("MSRP tx1 SEND\r\nFrom-Path: msrp://r:1/r;tcp\r\n-------tx1$\r\n");
    assert_eq!(
        reply_frame(&no_to, 200, b"OK", b""),
        Err(ScriptError::MissingHeader("To-Path"))
    );
    let response = head(
        "MSRP tx1 200 OK\r\nTo-Path: msrp://r:1/r;tcp\r\nFrom-Path: msrp://a:1/a;tcp\r\n\
         -------tx1$\r\n",
    );
    assert_eq!(
        reply_frame(&response, 200, b"OK", b""),
        Err(ScriptError::ReplyToResponse)
    );
    let report = head(
        "MSRP tx1 REPORT\r\nTo-Path: msrp://r:1/r;tcp\r\nFrom-Path: msrp://a:1/a;tcp\r\n\
         -------tx1$\r\n",
    );
    assert_eq!(
        reply_frame(&report, 200, b"OK", b""),
        Err(ScriptError::ReplyToReport)
    );
}

#[test]
fn own_answers_give_the_200_and_the_413() {
    for text in FRAMES {
        let h = head(text);
        let a = OwnAnswer::new(&h, true, true).expect("answer");
        assert_eq!(
            Ok(a.refusal()),
            reply_frame(&h, 413, b"Message Too Large", b"")
        );
        assert_eq!(a.ok(), reply_frame(&h, 200, b"OK", b"").ok());
        // "partial": a 413 on refusal, no 200
        let partial = OwnAnswer::new(&h, false, true).expect("answer");
        assert!(partial.refusal().starts_with(b"MSRP "));
        assert_eq!(partial.ok(), None);
        assert!(OwnAnswer::new(&h, false, false).is_none());
    }
}
