use super::*;

fn run(
    incoming: Option<ByteRange>,
    max: usize,
    pieces: &[&[u8]],
    flag: EndFlag,
) -> Vec<ChunkEvent> {
    let mut c = Chunker::new(incoming, max, None);
    let mut out = Vec::new();
    for p in pieces {
        c.body(Bytes::copy_from_slice(p), &mut out);
    }
    c.end(flag, &mut out);
    out
}

fn br(start: u64, end: Option<u64>, total: Option<u64>) -> Option<ByteRange> {
    Some(ByteRange { start, end, total })
}

#[test]
fn splits_known_range_and_closes_full_chunks_eagerly() {
    let out = run(
        br(1, Some(10), Some(10)),
        4,
        &[b"0123456789"],
        EndFlag::Complete,
    );
    assert_eq!(
        out,
        vec![
            ChunkEvent::Start(br(1, Some(4), Some(10))),
            ChunkEvent::Body(Bytes::from_static(b"0123")),
            ChunkEvent::End(EndFlag::Continued),
            ChunkEvent::Start(br(5, Some(8), Some(10))),
            ChunkEvent::Body(Bytes::from_static(b"4567")),
            ChunkEvent::End(EndFlag::Continued),
            ChunkEvent::Start(br(9, Some(10), Some(10))),
            ChunkEvent::Body(Bytes::from_static(b"89")),
            ChunkEvent::End(EndFlag::Complete),
        ]
    );
}

#[test]
fn unknown_end_uses_star_and_last_full_chunk_takes_the_flag() {
    let out = run(br(1, None, None), 4, &[b"01", b"234567"], EndFlag::Complete);
    assert_eq!(
        out,
        vec![
            ChunkEvent::Start(br(1, None, None)),
            ChunkEvent::Body(Bytes::from_static(b"01")),
            ChunkEvent::Body(Bytes::from_static(b"23")),
            ChunkEvent::End(EndFlag::Continued),
            ChunkEvent::Start(br(5, None, None)),
            ChunkEvent::Body(Bytes::from_static(b"4567")),
            ChunkEvent::End(EndFlag::Complete),
        ]
    );
}

#[test]
fn small_chunk_passes_unchanged() {
    let out = run(br(1, Some(3), Some(3)), 4, &[b"abc"], EndFlag::Complete);
    assert_eq!(
        out,
        vec![
            ChunkEvent::Start(None),
            ChunkEvent::Body(Bytes::from_static(b"abc")),
            ChunkEvent::End(EndFlag::Complete),
        ]
    );
}

#[test]
fn empty_body_and_zero_max() {
    let out = run(None, 4, &[], EndFlag::Complete);
    assert_eq!(
        out,
        vec![
            ChunkEvent::Start(br(1, None, None)),
            ChunkEvent::End(EndFlag::Complete)
        ]
    );
    let out = run(br(1, None, Some(99)), 0, &[b"0123456789"], EndFlag::Aborted);
    assert_eq!(
        out,
        vec![
            ChunkEvent::Start(None),
            ChunkEvent::Body(Bytes::from_static(b"0123456789")),
            ChunkEvent::End(EndFlag::Aborted),
        ]
    );
}

// Found by fuzz/ (target chunker): a sender whose chunk carries more
// bytes than its own Byte-Range allows made the relay write Byte-Ranges
// a next hop rejects ("11-*/10", "4097-3000/3000"), or pass a chunk
// larger than `max` unchanged. Bytes beyond the sender's range now go
// out as `start-*/*` chunks.
#[test]
fn bytes_beyond_the_total_are_labelled_star() {
    let out = run(br(9, None, Some(10)), 4, &[b"abcdefgh"], EndFlag::Complete);
    assert_eq!(
        out,
        vec![
            ChunkEvent::Start(br(9, None, Some(10))),
            ChunkEvent::Body(Bytes::from_static(b"ab")),
            ChunkEvent::End(EndFlag::Continued),
            ChunkEvent::Start(br(11, None, None)),
            ChunkEvent::Body(Bytes::from_static(b"cdef")),
            ChunkEvent::End(EndFlag::Continued),
            ChunkEvent::Start(br(15, None, None)),
            ChunkEvent::Body(Bytes::from_static(b"gh")),
            ChunkEvent::End(EndFlag::Complete),
        ]
    );
}

