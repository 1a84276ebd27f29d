//! The relay's re-chunker (RFC 4976 §6.4.1) with random incoming
//! Byte-Ranges (any the parser accepts, so also ones that announce more or
//! fewer bytes than the sender then sends), `msrp_max_chunk_size` 0 or
//! 2048.., and random body pieces. Checked: the outgoing events are
//! `(Start Body* End)+`; the bytes come out unchanged and in order; a
//! re-cut chunk carries at most `max` bytes; every Byte-Range the relay
//! writes is one a next hop accepts, starts where the previous chunk
//! ended, keeps the total, and announces at least the bytes the chunk
//! carries (fewer only when the sender's chunk ended early); and the
//! REPORT range follows the bytes received. Bytes at positions past
//! `MAX_POSITION` (2^62), where no chunk can start, stay in the chunk
//! already open: only that chunk may exceed `max` and its range.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use msrp_core::{ByteRange, ChunkEvent, Chunker, EndFlag, MAX_POSITION};
use msrp_fuzz::{range_is_valid, Rng};

#[derive(Debug, Arbitrary)]
struct Input {
    /// (start, end, total) of the incoming Byte-Range; `None` parts are `*`.
    range: Option<(u64, Option<u64>, Option<u64>)>,
    /// Selects small positions (near 1) or any.
    small_positions: bool,
    /// `msrp_max_chunk_size`: 0 or 2048 + this.
    max: Option<u16>,
    /// Body length (up to 64 KiB).
    len: u16,
    /// Seed of the piece sizes.
    seed: u64,
    /// The whole body was there when the route ran (`known_len`).
    known: bool,
    flag: u8,
}

