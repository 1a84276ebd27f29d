//! A blocking MSRP peer over one connection: plain TCP, TLS, or a
//! WebSocket (RFC 7977) over either.
//!
//! Every read is bounded by a caller-given timeout, every write by
//! [`WRITE_TIMEOUT`]; nothing here can hang a test forever. Over a
//! WebSocket every write ([`Peer::send_raw`], [`Peer::send_request`]) goes
//! out as one binary message, and reads see the payloads of the received
//! messages as one MSRP byte stream.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msrp_core::{build, EndFlag, Event, FrameHead, Header, Limits, ParseError, Parser};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ProtocolVersion, ServerConfig};
use sha2::{Digest, Sha256};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::body::BodyGen;
use crate::ids;
use crate::stream::{Stream, Transport};
use crate::ws::{self, WsConnect};

/// Upper bound for one blocking write (a stuck relay must not hang a test).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeout for establishing a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const READ_PIECE: usize = 64 * 1024;

/// What can go wrong on a peer.
#[derive(Debug)]
pub enum PeerError {
    /// A socket error other than a timeout or a clean close.
    Io(io::Error),
    /// Nothing (complete) arrived before the deadline; says what was pending.
    Timeout(String),
    /// The other side closed the connection (EOF or reset); says what was
    /// pending.
    Closed(String),
    /// The bytes received are not valid MSRP.
    Parse(ParseError),
    /// Valid MSRP, but not what the caller expected.
    Protocol(String),
    /// TLS failed: a handshake error, a certificate that does not verify,
    /// an alert from the other side (e.g. a refused client certificate,
    /// which with TLS 1.3 shows on the client's first read).
    Tls(rustls::Error),
    /// The server answered the WebSocket upgrade with this HTTP status
    /// instead of 101 (e.g. 403 for an Origin it does not allow).
    WsRefused {
        /// HTTP status code.
        status: u16,
        /// Response body, if any.
        body: String,
    },
    /// The WebSocket upgrade failed otherwise (e.g. the server did not
    /// select subprotocol `msrp`, or a malformed response).
    WsHandshake(String),
    /// A WebSocket protocol error after the handshake (e.g. a malformed
    /// frame from the server).
    Ws(tungstenite::Error),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::Io(e) => write!(f, "I/O error: {e}"),
            PeerError::Timeout(what) => write!(f, "timed out: {what}"),
            PeerError::Closed(what) => write!(f, "connection closed: {what}"),
            PeerError::Parse(e) => write!(f, "MSRP parse error: {e}"),
            PeerError::Protocol(what) => write!(f, "unexpected MSRP: {what}"),
            PeerError::Tls(e) => write!(f, "TLS error: {e}"),
            PeerError::WsRefused { status, body } => {
                write!(f, "WebSocket upgrade refused with HTTP {status}")?;
                if !body.is_empty() {
                    write!(f, ": {}", body.trim())?;
                }
                Ok(())
            }
            PeerError::WsHandshake(what) => write!(f, "WebSocket handshake failed: {what}"),
            PeerError::Ws(e) => write!(f, "WebSocket error: {e}"),
        }
    }
}

