//! Re-chunking of SEND bodies by a relay.
//!
//! RFC 4976 §6.4.1: a relay MAY break a chunk it received into smaller
//! chunks, MUST NOT combine different messages, and SHOULD update Byte-Range.
//! RFC 4975 §7.1.1: `*` stands for a range-end that is not known when the
//! chunk starts; `+` ends a chunk that more chunks follow, `$` the last,
//! `#` an aborted one.
//!
//! The [`Chunker`] maps the body pieces of ONE incoming chunk, as they arrive,
//! onto outgoing chunks of at most `max` body bytes. It never holds body
//! bytes: every piece it is given comes straight back out (split at chunk
//! boundaries), so memory does not depend on message or chunk size.

use bytes::Bytes;

use crate::headers::{ByteRange, MAX_POSITION};
use crate::parser::EndFlag;

/// What to emit on the outgoing side, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkEvent {
    /// Start a new outgoing chunk (new transaction ID). `Some(range)`: its
    /// Byte-Range header; `None`: the incoming chunk passes unchanged, keep
    /// its headers as they are (including a missing Byte-Range).
    Start(Option<ByteRange>),
    /// Body bytes of the open outgoing chunk.
    Body(Bytes),
    /// End the open outgoing chunk with this flag.
    End(EndFlag),
}

/// Splits one incoming chunk into outgoing chunks of at most `max` bytes.
#[derive(Debug, Clone)]
pub struct Chunker {
    /// Largest outgoing body; 0 = do not re-chunk.
    max: u64,
    /// Byte-Range of the incoming chunk (`1-*/*` when it had none).
    incoming: ByteRange,
    /// The incoming chunk fits in one outgoing chunk: pass it unchanged.
    passthrough: bool,
    /// Body bytes of the incoming chunk seen so far.
    consumed: u64,
    /// An outgoing chunk is open.
    open: bool,
    /// Body bytes in the open outgoing chunk.
    out_len: u64,
    /// At least one outgoing chunk was started.
    started: bool,
    /// Last position the open outgoing chunk's Byte-Range covers (`None`:
    /// open-ended, or forwarded as received with `max` 0).
    out_end: Option<u64>,
    /// The open chunk carries all the bytes left: they lie beyond
    /// [`MAX_POSITION`], where no Byte-Range can start a new chunk.
    unbounded: bool,
}

impl Chunker {
    /// `incoming`: the incoming chunk's Byte-Range header, if any.
    /// `max`: `msrp_max_chunk_size` (0 = forward chunks as received).
    /// `known_len`: the incoming chunk's body length when the caller already
    /// has the whole body (lets a small message pass with its headers as
    /// they were).
    pub fn new(incoming: Option<ByteRange>, max: usize, known_len: Option<u64>) -> Self {
        let max = max as u64;
        let announced = incoming.and_then(|r| r.len());
        let len = known_len.or(announced);
        let passthrough = max == 0 || len.is_some_and(|l| l <= max);
        Chunker {
            max,
            incoming: incoming.unwrap_or(ByteRange {
                start: 1,
                end: None,
                total: None,
            }),
            passthrough,
            consumed: 0,
            open: false,
            out_len: 0,
            started: false,
            out_end: None,
            unbounded: false,
        }
    }

    /// Position of the next body byte in the message.
    fn pos(&self) -> u64 {
        self.incoming.start.saturating_add(self.consumed)
    }

    /// Last position the incoming Byte-Range allows (its end, else its
    /// total), if it says.
    fn limit(&self) -> Option<u64> {
        self.incoming.end.or(self.incoming.total)
    }

    /// The sender's chunk has carried more bytes than its Byte-Range
    /// allows.
    fn overrun(&self) -> bool {
        self.limit().is_some_and(|l| self.pos() > l)
    }

    /// Byte-Range of outgoing bytes starting at `start` (of none when
    /// `empty`): the incoming end and total, or `start-*/*` for bytes
    /// beyond what the sender's Byte-Range allows (a range-end or total
    /// those bytes exceed would make the header invalid, RFC 4975 §9; the
    /// sender's end-line still ends the message).
    fn range_from(&self, start: u64, empty: bool) -> ByteRange {
        let last = if empty {
            start.saturating_sub(1)
        } else {
            start
        };
        match self.limit() {
            Some(l) if last > l => ByteRange {
                start,
                end: None,
                total: None,
            },
            _ => ByteRange {
                start,
                ..self.incoming
            },
        }
    }

    /// Byte-Range of the outgoing chunk that starts now.
    fn next_range(&self) -> Option<ByteRange> {
        if self.passthrough {
            return None;
        }
        let start = self.pos();
        let r = self.range_from(start, false);
        Some(ByteRange {
            end: r.end.map(|e| e.min(start.saturating_add(self.max - 1))),
            ..r
        })
    }

