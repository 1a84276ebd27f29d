//! MSRP URIs (RFC 4975 §6, §9):
//!
//! ```text
//! MSRP-URI    = msrp-scheme "://" authority ["/" session-id] ";" transport
//!               *( ";" URI-parameter )
//! msrp-scheme = "msrp" / "msrps"
//! session-id  = 1*( unreserved / "+" / "=" / "/" )
//! transport   = "tcp" / 1*ALPHANUM
//! URI-parameter = token ["=" token]
//! ```
//! `authority` is that of RFC 3986 §3.2.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::syntax::is_token_char;

/// Port used when an MSRP URI has none (RFC 4975 §15.2, IANA).
pub const DEFAULT_PORT: u16 = 2855;

/// The host part of an MSRP URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    Ipv6(Ipv6Addr),
    /// A registered name (FQDN), as written.
    Name(String),
}

impl Host {
    /// RFC 4975 §6.1 / RFC 3986 §6.2.2.1: host names compare
    /// case-insensitively, addresses by value.
    pub fn matches(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Ipv4(a), Host::Ipv4(b)) => a == b,
            (Host::Ipv6(a), Host::Ipv6(b)) => a == b,
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// Why a byte string is not an MSRP URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// Not `msrp://` or `msrps://`.
    #[error("scheme is not msrp or msrps")]
    BadScheme,
    /// Non-ASCII bytes or characters not allowed in a URI.
    #[error("invalid character in URI")]
    BadCharacter,
    /// The userinfo part is malformed.
    #[error("invalid userinfo")]
    BadUserinfo,
    /// The host is missing or malformed.
    #[error("invalid host")]
    BadHost,
    /// The port is not a number in 1..=65535.
    #[error("invalid port")]
    BadPort,
    /// The session-id is empty or contains invalid characters.
    #[error("invalid session-id")]
    BadSessionId,
    /// The mandatory `;transport` is missing or malformed (RFC 4975 §9).
    #[error("missing or invalid transport")]
    BadTransport,
    /// A URI parameter is not `token ["=" token]`.
    #[error("invalid URI parameter")]
    BadParam,
}

/// A parsed MSRP URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpUri {
    /// `msrps` (TLS) rather than `msrp`.
    pub secure: bool,
    /// RFC 3986 userinfo, as written (without the `@`).
    pub user: Option<String>,
    /// The host.
    pub host: Host,
    /// The port, if written.
    pub port: Option<u16>,
    /// The session-id path component, without the leading `/`.
    pub session_id: Option<String>,
    /// The transport (`tcp`), as written.
    pub transport: String,
    /// Further `;name[=value]` parameters, in order.
    pub params: Vec<(String, Option<String>)>,
}

/// RFC 3986 §2.3 unreserved.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §2.2 sub-delims.
fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Checks RFC 3986 pct-encoded triplets; `allowed` covers the other bytes.
fn pct_encoded_ok(s: &[u8], allowed: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            match (s.get(i + 1), s.get(i + 2)) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else if allowed(s[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn ascii(s: &[u8]) -> &str {
    // Callers validated that `s` is ASCII (MsrpUri::parse checks every
    // byte first), so this never gives the empty fallback.
    std::str::from_utf8(s).unwrap_or_default()
}

/// The host part of an MSRP URI, borrowed from the URI's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRef<'a> {
    /// A dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    Ipv6(Ipv6Addr),
    /// A registered name (FQDN), as written.
    Name(&'a str),
}

impl HostRef<'_> {
    /// The owned form.
    pub fn to_host(self) -> Host {
        match self {
            HostRef::Ipv4(a) => Host::Ipv4(a),
            HostRef::Ipv6(a) => Host::Ipv6(a),
            HostRef::Name(n) => Host::Name(n.to_string()),
        }
    }
}

fn parse_host(s: &[u8]) -> Result<HostRef<'_>, UriError> {
    if let Some(inner) = s.strip_prefix(b"[") {
        let inner = inner.strip_suffix(b"]").ok_or(UriError::BadHost)?;
        let text = std::str::from_utf8(inner).map_err(|_| UriError::BadHost)?;
        return text
            .parse::<Ipv6Addr>()
            .map(HostRef::Ipv6)
            .map_err(|_| UriError::BadHost);
    }
    if s.is_empty() {
        return Err(UriError::BadHost);
    }
    if s.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
        // Looks like IPv4address; RFC 3986 would let an invalid one pass
        // as reg-name, but a relay cannot resolve "1.2.3.999" either.
        let text = std::str::from_utf8(s).map_err(|_| UriError::BadHost)?;
        return text
            .parse::<Ipv4Addr>()
            .map(HostRef::Ipv4)
            .map_err(|_| UriError::BadHost);
    }
    // reg-name = *( unreserved / pct-encoded / sub-delims ) (RFC 3986 §3.2.2)
    if !pct_encoded_ok(s, |b| is_unreserved(b) || is_sub_delim(b)) {
        return Err(UriError::BadHost);
    }
    Ok(HostRef::Name(ascii(s)))
}