// Found by fuzz/ (target chunker, and a CI fuzz smoke): a chunk
// `4611686018427387696-*/*` (208 below 2^62) with 11,607 bytes cut at
// 2048 made the relay write `4611686018427389744-*/*`, a position over
// MAX_POSITION its own parser (and a next hop) refuses. No chunk starts
// past 2^62: the chunk open there carries the rest.
#[test]
fn no_chunk_starts_past_the_largest_position() {
    let start = MAX_POSITION - 5;
    let body = [b'x'; 20];
    let out = run(
        br(start, None, None),
        4,
        &[&body[..7], &body[7..]],
        EndFlag::Complete,
    );
    let starts: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            ChunkEvent::Start(r) => Some(r.expect("re-chunked").start),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![start, start + 4]);
    assert_eq!(out.last(), Some(&ChunkEvent::End(EndFlag::Complete)));
    let carried: usize = out
        .iter()
        .map(|e| match e {
            ChunkEvent::Body(b) => b.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(carried, 20);
    // a range ending at 2^62 that the sender overruns: the open chunk
    // goes on past its own range-end, as the sender's does
    let out = run(
        br(MAX_POSITION - 1, Some(MAX_POSITION), None),
        4,
        &[b"abcdef"],
        EndFlag::Complete,
    );
    assert_eq!(
        out,
        vec![
            ChunkEvent::Start(None),
            ChunkEvent::Body(Bytes::from_static(b"ab")),
            ChunkEvent::Body(Bytes::from_static(b"cdef")),
            ChunkEvent::End(EndFlag::Complete),
        ]
    );
    // the REPORT range stays within what a Byte-Range may name
    let mut c = Chunker::new(br(MAX_POSITION, None, None), 4, None);
    c.body(Bytes::from_static(b"abcdef"), &mut Vec::new());
    assert_eq!(c.forwarded_range().end, Some(MAX_POSITION));
}

#[test]
fn bytes_beyond_the_range_end_are_labelled_star() {
    let out = run(
        br(1, Some(3), Some(10)),
        2,
        &[b"abc", b"def"],
        EndFlag::Complete,
    );
    assert_eq!(
        out,
        vec![
            ChunkEvent::Start(br(1, Some(2), Some(10))),
            ChunkEvent::Body(Bytes::from_static(b"ab")),
            ChunkEvent::End(EndFlag::Continued),
            ChunkEvent::Start(br(3, Some(3), Some(10))),
            ChunkEvent::Body(Bytes::from_static(b"c")),
            ChunkEvent::End(EndFlag::Continued),
            ChunkEvent::Start(br(4, None, None)),
            ChunkEvent::Body(Bytes::from_static(b"de")),
            ChunkEvent::End(EndFlag::Continued),
            ChunkEvent::Start(br(6, None, None)),
            ChunkEvent::Body(Bytes::from_static(b"f")),
            ChunkEvent::End(EndFlag::Complete),
        ]
    );
}

#[test]
fn a_passed_chunk_stops_where_its_range_does() {
    let out = run(br(1, Some(3), Some(3)), 4, &[b"abcdef"], EndFlag::Complete);
    assert_eq!(
        out,
        vec![
            ChunkEvent::Start(None),
            ChunkEvent::Body(Bytes::from_static(b"abc")),
            ChunkEvent::End(EndFlag::Continued),
            ChunkEvent::Start(br(4, None, None)),
            ChunkEvent::Body(Bytes::from_static(b"def")),
            ChunkEvent::End(EndFlag::Complete),
        ]
    );
    // an empty chunk right after the total is still within the range
    let mut c = Chunker::new(br(1, None, Some(3)), 2, None);
    let mut out = Vec::new();
    c.body(Bytes::from_static(b"abc"), &mut out);
    assert_eq!(c.empty_range_at(3), br(4, None, Some(3)));
    assert_eq!(
        c.forwarded_range(),
        ByteRange {
            start: 1,
            end: Some(3),
            total: Some(3)
        }
    );
    c.body(Bytes::from_static(b"d"), &mut out);
    assert_eq!(c.empty_range_at(4), br(5, None, None));
    // REPORT range: a total the bytes exceed becomes `*`
    assert_eq!(
        c.forwarded_range(),
        ByteRange {
            start: 1,
            end: Some(4),
            total: None
        }
    );
}
