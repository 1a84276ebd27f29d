//! Routing decisions that need no connection (RFC 4976 §6.4): whether a URI
//! names this relay, what a request to forward carries, where its next hop
//! is. No engine and no socket in here.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use bytes::Bytes;
use msrp_core::{ByteRange, FailureReport, FrameHead, MsrpUri};

use crate::config::Config;

/// Why a request is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotForwarded {
    /// Answer the previous hop with this code (unless it asked for no
    /// responses).
    Respond(u16, &'static str),
    /// Nothing to answer (not a request the relay can route).
    Silently,
}

/// What the relay needs of a request it forwards.
#[derive(Debug)]
pub struct Request {
    pub is_send: bool,
    pub to: Vec<Bytes>,
    pub from: Vec<Bytes>,
    pub range: Option<ByteRange>,
    pub failure_report: FailureReport,
    pub message_id: Bytes,
}

impl Request {
    /// The paths and SEND headers of `head`; RFC 4975 §7.3: a request the
    /// relay cannot make sense of gets 400.
    pub fn parse(head: &FrameHead) -> Result<Request, String> {
        let is_send = head.method() == Some(b"SEND");
        let to = head.to_path().map_err(|e| e.to_string())?;
        let from = head.from_path().map_err(|e| e.to_string())?;
        let (range, failure_report) = if is_send {
            let r = head.byte_range().map_err(|e| e.to_string())?;
            let fr = head.failure_report().map_err(|e| e.to_string())?;
            (r, fr)
        } else {
            (None, FailureReport::Yes)
        };
        if to.is_empty() {
            return Err("empty To-Path".into());
        }
        Ok(Request {
            is_send,
            to,
            from,
            range,
            failure_report,
            message_id: head.message_id().cloned().unwrap_or_default(),
        })
    }

    /// The relay's URI: the first To-Path URI.
    pub fn relay_uri(&self) -> &Bytes {
        &self.to[0]
    }
}

/// The Failure-Report a frame asks for (absent means "yes", RFC 4975
/// §7.1.1; only SENDs have one).
pub fn failure_report(head: &FrameHead) -> FailureReport {
    if head.method() == Some(b"SEND") {
        head.failure_report().unwrap_or(FailureReport::Yes)
    } else {
        FailureReport::Yes
    }
}

/// Whether `uri` names this relay: its port is one the relay listens on
/// and its host is the listening address (any, for a wildcard listener) or
/// an `alias`, or it is the authority handed out in Use-Path. A host name is
/// accepted by port alone when no alias is configured.
pub fn is_own_uri(cfg: &Config, uri: &[u8]) -> bool {
    let Ok(u) = MsrpUri::parse(uri) else {
        return false;
    };
    let port = u.port_or_default();
    // names to compare with only when some are configured (this runs for
    // every forwarded request)
    if !cfg.aliases.is_empty() || cfg.use_path_addr.is_some() {
        let host = match &u.host {
            msrp_core::Host::Ipv4(a) => a.to_string(),
            msrp_core::Host::Ipv6(a) => a.to_string(),
            msrp_core::Host::Name(n) => n.to_ascii_lowercase(),
        };
        let hostport = format!("{host}:{port}");
        if cfg.aliases.iter().any(|a| *a == host || *a == hostport) {
            return true;
        }
        if let Some(u) = &cfg.use_path_addr {
            let u = u
                .trim_start_matches("msrp://")
                .trim_start_matches("msrps://")
                .to_ascii_lowercase();
            if u == hostport || (u == host && port == msrp_core::uri::DEFAULT_PORT) {
                return true;
            }
        }
    }
    cfg.listen.iter().any(|l| {
        l.port() == port
            && match &u.host {
                msrp_core::Host::Ipv4(a) => l.ip().is_unspecified() || l.ip() == IpAddr::V4(*a),
                msrp_core::Host::Ipv6(a) => l.ip().is_unspecified() || l.ip() == IpAddr::V6(*a),
                msrp_core::Host::Name(n) => {
                    cfg.aliases.is_empty()
                        || (n.eq_ignore_ascii_case("localhost") && l.ip().is_loopback())
                }
            }
    })
}

