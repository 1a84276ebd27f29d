//! Byte-Range positions near `u64::MAX` (issue: "18446744073709551615-*/*"
//! with a body larger than the max chunk overflowed the relay's
//! arithmetic): they are refused when parsed, and whatever is accepted
//! re-chunks into consistent ranges.

use bytes::Bytes;
use msrp_core::{ByteRange, ChunkEvent, Chunker, EndFlag, MAX_POSITION};
use proptest::prelude::*;

fn near_max() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u64..2048).prop_map(|d| u64::MAX - d),
        (0u64..2048).prop_map(|d| MAX_POSITION + 1 + d),
        (0u64..2048).prop_map(|d| MAX_POSITION - d),
        1u64..4096,
    ]
}

fn star_or(v: Option<u64>) -> String {
    v.map_or("*".to_string(), |v| v.to_string())
}

proptest! {
    #[test]
    fn positions_over_the_limit_are_refused_and_the_rest_chunk_consistently(
        start in near_max(),
        end in proptest::option::of(near_max()),
        total in proptest::option::of(near_max()),
        body_len in 0usize..40_000,
        max in prop_oneof![Just(0usize), 2048usize..9000],
    ) {
        let text = format!("{start}-{}/{}", star_or(end), star_or(total));
        let parsed = ByteRange::parse(text.as_bytes());
        if [Some(start), end, total].into_iter().flatten().any(|v| v > MAX_POSITION) {
            prop_assert!(parsed.is_err(), "{text} accepted");
            return Ok(());
        }
        let Ok(range) = parsed else { return Ok(()) };
        let mut c = Chunker::new(Some(range), max, None);
        let mut out = Vec::new();
        let body = Bytes::from(vec![b'x'; body_len]);
        let mut at = 0;
        while at < body_len {
            let n = 3000.min(body_len - at);
            c.body(body.slice(at..at + n), &mut out);
            at += n;
        }
        c.end(EndFlag::Complete, &mut out);
        // every outgoing chunk starts where the bytes before it end
        let mut next = range.start;
        let mut carried = 0u64;
        for ev in &out {
            match ev {
                ChunkEvent::Start(Some(r)) => {
                    prop_assert!(r.start >= range.start, "{text}: start {} wrapped", r.start);
                    // what the relay writes, a next hop (and the relay) parses
                    prop_assert!(
                        ByteRange::parse(r.to_string().as_bytes()).is_ok(),
                        "{text}: wrote {r}"
                    );
                    prop_assert_eq!(r.start, next, "{}", text);
                    if let Some(e) = r.end {
                        prop_assert!(e.saturating_add(1) >= r.start, "{text}: {r:?}");
                    }
                    // the total as received; bytes beyond what the
                    // sender's range allows go out as `start-*/*`
                    let beyond = range.end.or(range.total).is_some_and(|l| r.start > l);
                    prop_assert!(
                        r.total == range.total || beyond && r.total.is_none() && r.end.is_none(),
                        "{text}: {r:?}"
                    );
                }
                ChunkEvent::Start(None) => {}
                ChunkEvent::Body(b) => {
                    carried += b.len() as u64;
                    next = range.start.saturating_add(carried);
                }
                ChunkEvent::End(_) => {}
            }
        }
        prop_assert_eq!(carried, body_len as u64);
    }
}
