//! What can go wrong on a test peer ([`crate::peer::Peer`] and the
//! streams under it): a leaf module, so that `peer`, `stream` and `ws` do
//! not import each other in a circle.

use std::fmt;
use std::io;

use msrp_core::ParseError;

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

pub(crate) fn is_timeout(e: &io::Error) -> bool {
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