/// `[userinfo "@"] host [":" port]` (RFC 4975 §9, RFC 3986 §3.2).
type Authority<'a> = (Option<&'a str>, HostRef<'a>, Option<u16>);

fn parse_authority(authority: &[u8]) -> Result<Authority<'_>, UriError> {
    let (user, hostport) = match memchr::memrchr(b'@', authority) {
        Some(at) => {
            let u = &authority[..at];
            // userinfo = *( unreserved / pct-encoded / sub-delims / ":" )
            if u.is_empty()
                || !pct_encoded_ok(u, |b| is_unreserved(b) || is_sub_delim(b) || b == b':')
            {
                return Err(UriError::BadUserinfo);
            }
            (Some(ascii(u)), &authority[at + 1..])
        }
        None => (None, authority),
    };
    let host_end = if hostport.first() == Some(&b'[') {
        memchr::memchr(b']', hostport).map_or(hostport.len(), |p| p + 1)
    } else {
        memchr::memchr(b':', hostport).unwrap_or(hostport.len())
    };
    let host = parse_host(&hostport[..host_end])?;
    let port = match &hostport[host_end..] {
        [] => None,
        [b':', digits @ ..] => Some(parse_port(digits)?),
        _ => return Err(UriError::BadHost),
    };
    Ok((user, host, port))
}

/// 1 to 5 digits, 1..=65535.
fn parse_port(digits: &[u8]) -> Result<u16, UriError> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(UriError::BadPort);
    }
    let p: u32 = digits.iter().fold(0, |a, &d| a * 10 + u32::from(d - b'0'));
    match u16::try_from(p) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(UriError::BadPort),
    }
}

/// `["/" session-id]` before the `;transport`; returns the session-id and
/// what follows it (starting with ';').
fn parse_session_id(rest: &[u8]) -> Result<(Option<&str>, &[u8]), UriError> {
    let Some(after) = rest.strip_prefix(b"/") else {
        return Ok((None, rest));
    };
    let end = memchr::memchr(b';', after).ok_or(UriError::BadTransport)?;
    let sid = &after[..end];
    // session-id = 1*( unreserved / "+" / "=" / "/" ) (RFC 4975 §9)
    if sid.is_empty()
        || !sid
            .iter()
            .all(|&b| is_unreserved(b) || matches!(b, b'+' | b'=' | b'/'))
    {
        return Err(UriError::BadSessionId);
    }
    Ok((Some(ascii(sid)), &after[end..]))
}

/// The `;name[=value]` URI parameters after the transport, checked by
/// [`parse_transport`].
fn params(after_transport: &[u8]) -> impl Iterator<Item = (&str, Option<&str>)> {
    after_transport
        .split(|&b| b == b';')
        .skip(1)
        .map(|p| match memchr::memchr(b'=', p) {
            Some(eq) => (ascii(&p[..eq]), Some(ascii(&p[eq + 1..]))),
            None => (ascii(p), None),
        })
}

/// `";" transport *( ";" URI-parameter )`; `rest` starts with ';'
/// (guaranteed by the authority split or the session-id search). Returns
/// the transport and what follows it (the parameters).
fn parse_transport(rest: &[u8]) -> Result<(&str, &[u8]), UriError> {
    let rest = rest.get(1..).unwrap_or(&[]);
    let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
    let transport = &rest[..end];
    if transport.is_empty() || !transport.iter().all(u8::is_ascii_alphanumeric) {
        return Err(UriError::BadTransport);
    }
    for p in rest[end..].split(|&b| b == b';').skip(1) {
        let (name, value) = match memchr::memchr(b'=', p) {
            Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
            None => (p, None),
        };
        let token = |t: &[u8]| !t.is_empty() && t.iter().all(|&b| is_token_char(b));
        if !token(name) || !value.is_none_or(token) {
            return Err(UriError::BadParam);
        }
    }
    Ok((ascii(transport), &rest[end..]))
}

