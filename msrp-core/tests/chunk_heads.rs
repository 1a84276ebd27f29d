//! `ChunkHeads` renders exactly what building each chunk head from scratch
//! gives (the relay's former per-chunk code, kept here as the reference).

use bytes::Bytes;
use msrp_core::build::{request_head, response_head, ChunkHeads};
use msrp_core::{ByteRange, Header};
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
        for r in ranges {
            let want = reference(tid.as_bytes(), method.as_bytes(), &to, &from, &others, has_body, r);
            let got = heads.render(tid.as_bytes(), r);
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
