//! One MSRP connection of a worker: its socket, the parser over what was
//! read, the frame arriving on it, and its output queue. No engine in here:
//! the engine decides what to read, queue and close.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use msrp_core::Parser;
use rustc_hash::FxHashSet as HashSet;

use crate::config::Config;
use crate::forward::Forward;
use crate::transport::{Kind, Layer, LAYER_BUDGET};

pub use crate::stream::Stream;

/// Queued output, whether the relay made it for this peer, and whether it
/// ends an MSRP frame (a WebSocket message ends with it, RFC 7977 §5).
struct Piece {
    data: Bytes,
    own: bool,
    end: bool,
}

/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;

/// State of the frame currently arriving on a connection.
pub enum Incoming {
    /// Between frames.
    Idle,
    Forward(Box<Forward>),
    /// The frame is not forwarded: swallow it up to its end-line.
    Discard,
    /// The request waits for its next hop's name to resolve; nothing more
    /// is parsed from this connection meanwhile.
    Resolving(Box<crate::forward::Parked>),
}

pub struct Conn {
    pub stream: Stream,
    /// The transport spoken (the listener's, or `tls` for `msrps://` next
    /// hops the relay dialled).
    pub kind: Kind,
    /// TLS/WebSocket between the socket and the MSRP stream (`None`: plain
    /// TCP or a link).
    pub layer: Option<Box<Layer>>,
    /// For a link to another worker: that worker's index.
    pub link: Option<usize>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Set for connections the relay opened (with `tls_name`, the key of
    /// the reuse map).
    pub outbound: Option<SocketAddr>,
    /// The name a dialled TLS next hop's certificate was verified for.
    pub tls_name: Option<String>,
    pub connected: bool,
    /// Read and not yet parsed.
    pub rbuf: BytesMut,
    pub parser: Parser,
    pub eof: bool,
    /// Bytes waiting to be written, in order.
    out: VecDeque<Piece>,
    out_bytes: usize,
    /// Of those (and the deferred ones), bytes of frames the relay made for
    /// this peer (responses, REPORTs) rather than forwarded from others.
    own_bytes: usize,
    /// Complete frames (responses, REPORTs) that wait for the chunk being
    /// streamed into this connection to end.
    deferred: VecDeque<Piece>,
    pub incoming: Incoming,
    /// Close as soon as the output queue is flushed.
    pub closing: bool,
    /// Queued bytes wait for the end of this loop pass to be written.
    pub dirty: bool,
    /// Message-IDs this sender must not send more of (413 downstream).
    pub rejected: HashSet<Bytes>,
    pub opened: Instant,
    /// Last time bytes moved in either direction.
    pub last_active: Instant,
    /// When the frame arriving began (its first byte read), or its head
    /// completed; `frame_timeout` counts from it.
    pub frame_mark: Instant,
    /// Last time bytes were read from the peer (a body must keep moving).
    pub last_read: Instant,
    /// Since when output ready to write has waited without a byte written
    /// (`None`: nothing ready): a peer that stops reading is found by this.
    stalled_since: Option<Instant>,
    /// A complete frame head arrived (RFC 4976 §6.1 first-request rule).
    pub got_frame: bool,
    /// Largest message this peer may send (0: no limit): `max_message_size`
    /// or the script's `msrp_set_max_message_size()`.
    pub max_message: u64,
    /// Not read until then (a sender past a refused chunk's slack).
    pub read_paused_until: Option<Instant>,
    /// Slot in the connection listing (RPC), if any.
    pub listed: Option<u32>,
    /// Read-rate limit (`max_read_rate`, `msrp_set_read_rate()`), and
    /// whether the connection waits for it to refill (listed to be woken).
    pub read_rate: Option<crate::rate::TokenBucket>,
    pub rate_waiting: bool,
    /// AUTHs with credentials answered 401/403 since the last 2xx.
    pub auth_failures: u32,
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        outbound: Option<SocketAddr>,
        cfg: &Config,
        now: Instant,
    ) -> Conn {
        crate::net::tune(&stream, cfg);
        Conn::with_stream(Stream::Tcp(stream), peer, local, outbound, None, cfg, now)
    }

