//! A listening MSRP endpoint on 127.0.0.1 (the side a relay connects to),
//! over plain TCP or TLS (an `msrps://` next hop).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use crate::peer::{Peer, PeerError};
use crate::stream::Transport;

const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A TCP listener on 127.0.0.1 with an ephemeral port; with
/// [`Endpoint::bind_tls`] every accepted connection runs a TLS handshake.
pub struct Endpoint {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    /// Binds 127.0.0.1:0.
    pub fn bind() -> io::Result<Endpoint> {
        Endpoint::bind_with(None)
    }

    /// Binds 127.0.0.1:0; connections are TLS with `config` (see
    /// [`crate::tls::server_config`]: the certificate to present, and
    /// whether the relay must present a client certificate).
    pub fn bind_tls(config: Arc<ServerConfig>) -> io::Result<Endpoint> {
        Endpoint::bind_with(Some(config))
    }

    fn bind_with(tls: Option<Arc<ServerConfig>>) -> io::Result<Endpoint> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(Endpoint {
            listener,
            addr,
            tls,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `Tcp`, or `Tls` for [`Endpoint::bind_tls`].
    pub fn transport(&self) -> Transport {
        if self.tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        }
    }

    /// `msrp://127.0.0.1:PORT/SESSION;tcp`, or
    /// `msrps://127.0.0.1:PORT/SESSION;tcp` for a TLS endpoint.
    pub fn uri(&self, session: &str) -> String {
        self.transport()
            .uri(&self.addr.ip().to_string(), self.addr.port(), session)
    }

    /// Waits at most `timeout` for an incoming connection; a TLS endpoint
    /// then runs the handshake (at most [`crate::peer::CONNECT_TIMEOUT`]
    /// more), whose failure (e.g. the relay presented no or a wrong client
    /// certificate) is this call's error.
    pub fn accept(&self, timeout: Duration) -> Result<Peer, PeerError> {
        match self.poll_accept(timeout)? {
            Some(stream) => match &self.tls {
                Some(config) => Peer::accept_tls(stream, config),
                None => Peer::from_stream(stream),
            },
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
            Some(stream) => Err(PeerError::Protocol(format!(
                "unexpected connection to {} from {}",
                self.addr,
                stream
                    .peer_addr()
                    .map_or_else(|e| e.to_string(), |a| a.to_string())
            ))),
        }
    }

    fn poll_accept(&self, timeout: Duration) -> Result<Option<TcpStream>, PeerError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => return Ok(Some(stream)),
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
    use crate::peer::Request;
    use crate::tls::{self, Certs, ClientAuth, TlsVersions};

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn accept_and_no_accept() {
        let ep = Endpoint::bind().unwrap();
        assert!(ep.uri("s1").starts_with("msrp://127.0.0.1:"));
        assert!(ep.uri("s1").ends_with("/s1;tcp"));
        ep.expect_no_accept(Duration::from_millis(30)).unwrap();
        let _c = Peer::connect(ep.addr()).unwrap();
        let p = ep.accept(Duration::from_secs(5)).unwrap();
        assert_eq!(p.local_addr(), ep.addr());
        assert_eq!(p.transport(), Transport::Tcp);
        assert!(ep.accept(Duration::from_millis(30)).is_err());
    }

    /// A client of the endpoint on its own thread; returns what `f` returns.
    fn client<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        std::thread::spawn(f)
    }

