//! Routing decisions that need no connection (RFC 4976 §6.4): whether a URI
//! names this relay, what a request to forward carries, where its next hop
//! is. No engine and no socket in here.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use msrp_core::{ByteRange, FailureReport, FrameHead, HeadError, HostRef, UriError, UriParts};

use crate::config::Config;

/// Why a request is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotForwarded {
    /// Answer the previous hop with this code (unless it asked for no
    /// responses).
    Respond(u16, &'static str),
    /// Nothing to answer (not a request the relay can route).
    Silently,
    /// Not yet: its next hop's host name (lower case) is being resolved.
    Resolving(String),
}

/// Why a request cannot be routed: its head (RFC 4975 §7.3: 400), or its
/// next hop's URI. Shown as the log lines always showed them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A path, Byte-Range or Failure-Report header the relay cannot read.
    #[error("{0}")]
    Head(#[from] HeadError),
    #[error("empty To-Path")]
    EmptyToPath,
    /// The next hop's URI does not parse.
    #[error("{0}")]
    Uri(#[from] UriError),
    /// RFC 7977: a WebSocket client cannot be dialled.
    #[error(
        "a WebSocket client is reached only over its own connection, \
         and no session of it is known here"
    )]
    WebSocketClient,
    /// Only `tcp` is an MSRP transport here (RFC 4975 §6).
    #[error("transport {} not supported", .0.escape_default())]
    Transport(String),
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
    pub fn parse(head: &FrameHead) -> Result<Request, RouteError> {
        let is_send = head.method() == Some(b"SEND");
        let to = head.to_path()?;
        let from = head.from_path()?;
        let (range, failure_report) = if is_send {
            (head.byte_range()?, head.failure_report()?)
        } else {
            (None, FailureReport::Yes)
        };
        if to.is_empty() {
            return Err(RouteError::EmptyToPath);
        }
        Ok(Request {
            is_send,
            to,
            from,
            range,
            failure_report,
            message_id: head
                .message_id()
                .map(|m| head.bytes_of(m))
                .unwrap_or_default(),
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
    UriParts::parse(uri).is_ok_and(|u| is_own(cfg, &u))
}

/// [`is_own_uri`] of a parsed URI.
fn is_own(cfg: &Config, u: &UriParts) -> bool {
    let port = u.port_or_default();
    // names to compare with only when some are configured (this runs for
    // every forwarded request)
    if !cfg.aliases.is_empty() || cfg.use_path_addr.is_some() {
        let host = match &u.host {
            HostRef::Ipv4(a) => a.to_string(),
            HostRef::Ipv6(a) => a.to_string(),
            HostRef::Name(n) => n.to_ascii_lowercase(),
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
    cfg.listen.iter().map(|l| l.addr).any(|l| {
        l.port() == port
            && match &u.host {
                HostRef::Ipv4(a) => l.ip().is_unspecified() || l.ip() == IpAddr::V4(*a),
                HostRef::Ipv6(a) => l.ip().is_unspecified() || l.ip() == IpAddr::V6(*a),
                HostRef::Name(n) => {
                    cfg.aliases.is_empty()
                        || (n.eq_ignore_ascii_case("localhost") && l.ip().is_loopback())
                }
            }
    })
}

/// Where a session this relay handed out is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// To a connection of this worker.
    Here(i64),
    /// To connection `.1` of worker `.0`.
    Worker(usize, i64),
}

/// Where a request goes after this relay (RFC 4976 §6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// Over the connection of a session this relay handed out (Use-Path,
    /// RFC 4976 §6.3): the client may be reachable only over it.
    Session(i64),
    /// Over a session's connection that another worker holds.
    Remote(usize, i64),
    /// To this URI's address (an existing connection or a new one).
    Uri(Bytes),
}

/// The route of a request: its next hop, and how many leading To-Path URIs
/// are this relay's (they move to From-Path, RFC 4976 §6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub hop: Hop,
    pub own: usize,
}

/// Routes a request whose first To-Path URI is this relay's, that came on
/// connection `incoming`; `session` tells which connection a session ID
/// this relay handed out is bound to.
///
/// * A URI with a session bound to another connection is a destination:
///   the request goes over that connection (the stock module's
///   `[U_B, B]`, and `[U_A, U_B, B]` of RFC 4976 §6.4 without connecting
///   to itself).
/// * The sender's own session (bound to `incoming`), a relay URI without a
///   session this relay knows, or another URI of this relay's: the request
///   goes on to the next To-Path URI.
/// * The first URI that is not this relay's is the next hop.
///
/// `Err`: To-Path has no next hop after this relay's URIs.
pub fn plan(
    cfg: &Config,
    to: &[Bytes],
    incoming: i64,
    session: impl Fn(&str) -> Option<Bound>,
) -> Result<Plan, NotForwarded> {
    for (i, uri) in to.iter().enumerate() {
        // parsed once for both checks (this runs for every request)
        let parsed = if i == 0 {
            None
        } else {
            UriParts::parse(uri).ok()
        };
        let ours = i == 0 || parsed.as_ref().is_some_and(|u| is_named_own(cfg, u));
        let bound = session_of(uri)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(&session);
        let mine = ours || parsed.as_ref().is_some_and(|u| is_own(cfg, u));
        match bound {
            Some(Bound::Here(c)) if c != incoming && mine => {
                return Ok(Plan {
                    hop: Hop::Session(c),
                    own: i + 1,
                })
            }
            Some(Bound::Worker(w, c)) if mine => {
                return Ok(Plan {
                    hop: Hop::Remote(w, c),
                    own: i + 1,
                })
            }
            _ if ours => {}
            _ => {
                return Ok(Plan {
                    hop: Hop::Uri(uri.clone()),
                    own: i,
                })
            }
        }
    }
    Err(NotForwarded::Respond(400, "Bad Request"))
}

/// The session part of an MSRP URI (`msrp://host:port/SESSION;tcp`).
pub fn session_of(uri: &[u8]) -> Option<&[u8]> {
    let after = msrp_core::uri::scheme_end(uri)? + 3;
    let rest = &uri[after..];
    let slash = memchr::memchr(b'/', rest)?;
    let sess = &rest[slash + 1..];
    let end = memchr::memchr(b';', sess).unwrap_or(sess.len());
    let s = &sess[..end];
    (!s.is_empty()).then_some(s)
}

/// Whether a next-hop URI names this relay for sure: an `alias`, the
/// `use_path_addr` authority, or a listen address literally (a wildcard
/// listener by loopback only). Unlike [`is_own_uri`] (which accepts any
/// name on a listen port when no alias is set, to be lenient with what
/// senders put first), a next hop on another host with the same port must
/// not be mistaken for this relay.
fn is_named_own(cfg: &Config, u: &UriParts) -> bool {
    let port = u.port_or_default();
    // names to compare with only when some are configured
    let named = !cfg.aliases.is_empty() || cfg.use_path_addr.is_some();
    let by_name = |host: &str| {
        let hostport = format!("{host}:{port}");
        cfg.aliases.iter().any(|a| *a == host || *a == hostport)
            || cfg.use_path_addr.as_ref().is_some_and(|p| {
                let p = p
                    .trim_start_matches("msrp://")
                    .trim_start_matches("msrps://")
                    .to_ascii_lowercase();
                p == hostport || (p == host && port == msrp_core::uri::DEFAULT_PORT)
            })
    };
    let ip = match &u.host {
        HostRef::Ipv4(a) => IpAddr::V4(*a),
        HostRef::Ipv6(a) => IpAddr::V6(*a),
        HostRef::Name(n) => return named && by_name(&n.to_ascii_lowercase()),
    };
    (named && by_name(&ip.to_string()))
        || cfg.listen.iter().map(|l| l.addr).any(|l| {
            l.port() == port && (l.ip() == ip || (l.ip().is_unspecified() && ip.is_loopback()))
        })
}

/// Where a next hop is: its socket address, and for an `msrps://` URI the
/// name (host as written) its TLS certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NextHop {
    pub addr: SocketAddr,
    pub tls: Option<String>,
}

