//! The write side of a [`Layer`]: MSRP bytes into WebSocket frames and TLS
//! records, and those onto the socket.
//!
//! What the engine hands over in one turn becomes as few frames and records
//! as it can: one WebSocket frame per run of pieces of one MSRP frame (not
//! one per piece: a chunk is queued as head, body slices and end-line), and
//! full TLS records (up to 16 KiB of plaintext, RFC 8446 §5.1) sealed from
//! all the turn's pieces by one vectored write into rustls, which copies
//! each byte once, straight into the record it encrypts. A record per
//! piece costs a seal, 22 bytes of overhead and an allocation each.

use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};

use super::{ws, Layer, WsState};
use crate::stream::Stream;

/// Most slices handed to one vectored write on the socket.
const MAX_IOV: usize = 64;
/// Pieces `raw_out` keeps room for once empty (a busy turn may need many
/// more; an idle connection should not keep them).
const KEEP_PIECES: usize = 16;

impl Layer {
    /// Bytes below MSRP (handshake answers, control frames) for the peer.
    pub(super) fn send_raw(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.raw_out.push_back(b);
        }
    }

    /// Hands over MSRP bytes taken from the output queue in one turn: each
    /// piece with whether it ends an MSRP frame (which ends its WebSocket
    /// message). Over a WebSocket each run of pieces up to a frame's end
    /// (or up to the last piece) becomes one WebSocket frame.
    pub fn encode(&mut self, pieces: &[(Bytes, bool)]) {
        let writer = match &mut self.ws {
            Some((WsState::Open(codec), _)) => Some(&mut codec.1),
            _ => None,
        };
        match writer {
            Some(w) => frames(w, pieces, &mut self.raw_out),
            None => {
                let data = pieces.iter().map(|(b, _)| b).filter(|b| !b.is_empty());
                self.raw_out.extend(data.cloned());
            }
        }
        self.seal();
    }

    /// Over TLS: encrypts everything waiting in `raw_out` into records, with
    /// one vectored write so that records are full rather than one per
    /// piece. Without TLS the pieces wait for the socket as they are.
    pub(super) fn seal(&mut self) {
        let Some(tls) = &mut self.tls else {
            return;
        };
        while !self.raw_out.is_empty() {
            let slices: Vec<IoSlice<'_>> = self.raw_out.iter().map(|b| IoSlice::new(b)).collect();
            // without a buffer limit (see Layer::with) rustls takes it all,
            // except that it stops at a TLS 1.3 key update: go on after it
            let n = match tls.writer().write_vectored(&slices) {
                Ok(n) if n > 0 => n,
                // a failed connection: its next read or write reports why
                _ => {
                    self.raw_out.clear();
                    break;
                }
            };
            advance(&mut self.raw_out, n);
        }
        self.raw_out.shrink_to(KEEP_PIECES);
    }

    /// Writes what the layer produced until the socket takes no more;
    /// returns the bytes written.
    pub fn flush(&mut self, stream: &Stream) -> io::Result<usize> {
        let r = self.flush_out(stream);
        if !self.backlogged() {
            self.replies = 0;
        }
        r
    }

    fn flush_out(&mut self, stream: &Stream) -> io::Result<usize> {
        self.seal();
        let mut total = 0;
        if let Some(tls) = &mut self.tls {
            // rustls writes its records with one writev (up to 64 of them)
            while tls.wants_write() {
                match tls.write_tls(&mut { stream }) {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            return Ok(total);
        }
        while !self.raw_out.is_empty() {
            let slices: Vec<IoSlice<'_>> = self
                .raw_out
                .iter()
                .take(MAX_IOV)
                .map(|b| IoSlice::new(b))
                .collect();
            match (&mut { stream }).write_vectored(&slices) {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    advance(&mut self.raw_out, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }
}

/// Appends to `out` one WebSocket frame (header, then the pieces uncopied)
/// per run of `pieces` that ends an MSRP frame, and one for the rest.
fn frames(
    w: &mut ws::MessageWriter,
    pieces: &[(Bytes, bool)],
    out: &mut std::collections::VecDeque<Bytes>,
) {
    let mut from = 0;
    for (i, (_, end)) in pieces.iter().enumerate() {
        if !*end && i + 1 < pieces.len() {
            continue;
        }
        let run = &pieces[from..=i];
        let len = run.iter().map(|(b, _)| b.len()).sum();
        let mut head = Vec::with_capacity(14);
        w.piece_header(len, *end, &mut head);
        if !head.is_empty() {
            out.push_back(Bytes::from(head));
        }
        out.extend(
            run.iter()
                .map(|(b, _)| b)
                .filter(|b| !b.is_empty())
                .cloned(),
        );
        from = i + 1;
    }
}

/// Drops the first `n` bytes of `q`.
fn advance(q: &mut std::collections::VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = q.front_mut() else {
            break;
        };
        let take = front.len().min(n);
        n -= take;
        if take == front.len() {
            q.pop_front();
        } else {
            front.advance(take);
        }
    }
}