    #[test]
    fn tls_endpoint_with_client_certificates() {
        let c = Certs::for_tests().unwrap();
        let ep = Endpoint::bind_tls(
            tls::server_config(&c.endpoint(), ClientAuth::Required(c.ca())).unwrap(),
        )
        .unwrap();
        assert_eq!(ep.transport(), Transport::Tls);
        let uri = ep.uri("s1");
        assert!(
            uri.starts_with("msrps://127.0.0.1:") && uri.ends_with("/s1;tcp"),
            "{uri}"
        );
        // The relay's certificate as client certificate: accepted both ways.
        let addr = ep.addr();
        let cfg = tls::client_config(&c.ca(), Some(&c.relay())).unwrap();
        let h = client(move || {
            let mut a = Peer::connect_tls(addr, "127.0.0.1", &cfg).unwrap();
            assert_eq!(a.transport(), Transport::Tls);
            let req = Request::send(
                &["msrps://127.0.0.1:1/b;tcp"],
                &["msrps://127.0.0.1:2/a;tcp"],
                b"over TLS",
            );
            a.send_request(&req).unwrap();
            let r = a.read_response(T, &[]).unwrap();
            assert_eq!(r.status_code(), Some(200));
            let err = a.try_clone_stream().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Unsupported);
            assert!(err.to_string().contains("tls"), "{err}");
            a.shutdown_write().unwrap();
            a.read_frame(T).map(|f| f.summary())
        });
        let mut b = ep.accept(T).unwrap();
        assert_eq!(b.transport(), Transport::Tls);
        let presented = b.tls_peer_certificates().expect("client certificate");
        assert_eq!(
            presented[0],
            tls::load_certs(&c.relay().cert_chain).unwrap()[0]
        );
        let f = b.read_frame(T).unwrap();
        assert_eq!(f.body, b"over TLS");
        b.send_response(&f, 200, Some("OK")).unwrap();
        // close_notify + FIN reach us as a clean close
        b.expect_closed(T).unwrap();
        drop(b);
        let end = h.join().unwrap();
        assert!(matches!(end, Err(PeerError::Closed(_))), "{end:?}");
    }

    #[test]
    fn tls_endpoint_refuses_a_missing_or_foreign_client_certificate() {
        let c = Certs::for_tests().unwrap();
        let ep = Endpoint::bind_tls(
            tls::server_config(&c.endpoint(), ClientAuth::Required(c.ca())).unwrap(),
        )
        .unwrap();
        let addr = ep.addr();
        for identity in [None, Some(c.other())] {
            let cfg = tls::client_config(&c.ca(), identity.as_ref()).unwrap();
            let h = client(move || {
                // TLS 1.3: the client is done before the server looks at
                // its certificate; the refusal comes as an alert on read.
                Peer::connect_tls(addr, "localhost", &cfg)
                    .and_then(|mut a| a.read_frame(T))
                    .map(|f| f.summary())
            });
            let err = ep.accept(T).unwrap_err();
            assert!(matches!(err, PeerError::Tls(_)), "{err}");
            let client_err = h.join().unwrap().unwrap_err();
            assert!(matches!(client_err, PeerError::Tls(_)), "{client_err}");
        }
    }

    #[test]
    fn tls_client_refuses_wrong_ca_name_and_version() {
        let c = Certs::for_tests().unwrap();
        let ep_other =
            Endpoint::bind_tls(tls::server_config(&c.other(), ClientAuth::None).unwrap()).unwrap();
        let trust_ca = tls::client_config(&c.ca(), None).unwrap();
        // A server certificate of another CA.
        let addr = ep_other.addr();
        let cfg = trust_ca.clone();
        let h = client(move || Peer::connect_tls(addr, "127.0.0.1", &cfg).map(|_| ()));
        let _ = ep_other.accept(T);
        let err = h.join().unwrap().unwrap_err();
        assert!(
            matches!(err, PeerError::Tls(rustls::Error::InvalidCertificate(_))),
            "{err}"
        );
        // The right CA, a name the certificate does not carry.
        let ep = Endpoint::bind_tls(
            tls::server_config_with(&c.endpoint(), ClientAuth::None, TlsVersions::Only13).unwrap(),
        )
        .unwrap();
        let addr = ep.addr();
        let cfg = trust_ca.clone();
        let h = client(move || Peer::connect_tls(addr, "relay.test", &cfg).map(|_| ()));
        let _ = ep.accept(T);
        let err = h.join().unwrap().unwrap_err();
        assert!(
            matches!(err, PeerError::Tls(rustls::Error::InvalidCertificate(_))),
            "{err}"
        );
        // Names it does carry, and the negotiated version.
        for name in ["endpoint.test", "localhost", "127.0.0.1"] {
            let cfg = trust_ca.clone();
            let h = client(move || {
                Peer::connect_tls(addr, name, &cfg)
                    .map(|p| p.tls_version())
                    .map_err(|e| format!("{name}: {e:?}"))
            });
            let b = ep.accept(T).unwrap();
            assert!(b.tls_peer_certificates().is_none());
            assert_eq!(
                h.join().unwrap().unwrap(),
                Some(rustls::ProtocolVersion::TLSv1_3)
            );
        }
        // A TLS 1.2-only client against a TLS 1.3-only server.
        let cfg = tls::client_config_with(&c.ca(), None, TlsVersions::Only12).unwrap();
        let h = client(move || Peer::connect_tls(addr, "localhost", &cfg).map(|_| ()));
        assert!(matches!(ep.accept(T), Err(PeerError::Tls(_))));
        assert!(matches!(h.join().unwrap(), Err(PeerError::Tls(_))));
    }

    #[test]
    fn tls_handshake_times_out_against_a_silent_server() {
        let c = Certs::for_tests().unwrap();
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = tls::client_config(&c.ca(), None).unwrap();
        let t0 = Instant::now();
        let err = Peer::connect_tls(silent.local_addr().unwrap(), "localhost", &cfg).unwrap_err();
        assert!(matches!(err, PeerError::Timeout(_)), "{err}");
        let took = t0.elapsed();
        assert!(
            took >= crate::peer::CONNECT_TIMEOUT - Duration::from_millis(100)
                && took < crate::peer::CONNECT_TIMEOUT + Duration::from_secs(2),
            "{took:?}"
        );
    }
}
