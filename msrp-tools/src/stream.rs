//! The byte stream under a peer: plain TCP, or TLS (rustls) over TCP; and
//! [`Transport`], the four ways a client reaches the relay.
//!
//! Timeouts are always set on the TCP socket underneath, so they bound TLS
//! reads and writes (and a WebSocket over either) too.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::CertificateDer;
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, ProtocolVersion, ServerConfig,
    ServerConnection, SideData, StreamOwned,
};

use crate::error::PeerError;
use crate::tls;

/// How a client reaches the relay: the relay's `listen` prefixes
/// (`tcp:`, `tls:`, `ws:`, `wss:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// MSRP over TCP (RFC 4975).
    Tcp,
    /// MSRP over TLS (`msrps`).
    Tls,
    /// MSRP over WebSocket (RFC 7977), subprotocol `msrp`.
    Ws,
    /// MSRP over secure WebSocket.
    Wss,
}

impl Transport {
    /// All four, in this order: tcp, tls, ws, wss.
    pub const ALL: [Transport; 4] = [
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// The relay's `listen` prefix: `tcp`, `tls`, `ws`, `wss`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// Whether TLS is involved (`tls`, `wss`).
    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    /// Whether it is a WebSocket (`ws`, `wss`).
    pub fn is_ws(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }

    /// The MSRP URI scheme: `msrps` over TLS, `msrp` otherwise.
    pub fn uri_scheme(self) -> &'static str {
        if self.is_tls() {
            "msrps"
        } else {
            "msrp"
        }
    }

    /// The MSRP URI transport parameter: `ws` for WebSockets (RFC 7977
    /// §5.1), `tcp` otherwise.
    pub fn uri_transport(self) -> &'static str {
        if self.is_ws() {
            "ws"
        } else {
            "tcp"
        }
    }

    /// `SCHEME://HOST:PORT/SESSION;TRANSPORT` (an IPv6 host in brackets).
    pub fn uri(self, host: &str, port: u16, session: &str) -> String {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        format!(
            "{}://{host}:{port}/{session};{}",
            self.uri_scheme(),
            self.uri_transport()
        )
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Transport, String> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown transport {s:?} (tcp, tls, ws or wss)"))
    }
}

/// A connected byte stream: TCP, or TLS over TCP (client or server side).
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS, our side the client.
    TlsClient(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// TLS, our side the server.
    TlsServer(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Stream::Tcp(_) => "Tcp",
            Stream::TlsClient(_) => "TlsClient",
            Stream::TlsServer(_) => "TlsServer",
        };
        f.debug_tuple(kind).field(self.tcp()).finish()
    }
}

impl Stream {
    /// Runs a TLS client handshake on `tcp`, to be finished before
    /// `deadline` (the socket's timeouts are set to what is left; the caller
    /// sets them again afterwards). `server_name` is checked against the
    /// server's certificate (a DNS name, or an IP address for IP SANs).
    ///
    /// With TLS 1.3 the client's handshake is done before the server has
    /// checked the client's certificate: a refusal of it shows on the first
    /// read, as [`PeerError::Tls`] with the server's alert.
    pub fn tls_connect(
        mut tcp: TcpStream,
        server_name: &str,
        config: &Arc<ClientConfig>,
        deadline: Instant,
    ) -> Result<Stream, PeerError> {
        let name = tls::server_name(server_name)
            .map_err(|e| PeerError::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let mut conn = ClientConnection::new(config.clone(), name).map_err(PeerError::Tls)?;
        handshake(&mut conn, &mut tcp, deadline)?;
        Ok(Stream::TlsClient(Box::new(StreamOwned::new(conn, tcp))))
    }

    /// Runs a TLS server handshake on an accepted `tcp`, to be finished
    /// before `deadline`.
    pub fn tls_accept(
        mut tcp: TcpStream,
        config: &Arc<ServerConfig>,
        deadline: Instant,
    ) -> Result<Stream, PeerError> {
        let mut conn = ServerConnection::new(config.clone()).map_err(PeerError::Tls)?;
        handshake(&mut conn, &mut tcp, deadline)?;
        Ok(Stream::TlsServer(Box::new(StreamOwned::new(conn, tcp))))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            Stream::TlsClient(s) => s.get_ref(),
            Stream::TlsServer(s) => s.get_ref(),
        }
    }

    /// Whether this is TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Tcp(_))
    }

    /// The certificates the other side presented (TLS only; a server whose
    /// client sent none: `None`).
    pub fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        let certs = match self {
            Stream::Tcp(_) => None,
            Stream::TlsClient(s) => s.conn.peer_certificates(),
            Stream::TlsServer(s) => s.conn.peer_certificates(),
        }?;
        Some(certs.iter().map(|c| c.clone().into_owned()).collect())
    }

    /// The negotiated TLS version (TLS only).
    pub fn tls_version(&self) -> Option<ProtocolVersion> {
        match self {
            Stream::Tcp(_) => None,
            Stream::TlsClient(s) => s.conn.protocol_version(),
            Stream::TlsServer(s) => s.conn.protocol_version(),
        }
    }

    /// Half-closes the sending direction: TLS first sends its close_notify
    /// alert, then the TCP socket sends FIN. Reads still work.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(_) => {}
            Stream::TlsClient(s) => {
                s.conn.send_close_notify();
                s.flush()?;
            }
            Stream::TlsServer(s) => {
                s.conn.send_close_notify();
                s.flush()?;
            }
        }
        self.tcp().shutdown(Shutdown::Write)
    }
}

fn handshake<D: SideData>(
    conn: &mut ConnectionCommon<D>,
    tcp: &mut TcpStream,
    deadline: Instant,
) -> Result<(), PeerError> {
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PeerError::Timeout(
                "TLS handshake not finished in time".into(),
            ));
        }
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))?;
        conn.complete_io(tcp)
            .map_err(|e| match PeerError::from(e) {
                PeerError::Timeout(e) => PeerError::Timeout(format!("TLS handshake: {e}")),
                PeerError::Closed(e) => PeerError::Closed(format!("during the TLS handshake: {e}")),
                other => other,
            })?;
    }
    while conn.wants_write() {
        conn.write_tls(tcp)?;
    }
    Ok(())
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::TlsClient(s) => s.read(buf),
            Stream::TlsServer(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::TlsClient(s) => s.write(buf),
            Stream::TlsServer(s) => s.write(buf),
        }
    }

    /// For TLS, writes out every record still buffered.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::TlsClient(s) => s.flush(),
            Stream::TlsServer(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        for t in Transport::ALL {
            assert_eq!(t.name().parse::<Transport>().unwrap(), t);
        }
        assert_eq!("WSS".parse::<Transport>().unwrap(), Transport::Wss);
        assert!("udp".parse::<Transport>().is_err());
        assert_eq!(
            Transport::Tls.uri("127.0.0.1", 2856, "s1"),
            "msrps://127.0.0.1:2856/s1;tcp"
        );
        assert_eq!(Transport::Ws.uri("::1", 80, "s"), "msrp://[::1]:80/s;ws");
        assert_eq!(
            Transport::Wss.uri("relay.test", 443, "s"),
            "msrps://relay.test:443/s;ws"
        );
        assert_eq!(Transport::Tcp.uri("h", 1, "s"), "msrp://h:1/s;tcp");
    }
}