fuzz_target!(|input: Input| {
    let len = usize::from(input.len);
    let range = input.range.and_then(|(s, e, t)| {
        let fit = |v: u64| {
            if input.small_positions {
                v % (3 * len as u64 + 10)
            } else {
                v
            }
        };
        let r = ByteRange {
            start: fit(s),
            end: e.map(fit),
            total: t.map(fit),
        };
        // only what the parser lets through reaches the chunker
        ByteRange::parse(r.to_string().as_bytes()).ok()
    });
    let max = input.max.map_or(0, |m| 2048 + usize::from(m));
    let flag =
        [EndFlag::Complete, EndFlag::Continued, EndFlag::Aborted][usize::from(input.flag % 3)];
    let body: Bytes = (0..len)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let known_len = input.known.then_some(len as u64);

    let mut ch = Chunker::new(range, max, known_len);
    let mut events = Vec::new();
    let mut rng = Rng::new(input.seed);
    let mut fed = 0usize;
    let start = range.map_or(1, |r| r.start);
    while fed < len || rng.below(4) == 0 {
        let n = match rng.below(4) {
            0 => 0,
            1 => 1 + rng.below(16) as usize,
            _ => rng.below(3 * max as u64 + 64) as usize,
        }
        .min(len - fed);
        ch.body(body.slice(fed..fed + n), &mut events);
        fed += n;
        assert_eq!(ch.consumed(), fed as u64);
        let fr = ch.forwarded_range();
        assert_eq!(fr.start, start);
        assert_eq!(
            fr.end,
            Some((start + fed as u64).saturating_sub(1).min(MAX_POSITION))
        );
        assert!(range_is_valid(&fr), "REPORT range {fr}");
        if fed == len {
            break;
        }
    }
    if !ch.is_open() {
        if let Some(r) = ch.empty_range_at(fed as u64) {
            assert!(range_is_valid(&r), "empty range {r} at {fed} of {range:?}");
        }
    }
    ch.end(flag, &mut events);
    assert!(!ch.is_open());

    // (Start Body* End)+ with non-empty bodies
    let mut chunks: Vec<(Option<ByteRange>, Vec<u8>, EndFlag)> = Vec::new();
    let mut open: Option<(Option<ByteRange>, Vec<u8>)> = None;
    for ev in events {
        match ev {
            ChunkEvent::Start(r) => {
                assert!(open.is_none(), "Start inside a chunk");
                open = Some((r, Vec::new()));
            }
            ChunkEvent::Body(b) => {
                assert!(!b.is_empty(), "empty Body");
                open.as_mut()
                    .expect("Body outside a chunk")
                    .1
                    .extend_from_slice(&b);
            }
            ChunkEvent::End(f) => {
                let (r, b) = open.take().expect("End outside a chunk");
                chunks.push((r, b, f));
            }
        }
    }
    assert!(open.is_none());
    assert!(!chunks.is_empty(), "no outgoing chunk");

    let joined: Vec<u8> = chunks.iter().flat_map(|c| c.1.iter().copied()).collect();
    assert!(joined[..] == body[..], "bytes changed");
    let last = chunks.len() - 1;
    for (i, c) in chunks.iter().enumerate() {
        let want = if i == last { flag } else { EndFlag::Continued };
        assert_eq!(c.2, want, "flag of chunk {i} of {}", chunks.len());
    }

    // the last position the sender's Byte-Range allows
    let limit = range.and_then(|r| r.end.or(r.total));
    let mut pos = start;
    for (i, (r, b, _)) in chunks.iter().enumerate() {
        let carried = b.len() as u64;
        // the chunk holds bytes past 2^62: it carries the rest, whatever
        // its size and range say
        let beyond = pos + carried > MAX_POSITION + 1;
        assert!(
            !beyond || i == last,
            "chunk {i} of {} past 2^62",
            chunks.len()
        );
        let Some(r) = r else {
            // passed as received: the first chunk only, and (unless max is
            // 0) only as far as it fits and its Byte-Range goes
            assert_eq!(
                i, 0,
                "Start(None) after another chunk ({range:?}, max {max})"
            );
            if max == 0 {
                assert_eq!(chunks.len(), 1);
            } else if !beyond {
                assert!(
                    carried <= max as u64,
                    "passthrough of {carried} bytes > max {max} ({range:?})"
                );
                if let Some(l) = limit {
                    assert!(
                        start + carried <= l + 1,
                        "passthrough of {carried} bytes beyond {range:?}"
                    );
                }
            }
            pos += carried;
            continue;
        };
        assert!(max > 0, "re-chunked with max 0");
        let ctx = format!(
            "chunk {i} {r} of {} (incoming {range:?}, {len} bytes, max {max})",
            chunks.len()
        );
        assert!(
            carried <= max as u64 || beyond,
            "{ctx}: {carried} bytes > max"
        );
        assert!(
            carried > 0 || len == 0 || i == last,
            "{ctx}: needless empty chunk"
        );
        assert!(range_is_valid(&r), "{ctx}: invalid Byte-Range");
        assert_eq!(r.start, pos, "{ctx}: range-start");
        // end and total as received, or `*` beyond what the sender's
        // Byte-Range allows
        // (an empty chunk is beyond only when it starts past limit + 1)
        let first = if carried == 0 {
            pos.saturating_sub(1)
        } else {
            pos
        };
        if limit.is_some_and(|l| first > l) {
            assert_eq!(
                (r.end, r.total),
                (None, None),
                "{ctx}: overrun bytes labelled"
            );
        } else {
            assert_eq!(r.total, range.and_then(|x| x.total), "{ctx}: total");
            assert_eq!(
                r.end.is_some(),
                range.is_some_and(|x| x.end.is_some()),
                "{ctx}: end"
            );
        }
        // announced bytes: at least those carried; more only when the
        // sender's chunk ended before its announced end
        if let Some(last_pos) = r.end.or(r.total).filter(|_| !beyond) {
            assert!(
                pos + carried <= last_pos + 1,
                "{ctx}: carries {carried} bytes"
            );
        }
        if let Some(l) = r.len().filter(|_| !beyond) {
            let announced = range.and_then(|x| x.len());
            assert!(
                carried == l || i == last && announced.is_some_and(|a| (len as u64) < a),
                "{ctx}: carries {carried} bytes"
            );
        }
        pos += carried;
    }
    assert_eq!(pos, start + len as u64);
});
