//! Helpers shared by the fuzz targets (see `fuzz_targets/`).

use bytes::BytesMut;
use msrp_core::{EndFlag, Event, Limits, ParseError, Parser, StartLine};

/// A comparable rendering of parser output: consecutive Body pieces merged
/// (their cuts depend on the reads), heads reduced to what they parsed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Head {
        raw: Vec<u8>,
        tid: Vec<u8>,
        start: StartLine,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        has_body: bool,
    },
    Body(Vec<u8>),
    End(EndFlag),
}

/// What one way of feeding an input produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub events: Vec<Ev>,
    pub error: Option<ParseError>,
    pub in_frame: bool,
    /// Unconsumed bytes at the end (without error).
    pub leftover: usize,
}

/// Feeds `pieces` one after another into a fresh parser, draining events
/// after each, and checks the per-frame invariants on the way: events come
/// as `Head Body* End`, Body pieces are non-empty, the current transaction
/// id is the head's from Head to End, errors are sticky, and inside a body
/// the parser holds back no more than a possible end-line.
pub fn feed<'a>(limits: Limits, pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = Parser::new(limits);
    let mut buf = BytesMut::new();
    let mut events: Vec<Ev> = Vec::new();
    // (tid, has_body) of the frame between its Head and End
    let mut open: Option<(Vec<u8>, bool)> = None;
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match parser.next(&mut buf) {
                Ok(Some(Event::Head(h))) => {
                    assert!(open.is_none(), "Head inside a frame");
                    assert!(h.raw.starts_with(b"MSRP "));
                    assert!(h.raw.ends_with(b"\r\n"));
                    assert!(msrp_core::build::is_valid_transaction_id(&h.transaction_id));
                    assert_eq!(
                        parser.current_transaction_id().map(|t| t.to_vec()),
                        Some(h.transaction_id.to_vec())
                    );
                    open = Some((h.transaction_id.to_vec(), h.has_body));
                    events.push(Ev::Head {
                        raw: h.raw.to_vec(),
                        tid: h.transaction_id.to_vec(),
                        start: h.start.clone(),
                        headers: h
                            .headers()
                            .map(|x| (x.name.to_vec(), x.value.to_vec()))
                            .collect(),
                        has_body: h.has_body,
                    });
                }
                Ok(Some(Event::Body(b))) => {
                    assert!(!b.is_empty(), "empty Body event");
                    assert!(
                        open.as_ref().is_some_and(|(_, body)| *body),
                        "Body outside a body section"
                    );
                    if let Some(Ev::Body(prev)) = events.last_mut() {
                        prev.extend_from_slice(&b);
                    } else {
                        events.push(Ev::Body(b.to_vec()));
                    }
                }
                Ok(Some(Event::End(f))) => {
                    assert!(open.take().is_some(), "End outside a frame");
                    assert!(parser.current_transaction_id().is_none());
                    events.push(Ev::End(f));
                }
                Ok(None) => {
                    if let Some((tid, true)) = &open {
                        // CRLF "-------" tid flag CR: all an end-line can
                        // still need to be decided
                        let bound = 2 + 7 + tid.len() + 2;
                        assert!(buf.len() <= bound, "body holds {} bytes", buf.len());
                    }
                    break;
                }
                Err(e) => {
                    assert_eq!(parser.next(&mut buf).err(), Some(e.clone()), "not sticky");
                    assert!(open.is_none(), "error inside a body");
                    assert_eq!(e.response_code(), 400);
                    return Outcome {
                        events,
                        error: Some(e),
                        in_frame: parser.in_frame(),
                        leftover: buf.len(),
                    };
                }
            }
        }
    }
    Outcome {
        events,
        error: None,
        in_frame: parser.in_frame(),
        leftover: buf.len(),
    }
}

/// Whether two errors are the same verdict: same kind, and the same limit
/// for the limit errors (the text of the syntax errors is informative).
pub fn same_error(a: &Option<ParseError>, b: &Option<ParseError>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            std::mem::discriminant(x) == std::mem::discriminant(y)
                && match (x, y) {
                    (ParseError::LineTooLong { .. }, _)
                    | (ParseError::HeadTooLarge { .. }, _)
                    | (ParseError::TooManyHeaders { .. }, _) => x == y,
                    _ => true,
                }
        }
        _ => false,
    }
}

/// A small deterministic generator (xorshift64) for cut points and the
/// like, seeded from the fuzz input.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The rules of RFC 4975 §7.1.1 / §9 `Byte-Range` that
/// `ByteRange::parse` enforces, restated: 1-based start, every position
/// at most `MAX_POSITION`, end not before start - 1 (an empty range is
/// `n-(n-1)`) nor beyond total, start at most total + 1.
pub fn range_is_valid(r: &msrp_core::ByteRange) -> bool {
    let max = msrp_core::MAX_POSITION;
    r.start >= 1
        && [Some(r.start), r.end, r.total]
            .into_iter()
            .flatten()
            .all(|v| v <= max)
        && r.end.is_none_or(|e| e >= r.start - 1)
        && match (r.end, r.total) {
            (Some(e), Some(t)) => e <= t,
            _ => true,
        }
        && r.total.is_none_or(|t| r.start <= t + 1)
}

/// Parses `input` whole and returns its first head, if it parses.
pub fn first_head(input: &[u8]) -> Option<msrp_core::FrameHead> {
    let mut parser = Parser::new(Limits::default());
    let mut buf = BytesMut::from(input);
    match parser.next(&mut buf) {
        Ok(Some(Event::Head(h))) => Some(h),
        _ => None,
    }
}
