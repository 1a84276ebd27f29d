//! [`ChunkHeads`]: the heads of the chunks a relay cuts from one request.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    head_len, put_header, put_headers, put_range_line, range_line_len, request_head, take_written,
    WIDEST_RANGE_LINE,
};
use crate::head::Header;

/// Heads of the chunks a relay cuts from one incoming request (RFC 4976
/// §6.4.1 allows re-chunking): only the transaction ID and the Byte-Range
/// value change from chunk to chunk, so the rest is rendered once, on the
/// first chunk that carries a new Byte-Range. `render` gives byte for byte
/// what [`request_head`] gives for the same request with its first
/// Byte-Range header replaced (others dropped), or one inserted after
/// Message-ID (first when there is no Message-ID).
#[derive(Debug, Clone)]
pub struct ChunkHeads {
    method: Bytes,
    to_path: Vec<Bytes>,
    from_path: Vec<Bytes>,
    /// Headers other than To-Path/From-Path, as received.
    other: Vec<Header>,
    has_body: bool,
    /// ` METHOD CRLF`, To-Path, From-Path and the headers before
    /// Byte-Range; then the headers after it and the blank line of a body.
    /// Kept from the second head on: most requests go out as one chunk,
    /// whose head is written directly.
    around_range: std::cell::OnceCell<(Bytes, Bytes)>,
    /// A head with a Byte-Range was rendered.
    rendered: std::cell::Cell<bool>,
}

impl ChunkHeads {
    /// Keeps the parts of a request head shared by all its chunks.
    pub fn new(
        method: Bytes,
        to_path: Vec<Bytes>,
        from_path: Vec<Bytes>,
        other: Vec<Header>,
        has_body: bool,
    ) -> ChunkHeads {
        ChunkHeads {
            method,
            to_path,
            from_path,
            other,
            has_body,
            around_range: std::cell::OnceCell::new(),
            rendered: std::cell::Cell::new(false),
        }
    }

    /// The chunks are SEND requests.
    pub fn is_send(&self) -> bool {
        &self.method[..] == b"SEND"
    }

    /// The head of chunk `tid`: with `range` as its Byte-Range, or with the
    /// headers as received when `None`.
    pub fn render(&self, tid: &[u8], range: Option<crate::ByteRange>) -> Bytes {
        self.render_in(&mut BytesMut::new(), tid, range)
    }

    /// [`render`](Self::render), written into `arena` (whatever it held is
    /// dropped) and split off it: the heads of the many chunks of one large
    /// request can share a buffer (one allocation for several heads;
    /// `arena` allocates anew when it has no room left).
    pub fn render_in(
        &self,
        arena: &mut BytesMut,
        tid: &[u8],
        range: Option<crate::ByteRange>,
    ) -> Bytes {
        let Some(r) = range else {
            return request_head(
                tid,
                &self.method,
                &self.to_path,
                &self.from_path,
                &self.other,
                self.has_body,
            )
            .freeze();
        };
        arena.clear();
        let fresh = arena.capacity() == 0;
        if !self.rendered.replace(true) {
            let received: usize = self
                .other
                .iter()
                .filter(|h| h.is("Byte-Range"))
                .map(Header::line_len)
                .sum();
            let len = head_len(
                tid,
                self.method.len(),
                &self.to_path,
                &self.from_path,
                &self.other,
            ) - received
                + range_line_len(&r)
                + 2 * usize::from(self.has_body);
            arena.reserve(len);
            arena.put_slice(b"MSRP ");
            arena.put_slice(tid);
            let split = self.range_at();
            self.put_before_range(arena, split);
            put_range_line(arena, &r);
            self.put_after_range(arena, split);
            debug_assert_eq!(arena.len(), len);
            return take_written(arena, fresh);
        }
        let (prefix, suffix) = self.around_range.get_or_init(|| self.split_at_range());
        arena.reserve(5 + tid.len() + prefix.len() + suffix.len() + WIDEST_RANGE_LINE);
        arena.put_slice(b"MSRP ");
        arena.put_slice(tid);
        arena.put_slice(prefix);
        put_range_line(arena, &r);
        arena.put_slice(suffix);
        take_written(arena, fresh)
    }

