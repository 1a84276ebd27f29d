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
use msrp_core::{build, Event, FrameHead, Limits, Parser};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ProtocolVersion, ServerConfig};
use sha2::{Digest, Sha256};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::body::BodyGen;
use crate::error::is_timeout;
pub use crate::error::PeerError;
use crate::stream::{Stream, Transport};
use crate::ws::{self, WsConnect};

/// Upper bound for one blocking write (a stuck relay must not hang a test).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeout for establishing a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const READ_PIECE: usize = 64 * 1024;

mod frames;
mod request;

pub use request::{ReceivedFrame, Request};

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
    use msrp_core::EndFlag;
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
