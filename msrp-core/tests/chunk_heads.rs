//! `ChunkHeads` renders exactly what building each chunk head from scratch
//! gives (the relay's former per-chunk code, kept here as the reference),
//! alone or written into a shared arena.

use bytes::Bytes;
use msrp_core::build::{
    body_end, body_end_in, end_line, end_line_in, request_head, response_head, ChunkHeads,
};
use msrp_core::{ByteRange, EndFlag, Header};
use proptest::prelude::*;

/// The head of one outgoing chunk, built the long way.
fn reference(
    tid: &[u8],
    method: &[u8],
    to: &[Bytes],
    from: &[Bytes],
    others: &[Header],
    has_body: bool,
    range: Option<ByteRange>,
) -> Bytes {
    let headers: Vec<Header> = match range {
        None => others.to_vec(),
        Some(r) => {
            let value = Bytes::from(r.to_string());
            let mut hs = Vec::new();
            let mut placed = false;
            for h in others {
                if h.is("Byte-Range") {
                    if !placed {
                        hs.push(Header::new("Byte-Range", value.clone()));
                        placed = true;
                    }
                } else {
                    hs.push(h.clone());
                }
            }
            if !placed {
                let at = hs
                    .iter()
                    .position(|h| h.is("Message-ID"))
                    .map_or(0, |p| p + 1);
                hs.insert(at, Header::new("Byte-Range", value));
            }
            hs
        }
    };
    request_head(tid, method, to, from, &headers, has_body).freeze()
}

fn header_strategy() -> impl Strategy<Value = Header> {
    let names = prop::sample::select(vec![
        "Message-ID",
        "message-id",
        "Byte-Range",
        "byte-range",
        "Content-Type",
        "Failure-Report",
        "X-Extra",
    ]);
    (names, "[a-z0-9/*-]{0,12}").prop_map(|(n, v)| Header::new(n, v))
}

fn range_strategy() -> impl Strategy<Value = Option<ByteRange>> {
    let num = prop_oneof![0u64..100_000, Just(u64::MAX), any::<u64>()];
    prop::option::of((
        num.clone(),
        prop::option::of(num.clone()),
        prop::option::of(num),
    ))
    .prop_map(|o| o.map(|(start, end, total)| ByteRange { start, end, total }))
}

proptest! {
    #[test]
    fn render_matches_the_reference(
        others in prop::collection::vec(header_strategy(), 0..7),
        ranges in prop::collection::vec(range_strategy(), 1..4),
        has_body in any::<bool>(),
        tid in "[A-Za-z0-9]{3,32}",
        method in prop::sample::select(vec!["SEND", "REPORT", "NICKNAME"]),
        arena_cap in prop_oneof![Just(0usize), 1usize..600],
    ) {
        let to = vec![Bytes::from_static(b"msrp://b.example:2855/s1;tcp")];
        let from = vec![
            Bytes::from_static(b"msrp://relay.example:2855/r;tcp"),
            Bytes::from_static(b"msrp://a.example:2855/s0;tcp"),
        ];
        let heads = ChunkHeads::new(
            Bytes::copy_from_slice(method.as_bytes()),
            to.clone(),
            from.clone(),
            others.clone(),
            has_body,
        );
        // and rendered into a shared arena (the relay's re-chunking), with
        // end-lines between the heads, as the arena fills up and is
        // replaced: each piece is exactly its own bytes
        let mut arena = bytes::BytesMut::with_capacity(arena_cap);
        let mut kept = Vec::new();
        for r in ranges {
            let want = reference(tid.as_bytes(), method.as_bytes(), &to, &from, &others, has_body, r);
            let got = heads.render(tid.as_bytes(), r);
            prop_assert_eq!(&got, &want);
            kept.push((heads.render_in(&mut arena, tid.as_bytes(), r), want));
            let end = body_end(tid.as_bytes(), EndFlag::Continued);
            kept.push((body_end_in(&mut arena, tid.as_bytes(), EndFlag::Continued), end));
            let end = end_line(tid.as_bytes(), EndFlag::Aborted);
            kept.push((end_line_in(&mut arena, tid.as_bytes(), EndFlag::Aborted), end));
        }
        for (got, want) in kept {
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn response_codes_are_three_digits_or_more() {
    let to = [Bytes::from_static(b"msrp://a/s;tcp")];
    let from = [Bytes::from_static(b"msrp://b/s;tcp")];
    for code in [0u16, 5, 42, 99, 100, 200, 481, 999, 1000, u16::MAX] {
        let h = response_head(b"tid1", code, None, &to, &from, &[]);
        let want = format!("MSRP tid1 {code:03}\r\n");
        assert!(h.starts_with(want.as_bytes()), "code {code}: {:?}", h);
    }
}

/// Whether `head` (a rendered request head) parses as a frame with `limits`.
fn parses(head: &[u8], tid: &[u8], limits: msrp_core::Limits) -> bool {
    let mut frame = bytes::BytesMut::from(head);
    frame.extend_from_slice(&msrp_core::build::end_line(
        tid,
        msrp_core::EndFlag::Complete,
    ));
    let mut p = msrp_core::Parser::new(limits);
    matches!(p.next(&mut frame), Ok(Some(msrp_core::Event::Head(_))))
}

proptest! {
    // `check` (what the relay runs before forwarding) says yes exactly when
    // every head `render` can give, as received and with the widest
    // Byte-Range, parses with the same limits: found by fuzz/ (target
    // head), a re-chunked head gained a 65th header field. Small limits so
    // every one of them is reached.
    #[test]
    fn check_agrees_with_the_parser(
        others in prop::collection::vec(header_strategy(), 0..9),
        to_len in prop::collection::vec(1usize..40, 1..4),
        from_len in prop::collection::vec(1usize..40, 1..4),
        tid_len in 3usize..=32,
        max_line in 60usize..160,
        max_head in 100usize..500,
        max_headers in 2usize..12,
    ) {
        let uri = |n: usize| Bytes::from(format!("msrp://h/{}", "s".repeat(n)));
        let to: Vec<Bytes> = to_len.into_iter().map(uri).collect();
        let from: Vec<Bytes> = from_len.into_iter().map(uri).collect();
        let heads = ChunkHeads::new(Bytes::from_static(b"SEND"), to, from, others, true);
        let limits = msrp_core::Limits { max_line, max_head, max_headers };
        let tid = "t".repeat(tid_len);
        let widest = ByteRange {
            start: msrp_core::MAX_POSITION,
            end: Some(msrp_core::MAX_POSITION),
            total: Some(msrp_core::MAX_POSITION),
        };
        let all_parse = [None, Some(widest)]
            .into_iter()
            .all(|r| parses(&heads.render(tid.as_bytes(), r), tid.as_bytes(), limits));
        let checked = heads.check(&limits, tid_len);
        prop_assert_eq!(checked.is_ok(), all_parse, "{:?}", checked);
    }
}