impl std::error::Error for PeerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PeerError::Io(e) => Some(e),
            PeerError::Parse(e) => Some(e),
            PeerError::Tls(e) => Some(e),
            PeerError::Ws(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for PeerError {
    fn from(e: io::Error) -> Self {
        if let Some(tls) = crate::tls::rustls_error(&e) {
            PeerError::Tls(tls.clone())
        } else if is_close(&e) {
            PeerError::Closed(e.to_string())
        } else if is_timeout(&e) {
            PeerError::Timeout(e.to_string())
        } else {
            PeerError::Io(e)
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn is_close(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// An MSRP request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Transaction identifier.
    pub tid: String,
    /// Method, e.g. `SEND`.
    pub method: String,
    /// To-Path URIs, first hop first.
    pub to_path: Vec<String>,
    /// From-Path URIs, nearest hop first.
    pub from_path: Vec<String>,
    /// Headers after To-Path and From-Path, in order (Message-ID, Byte-Range,
    /// Failure-Report, Content-Type, ...).
    pub headers: Vec<(String, String)>,
    /// Body; `None` sends a frame without a body section.
    pub body: Option<Vec<u8>>,
    /// End-line flag.
    pub flag: EndFlag,
}

impl Request {
    /// A request with a fresh transaction id, no headers besides the paths,
    /// no body and the `$` flag.
    pub fn new(method: &str, to_path: &[&str], from_path: &[&str]) -> Self {
        Request {
            tid: ids::transaction_id(),
            method: method.to_owned(),
            to_path: to_path.iter().map(|s| (*s).to_owned()).collect(),
            from_path: from_path.iter().map(|s| (*s).to_owned()).collect(),
            headers: Vec::new(),
            body: None,
            flag: EndFlag::Complete,
        }
    }

    /// A complete single-chunk SEND: fresh Message-ID, `Byte-Range: 1-N/N`,
    /// `Content-Type: text/plain`.
    pub fn send(to_path: &[&str], from_path: &[&str], body: &[u8]) -> Self {
        let mut r = Self::new("SEND", to_path, from_path);
        let n = body.len();
        r.headers = vec![
            ("Message-ID".into(), ids::message_id()),
            ("Byte-Range".into(), format!("1-{n}/{n}")),
            ("Content-Type".into(), "text/plain".into()),
        ];
        r.body = Some(body.to_vec());
        r
    }

    /// Head of a complete single-chunk SEND of `len` bytes whose body will be
    /// streamed with [`Peer::send_request_streaming`] (`body` stays `None`).
    pub fn send_streaming(to_path: &[&str], from_path: &[&str], len: u64) -> Self {
        let mut r = Self::new("SEND", to_path, from_path);
        r.headers = vec![
            ("Message-ID".into(), ids::message_id()),
            ("Byte-Range".into(), format!("1-{len}/{len}")),
            ("Content-Type".into(), "application/octet-stream".into()),
        ];
        r
    }

    /// Adds (appends) a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The value of the first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn head_bytes(&self, has_body: bool) -> BytesMut {
        let to = to_bytes_vec(&self.to_path);
        let from = to_bytes_vec(&self.from_path);
        let other: Vec<Header> = self
            .headers
            .iter()
            .map(|(n, v)| Header::new(n.clone().into_bytes(), v.clone().into_bytes()))
            .collect();
        build::request_head(
            self.tid.as_bytes(),
            self.method.as_bytes(),
            &to,
            &from,
            &other,
            has_body,
        )
    }

    /// The complete wire form of this request.
    pub fn to_wire(&self) -> Vec<u8> {
        let head = self.head_bytes(self.body.is_some());
        let mut out = head.to_vec();
        match &self.body {
            Some(body) => {
                out.extend_from_slice(body);
                out.extend_from_slice(&build::body_end(self.tid.as_bytes(), self.flag));
            }
            None => out.extend_from_slice(&build::end_line(self.tid.as_bytes(), self.flag)),
        }
        out
    }
}

fn to_bytes_vec(v: &[String]) -> Vec<Bytes> {
    v.iter()
        .map(|s| Bytes::from(s.clone().into_bytes()))
        .collect()
}

/// One complete frame read from the connection.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// Start line and headers.
    pub head: FrameHead,
    /// The body (empty when read with [`Peer::read_frame_hashed`]).
    pub body: Vec<u8>,
    /// SHA-256 of the body.
    pub body_sha256: [u8; 32],
    /// Body length in bytes.
    pub body_len: u64,
    /// End-line flag.
    pub flag: EndFlag,
}

impl ReceivedFrame {
    /// Transaction id as text.
    pub fn tid(&self) -> String {
        String::from_utf8_lossy(&self.head.transaction_id).into_owned()
    }

    /// Method of a request.
    pub fn method(&self) -> Option<String> {
        self.head
            .method()
            .map(|m| String::from_utf8_lossy(m).into_owned())
    }

    /// Status code of a response.
    pub fn status_code(&self) -> Option<u16> {
        self.head.status_code()
    }

    /// First header with this name, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head
            .header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Header names in received order.
    pub fn header_names(&self) -> Vec<String> {
        self.head
            .headers
            .iter()
            .map(|h| String::from_utf8_lossy(&h.name).into_owned())
            .collect()
    }

    /// To-Path URIs (empty if absent or malformed).
    pub fn to_path(&self) -> Vec<String> {
        self.head.to_path().map(strings).unwrap_or_default()
    }

    /// From-Path URIs (empty if absent or malformed).
    pub fn from_path(&self) -> Vec<String> {
        self.head.from_path().map(strings).unwrap_or_default()
    }

    /// Short description for assertion messages.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} body bytes, flag {:?})",
            String::from_utf8_lossy(&self.head.raw).trim_end(),
            self.body_len,
            self.flag
        )
    }
}

