//! The transport layer under the engine: plain TCP, TLS (`msrps`), and
//! WebSocket (RFC 7977, `ws`/`wss`).
//!
//! The engine sees every connection as a byte stream of MSRP frames: what a
//! connection reads lands in its parse buffer, what is queued for it is
//! written in order. A plain TCP connection has no [`Layer`]: its socket
//! is that stream. A TLS or WebSocket connection has one between socket and
//! stream: reads go socket → TLS records → WebSocket frames → MSRP bytes,
//! writes the other way. So re-chunking, flow control, fairness, REPORTs
//! and sessions are the same code over every transport.
//!
//! Flow control stays the engine's: the layer takes queued bytes only while
//! what it already produced has been written (at most [`LAYER_BUDGET`]
//! bytes of plaintext per turn), so a slow TLS or WebSocket reader fills
//! the connection's output queue and pauses its sources exactly as a slow
//! TCP reader does.

#[cfg(test)]
mod layer_tests;
mod out;
pub mod tls;
pub mod ws;

use std::collections::VecDeque;
use std::io::{self, BufRead};

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::config::READ_CHUNK;
use crate::io::ReadPool;
use crate::stream::Stream;

pub use crate::kind::Kind;

/// Plaintext bytes a layer takes from the output queue per turn.
pub const LAYER_BUDGET: usize = 64 * 1024;
/// Most plaintext in one TLS record (RFC 8446 §5.1).
const RECORD_PLAINTEXT: usize = 16 * 1024;
/// Largest WebSocket upgrade request head.
const MAX_HANDSHAKE: usize = 8192;

/// What one read of a layered connection gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// This many MSRP bytes were appended (0: progress below MSRP, e.g. a
    /// handshake record or a ping).
    Data(usize),
    /// The peer closed (TCP, TLS close_notify or WebSocket close).
    Eof,
    /// Nothing to read now.
    WouldBlock,
}

