//! The typed accessors of a parsed frame head (To-Path, From-Path,
//! Byte-Range, Failure-Report, Success-Report, Status, Message-ID) on heads
//! with random header values: never panic, accept only what the grammar
//! allows, and what they accept survives the relay's builders (a head the
//! relay rebuilds, and every re-chunked head, parses back to the same
//! values; `ChunkHeads::check` refuses exactly the heads that would not:
//! the relay answers those with 400 instead).
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use msrp_core::build::{self, ChunkHeads};
use msrp_core::{path, ByteRange, FailureReport, HeadError, Limits, Status, MAX_POSITION};
use msrp_fuzz::{first_head, range_is_valid};

const NAMES: [&str; 12] = [
    "To-Path",
    "From-Path",
    "Byte-Range",
    "Failure-Report",
    "Success-Report",
    "Status",
    "Message-ID",
    "Content-Type",
    "to-path",
    "BYTE-RANGE",
    "failure-report",
    "X-Other",
];

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    headers: Vec<(u8, Vec<u8>)>,
    has_body: bool,
}

fuzz_target!(|input: Input| {
    let method: &[u8] = match input.method % 4 {
        0 => b"SEND",
        1 => b"REPORT",
        2 => b"AUTH",
        _ => b"NICKNAME",
    };
    let tid = b"fz01";
    let mut frame = b"MSRP fz01 ".to_vec();
    frame.extend_from_slice(method);
    frame.extend_from_slice(b"\r\n");
    for (n, v) in &input.headers {
        frame.extend_from_slice(NAMES[usize::from(*n) % NAMES.len()].as_bytes());
        frame.extend_from_slice(b": ");
        frame.extend_from_slice(v);
        frame.extend_from_slice(b"\r\n");
    }
    if input.has_body {
        frame.extend_from_slice(b"\r\n");
    }
    frame.extend_from_slice(b"-------fz01$\r\n");
    let Some(head) = first_head(&frame) else {
        return;
    };

    let to = head.to_path();
    let from = head.from_path();
    for (p, name) in [(&to, "To-Path"), (&from, "From-Path")] {
        match p {
            Ok(uris) => {
                assert!(!uris.is_empty());
                for u in uris {
                    assert!(!u.is_empty() && !u.contains(&b' ') && !u.contains(&b'\t'));
                }
                assert_eq!(&path::split(&path::join(uris)), uris);
            }
            Err(HeadError::Missing(n)) => {
                assert_eq!(*n, name);
                assert!(head.header(name).is_none());
            }
            Err(HeadError::Invalid { .. }) => {}
        }
    }
    let range = head.byte_range();
    if let Ok(Some(r)) = &range {
        assert!(range_is_valid(r), "{r:?}");
        assert_eq!(ByteRange::parse(r.to_string().as_bytes()).as_ref(), Ok(r));
        assert_eq!(r.len().map(|l| l == 0), r.end.map(|_| r.is_empty()));
    }
    if let Ok(fr) = head.failure_report() {
        assert_eq!(FailureReport::parse(fr.as_str().as_bytes()), Ok(fr));
    }
    let _ = head.success_report();
    if let Ok(Some(s)) = head.status() {
        assert!(s.namespace <= 999 && s.code <= 999);
        assert_eq!(Status::parse(&s.to_bytes()), Ok(s.clone()));
    }
    assert_eq!(
        head.message_id(),
        head.headers().find(|h| h.is("Message-ID")).map(|h| h.value)
    );
    let _ = msrp_engine::route::Request::parse(&head);
    let _ = msrp_engine::route::failure_report(&head);

    // What the relay builds from the head parses back to the same values.
    let (Ok(to), Ok(from)) = (to, from) else {
        return;
    };
    let others: Vec<_> = head.other_headers().collect();
    let mut rebuilt = build::request_head(tid, method, &to, &from, &others, head.has_body);
    rebuilt.extend_from_slice(&build::end_line(tid, msrp_core::EndFlag::Complete));
    let again = first_head(&rebuilt).expect("a rebuilt head parses");
    assert_eq!(again.to_path().as_ref(), Ok(&to));
    assert_eq!(again.from_path().as_ref(), Ok(&from));
    let again_others: Vec<_> = again.other_headers().collect();
    assert_eq!(again_others, others);
    assert_eq!(again.has_body, head.has_body);

    let heads = ChunkHeads::new(
        Bytes::copy_from_slice(method),
        to.clone(),
        from.clone(),
        others.clone(),
        head.has_body,
    );
    // what the relay checks before forwarding: every head it may write
    // (as received, or with any Byte-Range) parses with its own limits
    let parses = |r: Option<ByteRange>| {
        let mut c = heads.render(b"fz02", r).to_vec();
        c.extend_from_slice(&build::end_line(b"fz02", msrp_core::EndFlag::Continued));
        first_head(&c).is_some()
    };
    let widest = ByteRange {
        start: MAX_POSITION,
        end: Some(MAX_POSITION),
        total: Some(MAX_POSITION),
    };
    let checked = heads.check(&Limits::default(), 4);
    assert_eq!(
        checked.is_ok(),
        parses(None) && parses(Some(widest)),
        "check {checked:?}"
    );
    if checked.is_err() {
        // the relay answers 400 instead of forwarding
        return;
    }
    let chunk_range = match range {
        Ok(Some(r)) => r,
        _ => ByteRange {
            start: 1,
            end: None,
            total: None,
        },
    };
    let mut chunk = heads.render(b"fz02", Some(chunk_range)).to_vec();
    chunk.extend_from_slice(&build::end_line(b"fz02", msrp_core::EndFlag::Continued));
    let c = first_head(&chunk).expect("a chunk head parses");
    assert_eq!(c.byte_range(), Ok(Some(chunk_range)));
    assert_eq!(c.to_path().as_ref(), Ok(&to));
    assert_eq!(c.message_id(), head.message_id());
});