fn strings(v: Vec<Bytes>) -> Vec<String> {
    v.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// What a peer reads and writes: a byte stream, or a WebSocket on one.
enum Io {
    Stream(Stream),
    Ws(Box<WebSocket<Stream>>),
}

impl Io {
    fn stream(&self) -> &Stream {
        match self {
            Io::Stream(s) => s,
            Io::Ws(ws) => ws.get_ref(),
        }
    }

    fn tcp(&self) -> &TcpStream {
        self.stream().tcp()
    }
}

/// The error of a WebSocket write.
fn ws_write_error(e: tungstenite::Error) -> PeerError {
    match e {
        tungstenite::Error::Io(e) => e.into(),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            PeerError::Closed("WebSocket closed".into())
        }
        other => PeerError::Ws(other),
    }
}

/// A blocking MSRP connection.
pub struct Peer {
    io: Io,
    buf: BytesMut,
    parser: Parser,
    local: SocketAddr,
    remote: SocketAddr,
    /// The selected WebSocket subprotocol.
    ws_protocol: Option<String>,
    /// The Close frame the other side sent (code, reason), once received.
    ws_close: Option<(u16, String)>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("transport", &self.transport())
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl Peer {
    /// Connects to `addr` (timeout [`CONNECT_TIMEOUT`]).
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Peer, PeerError> {
        Peer::from_stream(tcp_connect(addr, CONNECT_TIMEOUT)?)
    }

    /// Wraps an accepted or connected stream.
    pub fn from_stream(stream: TcpStream) -> Result<Peer, PeerError> {
        let (tcp, addrs) = prepare(stream)?;
        Peer::from_io(Io::Stream(Stream::Tcp(tcp)), addrs, None)
    }

    /// Connects to `addr` and runs a TLS handshake, verifying the server's
    /// certificate against `config`'s roots and `server_name` (a DNS name,
    /// or an IP address matched against IP SANs). TCP connect and handshake
    /// together take at most [`CONNECT_TIMEOUT`].
    pub fn connect_tls(
        addr: impl ToSocketAddrs,
        server_name: &str,
        config: &Arc<ClientConfig>,
    ) -> Result<Peer, PeerError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let (tcp, addrs) = prepare(tcp_connect(addr, CONNECT_TIMEOUT)?)?;
        let stream = Stream::tls_connect(tcp, server_name, config, deadline)?;
        Peer::from_io(Io::Stream(stream), addrs, None)
    }