#[derive(Debug, Error)]
pub enum LayerError {
    #[error("TLS handshake failed: {0}")]
    Handshake(rustls::Error),
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    #[error("WebSocket: {0}")]
    Ws(ws::WsError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A handshake a connection is still in (see [`Layer::abandoned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Tls,
    WsUpgrade,
}

impl Pending {
    pub fn name(self) -> &'static str {
        match self {
            Pending::Tls => "TLS handshake",
            Pending::WsUpgrade => "WebSocket upgrade",
        }
    }
}

/// WebSocket state of a connection.
enum WsState {
    /// Waiting for the HTTP upgrade request.
    Upgrade,
    Open(Box<(ws::Decoder, ws::MessageWriter)>),
    /// A close frame went out (the relay's, or its reply to the peer's,
    /// which waits in the decoder until `goodbye`).
    Closed,
}

/// WebSocket settings a server-side layer checks.
#[derive(Debug, Clone)]
pub struct WsPolicy {
    pub origins: &'static [String],
    pub max_message: usize,
}

/// TLS and/or WebSocket between a connection's socket and its MSRP stream.
pub struct Layer {
    tls: Option<rustls::Connection>,
    ws: Option<(WsState, WsPolicy)>,
    /// TLS records read and not yet handed to rustls.
    tls_in: BytesMut,
    /// Plaintext for the WebSocket decoder (from TLS or the socket).
    ws_in: BytesMut,
    /// Bytes for the peer not yet handed on, in order: for a plain `ws:`
    /// connection until the socket takes them, over TLS until the next
    /// [`Layer::seal`] makes records of them all at once.
    raw_out: VecDeque<Bytes>,
    eof: bool,
    /// Bytes of control answers (pongs, handshake replies) produced since
    /// the socket last took everything the layer had: a peer that pings
    /// without reading shows here, and the engine stops reading it (as for
    /// unread MSRP answers) instead of piling up pongs.
    replies: usize,
    /// Application data came from the peer: over TLS 1.3 a server may
    /// still refuse the client certificate after the client's handshake
    /// is complete, so until then a failure counts as a handshake failure.
    heard: bool,
    /// [`Layer::abandoned`] answered once.
    abandon_noted: bool,
    /// The peer sent a byte: the handshake began (a connection closed
    /// without one is a port probe, e.g. a load balancer's health check).
    began: bool,
}

impl Layer {
    /// The layer of a connection accepted on a `kind` listener (`None`
    /// for plain TCP).
    pub fn accepted(
        kind: Kind,
        tls: Option<rustls::ServerConnection>,
        ws: WsPolicy,
    ) -> Option<Layer> {
        if kind == Kind::Tcp {
            return None;
        }
        Some(Layer::with(
            tls.map(rustls::Connection::Server),
            kind.ws().then_some((WsState::Upgrade, ws)),
        ))
    }

    /// The layer of an `msrps://` connection the relay dials.
    pub fn dialled(tls: rustls::ClientConnection) -> Layer {
        Layer::with(Some(rustls::Connection::Client(tls)), None)
    }

    fn with(mut tls: Option<rustls::Connection>, ws: Option<(WsState, WsPolicy)>) -> Layer {
        if let Some(t) = &mut tls {
            // the engine bounds what it hands over (LAYER_BUDGET per turn)
            t.set_buffer_limit(None);
        }
        Layer {
            tls,
            ws,
            tls_in: BytesMut::new(),
            ws_in: BytesMut::new(),
            raw_out: VecDeque::new(),
            eof: false,
            replies: 0,
            heard: false,
            abandon_noted: false,
            began: false,
        }
    }

    /// The TLS handshake is still going on.
    pub fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// The TLS session is confirmed: handshake done and (as a client) the
    /// server sent application data, so it accepted our certificate.
    pub fn confirmed(&self) -> bool {
        match &self.tls {
            None => true,
            Some(rustls::Connection::Server(t)) => !t.is_handshaking(),
            Some(rustls::Connection::Client(t)) => !t.is_handshaking() && self.heard,
        }
    }

    /// The handshake still going on: TLS, else the WebSocket upgrade.
    pub fn pending(&self) -> Option<Pending> {
        if self.handshaking() {
            Some(Pending::Tls)
        } else if matches!(self.ws, Some((WsState::Upgrade, _))) {
            Some(Pending::WsUpgrade)
        } else {
            None
        }
    }

    /// [`Layer::pending`] the first time it is asked, `None` after and
    /// before the peer sent anything: a handshake that began and ends
    /// badly is reported once, however it ends (closed, an alert, silence).
    pub fn abandoned(&mut self) -> Option<Pending> {
        if self.abandon_noted || !self.began {
            return None;
        }
        let p = self.pending()?;
        self.abandon_noted = true;
        Some(p)
    }

    /// MSRP bytes may be handed over: TLS is established and a WebSocket
    /// is open.
    pub fn ready(&self) -> bool {
        !self.handshaking() && !matches!(self.ws, Some((WsState::Upgrade | WsState::Closed, _)))
    }

    /// Bytes produced for the socket wait to be written.
    pub fn backlogged(&self) -> bool {
        !self.raw_out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// The peer's end came (TCP, close_notify, a WebSocket close): the
    /// next [`Layer::read`] answers [`Got::Eof`].
    pub fn ended(&self) -> bool {
        self.eof
    }

    /// Control answers the peer has not taken yet (see `replies`).
    pub fn unread_replies(&self) -> usize {
        self.replies
    }

    /// One read from `stream` of at most `max` socket bytes: TLS records
    /// are decrypted, WebSocket frames decoded, and MSRP bytes appended to
    /// `rbuf`. Replies the layer owes (handshake records, pongs, a close)
    /// wait in it: [`Layer::flush`].
    pub fn read(
        &mut self,
        stream: &Stream,
        pool: &mut ReadPool,
        rbuf: &mut BytesMut,
        max: usize,
    ) -> Result<Got, LayerError> {
        if self.eof {
            return Ok(Got::Eof);
        }
        let before = rbuf.len();
        // TLS records go to rustls, plain WebSocket bytes to the decoder;
        // a TLS read leaves room in a pooled buffer for the plaintext of
        // the record rustls may hold from the last read (`decrypt`)
        let (raw, max) = match self.tls.is_some() {
            true => (&mut self.tls_in, max.min(READ_CHUNK - 2 * RECORD_PLAINTEXT)),
            false => (&mut self.ws_in, max),
        };
        let blocked = match pool.read_at_most(stream, raw, max) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(_) => {
                self.began = true;
                false
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
            Err(e) => return Err(e.into()),
        };
        if self.tls.is_some() {
            self.decrypt(stream, pool, rbuf)?;
        }
        if self.ws.is_some() {
            self.decode_ws(pool, rbuf)?;
        }
        let n = rbuf.len() - before;
        Ok(match (n, blocked, self.eof) {
            (0, _, true) => Got::Eof,
            (0, true, _) => Got::WouldBlock,
            _ => Got::Data(n),
        })
    }

    /// Feeds the TLS records read (one socket read of up to `READ_CHUNK`
    /// bytes into a pooled buffer) to rustls from memory and decrypts them
    /// (rustls' own `read_tls` on a socket makes a system call per 4 KiB:
    /// 64 per 256 KiB read), into a pooled buffer as well when they are
    /// many (`ReadPool::append_pooled`). Over an open WebSocket each
    /// record's plaintext is decoded as it comes (`Decoder::decode_slice`),
    /// so MSRP bytes are copied once, from the record to `rbuf`.
    fn decrypt(
        &mut self,
        stream: &Stream,
        pool: &mut ReadPool,
        rbuf: &mut BytesMut,
    ) -> Result<(), LayerError> {
        let Layer {
            tls: Some(tls),
            tls_in,
            ws,
            ws_in,
            heard,
            eof,
            ..
        } = self
        else {
            return Ok(());
        };
        // plaintext is shorter than its records; rustls may hold the start
        // of one from the last read
        let most = tls_in.len() + RECORD_PLAINTEXT;
        let mut reply = Vec::new();
        let mut status = Ok(ws::Status::Open);
        let mut plain = |b: &[u8], dst: &mut BytesMut| match ws {
            None => dst.extend_from_slice(b),
            Some((WsState::Open(codec), _)) => {
                if let Ok(ws::Status::Open) = status {
                    status = codec.0.decode_slice(b, ws_in, dst, &mut reply);
                }
            }
            // the upgrade request, read by `decode_ws`
            Some((WsState::Upgrade, _)) => ws_in.extend_from_slice(b),
            Some((WsState::Closed, _)) => {}
        };
        let r = pool.append_pooled(rbuf, most, |dst| {
            decrypt_into(tls, tls_in, stream, heard, eof, dst, &mut plain)
        });
        if matches!(self.ws, Some((WsState::Open(_), _))) {
            self.ws_decoded(status, reply)?;
        }
        r
    }

    /// Runs the WebSocket upgrade or decodes frames from `ws_in` into
    /// `rbuf`.
    fn decode_ws(&mut self, pool: &mut ReadPool, rbuf: &mut BytesMut) -> Result<(), LayerError> {
        let Some((state, policy)) = &mut self.ws else {
            return Ok(());
        };
        let upgraded = matches!(state, WsState::Upgrade);
        if upgraded {
            let limits = ws::WsLimits {
                max_message: policy.max_message,
                max_handshake: MAX_HANDSHAKE,
            };
            match ws::server_handshake(&self.ws_in, policy.origins, &limits) {
                ws::Handshake::Incomplete => return Ok(()),
                ws::Handshake::Accepted {
                    response, consumed, ..
                } => {
                    self.ws_in.advance(consumed);
                    let mut decoder = ws::Decoder::new(ws::Role::Server, limits);
                    decoder.hold_close_reply();
                    *state = WsState::Open(Box::new((
                        decoder,
                        ws::MessageWriter::new(ws::Role::Server),
                    )));
                    self.send_raw(Bytes::from(response));
                }
                ws::Handshake::Refused { response, error } => {
                    *state = WsState::Closed;
                    self.send_raw(Bytes::from(response));
                    return Err(LayerError::Ws(error));
                }
            }
        }
        let Some((WsState::Open(codec), _)) = &mut self.ws else {
            return Ok(());
        };
        if self.tls.is_some() && !upgraded {
            // `decrypt` decoded the plaintext as it came
            return Ok(());
        }
        let mut reply = Vec::new();
        let ws_in = &mut self.ws_in;
        // payload goes to an empty `rbuf` without a copy (`unsplit`); after
        // an unparsed rest, into a pooled buffer rather than a grown `rbuf`
        let status = match rbuf.is_empty() {
            true => codec.0.decode(ws_in, rbuf, &mut reply),
            false => pool.append_pooled(rbuf, ws_in.len(), |dst| {
                codec.0.decode(ws_in, dst, &mut reply)
            }),
        };
        self.ws_decoded(status, reply)
    }

    /// After decoding: a close or an error closes the WebSocket (and ends
    /// the stream); replies (pongs, the close) wait for the socket.
    fn ws_decoded(
        &mut self,
        status: Result<ws::Status, ws::WsError>,
        mut reply: Vec<u8>,
    ) -> Result<(), LayerError> {
        match &status {
            // the peer's close: MSRP bytes still queued for it go out
            // before the reply (`goodbye`), so the state stays open
            Ok(ws::Status::Closed) => self.eof = true,
            Ok(ws::Status::Open) => {}
            Err(e) => {
                reply.extend_from_slice(&e.close_frame(ws::Role::Server));
                if let Some((state, _)) = &mut self.ws {
                    *state = WsState::Closed;
                }
                self.eof = true;
            }
        }
        if !reply.is_empty() {
            self.replies += reply.len();
            self.send_raw(Bytes::from(reply));
        }
        status.map(drop).map_err(LayerError::Ws)
    }

    /// The relay closes the connection: a WebSocket close frame and a TLS
    /// close_notify, written if the socket takes them now.
    pub fn goodbye(&mut self, stream: &Stream) {
        if let Some((state, _)) = &mut self.ws {
            if let WsState::Open(codec) = state {
                // the reply to the peer's close, else the relay's own
                let frame = codec
                    .0
                    .take_close_reply()
                    .unwrap_or_else(|| ws::close_frame(ws::Role::Server, 1000, ""));
                *state = WsState::Closed;
                self.send_raw(Bytes::from(frame));
            }
        }
        // the close frame goes into a record before the close_notify
        self.seal();
        if let Some(t) = &mut self.tls {
            t.send_close_notify();
        }
        let _ = self.flush(stream);
    }
}

/// [`Layer::decrypt`]'s loop: records from `tls_in` through rustls, their
/// plaintext handed to `plain` with `dst`.
fn decrypt_into(
    tls: &mut rustls::Connection,
    tls_in: &mut BytesMut,
    stream: &Stream,
    heard: &mut bool,
    eof: &mut bool,
    dst: &mut BytesMut,
    plain: &mut dyn FnMut(&[u8], &mut BytesMut),
) -> Result<(), LayerError> {
    while !tls_in.is_empty() {
        let mut src = &tls_in[..];
        let taken = tls.read_tls(&mut src)?;
        tls_in.advance(taken);
        let handshaking =
            tls.is_handshaking() || (matches!(tls, rustls::Connection::Client(_)) && !*heard);
        let state = match tls.process_new_packets() {
            Ok(s) => s,
            Err(e) => {
                // the alert rustls queued tells the peer why
                let _ = tls.write_tls(&mut { stream });
                return Err(match handshaking {
                    true => LayerError::Handshake(e),
                    false => LayerError::Tls(e),
                });
            }
        };
        if state.peer_has_closed() {
            *eof = true;
        }
        let mut r = tls.reader();
        loop {
            let n = match r.fill_buf() {
                Ok(b) if !b.is_empty() => {
                    plain(b, dst);
                    b.len()
                }
                _ => break,
            };
            r.consume(n);
            *heard = true;
        }
        if taken == 0 {
            break;
        }
    }
    Ok(())
}
