//! The driver side of a connection: its stream and the TLS/WebSocket layer
//! between the stream and the MSRP bytes. Writing the output queue of the
//! connection's [`ConnState`](crate::conn::ConnState) happens here; what
//! the layer holds is shown to the protocol side as a [`LayerView`].

use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::time::Instant;

use bytes::Bytes;

use crate::config::Config;
use crate::conn::LayerView;
use crate::connid::ConnId;
use crate::relay::Relay;
use crate::stream::Stream;
use crate::transport::{Layer, LAYER_BUDGET};

/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;
/// Pieces handed to a layer at once: a turn of 16 KiB chunks (head, body
/// slices, end-line) is about 16.
const LAYER_PIECES: usize = 16;

pub struct Socket {
    pub stream: Stream,
    /// TLS/WebSocket between the socket and the MSRP stream (`None`: plain
    /// TCP or a link).
    pub layer: Option<Box<Layer>>,
    /// An event said the peer shut its side down (or the socket has an
    /// error): reads go on until they answer 0 or fail, even after a short
    /// one, since no new event will come for it.
    pub peer_shut: bool,
}

impl Socket {
    /// A TCP connection (socket options of `cfg` applied).
    pub fn tcp(stream: TcpStream, cfg: &Config) -> Socket {
        crate::net::tune(&stream, cfg);
        Socket {
            stream: Stream::Tcp(stream),
            layer: None,
            peer_shut: false,
        }
    }

    /// With a TLS/WebSocket layer.
    pub fn layered(mut self, layer: Option<Layer>) -> Socket {
        self.layer = layer.map(Box::new);
        self
    }

    /// The link to another worker (no TCP options).
    pub fn link(ring: crate::ring::RingLink) -> Socket {
        Socket {
            stream: Stream::Ring(ring),
            layer: None,
            peer_shut: false,
        }
    }

    /// What the layer holds now.
    pub fn view(&self) -> LayerView {
        self.layer.as_ref().map_or(LayerView::NONE, |l| LayerView {
            replies: l.unread_replies(),
            backlogged: l.backlogged(),
            confirmed: l.confirmed(),
            handshaking: l.handshaking(),
        })
    }

    /// SO_RCVBUF of the socket (0 for a link or when unknown).
    pub fn recv_buffer(&self) -> usize {
        match &self.stream {
            Stream::Tcp(s) => socket2::SockRef::from(s).recv_buffer_size().unwrap_or(0),
            Stream::Ring(_) => 0,
        }
    }

    /// Writes as much of connection `t`'s output queue (`relay`'s) as
    /// the socket takes, and tells the relay; returns the bytes written
    /// (`WouldBlock` is not an error: it ends the write).
    pub fn write_out(&mut self, relay: &mut Relay, t: ConnId, now: Instant) -> io::Result<usize> {
        let r = match self.layer.as_deref_mut() {
            Some(layer) => write_layered(&self.stream, layer, relay, t),
            None => write_plain(&self.stream, relay, t),
        };
        relay.write_done(t, r.as_ref().ok().copied(), self.view(), now);
        r
    }

    /// The relay closes the connection: TLS close_notify, WebSocket close.
    pub fn goodbye(&mut self) {
        if let Some(l) = &mut self.layer {
            l.goodbye(&self.stream);
        }
    }

    /// Whether a non-blocking connect has completed (`Ok(false)`: still
    /// in progress).
    pub fn check_connected(&self) -> io::Result<bool> {
        let Stream::Tcp(tcp) = &self.stream else {
            return Ok(true);
        };
        if let Some(e) = tcp.take_error()? {
            return Err(e);
        }
        match tcp.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// One vectored write after another of at most [`MAX_IOV`] pieces.
fn write_plain(stream: &Stream, relay: &mut Relay, t: ConnId) -> io::Result<usize> {
    let mut total = 0;
    while !relay.out_empty(t) {
        // on the stack: this runs for every write of every connection
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let mut n = 0;
        for (s, b) in slices.iter_mut().zip(relay.transmit(t, MAX_IOV)) {
            *s = IoSlice::new(b);
            n += 1;
        }
        match (&*stream).write_vectored(&slices[..n]) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                relay.wrote(t, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// [`Socket::write_out`] through a TLS/WebSocket layer: what the layer
/// produced is written first; queued pieces go into it (at most
/// [`LAYER_BUDGET`] bytes per turn) only once that is out and the layer is
/// established, so a slow peer keeps the bytes in the output queue where
/// the watermarks see them. Returns the bytes written to the socket.
fn write_layered(
    stream: &Stream,
    layer: &mut Layer,
    relay: &mut Relay,
    t: ConnId,
) -> io::Result<usize> {
    let mut total = 0;
    loop {
        total += layer.flush(stream)?;
        if layer.backlogged() || !layer.ready() || relay.out_empty(t) {
            break;
        }
        // the whole turn at once: full TLS records, a WebSocket frame per
        // run of pieces of one MSRP frame (see transport/out.rs); the
        // pieces on the stack, [`LAYER_PIECES`] at a time (a frame's run
        // goes on across them), not in a `Vec` allocated per turn
        let mut moved = 0;
        while moved < LAYER_BUDGET && !relay.out_empty(t) {
            let mut pieces: [(Bytes, bool); LAYER_PIECES] =
                std::array::from_fn(|_| (Bytes::new(), false));
            let mut n = 0;
            while n < LAYER_PIECES && moved < LAYER_BUDGET {
                let Some((data, end)) = relay.front(t) else {
                    break;
                };
                let take = data.len().min(LAYER_BUDGET - moved);
                pieces[n] = (data.slice(..take), end && take == data.len());
                (n, moved) = (n + 1, moved + take);
                relay.wrote(t, take);
            }
            if n == 0 {
                break;
            }
            layer.encode(&pieces[..n]);
        }
    }
    Ok(total)
}