    /// Runs a TLS server handshake on an accepted stream (at most
    /// [`CONNECT_TIMEOUT`]).
    pub fn accept_tls(stream: TcpStream, config: &Arc<ServerConfig>) -> Result<Peer, PeerError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let (tcp, addrs) = prepare(stream)?;
        let stream = Stream::tls_accept(tcp, config, deadline)?;
        Peer::from_io(Io::Stream(stream), addrs, None)
    }

    /// Connects to `addr` and opens a WebSocket: TLS first when `tls` gives
    /// a server name and configuration (`wss://`), then the HTTP upgrade
    /// of `ws(s)://url_host/path` with `Sec-WebSocket-Protocol: msrp` and
    /// `origin` as `Origin`. Fails with [`PeerError::WsRefused`] when the
    /// server answers with another status than 101, and with
    /// [`PeerError::WsHandshake`] when it does not select `msrp`. Everything
    /// takes at most [`CONNECT_TIMEOUT`].
    pub fn connect_ws(
        addr: impl ToSocketAddrs,
        url_host: &str,
        path: &str,
        origin: Option<&str>,
        tls: Option<(&str, &Arc<ClientConfig>)>,
    ) -> Result<Peer, PeerError> {
        let mut opts = WsConnect::new(url_host, path);
        opts.origin = origin;
        opts.tls = tls;
        Peer::connect_ws_with(addr, &opts)
    }

    /// [`Peer::connect_ws`] with every knob of [`WsConnect`] (other or no
    /// subprotocols, more headers).
    pub fn connect_ws_with(
        addr: impl ToSocketAddrs,
        opts: &WsConnect<'_>,
    ) -> Result<Peer, PeerError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let (tcp, addrs) = prepare(tcp_connect(addr, CONNECT_TIMEOUT)?)?;
        let stream = match opts.tls {
            Some((name, config)) => Stream::tls_connect(tcp, name, config, deadline)?,
            None => Stream::Tcp(tcp),
        };
        let (ws, selected) = ws::handshake(stream, opts, deadline)?;
        Peer::from_io(Io::Ws(Box::new(ws)), addrs, selected)
    }

    /// `addrs`: (local, remote), taken before any handshake (once the other
    /// side has closed or reset, the socket no longer tells).
    fn from_io(
        io: Io,
        (local, remote): (SocketAddr, SocketAddr),
        ws_protocol: Option<String>,
    ) -> Result<Peer, PeerError> {
        let tcp = io.tcp();
        tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
        tcp.set_read_timeout(None)?;
        Ok(Peer {
            io,
            buf: BytesMut::with_capacity(READ_PIECE),
            parser: Parser::new(Limits::default()),
            local,
            remote,
            ws_protocol,
            ws_close: None,
        })
    }

    /// How this peer is connected: `Tcp`, `Tls`, `Ws` or `Wss`.
    pub fn transport(&self) -> Transport {
        match &self.io {
            Io::Stream(s) if s.is_tls() => Transport::Tls,
            Io::Stream(_) => Transport::Tcp,
            Io::Ws(ws) if ws.get_ref().is_tls() => Transport::Wss,
            Io::Ws(_) => Transport::Ws,
        }
    }

    /// The certificates the other side presented over TLS (`None` without
    /// TLS, or for a server whose client sent none).
    pub fn tls_peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.io.stream().peer_certificates()
    }

    /// The negotiated TLS version (`None` without TLS).
    pub fn tls_version(&self) -> Option<ProtocolVersion> {
        self.io.stream().tls_version()
    }

    /// The WebSocket subprotocol the server selected (`None` without a
    /// WebSocket, or when the server selected none).
    pub fn ws_protocol(&self) -> Option<&str> {
        self.ws_protocol.as_deref()
    }

    /// The Close frame the other side sent, as (code, reason), once a read
    /// has seen it (reads then report [`PeerError::Closed`]). A Close
    /// without a code gives 1005 (RFC 6455 §7.1.5).
    pub fn ws_close_frame(&self) -> Option<(u16, String)> {
        self.ws_close.clone()
    }

    /// Sends one WebSocket message as is (text, ping, a raw
    /// `Message::Frame`, ...). Errors for peers without a WebSocket.
    pub fn send_ws_message(&mut self, msg: Message) -> Result<(), PeerError> {
        match &mut self.io {
            Io::Ws(ws) => ws.send(msg).map_err(ws_write_error),
            Io::Stream(_) => Err(not_ws("send_ws_message")),
        }
    }

    /// Writes `bytes` as they are onto the connection under the WebSocket
    /// (after anything tungstenite still buffers), bypassing its framing:
    /// for malformed frames, see [`crate::ws::frame`]. Errors for peers
    /// without a WebSocket.
    pub fn send_ws_raw(&mut self, bytes: &[u8]) -> Result<(), PeerError> {
        match &mut self.io {
            Io::Ws(ws) => {
                ws.flush().map_err(ws_write_error)?;
                let s = ws.get_mut();
                s.write_all(bytes)?;
                s.flush()?;
                Ok(())
            }
            Io::Stream(_) => Err(not_ws("send_ws_raw")),
        }
    }

    /// Starts the WebSocket closing handshake with `code` and `reason`;
    /// reads still see what arrives until the other side's Close.
    pub fn ws_close(&mut self, code: u16, reason: &str) -> Result<(), PeerError> {
        match &mut self.io {
            Io::Ws(ws) => ws
                .close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.to_owned().into(),
                }))
                .map_err(ws_write_error),
            Io::Stream(_) => Err(not_ws("ws_close")),
        }
    }

    /// Our side's address (what the relay sees as the peer address).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The other side's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.remote
    }

    /// Writes raw bytes (over a WebSocket: as one binary message).
    pub fn send_raw(&mut self, data: &[u8]) -> Result<(), PeerError> {
        match &mut self.io {
            Io::Stream(s) => {
                s.write_all(data)?;
                s.flush()?;
                Ok(())
            }
            Io::Ws(ws) => ws
                .send(Message::Binary(Bytes::copy_from_slice(data)))
                .map_err(ws_write_error),
        }
    }

    /// Half-closes the connection: TCP sends FIN; TLS sends close_notify,
    /// then FIN; a WebSocket, which has no half-close, sends a Close frame
    /// (1000). Reads still work.
    pub fn shutdown_write(&mut self) -> Result<(), PeerError> {
        match &mut self.io {
            Io::Stream(s) => s.shutdown_write()?,
            Io::Ws(_) => self.ws_close(1000, "")?,
        }
        Ok(())
    }

    /// A second handle on the TCP socket, e.g. to write from another thread
    /// while this one reads. Plain TCP peers only: a TLS or WebSocket
    /// peer's state cannot be shared, so for them this is an
    /// `Unsupported` error.
    pub fn try_clone_stream(&self) -> io::Result<TcpStream> {
        match &self.io {
            Io::Stream(Stream::Tcp(s)) => s.try_clone(),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "try_clone_stream: a {} peer's stream cannot be cloned (TLS/WebSocket \
                     state lives in the Peer); use a plain TCP peer",
                    self.transport()
                ),
            )),
        }
    }

    /// Shuts the TCP socket underneath down in both directions at once (no
    /// TLS close_notify, no WebSocket Close): an abrupt end.
    pub fn shutdown_socket(&self) -> Result<(), PeerError> {
        self.io.tcp().shutdown(Shutdown::Both)?;
        Ok(())
    }

    /// Sends a complete request (head, body if any, end-line).
    pub fn send_request(&mut self, req: &Request) -> Result<(), PeerError> {
        self.send_raw(&req.to_wire())
    }

    /// Sends `req`'s head followed by a body of `body.remaining()` bytes
    /// produced by `body` in 64 KiB pieces, then the end-line with
    /// `req.flag`. `req.body` is ignored. Returns the body's SHA-256.
    pub fn send_request_streaming(
        &mut self,
        req: &Request,
        body: BodyGen,
    ) -> Result<[u8; 32], PeerError> {
        let head = req.head_bytes(true);
        self.send_raw(&head)?;
        let mut hasher = Sha256::new();
        let mut failed: Option<PeerError> = None;
        let io = &mut self.io;
        let r = body.for_each_piece(|piece| {
            hasher.update(piece);
            match io {
                Io::Stream(s) => s.write_all(piece),
                Io::Ws(ws) => ws
                    .send(Message::Binary(Bytes::copy_from_slice(piece)))
                    .map_err(|e| {
                        let e = ws_write_error(e);
                        let io_err = io::Error::other(e.to_string());
                        failed = Some(e);
                        io_err
                    }),
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        r?;
        self.send_raw(&build::body_end(req.tid.as_bytes(), req.flag))?;
        Ok(hasher.finalize().into())
    }

    /// Answers a received request following the paths rule this project's
    /// relay relies on: To-Path = the request's whole From-Path, From-Path =
    /// the request's first To-Path URI (the responder's own URI).
    pub fn send_response(
        &mut self,
        to: &ReceivedFrame,
        code: u16,
        comment: Option<&str>,
    ) -> Result<(), PeerError> {
        let to_path = to
            .head
            .from_path()
            .map_err(|e| PeerError::Protocol(format!("request has no usable From-Path: {e}")))?;
        self.respond_with_to_path(to, to_path, code, comment)
    }

    /// Answers a received request hop-by-hop only: To-Path = the first
    /// From-Path URI (the previous hop), From-Path = the first To-Path URI.
    /// This is what Kamailio's stock `msrp_reply()` does for SEND.
    pub fn send_hop_response(
        &mut self,
        to: &ReceivedFrame,
        code: u16,
        comment: Option<&str>,
    ) -> Result<(), PeerError> {
        let mut to_path = to
            .head
            .from_path()
            .map_err(|e| PeerError::Protocol(format!("request has no usable From-Path: {e}")))?;
        to_path.truncate(1);
        self.respond_with_to_path(to, to_path, code, comment)
    }

    fn respond_with_to_path(
        &mut self,
        to: &ReceivedFrame,
        to_path: Vec<Bytes>,
        code: u16,
        comment: Option<&str>,
    ) -> Result<(), PeerError> {
        let mut from_path = to
            .head
            .to_path()
            .map_err(|e| PeerError::Protocol(format!("request has no usable To-Path: {e}")))?;
        from_path.truncate(1);
        let frame = build::response_frame(
            &to.head.transaction_id,
            code,
            comment.map(str::as_bytes),
            &to_path,
            &from_path,
            &[],
        );
        self.send_raw(&frame)
    }

    /// Sends a response with explicit paths and transaction id.
    pub fn send_response_raw(
        &mut self,
        tid: &str,
        code: u16,
        comment: Option<&str>,
        to_path: &[&str],
        from_path: &[&str],
    ) -> Result<(), PeerError> {
        let to: Vec<Bytes> = to_path
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let from: Vec<Bytes> = from_path
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let frame = build::response_frame(
            tid.as_bytes(),
            code,
            comment.map(str::as_bytes),
            &to,
            &from,
            &[],
        );
        self.send_raw(&frame)
    }

    /// Reads one complete frame, keeping its body in memory.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<ReceivedFrame, PeerError> {
        self.read_frame_inner(timeout, true)
    }

    /// Reads one complete frame, only hashing and counting its body.
    pub fn read_frame_hashed(&mut self, timeout: Duration) -> Result<ReceivedFrame, PeerError> {
        self.read_frame_inner(timeout, false)
    }

    /// Reads frames until a response arrives, skipping requests whose method
    /// is in `skip` (e.g. `["REPORT"]`). Errors on any other request.
    pub fn read_response(
        &mut self,
        timeout: Duration,
        skip: &[&str],
    ) -> Result<ReceivedFrame, PeerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.read_frame(left)?;
            match f.method() {
                None => return Ok(f),
                Some(m) if skip.iter().any(|s| s.eq_ignore_ascii_case(&m)) => continue,
                Some(_) => {
                    return Err(PeerError::Protocol(format!(
                        "expected a response, got request {}",
                        f.summary()
                    )))
                }
            }
        }
    }

    /// Reads one complete frame, handing each body piece to `on_body` as it
    /// arrives (the returned frame's `body` is empty).
    pub fn read_frame_streaming(
        &mut self,
        timeout: Duration,
        on_body: impl FnMut(&[u8]),
    ) -> Result<ReceivedFrame, PeerError> {
        self.read_frame_inner_with(timeout, false, on_body)
    }

    fn read_frame_inner(
        &mut self,
        timeout: Duration,
        keep_body: bool,
    ) -> Result<ReceivedFrame, PeerError> {
        self.read_frame_inner_with(timeout, keep_body, |_| {})
    }

    fn read_frame_inner_with(
        &mut self,
        timeout: Duration,
        keep_body: bool,
        mut on_body: impl FnMut(&[u8]),
    ) -> Result<ReceivedFrame, PeerError> {
        let deadline = Instant::now() + timeout;
        let mut head: Option<FrameHead> = None;
        let mut body = Vec::new();
        let mut hasher = Sha256::new();
        let mut body_len = 0u64;
        loop {
            while let Some(event) = self.parser.next(&mut self.buf).map_err(PeerError::Parse)? {
                match event {
                    Event::Head(h) => {
                        if let Some(old) = &head {
                            return Err(PeerError::Protocol(format!(
                                "second head before end-line of {}",
                                String::from_utf8_lossy(&old.raw)
                            )));
                        }
                        head = Some(h);
                    }
                    Event::Body(piece) => {
                        hasher.update(&piece);
                        on_body(&piece);
                        body_len += piece.len() as u64;
                        if keep_body {
                            body.extend_from_slice(&piece);
                        }
                    }
                    Event::End(flag) => {
                        let Some(head) = head.take() else {
                            return Err(PeerError::Protocol("end-line without head".into()));
                        };
                        return Ok(ReceivedFrame {
                            head,
                            body,
                            body_sha256: hasher.finalize().into(),
                            body_len,
                            flag,
                        });
                    }
                }
            }
            let pending = |buffered: usize| match &head {
                Some(h) => format!(
                    "inside frame {} after {body_len} body bytes",
                    String::from_utf8_lossy(&h.raw).lines().next().unwrap_or("")
                ),
                None => format!("waiting for a frame ({buffered} bytes buffered)"),
            };
            match self.fill(deadline) {
                Ok(()) => {}
                Err(PeerError::Timeout(_)) => {
                    return Err(PeerError::Timeout(pending(self.buf.len())))
                }
                Err(PeerError::Closed(_)) => {
                    return Err(PeerError::Closed(pending(self.buf.len())))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads more bytes into the buffer, waiting at most until `deadline`.
    /// Over a WebSocket it reads one message, which may add nothing (a
    /// ping, answered here, or a pong).
    fn fill(&mut self, deadline: Instant) -> Result<(), PeerError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PeerError::Timeout(String::new()));
        }
        self.io.tcp().set_read_timeout(Some(left))?;
        let ws = match &mut self.io {
            Io::Ws(ws) => ws,
            Io::Stream(s) => {
                let mut piece = [0u8; READ_PIECE];
                let n = match s.read(&mut piece) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                if n == 0 {
                    return Err(PeerError::Closed("EOF".into()));
                }
                self.buf.extend_from_slice(&piece[..n]);
                return Ok(());
            }
        };
        match ws.read() {
            Ok(Message::Binary(b)) => self.buf.extend_from_slice(&b),
            Ok(Message::Text(t)) => self.buf.extend_from_slice(t.as_bytes()),
            Ok(Message::Ping(_)) => {
                // tungstenite queued the pong; send it now.
                match ws.flush() {
                    Ok(()) => {}
                    Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                    Err(e) => return Err(ws_write_error(e)),
                }
            }
            Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => {}
            Ok(Message::Close(frame)) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.as_str().to_owned())
                });
                self.ws_close = Some((code, reason.clone()));
                // tungstenite queued the Close reply; send it if we can.
                let _ = ws.flush();
                return Err(PeerError::Closed(format!(
                    "WebSocket Close {code} {reason:?}"
                )));
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(tungstenite::Error::Io(e)) => return Err(e.into()),
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                return Err(PeerError::Closed("WebSocket closed".into()))
            }
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => {
                return Err(PeerError::Closed(
                    "EOF without a WebSocket closing handshake".into(),
                ))
            }
            Err(e) => return Err(PeerError::Ws(e)),
        }
        Ok(())
    }

    /// Waits until the other side closes the connection (EOF or reset).
    /// Returns the bytes that arrived before the close (including any left
    /// unparsed in the buffer).
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<Vec<u8>, PeerError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(()) => {}
                Err(PeerError::Closed(_)) => return Ok(self.buf.split().to_vec()),
                Err(PeerError::Timeout(_)) => {
                    return Err(PeerError::Timeout(format!(
                        "connection still open after {timeout:?} ({} bytes received: {:?})",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Succeeds if nothing arrives (and the connection stays open) for
    /// `duration` (WebSocket pings and pongs do not count).
    pub fn expect_nothing(&mut self, duration: Duration) -> Result<(), PeerError> {
        if !self.buf.is_empty() {
            return Err(PeerError::Protocol(format!(
                "unexpected buffered data: {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
            )));
        }
        let deadline = Instant::now() + duration;
        loop {
            match self.fill(deadline) {
                Err(PeerError::Timeout(_)) => return Ok(()),
                Ok(()) if self.buf.is_empty() => {}
                Ok(()) => {
                    return Err(PeerError::Protocol(format!(
                        "unexpected data: {:?}",
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn not_ws(what: &str) -> PeerError {
    PeerError::Io(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what}: this peer has no WebSocket"),
    ))
}

/// TCP connect to the first address of `addr` that answers within `timeout`.
fn tcp_connect(addr: impl ToSocketAddrs, timeout: Duration) -> Result<TcpStream, PeerError> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(PeerError::Io(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
    })))
}

/// Blocking, no Nagle; with its (local, remote) addresses.
fn prepare(stream: TcpStream) -> Result<(TcpStream, (SocketAddr, SocketAddr)), PeerError> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let addrs = (stream.local_addr()?, stream.peer_addr()?);
    Ok((stream, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (Peer, Peer) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = Peer::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (a, Peer::from_stream(s).unwrap())
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn request_and_response_round_trip() {
        let (mut a, mut b) = pair();
        let to = "msrp://127.0.0.1:2855/relay;tcp";
        let to2 = "msrp://127.0.0.1:9/bob;tcp";
        let from = "msrp://127.0.0.1:8/alice;tcp";
        let req = Request::send(&[to, to2], &[from], b"hello");
        a.send_request(&req).unwrap();
        let got = b.read_frame(T).unwrap();
        assert_eq!(got.tid(), req.tid);
        assert_eq!(got.method().as_deref(), Some("SEND"));
        assert_eq!(got.to_path(), vec![to.to_string(), to2.to_string()]);
        assert_eq!(got.from_path(), vec![from.to_string()]);
        assert_eq!(got.body, b"hello");
        assert_eq!(got.flag, EndFlag::Complete);
        assert_eq!(
            got.header("Message-ID").as_deref(),
            req.header("Message-ID")
        );
        assert_eq!(
            got.header_names(),
            [
                "To-Path",
                "From-Path",
                "Message-ID",
                "Byte-Range",
                "Content-Type"
            ]
        );
        b.send_response(&got, 200, Some("OK")).unwrap();
        let resp = a.read_response(T, &[]).unwrap();
        assert_eq!(resp.status_code(), Some(200));
        assert_eq!(resp.tid(), req.tid);
        assert_eq!(resp.to_path(), vec![from.to_string()]);
        assert_eq!(resp.from_path(), vec![to.to_string()]);
    }

    #[test]
    fn streaming_body_is_hashed_on_both_sides() {
        let (mut a, mut b) = pair();
        let len = 1_000_000u64;
        let req = Request::send_streaming(
            &["msrp://127.0.0.1:1/x;tcp"],
            &["msrp://127.0.0.1:2/y;tcp"],
            len,
        );
        let reader = std::thread::spawn(move || b.read_frame_hashed(T).unwrap());
        let sent = a
            .send_request_streaming(&req, BodyGen::new(42, len))
            .unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got.body_len, len);
        assert!(got.body.is_empty());
        assert_eq!(got.body_sha256, sent);
        assert_eq!(sent, BodyGen::new(42, len).sha256());
    }

    #[test]
    fn timeouts_and_close_are_reported() {
        let (mut a, mut b) = pair();
        assert!(matches!(
            a.read_frame(Duration::from_millis(50)),
            Err(PeerError::Timeout(_))
        ));
        a.expect_nothing(Duration::from_millis(50)).unwrap();
        b.send_raw(b"MSRP abc SEND\r\nTo-Path: msrp://h:1/s;tcp\r\n")
            .unwrap();
        drop(b);
        let err = a.read_frame(T).unwrap_err();
        assert!(matches!(err, PeerError::Closed(_)), "{err}");
        a.expect_closed(T).unwrap();
    }
}