    /// Appends a header to those after To-Path and From-Path (before any
    /// head is rendered).
    pub fn push_header(&mut self, h: Header) {
        self.other.push(h);
        self.around_range = std::cell::OnceCell::new();
        self.rendered.set(false);
    }

    /// Whether every head [`render`](Self::render) can give for this
    /// request, with a transaction ID of `tid_len` bytes and any Byte-Range
    /// up to [`MAX_POSITION`](crate::MAX_POSITION), stays within `limits`,
    /// the limits the relay's own parser applies: a relay must not write a
    /// head a next hop like it refuses. It can grow past what it received:
    /// the From-Path line gains the relay's URI, re-chunking adds a
    /// Byte-Range header, the relay's transaction ID may be longer.
    pub fn check(&self, limits: &crate::Limits, tid_len: usize) -> Result<(), crate::ParseError> {
        use crate::ParseError::{HeadTooLarge, LineTooLong, TooManyHeaders};
        let path_line = |name: usize, uris: &[Bytes]| {
            name + 2
                + uris
                    .iter()
                    .map(|u| u.len() + 1)
                    .sum::<usize>()
                    .saturating_sub(1)
                + 2
        };
        let other_lines = self.other.iter().map(Header::line_len);
        let ranges = self.other.iter().filter(|h| h.is("Byte-Range"));
        let lines = [
            8 + tid_len + self.method.len(),
            path_line(7, &self.to_path),
            path_line(9, &self.from_path),
            WIDEST_RANGE_LINE,
        ];
        let longest = lines
            .into_iter()
            .chain(other_lines.clone())
            .max()
            .unwrap_or(0);
        if longest > limits.max_line {
            return Err(LineTooLong {
                limit: limits.max_line,
            });
        }
        // as received, or with one Byte-Range in place of those received
        let fields = 2 + self
            .other
            .len()
            .max(self.other.len() - ranges.clone().count() + 1);
        if fields > limits.max_headers {
            return Err(TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let received: usize = lines[..3].iter().sum::<usize>() + other_lines.sum::<usize>();
        let replaced: usize = ranges.map(Header::line_len).sum();
        let head = received.max(received - replaced + WIDEST_RANGE_LINE);
        if head > limits.max_head {
            return Err(HeadTooLarge {
                limit: limits.max_head,
            });
        }
        Ok(())
    }

    /// Where the Byte-Range line goes among the other headers: in place of
    /// the first one received, else after Message-ID, else first.
    fn range_at(&self) -> usize {
        let other = &self.other;
        match other.iter().position(|h| h.is("Byte-Range")) {
            Some(p) => p,
            None => other
                .iter()
                .position(|h| h.is("Message-ID"))
                .map_or(0, |p| p + 1),
        }
    }

    /// ` METHOD CRLF`, the paths and the headers before Byte-Range.
    fn put_before_range(&self, out: &mut BytesMut, split: usize) {
        out.put_u8(b' ');
        out.put_slice(&self.method);
        out.put_slice(b"\r\n");
        put_headers(out, &self.to_path, &self.from_path, &self.other[..split]);
    }

    /// The headers after Byte-Range (other Byte-Ranges dropped) and the
    /// blank line of a body.
    fn put_after_range(&self, out: &mut BytesMut, split: usize) {
        for h in self.other[split..].iter().filter(|h| !h.is("Byte-Range")) {
            put_header(out, h);
        }
        if self.has_body {
            out.put_slice(b"\r\n");
        }
    }

    fn split_at_range(&self) -> (Bytes, Bytes) {
        let split = self.range_at();
        let cap = head_len(
            &[],
            self.method.len(),
            &self.to_path,
            &self.from_path,
            &self.other,
        ) + 2;
        let mut prefix = BytesMut::with_capacity(cap);
        self.put_before_range(&mut prefix, split);
        let mut suffix = BytesMut::with_capacity(cap);
        self.put_after_range(&mut suffix, split);
        (prefix.freeze(), suffix.freeze())
    }
}
