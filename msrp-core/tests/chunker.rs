//! Property tests for the relay's re-chunker (RFC 4976 §6.4.1): whatever the
//! message size, incoming chunk layout, read pieces and `max`, the outgoing
//! chunks carry the message unchanged, respect `max`, have consistent
//! Byte-Ranges and flags, and form a well-formed event stream.

use bytes::Bytes;
use msrp_core::{ByteRange, ChunkEvent, Chunker, EndFlag};
use proptest::prelude::*;

const MAXES: [usize; 7] = [0, 1, 7, 2048, 4096, 16384, 65536];

/// How an incoming chunk announces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeKind {
    /// `start-end/total`.
    Accurate,
    /// `start-*/total`.
    StarEnd,
    /// `start-end/*`.
    StarTotal,
    /// `start-*/*`.
    StarBoth,
    /// No Byte-Range header (only for a message sent as a single chunk).
    Missing,
}

fn range_kind() -> impl Strategy<Value = RangeKind> {
    prop_oneof![
        Just(RangeKind::Accurate),
        Just(RangeKind::StarEnd),
        Just(RangeKind::StarTotal),
        Just(RangeKind::StarBoth),
        Just(RangeKind::Missing),
    ]
}

/// One incoming chunk as the test feeds it.
#[derive(Clone)]
struct Incoming {
    /// 0-based offset of the chunk's body in the message.
    offset: usize,
    body: Bytes,
    range: Option<ByteRange>,
    known_len: Option<u64>,
    /// Cut points inside `body`: the pieces fed to `Chunker::body`.
    cuts: Vec<usize>,
    flag: EndFlag,
}

/// Deterministic message content (cheaper than a 200 KB random vector, and
/// position-dependent so misplaced bytes are caught).
fn message(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Sorted cut points in `0..=len` taken from raw random numbers.
fn cuts(raw: &[u64], len: usize) -> Vec<usize> {
    let mut v: Vec<usize> = raw
        .iter()
        .map(|&r| (r % (len as u64 + 1)) as usize)
        .collect();
    v.sort_unstable();
    v
}

/// Splits `body` at `cuts` (sorted); empty pieces are kept on purpose.
fn pieces(body: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts {
        out.push(body.slice(prev..c));
        prev = c;
    }
    out.push(body.slice(prev..));
    out
}

#[derive(Clone)]
struct Case {
    msg: Bytes,
    max: usize,
    chunks: Vec<Incoming>,
}

// Failure output shows lengths, not up to 200 KB of message bytes.
impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("offset", &self.offset)
            .field("len", &self.body.len())
            .field("range", &self.range.map(|r| r.to_string()))
            .field("known_len", &self.known_len)
            .field("cuts", &self.cuts)
            .field("flag", &self.flag)
            .finish()
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("len", &self.msg.len())
            .field("max", &self.max)
            .field("chunks", &self.chunks)
            .finish()
    }
}

#[allow(clippy::type_complexity)]
fn case_strategy() -> impl Strategy<Value = Case> {
    (
        0usize..200_000,
        any::<u64>(),
        proptest::sample::select(&MAXES[..]),
        proptest::collection::vec(
            (
                range_kind(),
                any::<bool>(),
                proptest::collection::vec(any::<u64>(), 0..6),
            ),
            1..8,
        ),
        proptest::collection::vec(any::<u64>(), 7),
        any::<bool>(),
    )
        .prop_map(|(len, seed, max, specs, raw_bounds, abort)| {
            build_case(len, seed, max, specs, raw_bounds, abort)
        })
}

/// One outgoing chunk, rebuilt from the events.
#[derive(Debug)]
struct Outgoing {
    range: Option<ByteRange>,
    body: Vec<u8>,
    flag: EndFlag,
}

/// Checks that `events` is `(Start Body* End)*` with non-empty bodies, and
/// returns the chunks.
fn well_formed(events: &[ChunkEvent]) -> Result<Vec<Outgoing>, TestCaseError> {
    let mut out = Vec::new();
    let mut open: Option<(Option<ByteRange>, Vec<u8>)> = None;
    for ev in events {
        match ev {
            ChunkEvent::Start(r) => {
                prop_assert!(open.is_none(), "Start inside an open chunk");
                open = Some((*r, Vec::new()));
            }
            ChunkEvent::Body(b) => {
                prop_assert!(!b.is_empty(), "empty Body");
                let Some((_, body)) = open.as_mut() else {
                    return Err(TestCaseError::fail("Body outside a chunk"));
                };
                body.extend_from_slice(b);
            }
            ChunkEvent::End(flag) => {
                let Some((range, body)) = open.take() else {
                    return Err(TestCaseError::fail("End outside a chunk"));
                };
                out.push(Outgoing {
                    range,
                    body,
                    flag: *flag,
                });
            }
        }
    }
    prop_assert!(open.is_none(), "chunk left open after end()");
    Ok(out)
}