    fn start(&mut self, range: Option<ByteRange>, out: &mut impl Extend<ChunkEvent>) {
        out.extend([ChunkEvent::Start(range)]);
        self.open = true;
        self.started = true;
        self.out_len = 0;
        // A chunk carries no more than its Byte-Range announces: a `*` end
        // stops at a known total; a chunk passed as received stops where
        // the sender's range does, unless chunks go out as received.
        self.out_end = match range {
            Some(r) => r.end.or(r.total),
            None if self.max > 0 => self.limit(),
            None => None,
        };
    }

    /// Whether the incoming chunk announced more bytes than seen so far.
    fn more_announced(&self) -> bool {
        match self.incoming.end {
            Some(e) => self.incoming.start.saturating_add(self.consumed) <= e,
            None => false,
        }
    }

    /// Feeds one body piece of the incoming chunk.
    pub fn body(&mut self, mut piece: Bytes, out: &mut impl Extend<ChunkEvent>) {
        while !piece.is_empty() {
            if self.open && self.pos() > MAX_POSITION {
                // A chunk cannot start past 2^62 (the largest position any
                // Byte-Range may name, ours included): a sender claiming
                // positions up there (a 4 EiB message) gets the rest of its
                // chunk in the chunk already open, bigger than `max` and
                // beyond that chunk's range if need be, as the sender's own
                // chunk is.
                self.unbounded = true;
            }
            if self.unbounded {
                self.consumed += piece.len() as u64;
                self.out_len += piece.len() as u64;
                out.extend([ChunkEvent::Body(piece)]);
                return;
            }
            if self.passthrough && self.max > 0 && self.overrun() {
                // More bytes than the Byte-Range the chunk keeps announced:
                // from here the relay cuts and labels the chunks itself.
                self.passthrough = false;
                if self.open {
                    out.extend([ChunkEvent::End(EndFlag::Continued)]);
                    self.open = false;
                }
            }
            let past_end = self.out_end.is_some_and(|e| self.pos() > e);
            if self.open && !self.passthrough && (self.out_len == self.max || past_end) {
                // The chunk is full and more bytes arrived: RFC 4975 §7.1 '+'.
                out.extend([ChunkEvent::End(EndFlag::Continued)]);
                self.open = false;
            }
            if !self.open {
                self.start(self.next_range(), out);
            }
            let mut room = if self.passthrough {
                piece.len()
            } else {
                usize::try_from(self.max - self.out_len).unwrap_or(usize::MAX)
            };
            if let Some(e) = self.out_end {
                let left = e.saturating_add(1).saturating_sub(self.pos());
                room = room.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
            let part = piece.split_to(room.min(piece.len()));
            self.out_len += part.len() as u64;
            self.consumed += part.len() as u64;
            out.extend([ChunkEvent::Body(part)]);
            // Close a full chunk right away when the sender announced more
            // bytes, so other traffic can use the connection in between
            // (RFC 4975 §7.1.1 fairness); otherwise wait: the end-line may
            // follow and this chunk is then the last.
            if !self.passthrough && self.out_len == self.max && self.more_announced() {
                out.extend([ChunkEvent::End(EndFlag::Continued)]);
                self.open = false;
            }
        }
    }

    /// The incoming chunk ended with `flag`.
    pub fn end(&mut self, flag: EndFlag, out: &mut impl Extend<ChunkEvent>) {
        if !self.open {
            if self.started && flag == EndFlag::Continued {
                // Everything is forwarded and more chunks follow: nothing to add.
                return;
            }
            // No body at all, or the last byte closed a chunk: an empty chunk
            // carries the flag, its range saying so ("n-(n-1)/total").
            let range = (!self.passthrough).then(|| self.empty_range(self.pos()));
            self.start(range, out);
        }
        out.extend([ChunkEvent::End(flag)]);
        self.open = false;
    }

    /// Byte-Range of an EMPTY outgoing chunk placed after the first `offset`
    /// body bytes of the incoming chunk (`n-(n-1)/total`), e.g. to carry a
    /// `#` when the sender vanished between two outgoing chunks; `None` when
    /// the incoming chunk passes unchanged.
    pub fn empty_range_at(&self, offset: u64) -> Option<ByteRange> {
        if self.passthrough {
            return None;
        }
        Some(self.empty_range(self.incoming.start.saturating_add(offset)))
    }

    /// `n-(n-1)/total`: an empty chunk at position `start`.
    fn empty_range(&self, start: u64) -> ByteRange {
        let r = self.range_from(start, true);
        ByteRange {
            end: r.end.map(|_| start.saturating_sub(1)),
            ..r
        }
    }

    /// Body bytes of the incoming chunk seen so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Whether an outgoing chunk is open (started, not ended).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Byte-Range the REPORT for the bytes forwarded so far would carry
    /// (RFC 4975 §7.1.3: range-start and total as received, range-end from
    /// the bytes actually processed).
    pub fn forwarded_range(&self) -> ByteRange {
        ByteRange::received(self.incoming.start, self.consumed, self.incoming.total)
    }
}

#[cfg(test)]
mod tests;