/// An MSRP URI checked as [`MsrpUri::parse`] checks it, its parts borrowed
/// from the URI's bytes: what the relay reads of the URIs of every request
/// it routes, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriParts<'a> {
    /// `msrps` (TLS) rather than `msrp`.
    pub secure: bool,
    /// RFC 3986 userinfo, as written (without the `@`).
    pub user: Option<&'a str>,
    /// The host.
    pub host: HostRef<'a>,
    /// The port, if written.
    pub port: Option<u16>,
    /// The session-id path component, without the leading `/`.
    pub session_id: Option<&'a str>,
    /// The transport (`tcp`), as written.
    pub transport: &'a str,
    /// `;name[=value]` parameters after the transport, as written.
    params: &'a [u8],
}

/// Where the first `://` of `s` starts. `memmem::find` would build a
/// searcher for the needle on every call; this is called for every URI of
/// every relayed frame, and the scheme ends within a few bytes.
pub fn scheme_end(s: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b':', s).find(|&i| s[i + 1..].starts_with(b"//"))
}

impl<'a> UriParts<'a> {
    /// Checks an MSRP URI (RFC 4975 §9). The scheme is case-insensitive
    /// (RFC 3986 §3.1); the `;transport` part is mandatory.
    pub fn parse(s: &'a [u8]) -> Result<Self, UriError> {
        if !s.iter().all(|&b| b.is_ascii_graphic()) {
            return Err(UriError::BadCharacter);
        }
        let sep = scheme_end(s).ok_or(UriError::BadScheme)?;
        let scheme = &s[..sep];
        let secure = if scheme.eq_ignore_ascii_case(b"msrp") {
            false
        } else if scheme.eq_ignore_ascii_case(b"msrps") {
            true
        } else {
            return Err(UriError::BadScheme);
        };
        let rest = &s[sep + 3..];
        // The authority ends at "/" (session-id) or ";" (transport).
        let auth_end = rest
            .iter()
            .position(|&b| b == b'/' || b == b';')
            .ok_or(UriError::BadTransport)?;
        let (user, host, port) = parse_authority(&rest[..auth_end])?;
        let (session_id, rest) = parse_session_id(&rest[auth_end..])?;
        let (transport, params) = parse_transport(rest)?;
        Ok(UriParts {
            secure,
            user,
            host,
            port,
            session_id,
            transport,
            params,
        })
    }

    /// The port, or 2855 when none is written (RFC 4975 §6).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// The owned form.
    pub fn to_uri(&self) -> MsrpUri {
        MsrpUri {
            secure: self.secure,
            user: self.user.map(str::to_string),
            host: self.host.to_host(),
            port: self.port,
            session_id: self.session_id.map(str::to_string),
            transport: self.transport.to_string(),
            params: params(self.params)
                .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }
}

impl MsrpUri {
    /// Parses an MSRP URI (RFC 4975 §9; see [`UriParts::parse`]).
    pub fn parse(s: &[u8]) -> Result<Self, UriError> {
        UriParts::parse(s).map(|p| p.to_uri())
    }

    /// The port, or 2855 when none is written (RFC 4975 §6).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// URI equality of RFC 4975 §6.1: scheme, host (case-insensitive), port
    /// (with the default applied), session-id (case-sensitive) and transport
    /// (case-insensitive) must match; userinfo and parameters are ignored.
    pub fn same_resource(&self, other: &MsrpUri) -> bool {
        self.secure == other.secure
            && self.host.matches(&other.host)
            && self.port_or_default() == other.port_or_default()
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(&other.transport)
    }
}

impl std::str::FromStr for MsrpUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, UriError> {
        MsrpUri::parse(s.as_bytes())
    }
}

impl fmt::Display for MsrpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "msrps://" } else { "msrp://" })?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(s) = &self.session_id {
            write!(f, "/{s}")?;
        }
        write!(f, ";{}", self.transport)?;
        for (name, value) in &self.params {
            write!(f, ";{name}")?;
            if let Some(v) = value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}