/// Runs one incoming chunk through a `Chunker`, checking the incremental
/// accessors after every piece, and returns the events.
fn run_incoming(inc: &Incoming, max: usize) -> Result<Vec<ChunkEvent>, TestCaseError> {
    let mut ch = Chunker::new(inc.range, max, inc.known_len);
    let mut events = Vec::new();
    let received_start = inc.range.map_or(1, |r| r.start);
    let received_total = inc.range.and_then(|r| r.total);
    let mut fed = 0u64;
    for piece in pieces(&inc.body, &inc.cuts) {
        fed += piece.len() as u64;
        ch.body(piece, &mut events);
        prop_assert_eq!(ch.consumed(), fed);
        // RFC 4975 §7.1.3: range-start and total as received, range-end
        // from the bytes processed so far.
        prop_assert_eq!(
            ch.forwarded_range(),
            ByteRange {
                start: received_start,
                end: Some(received_start + fed - 1),
                total: received_total,
            }
        );
        let open_by_events = events
            .iter()
            .rev()
            .find(|e| !matches!(e, ChunkEvent::Body(_)))
            .is_some_and(|e| matches!(e, ChunkEvent::Start(_)));
        prop_assert_eq!(ch.is_open(), open_by_events);
        // Fairness: a full outgoing chunk is closed as soon as the sender's
        // Byte-Range shows more bytes follow, but kept open after the last
        // announced byte (the end-line may give it `$`).
        let open_len: u64 = events
            .iter()
            .rev()
            .take_while(|e| matches!(e, ChunkEvent::Body(_)))
            .map(|e| match e {
                ChunkEvent::Body(b) => b.len() as u64,
                _ => 0,
            })
            .sum();
        let rechunking = events
            .iter()
            .any(|e| matches!(e, ChunkEvent::Start(Some(_))));
        let end_known = inc.range.is_some_and(|r| r.end.is_some());
        if rechunking && end_known && fed > 0 {
            let full = open_by_events && open_len == max as u64;
            let more = fed < inc.body.len() as u64;
            prop_assert!(!(full && more), "full chunk not closed eagerly");
            prop_assert!(
                open_by_events || more,
                "last chunk closed before the end-line"
            );
        }
    }
    ch.end(inc.flag, &mut events);
    prop_assert!(!ch.is_open());
    prop_assert_eq!(ch.consumed(), inc.body.len() as u64);
    Ok(events)
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let max = case.max as u64;
    let mut all: Vec<Outgoing> = Vec::new();
    for inc in &case.chunks {
        let events = run_incoming(inc, case.max)?;
        let outs = well_formed(&events)?;
        prop_assert!(!outs.is_empty(), "incoming chunk produced no chunk");
        let len = inc.body.len() as u64;
        let passthrough = outs[0].range.is_none();
        if passthrough {
            // (c) Start(None): the chunk goes out unchanged, in one piece.
            prop_assert_eq!(outs.len(), 1);
            prop_assert_eq!(&outs[0].body[..], &inc.body[..]);
            prop_assert_eq!(outs[0].flag, inc.flag);
        } else {
            // A chunk that fits is not re-chunked (headers kept as they
            // were) whenever its length is known up front.
            let announced = inc.range.and_then(|r| r.len());
            prop_assert!(max > 0, "re-chunked although max = 0");
            prop_assert!(
                inc.known_len.or(announced).is_none_or(|l| l > max),
                "re-chunked a chunk of known length {len} <= max {max}"
            );
            // No more outgoing chunks than needed.
            prop_assert_eq!(outs.len() as u64, len.div_ceil(max).max(1));
        }
        let received_total = inc.range.and_then(|r| r.total);
        let mut pos = inc.offset as u64; // 0-based position in the message
        for o in &outs {
            let olen = o.body.len() as u64;
            // (b)
            if max > 0 {
                prop_assert!(olen <= max, "chunk of {olen} bytes > max {max}");
            }
            // An empty outgoing chunk only carries the flag of an empty
            // incoming chunk.
            prop_assert!(olen > 0 || len == 0, "needless empty chunk");
            // (c)
            match o.range {
                None => prop_assert!(passthrough, "Start(None) after Start(Some)"),
                Some(r) => {
                    prop_assert!(!passthrough, "Start(Some) after Start(None)");
                    prop_assert_eq!(r.start, pos + 1, "range-start");
                    if let Some(e) = r.end {
                        prop_assert_eq!(e, r.start + olen - 1, "range-end");
                    }
                    prop_assert_eq!(r.total, received_total, "total");
                    // range-end is only invented when it was received.
                    if inc.range.is_none_or(|r| r.end.is_none()) {
                        prop_assert_eq!(r.end, None);
                    } else {
                        prop_assert!(r.end.is_some(), "known range-end dropped");
                    }
                }
            }
            pos += olen;
        }
        prop_assert_eq!(pos, (inc.offset + inc.body.len()) as u64);
        all.extend(outs);
    }
    // (a)
    let joined: Vec<u8> = all.iter().flat_map(|o| o.body.iter().copied()).collect();
    prop_assert_eq!(joined.len(), case.msg.len());
    prop_assert!(joined[..] == case.msg[..], "message bytes changed");
    // (d)
    let last_flag = case.chunks.last().map(|c| c.flag);
    for (i, o) in all.iter().enumerate() {
        if i + 1 == all.len() {
            prop_assert_eq!(Some(o.flag), last_flag);
        } else {
            prop_assert_eq!(o.flag, EndFlag::Continued, "chunk {} of {}", i, all.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn rechunking_preserves_message_ranges_and_flags(case in case_strategy()) {
        check(&case)?;
    }

    /// Small messages and small maxima, where boundary cases (chunk exactly
    /// full, empty chunks, one-byte pieces) are dense.
    #[test]
    fn rechunking_small(
        len in 0usize..40,
        seed in any::<u64>(),
        max in 0usize..9,
        specs in proptest::collection::vec(
            (range_kind(), any::<bool>(), proptest::collection::vec(any::<u64>(), 0..12)),
            1..8,
        ),
        raw_bounds in proptest::collection::vec(any::<u64>(), 7),
        abort in any::<bool>(),
    ) {
        let mut case = build_case(len, seed, max, specs, raw_bounds, abort);
        check(&case)?;
        // Same case fed one byte at a time.
        for inc in &mut case.chunks {
            inc.cuts = (0..=inc.body.len()).collect();
        }
        check(&case)?;
    }
}

/// Builds a case from raw random values: the message, its split into
/// `specs.len()` incoming chunks (at `raw_bounds`), each chunk's Byte-Range
/// kind, whether its length is known up front, and its read pieces.
fn build_case(
    len: usize,
    seed: u64,
    max: usize,
    specs: Vec<(RangeKind, bool, Vec<u64>)>,
    raw_bounds: Vec<u64>,
    abort: bool,
) -> Case {
    let msg = message(len, seed);
    let n = specs.len();
    let mut bounds = cuts(&raw_bounds[..n - 1], len);
    bounds.insert(0, 0);
    bounds.push(len);
    let total = len as u64;
    let chunks = specs
        .into_iter()
        .enumerate()
        .map(|(i, (kind, know_len, piece_cuts))| {
            let (a, b) = (bounds[i], bounds[i + 1]);
            let start = a as u64 + 1;
            let end = Some(b as u64);
            let range = match kind {
                RangeKind::Missing if n == 1 => None,
                RangeKind::Accurate | RangeKind::Missing => Some((end, Some(total))),
                RangeKind::StarEnd => Some((None, Some(total))),
                RangeKind::StarTotal => Some((end, None)),
                RangeKind::StarBoth => Some((None, None)),
            }
            .map(|(end, total)| ByteRange { start, end, total });
            let flag = if i + 1 < n {
                EndFlag::Continued
            } else if abort {
                EndFlag::Aborted
            } else {
                EndFlag::Complete
            };
            Incoming {
                offset: a,
                body: msg.slice(a..b),
                range,
                known_len: know_len.then_some((b - a) as u64),
                cuts: cuts(&piece_cuts, b - a),
                flag,
            }
        })
        .collect();
    Case { msg, max, chunks }
}
