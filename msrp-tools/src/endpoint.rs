//! A listening MSRP endpoint on 127.0.0.1 (the side a relay connects to).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::peer::{Peer, PeerError};

const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A TCP listener on 127.0.0.1 with an ephemeral port.
#[derive(Debug)]
pub struct Endpoint {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Endpoint {
    /// Binds 127.0.0.1:0.
    pub fn bind() -> io::Result<Endpoint> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(Endpoint { listener, addr })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `msrp://127.0.0.1:PORT/SESSION;tcp`
    pub fn uri(&self, session: &str) -> String {
        format!(
            "msrp://{}:{}/{session};tcp",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// Waits at most `timeout` for an incoming connection.
    pub fn accept(&self, timeout: Duration) -> Result<Peer, PeerError> {
        match self.poll_accept(timeout)? {
            Some(peer) => Ok(peer),
            None => Err(PeerError::Timeout(format!(
                "no connection to {} within {timeout:?}",
                self.addr
            ))),
        }
    }

    /// Succeeds if no connection arrives within `duration`.
    pub fn expect_no_accept(&self, duration: Duration) -> Result<(), PeerError> {
        match self.poll_accept(duration)? {
            None => Ok(()),
            Some(peer) => Err(PeerError::Protocol(format!(
                "unexpected connection to {} from {}",
                self.addr,
                peer.peer_addr()
            ))),
        }
    }

    fn poll_accept(&self, timeout: Duration) -> Result<Option<Peer>, PeerError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => return Peer::from_stream(stream).map(Some),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PeerError::Io(e)),
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_no_accept() {
        let ep = Endpoint::bind().unwrap();
        assert!(ep.uri("s1").starts_with("msrp://127.0.0.1:"));
        assert!(ep.uri("s1").ends_with("/s1;tcp"));
        ep.expect_no_accept(Duration::from_millis(30)).unwrap();
        let _c = Peer::connect(ep.addr()).unwrap();
        let p = ep.accept(Duration::from_secs(5)).unwrap();
        assert_eq!(p.local_addr(), ep.addr());
        assert!(ep.accept(Duration::from_millis(30)).is_err());
    }
}
