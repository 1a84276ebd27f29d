//! Parsers of string parameter values (`listen`, `alias`, `use_path_addr`,
//! `event_callback`) named by the `modparams!` declaration.

use std::net::SocketAddr;

use super::{ConfigError, Kind, Listen, ListenTls};

/// Parses `PROTO:IP:PORT[;option=value...]` with PROTO `tcp`, `tls`, `ws`
/// or `wss` (also `IP:PORT` for tcp; IPv6 as `tcp:[::1]:2855`); the
/// options are a `tls:`/`wss:` listener's own TLS policy ([`ListenTls`]).
pub fn parse_listen(s: &str) -> Result<Listen, ConfigError> {
    let mut parts = s.trim().split(';');
    let t = parts.next().unwrap_or_default().trim();
    let (kind, rest) = match t.split_once(':') {
        Some((proto, rest)) => match Kind::parse(proto) {
            Some(k) => (k, rest),
            None => (Kind::Tcp, t),
        },
        None => (Kind::Tcp, t),
    };
    let addr = rest
        .parse::<SocketAddr>()
        .map_err(|_| ConfigError::BadListen(s.to_string()))?;
    let mut tls = ListenTls::default();
    let name = format!("{}:{addr}", kind.name());
    for opt in parts.filter(|p| !p.trim().is_empty()) {
        let (n, v) = opt.split_once('=').unwrap_or((opt, ""));
        tls.set(&name, n, v)?;
    }
    Ok(Listen { kind, addr, tls })
}

/// `alias`: compared case-insensitively with To-Path hosts.
pub(super) fn alias_name(s: &str) -> Result<String, ConfigError> {
    Ok(s.trim().to_ascii_lowercase())
}

pub(super) fn use_path_host(s: &str) -> Result<Option<String>, ConfigError> {
    Ok(Some(s.trim().to_string()))
}

/// `event_callback`: empty means "use the event route".
pub(super) fn callback_name(s: &str) -> Result<Option<String>, ConfigError> {
    let v = s.trim();
    Ok((!v.is_empty()).then(|| v.to_string()))
}