/// Socket address of a next-hop MSRP URI (RFC 4975 §6: host and port of the
/// URI; default port 2855). Names are resolved with the system resolver.
pub fn resolve(uri: &[u8]) -> Result<SocketAddr, String> {
    let u = MsrpUri::parse(uri).map_err(|e| e.to_string())?;
    if !u.transport.eq_ignore_ascii_case("tcp") {
        return Err(format!("transport {:?} not supported", u.transport));
    }
    let port = u.port_or_default();
    match &u.host {
        msrp_core::Host::Ipv4(a) => Ok(SocketAddr::from((*a, port))),
        msrp_core::Host::Ipv6(a) => Ok(SocketAddr::from((*a, port))),
        msrp_core::Host::Name(n) => (n.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {n}: {e}"))?
            .next()
            .ok_or_else(|| format!("{n} has no address")),
    }
}

/// The body of the frame `tid` when it is already complete in `rbuf` (what
/// follows the head), with its end-line flag: the script sees whole bodies
/// of frames that arrived in one read.
pub fn complete_body(rbuf: &[u8], tid: &[u8]) -> Option<(Bytes, u8)> {
    let mut pat = b"\r\n-------".to_vec();
    pat.extend_from_slice(tid);
    if let Some(p) = memchr::memmem::find(rbuf, &pat) {
        let flag = rbuf.get(p + pat.len()).copied().unwrap_or(b'$');
        return Some((Bytes::copy_from_slice(&rbuf[..p]), flag));
    }
    if rbuf.starts_with(&pat[2..]) {
        let flag = rbuf.get(pat.len() - 2).copied().unwrap_or(b'$');
        return Some((Bytes::new(), flag));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(listen: &str, aliases: &[&str], use_path: Option<&str>) -> Config {
        let mut c = crate::testing::config(Vec::new());
        c.listen = vec![listen.parse().unwrap()];
        c.aliases = aliases.iter().map(|a| a.to_string()).collect();
        c.use_path_addr = use_path.map(str::to_string);
        c
    }

    #[test]
    fn own_uris() {
        let c = cfg("127.0.0.1:2855", &[], None);
        assert!(is_own_uri(&c, b"msrp://127.0.0.1:2855/x;tcp"));
        assert!(!is_own_uri(&c, b"msrp://127.0.0.2:2855/x;tcp"));
        assert!(!is_own_uri(&c, b"msrp://127.0.0.1:2856/x;tcp"));
        assert!(is_own_uri(&c, b"msrp://localhost:2855/x;tcp"));
        assert!(!is_own_uri(&c, b"not a uri"));
        let c = cfg("0.0.0.0:2855", &["relay.example"], Some("pub.example:9000"));
        assert!(is_own_uri(&c, b"msrp://10.1.2.3:2855/x;tcp"));
        assert!(is_own_uri(&c, b"msrp://RELAY.example:1234/x;tcp"));
        assert!(is_own_uri(&c, b"msrp://pub.example:9000/s;tcp"));
        assert!(!is_own_uri(&c, b"msrp://other.example:2855/x;tcp"));
    }

    #[test]
    fn resolves_literals_and_refuses_other_transports() {
        assert_eq!(
            resolve(b"msrp://127.0.0.1:9/s;tcp"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9)))
        );
        assert_eq!(
            resolve(b"msrp://[::1]/s;tcp"),
            Ok("[::1]:2855".parse().unwrap())
        );
        assert!(resolve(b"msrp://127.0.0.1:9/s;udp").is_err());
    }

    #[test]
    fn finds_complete_bodies() {
        assert_eq!(
            complete_body(b"hello\r\n-------t1$\r\n", b"t1"),
            Some((Bytes::from_static(b"hello"), b'$'))
        );
        assert_eq!(
            complete_body(b"-------t1+\r\n", b"t1"),
            Some((Bytes::new(), b'+'))
        );
        assert_eq!(complete_body(b"hello\r\n---", b"t1"), None);
    }
}