    /// A TCP connection with a TLS/WebSocket layer of `kind`.
    pub fn layered(mut self, kind: Kind, layer: Option<Layer>) -> Conn {
        self.kind = kind;
        self.layer = layer.map(Box::new);
        self
    }

    /// The link to worker `worker` (always connected; no TCP options).
    pub fn link(stream: UnixStream, worker: usize, cfg: &Config, now: Instant) -> Conn {
        let none = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut c = Conn::with_stream(
            Stream::Unix(stream),
            none,
            none,
            None,
            Some(worker),
            cfg,
            now,
        );
        c.got_frame = true;
        c.parser = Parser::new(crate::forward::link_limits(cfg.limits));
        c
    }

    fn with_stream(
        stream: Stream,
        peer: SocketAddr,
        local: SocketAddr,
        outbound: Option<SocketAddr>,
        link: Option<usize>,
        cfg: &Config,
        now: Instant,
    ) -> Conn {
        Conn {
            stream,
            kind: Kind::Tcp,
            layer: None,
            link,
            peer,
            local,
            outbound,
            tls_name: None,
            connected: outbound.is_none(),
            rbuf: BytesMut::new(),
            parser: Parser::new(cfg.limits),
            eof: false,
            out: VecDeque::new(),
            out_bytes: 0,
            own_bytes: 0,
            deferred: VecDeque::new(),
            incoming: Incoming::Idle,
            closing: false,
            dirty: false,
            rejected: HashSet::default(),
            opened: now,
            last_active: now,
            frame_mark: now,
            last_read: now,
            stalled_since: None,
            got_frame: false,
            max_message: cfg.max_message_size,
            read_paused_until: None,
            listed: None,
            read_rate: None,
            rate_waiting: false,
            auth_failures: 0,
        }
    }

    /// SO_RCVBUF of the socket (0 for a link or when unknown).
    pub fn recv_buffer(&self) -> usize {
        match &self.stream {
            Stream::Tcp(s) => socket2::SockRef::from(s).recv_buffer_size().unwrap_or(0),
            Stream::Unix(_) => 0,
        }
    }

    /// Bytes were read at `now`: between frames they start one.
    pub fn note_read(&mut self, now: Instant) {
        self.last_active = now;
        self.last_read = now;
        if !self.parser.in_frame() {
            self.frame_mark = now;
        }
    }

    /// The forwarding state of the frame arriving here, if it is forwarded.
    pub fn forward(&mut self) -> Option<&mut Forward> {
        match &mut self.incoming {
            Incoming::Forward(f) => Some(f),
            _ => None,
        }
    }

    /// Bytes queued for writing, deferred frames included (they count
    /// against the peer's share).
    pub fn queued(&self) -> usize {
        self.out_bytes + self.unread_replies()
    }

    /// Control answers of the TLS/WebSocket layer not taken yet.
    fn unread_replies(&self) -> usize {
        self.layer.as_ref().map_or(0, |l| l.unread_replies())
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || self.layer.as_ref().is_some_and(|l| l.backlogged())
    }

    /// Appends bytes forwarded from another connection to the output queue
    /// (`end`: they end an MSRP frame).
    pub fn queue(&mut self, b: Bytes, end: bool, now: Instant) {
        self.push(
            Piece {
                data: b,
                own: false,
                end,
            },
            now,
        );
    }

    /// Appends a complete frame the relay made for this peer.
    pub fn queue_own(&mut self, b: Bytes, now: Instant) {
        self.push(
            Piece {
                data: b,
                own: true,
                end: true,
            },
            now,
        );
    }

    fn push(&mut self, p: Piece, now: Instant) {
        self.note_queued(now);
        self.count_in(&p);
        self.out.push_back(p);
    }

    fn count_in(&mut self, p: &Piece) {
        self.out_bytes += p.data.len();
        if p.own {
            self.own_bytes += p.data.len();
        }
    }

    /// Keeps a frame the relay made until the chunk being streamed here
    /// ends.
    pub fn defer(&mut self, b: Bytes) {
        let p = Piece {
            data: b,
            own: true,
            end: true,
        };
        self.count_in(&p);
        self.deferred.push_back(p);
    }

