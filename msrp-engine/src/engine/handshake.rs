//! Diagnostics of TLS handshakes and WebSocket upgrades that a client
//! abandons: it closes the connection, or says nothing until
//! `first_request_timeout`, before the handshake is complete. Without them
//! a browser that cancels (e.g. on a TLS CertificateRequest) leaves no
//! trace at the relay. Refusals the relay itself makes (a bad certificate,
//! a refused Origin) are logged where they happen.

use std::net::SocketAddr;

use crate::connid::ConnId;

use super::{Engine, Host};
use crate::config::VerifyClient;
use crate::stats::Stat;
use crate::transport::{Kind, Pending};

impl<H: Host> Engine<H> {
    /// Connection `t`, accepted on a listener, ends for `why` while its TLS
    /// handshake or WebSocket upgrade is still going on: one log line
    /// naming the peer, the listener and `why`, counted in
    /// `tls_handshake_failures` or `ws_handshake_failures`. Returns whether
    /// `t` was such a connection (once per connection).
    pub(super) fn note_handshake_failure(&mut self, t: ConnId, why: &str) -> bool {
        let Some(c) = self.relay.conns.get_mut(&t) else {
            return false;
        };
        if c.outbound.is_some() {
            // a next hop: its requests are REPORTed (RFC 4976 §6.4.3)
            return false;
        }
        let sock = self.sockets.get_mut(&t);
        let Some(p) = sock.and_then(|s| s.layer.as_deref_mut()?.abandoned()) else {
            return false;
        };
        let (peer, kind, local) = (c.peer, c.kind, c.local);
        let hint = match p {
            Pending::Tls => self.certificate_hint(kind, local),
            Pending::WsUpgrade => "",
        };
        log::warn!(
            "{} with {peer} on {}:{local} failed: {why}{hint} (connection {})",
            p.name(),
            kind.name(),
            t.0
        );
        let stat = match p {
            Pending::Tls => Stat::TlsHandshakeFailures,
            Pending::WsUpgrade => Stat::WsHandshakeFailures,
        };
        self.relay.stats.add(stat, 1);
        true
    }

    /// Why a browser may have given up on the listener at `local`: it asks
    /// for a client certificate (a TLS CertificateRequest makes browsers
    /// cancel the handshake, or ask their user to pick a certificate).
    fn certificate_hint(&self, kind: Kind, local: SocketAddr) -> &'static str {
        let listener = self.cfg.listen.iter().find(|l| {
            l.kind == kind
                && l.addr.port() == local.port()
                && (l.addr.ip() == local.ip() || l.addr.ip().is_unspecified())
        });
        match listener.map(|l| self.cfg.tls.policy(&l.tls).verify_client) {
            Some(VerifyClient::Optional | VerifyClient::Required) => {
                "; this listener asks for a client certificate, which browsers do not send \
                 (their page gets close code 1006): ;verify_client=off serves them"
            }
            _ => "",
        }
    }
}
