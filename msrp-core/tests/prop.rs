//! Property tests: bodies survive any chunking, random input never panics.

mod common;

use common::{body_of, run_chunks, Ev};
use msrp_core::{build, EndFlag, Limits};
use proptest::prelude::*;

const TID: &[u8] = b"Xk3.9=+%";

fn flag_strategy() -> impl Strategy<Value = EndFlag> {
    prop_oneof![
        Just(EndFlag::Complete),
        Just(EndFlag::Continued),
        Just(EndFlag::Aborted)
    ]
}

/// Body bytes rich in end-line fragments: random bytes interleaved with
/// pieces of `CRLF -------tid flag CRLF`, but never a complete valid one.
fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..20),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"-------".to_vec()),
        Just(TID.to_vec()),
        Just(b"\r\n-------".to_vec()),
        (0..TID.len()).prop_map(|n| {
            let mut v = b"\r\n-------".to_vec();
            v.extend_from_slice(&TID[..n]);
            v
        }),
        prop_oneof![Just(b'$'), Just(b'+'), Just(b'#'), any::<u8>()].prop_map(|f| {
            let mut v = b"\r\n-------".to_vec();
            v.extend_from_slice(TID);
            v.push(f);
            v
        }),
    ];
    proptest::collection::vec(fragment, 0..30)
        .prop_map(|parts| parts.concat())
        .prop_filter("body must not contain a valid end-line", |b| {
            !contains_end_line(b)
        })
}

/// True if `b` contains `CRLF -------tid flag CRLF`, or ends in a way that,
/// followed by the body terminator, forms one earlier than intended.
fn contains_end_line(b: &[u8]) -> bool {
    // Append the real terminator and look for an end-line that starts
    // before it.
    let mut full = b.to_vec();
    full.extend_from_slice(&build::body_end(TID, EndFlag::Complete));
    let mut delim = b"\r\n-------".to_vec();
    delim.extend_from_slice(TID);
    let n = delim.len();
    (0..b.len()).any(|i| {
        full.len() >= i + n + 3
            && full[i..i + n] == delim[..]
            && EndFlag::from_byte(full[i + n]).is_some()
            && &full[i + n + 1..i + n + 3] == b"\r\n"
    })
}

fn frame(body: &[u8], flag: EndFlag) -> Vec<u8> {
    let to = [bytes::Bytes::from_static(b"msrp://b.example.com/s1;tcp")];
    let from = [bytes::Bytes::from_static(b"msrp://a.example.com/s2;tcp")];
    let mut v = build::request_head(TID, b"SEND", &to, &from, &[], true).to_vec();
    v.extend_from_slice(body);
    v.extend_from_slice(&build::body_end(TID, flag));
    v
}

fn split_at_points(input: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
    points.iter_mut().for_each(|p| *p %= input.len() + 1);
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut prev = 0;
    for p in points {
        chunks.push(&input[prev..p]);
        prev = p;
    }
    chunks.push(&input[prev..]);
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn body_reassembles(
        body in body_strategy(),
        flag in flag_strategy(),
        points in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        // A body that starts like an end-line would hit the empty-body
        // tolerance; that case is covered by the vectors instead.
        let mut dash_tid = b"-------".to_vec();
        dash_tid.extend_from_slice(TID);
        let starts_like_end = body.starts_with(&dash_tid)
            && body.get(dash_tid.len()).is_some_and(|&f| EndFlag::from_byte(f).is_some())
            && body.get(dash_tid.len() + 1..dash_tid.len() + 3) == Some(&b"\r\n"[..]);
        prop_assume!(!starts_like_end);

        let mut input = frame(&body, flag);
        // A second frame right behind the first.
        input.extend_from_slice(&frame(b"next", EndFlag::Complete));
        let chunks = split_at_points(&input, points);
        let out = run_chunks(Limits::default(), chunks);
        prop_assert_eq!(&out.error, &None);
        prop_assert!(!out.in_frame);
        prop_assert_eq!(body_of(&out.events, 0), body.clone());
        prop_assert_eq!(body_of(&out.events, 1), b"next".to_vec());
        let ends: Vec<EndFlag> = out.events.iter().filter_map(|e| match e {
            Ev::End(f) => Some(*f),
            _ => None,
        }).collect();
        prop_assert_eq!(ends, vec![flag, EndFlag::Complete]);
    }

    #[test]
    fn random_input_never_panics(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        points in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let _ = run_chunks(Limits { max_line: 64, max_head: 200, max_headers: 4 }, split_at_points(&input, points));
    }

    #[test]
    fn mutated_frames_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        points in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut input = frame(&body, EndFlag::Complete);
        let len = input.len();
        for (pos, byte) in flips {
            input[pos % len] = byte;
        }
        let _ = run_chunks(Limits::default(), split_at_points(&input, points));
    }

    /// Whatever the input, the outcome (events with bodies merged, error,
    /// in_frame) does not depend on how it is cut into reads.
    #[test]
    fn outcome_is_independent_of_splitting(
        body in proptest::collection::vec(any::<u8>(), 0..48),
        flips in proptest::collection::vec((any::<usize>(), prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b' '), Just(b':'), Just(b'$'), any::<u8>()
        ]), 0..3),
        cut in any::<usize>(),
        points in proptest::collection::vec(any::<usize>(), 1..6),
    ) {
        let mut input = frame(&body, EndFlag::Continued);
        input.extend_from_slice(&frame(b"x", EndFlag::Complete));
        let len = input.len();
        for (pos, byte) in flips {
            input[pos % len] = byte;
        }
        input.truncate(len - cut % 8);
        let limits = Limits { max_line: 40, max_head: 120, max_headers: 3 };
        let whole = run_chunks(limits, [&input[..]]);
        let split = run_chunks(limits, split_at_points(&input, points));
        let bytewise = run_chunks(limits, input.chunks(1));
        prop_assert_eq!(&split.events, &whole.events);
        prop_assert_eq!(&split.error, &whole.error);
        prop_assert_eq!(&bytewise.events, &whole.events);
        prop_assert_eq!(&bytewise.error, &whole.error);
        if whole.error.is_none() {
            prop_assert_eq!(split.in_frame, whole.in_frame);
            prop_assert_eq!(bytewise.in_frame, whole.in_frame);
        }
    }
}