    /// Bytes of frames the relay made for this peer that it has not taken
    /// yet: a peer that does not read its answers shows here.
    pub fn own_queued(&self) -> usize {
        self.own_bytes + self.unread_replies()
    }

    fn note_queued(&mut self, now: Instant) {
        if self.stalled_since.is_none() {
            self.stalled_since = Some(now);
        }
    }

    /// How long queued output has waited without progress at `now`.
    pub fn stalled_for(&self, now: Instant) -> Option<std::time::Duration> {
        self.stalled_since.map(|s| now.saturating_duration_since(s))
    }

    /// The chunk being streamed here ended: deferred frames go next.
    pub fn release_deferred(&mut self, now: Instant) {
        if !self.deferred.is_empty() {
            self.note_queued(now);
            self.out.extend(self.deferred.drain(..));
        }
    }

    /// Writes as much of the output queue as the socket takes; returns the
    /// bytes written (`WouldBlock` is not an error: it ends the write).
    pub fn write_out(&mut self, now: Instant) -> io::Result<usize> {
        if let Some(mut layer) = self.layer.take() {
            let r = self.write_layered(&mut layer, now);
            self.layer = Some(layer);
            return r;
        }
        let mut total = 0;
        while !self.out.is_empty() {
            let slices: Vec<IoSlice<'_>> = self
                .out
                .iter()
                .take(MAX_IOV)
                .map(|p| IoSlice::new(&p.data))
                .collect();
            match (&self.stream).write_vectored(&slices) {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.note_written(total, false, now);
        Ok(total)
    }

    fn note_written(&mut self, total: usize, backlog: bool, now: Instant) {
        if total > 0 {
            self.last_active = now;
            self.stalled_since = Some(self.last_active);
        }
        if self.out.is_empty() && !backlog {
            // (deferred frames wait for a sender, not for this peer)
            self.stalled_since = None;
        }
    }

    /// [`Conn::write_out`] through a TLS/WebSocket layer: what the layer
    /// produced is written first; queued pieces go into it (at most
    /// [`LAYER_BUDGET`] bytes per turn) only once that is out and the layer
    /// is established, so a slow peer keeps the bytes in the output queue
    /// where the watermarks see them. Returns the bytes written to the
    /// socket.
    fn write_layered(&mut self, layer: &mut Layer, now: Instant) -> io::Result<usize> {
        let mut total = 0;
        loop {
            total += layer.flush(&self.stream)?;
            if layer.backlogged() || !layer.ready() || self.out.is_empty() {
                break;
            }
            let mut moved = 0;
            while moved < LAYER_BUDGET {
                let Some(front) = self.out.front() else {
                    break;
                };
                if front.data.is_empty() {
                    // (never queued: an empty piece would loop here)
                    self.out.pop_front();
                    continue;
                }
                let take = front.data.len().min(LAYER_BUDGET - moved);
                let last = front.end && take == front.data.len();
                layer.encode(front.data.slice(..take), last);
                moved += take;
                self.consume(take);
            }
        }
        self.note_written(total, layer.backlogged(), now);
        Ok(total)
    }

    /// The relay closes the connection: TLS close_notify, WebSocket close.
    pub fn goodbye(&mut self) {
        if let Some(l) = &mut self.layer {
            l.goodbye(&self.stream);
        }
    }

    /// The transport is established: TCP connected and, over TLS, the
    /// handshake done.
    pub fn established(&self) -> bool {
        self.connected && self.layer.as_ref().is_none_or(|l| l.confirmed())
    }

    fn consume(&mut self, mut n: usize) {
        self.out_bytes -= n;
        while n > 0 {
            let Some(front) = self.out.front_mut() else {
                break;
            };
            let take = front.data.len().min(n);
            if front.own {
                self.own_bytes -= take;
            }
            n -= take;
            if take == front.data.len() {
                self.out.pop_front();
            } else {
                front.data.advance(take);
            }
        }
    }

    /// Whether a non-blocking connect has completed (`Ok(false)`: still
    /// in progress).
    pub fn check_connected(&mut self) -> io::Result<bool> {
        let Stream::Tcp(tcp) = &self.stream else {
            self.connected = true;
            return Ok(true);
        };
        if let Some(e) = tcp.take_error()? {
            return Err(e);
        }
        match tcp.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}