impl NextHop {
    /// A plain TCP next hop.
    pub fn tcp(addr: SocketAddr) -> NextHop {
        NextHop { addr, tls: None }
    }
}

impl std::fmt::Display for NextHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tls {
            Some(name) => write!(f, "tls:{} ({name})", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// The next hop of an MSRP URI before any lookup: an address, or a host
/// name to resolve (off the event loop, see [`crate::dns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(NextHop),
    /// A host name (lower case), its port, and whether over TLS.
    Name {
        name: String,
        port: u16,
        secure: bool,
    },
}

impl Target {
    /// The next hop of a named target once its name resolved to `ip`; TLS
    /// verifies the name as written (RFC 4975 §14.2, RFC 6125).
    pub fn at(name: &str, port: u16, secure: bool, ip: IpAddr) -> NextHop {
        NextHop {
            addr: SocketAddr::new(ip, port),
            tls: secure.then(|| name.to_string()),
        }
    }
}

/// Where an MSRP URI's next hop is (RFC 4975 §6: host and port of the URI;
/// default port 2855; `msrps`: over TLS); an IP literal takes no lookup. A
/// `;ws` URI is a WebSocket client (RFC 7977): the relay never dials one,
/// it is reached only over its own connection (its session), so it is
/// unreachable here.
pub fn target(uri: &[u8]) -> Result<Target, RouteError> {
    let u = UriParts::parse(uri)?;
    if u.transport.eq_ignore_ascii_case("ws") || u.transport.eq_ignore_ascii_case("wss") {
        return Err(RouteError::WebSocketClient);
    }
    if !u.transport.eq_ignore_ascii_case("tcp") {
        return Err(RouteError::Transport(u.transport.to_string()));
    }
    let port = u.port_or_default();
    let ip = match u.host {
        HostRef::Ipv4(a) => IpAddr::V4(a),
        HostRef::Ipv6(a) => IpAddr::V6(a),
        HostRef::Name(n) => {
            return Ok(Target::Name {
                name: n.to_ascii_lowercase(),
                port,
                secure: u.secure,
            })
        }
    };
    // the address as text only for a TLS name to verify
    Ok(Target::Addr(NextHop {
        addr: SocketAddr::new(ip, port),
        tls: u.secure.then(|| ip.to_string()),
    }))
}

/// The body of the frame `tid` when it is already complete in `rbuf` (what
/// follows the head), with its end-line flag: the script sees whole bodies
/// of frames that arrived in one read.
pub fn complete_body(rbuf: &[u8], tid: &[u8]) -> Option<(Bytes, u8)> {
    let (len, flag) = msrp_core::parser::find_body_end(rbuf, tid)?;
    Some((Bytes::copy_from_slice(&rbuf[..len]), flag.as_byte()))
}

/// To-Path and From-Path after this relay's `own` leading To-Path URIs moved
/// to the head of From-Path, last one first (RFC 4976 §6.4, once per URI).
pub fn own_hops(req: &Request, own: usize) -> Option<(Vec<Bytes>, Vec<Bytes>)> {
    // what `msrp_core::path::forward` gives `own` times over, built at once
    let own = own.max(1);
    let to = req.to.get(own..).filter(|r| !r.is_empty())?.to_vec();
    let mut from = Vec::with_capacity(own + req.from.len());
    from.extend(req.to[..own].iter().rev().cloned());
    from.extend_from_slice(&req.from);
    Some((to, from))
}

#[cfg(test)]
mod tests;
