use bytes::BytesMut;
use proptest::prelude::*;

use super::*;
use crate::{Event, ParseError};

const OK: &[u8] = b"MSRP a1b2c3d4e5f6g7h8 200 OK\r\n\
To-Path: msrp://127.0.0.1:2855/r;tcp\r\n\
From-Path: msrp://192.0.2.11:7777/b;tcp\r\n\
-------a1b2c3d4e5f6g7h8$\r\n";

/// What the full parser makes of the front of `input`: the response's
/// tid, code and flag and the bytes it consumed, or `None` for anything
/// else (request, body, error, incomplete).
fn full(input: &[u8], limits: Limits) -> Option<(Vec<u8>, u16, EndFlag, usize)> {
    let mut p = Parser::new(limits);
    let mut buf = BytesMut::from(input);
    let Ok(Some(Event::Head(h))) = p.next(&mut buf) else {
        return None;
    };
    let code = h.status_code()?;
    let Ok(Some(Event::End(flag))) = p.next(&mut buf) else {
        return None;
    };
    Some((
        h.transaction_id.to_vec(),
        code,
        flag,
        input.len() - buf.len(),
    ))
}

fn quick(input: &[u8], limits: Limits) -> Option<(Vec<u8>, u16, EndFlag, usize)> {
    let q = Parser::new(limits).quick_response(input)?;
    Some((input[q.tid.clone()].to_vec(), q.code, q.flag, q.len))
}

#[test]
fn a_plain_200_is_recognised_as_the_full_parser_reads_it() {
    let mut two = OK.to_vec();
    two.extend_from_slice(OK);
    for input in [OK, &two[..]] {
        let q = quick(input, Limits::default());
        assert_eq!(
            q,
            Some((
                b"a1b2c3d4e5f6g7h8".to_vec(),
                200,
                EndFlag::Complete,
                OK.len()
            ))
        );
        assert_eq!(q, full(input, Limits::default()));
    }
}

#[test]
fn every_prefix_of_a_response_is_left_to_the_full_parser() {
    for n in 0..OK.len() {
        assert_eq!(quick(&OK[..n], Limits::default()), None, "prefix {n}");
    }
}

#[test]
fn other_frames_and_bad_lines_are_left_to_the_full_parser() {
    let cases: &[&[u8]] = &[
        // a request
        b"MSRP a1 SEND\r\nTo-Path: msrp://h/r;tcp\r\n-------a1$\r\n",
        // a response with a body
        b"MSRP a1 200 OK\r\nTo-Path: msrp://h/r;tcp\r\n\r\nx\r\n-------a1$\r\n",
        // an end-line of another transaction
        b"MSRP a1 200 OK\r\nTo-Path: msrp://h/r;tcp\r\n-------a2$\r\n",
        // a bare LF
        b"MSRP a1 200 OK\nTo-Path: msrp://h/r;tcp\r\n-------a1$\r\n",
        // a header without a colon
        b"MSRP a1 200 OK\r\nTo-Path msrp://h/r;tcp\r\n-------a1$\r\n",
        // a control character in a value
        b"MSRP a1 200 OK\r\nTo-Path: msrp://h/r;\x01tcp\r\n-------a1$\r\n",
        // a bad status code, a bad tid
        b"MSRP a1 20 OK\r\n-------a1$\r\n",
        b"MSRP a 200 OK\r\n-------a$\r\n",
        // not MSRP
        b"HTTP/1.1 200 OK\r\n\r\n",
    ];
    for c in cases {
        assert_eq!(quick(c, Limits::default()), None, "{}", c.escape_ascii());
    }
}

#[test]
fn limits_are_the_full_parsers() {
    let tight = [
        Limits {
            max_headers: 1,
            ..Limits::default()
        },
        Limits {
            max_line: 40,
            ..Limits::default()
        },
        Limits {
            max_head: 60,
            ..Limits::default()
        },
    ];
    for limits in tight {
        assert_eq!(quick(OK, limits), None);
        let mut p = Parser::new(limits);
        let err = p.next(&mut BytesMut::from(OK)).unwrap_err();
        assert!(matches!(
            err,
            ParseError::TooManyHeaders { .. }
                | ParseError::LineTooLong { .. }
                | ParseError::HeadTooLarge { .. }
        ));
    }
    // just within: the head (without the end-line) is exactly max_head
    let head = OK.len() - b"-------a1b2c3d4e5f6g7h8$\r\n".len();
    let exact = Limits {
        max_headers: 2,
        max_line: 42,
        max_head: head,
    };
    assert!(quick(OK, exact).is_some());
    assert_eq!(quick(OK, exact), full(OK, exact));
}

#[test]
fn not_between_frames_means_no_quick_answer() {
    let mut p = Parser::new(Limits::default());
    let mut buf = BytesMut::from(&OK[..10]);
    assert!(p.next(&mut buf).unwrap().is_none());
    assert_eq!(p.quick_response(OK), None);
}

proptest! {
    /// Whatever the bytes, a frame recognised quickly is the one the full
    /// parser reads: same tid, code, flag and length.
    #[test]
    fn recognised_frames_agree_with_the_full_parser(
        edits in proptest::collection::vec((0usize..OK.len(), any::<u8>()), 0..3),
        cut in 0usize..8,
        max_headers in 0usize..4,
    ) {
        let mut input = OK.to_vec();
        for (at, b) in edits {
            input[at] = b;
        }
        input.truncate(input.len() - cut.min(input.len()));
        let limits = Limits { max_headers, ..Limits::default() };
        if let Some(q) = quick(&input, limits) {
            prop_assert_eq!(Some(q), full(&input, limits));
        }
    }
}
