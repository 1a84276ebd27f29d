//! The write side of a [`Layer`]: MSRP bytes into WebSocket frames and TLS
//! records, and those onto the socket.
//!
//! What the engine hands over in one turn becomes as few frames and records
//! as it can: one WebSocket frame per run of pieces of one MSRP frame (not
//! one per piece: a chunk is queued as head, body slices and end-line), and
//! full TLS records (up to 16 KiB of plaintext, RFC 8446 §5.1) sealed from
//! all the turn's pieces by vectored writes into rustls, which copies each
//! byte once, straight into the record it encrypts. A record per piece
//! costs a seal, 22 bytes of overhead and an allocation each. Over TLS the
//! pieces and the frame headers go to rustls from the stack, without a
//! queue or an allocation per turn.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};

use super::{ws, Layer, WsState};
use crate::stream::Stream;

/// Most slices handed to one vectored write (on the socket or to rustls).
const MAX_IOV: usize = 64;

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
        if let Some(tls) = &mut self.tls {
            // control frames queued before go first
            seal_queue(tls, &mut self.raw_out);
            seal_pieces(tls, writer, pieces);
            return;
        }
        match writer {
            Some(w) => frames(w, pieces, &mut self.raw_out),
            None => {
                let data = pieces.iter().map(|(b, _)| b).filter(|b| !b.is_empty());
                self.raw_out.extend(data.cloned());
            }
        }
    }

    /// Over TLS: encrypts everything waiting in `raw_out` into records.
    /// Without TLS the pieces wait for the socket as they are.
    pub(super) fn seal(&mut self) {
        if let Some(tls) = &mut self.tls {
            seal_queue(tls, &mut self.raw_out);
        }
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
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let k = slices(&self.raw_out, &mut iov);
            match (&mut { stream }).write_vectored(&iov[..k]) {
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

/// Points `iov` at the front of `q`; returns how many slices it filled.
fn slices<'a>(q: &'a VecDeque<Bytes>, iov: &mut [IoSlice<'a>]) -> usize {
    for (slot, b) in iov.iter_mut().zip(q) {
        *slot = IoSlice::new(b);
    }
    q.len().min(iov.len())
}

/// Encrypts all of `q` into records, with vectored writes so that records
/// are full rather than one per piece.
fn seal_queue(tls: &mut rustls::Connection, q: &mut VecDeque<Bytes>) {
    while !q.is_empty() {
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let k = slices(q, &mut iov);
        // without a buffer limit (see Layer::with) rustls takes it all,
        // except that it stops at a TLS 1.3 key update: go on after it
        let n = match tls.writer().write_vectored(&iov[..k]) {
            Ok(n) if n > 0 => n,
            // a failed connection: its next read or write reports why
            _ => {
                q.clear();
                break;
            }
        };
        advance(q, n);
    }
    // an idle TLS connection keeps no room for pieces (README Scale:
    // memory per idle TLS connection)
    q.shrink_to(0);
}

/// Encrypts a turn's pieces into records: over a WebSocket with a frame
/// header (on the stack) before each run of pieces that ends an MSRP
/// frame, and before the rest. Batches of up to [`MAX_IOV`] slices; a
/// run's header counts all its pieces, however many batches they take.
fn seal_pieces(
    tls: &mut rustls::Connection,
    mut w: Option<&mut ws::MessageWriter>,
    pieces: &[(Bytes, bool)],
) {
    let (mut i, mut in_run) = (0, false);
    while i < pieces.len() {
        let mut heads = [([0u8; 14], 0); MAX_IOV / 2];
        // (a header?, index into `heads` or `pieces`)
        let mut entries = [(false, 0); MAX_IOV];
        let (mut ne, mut nh) = (0, 0);
        while i < pieces.len() && ne + 2 <= MAX_IOV && nh < heads.len() {
            if let (false, Some(w)) = (in_run, w.as_deref_mut()) {
                let end = run_end(pieces, i);
                let len = pieces[i..=end].iter().map(|(b, _)| b.len()).sum();
                heads[nh] = w.piece_header_array(len, pieces[end].1);
                if heads[nh].1 > 0 {
                    entries[ne] = (true, nh);
                    (ne, nh) = (ne + 1, nh + 1);
                }
            }
            let (b, end) = &pieces[i];
            if !b.is_empty() {
                entries[ne] = (false, i);
                ne += 1;
            }
            in_run = !*end && i + 1 < pieces.len();
            i += 1;
        }
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        for (slot, &(head, at)) in iov.iter_mut().zip(&entries[..ne]) {
            *slot = IoSlice::new(match head {
                true => &heads[at].0[..heads[at].1],
                false => &pieces[at].0,
            });
        }
        let mut iov = &mut iov[..ne];
        while !iov.is_empty() {
            // as in `seal_queue`: all of it, but for a key update
            match tls.writer().write_vectored(iov) {
                Ok(n) if n > 0 => IoSlice::advance_slices(&mut iov, n),
                _ => return,
            }
        }
    }
}

/// The index of the last piece of the run starting at `from`: the first
/// that ends an MSRP frame, else the last.
fn run_end(pieces: &[(Bytes, bool)], from: usize) -> usize {
    pieces[from..]
        .iter()
        .position(|(_, end)| *end)
        .map_or(pieces.len() - 1, |k| from + k)
}

/// Appends to `out` one WebSocket frame (header, then the pieces uncopied)
/// per run of `pieces` that ends an MSRP frame, and one for the rest.
fn frames(w: &mut ws::MessageWriter, pieces: &[(Bytes, bool)], out: &mut VecDeque<Bytes>) {
    let mut from = 0;
    while from < pieces.len() {
        let end = run_end(pieces, from);
        let run = &pieces[from..=end];
        let len = run.iter().map(|(b, _)| b.len()).sum();
        let (head, n) = w.piece_header_array(len, pieces[end].1);
        if n > 0 {
            out.push_back(Bytes::copy_from_slice(&head[..n]));
        }
        out.extend(
            run.iter()
                .map(|(b, _)| b)
                .filter(|b| !b.is_empty())
                .cloned(),
        );
        from = end + 1;
    }
}

/// Drops the first `n` bytes of `q`.
fn advance(q: &mut VecDeque<Bytes>, mut n: usize) {
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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use bytes::BytesMut;

    use super::super::layer_tests::open_ws;
    use super::super::ws;
    use crate::stream::Stream;

    fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let (h, n) = ws::frame_header(opcode, fin, payload.len() as u64, None);
        [&h[..n], payload].concat()
    }

    #[test]
    fn a_turns_pieces_make_one_websocket_frame_per_msrp_frame_run() {
        let mut layer = open_ws(None);
        let piece = |s: &'static str, end| (bytes::Bytes::from_static(s.as_bytes()), end);
        // head, body, end-line of one chunk; then the start of the next
        layer.encode(&[
            piece("MSRP a SEND\r\n", false),
            piece("body", false),
            piece("\r\n-------a$\r\n", true),
            piece("MSRP b ", false),
        ]);
        // the rest of the second one in a later turn
        layer.encode(&[piece("200 OK\r\n-------b$\r\n", true)]);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut b = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let stream = Stream::Tcp(l.accept().unwrap().0);
        let n = layer.flush(&stream).unwrap();
        drop(stream);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(n, got.len());
        let want = [
            frame(ws::OP_BINARY, true, b"MSRP a SEND\r\nbody\r\n-------a$\r\n"),
            frame(ws::OP_BINARY, false, b"MSRP b "),
            frame(ws::OP_CONTINUATION, true, b"200 OK\r\n-------b$\r\n"),
        ]
        .concat();
        assert_eq!(got, want);
        // what a client decodes is the MSRP byte stream, unchanged
        let mut dec = ws::Decoder::new(ws::Role::Client, ws::WsLimits::default());
        let (mut input, mut out) = (BytesMut::from(&got[..]), BytesMut::new());
        dec.decode(&mut input, &mut out, &mut Vec::new()).unwrap();
        assert_eq!(
            &out[..],
            b"MSRP a SEND\r\nbody\r\n-------a$\r\nMSRP b 200 OK\r\n-------b$\r\n"
        );
        assert!(!layer.backlogged());
    }
}
