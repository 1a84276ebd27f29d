//! The `dns_*` parameters: how next-hop host names are resolved (see
//! [`crate::dns`]).

use std::net::SocketAddr;
use std::time::Duration;

use super::ConfigError;

/// How next-hop host names are resolved (see [`crate::dns`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// Instead of `/etc/resolv.conf`'s name servers.
    pub server: Option<SocketAddr>,
    /// Longest a lookup may take.
    pub timeout: Duration,
    /// Lookups in flight per worker.
    pub concurrency: usize,
    /// Longest a failure is cached.
    pub negative_ttl: Duration,
}

/// `dns_server`: `IP` or `IP:PORT` (IPv6 with a port in brackets); empty
/// means the system's servers.
pub(super) fn dns_server(s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let v = s.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || ConfigError::BadChoice {
        name: "dns_server",
        value: v.to_string(),
        allowed: "IP or IP:PORT (e.g. 127.0.0.53, 10.0.0.2:5353, [::1]:53)",
    };
    if let Ok(ip) = v.parse::<std::net::IpAddr>() {
        return Ok(Some(SocketAddr::new(ip, 53)));
    }
    v.parse::<SocketAddr>().map(Some).map_err(|_| bad())
}
