//! Connections to next hops: reusing one (the relay's own, or for plain
//! TCP one the peer opened), or dialling a new one (with a TLS client layer
//! for `msrps://`).

use std::io;
use std::net::{SocketAddr, TcpStream};

use crate::connid::ConnId;

use super::{Engine, Host};
use crate::conn::{ConnState, Socket};
use crate::route::NextHop;
use crate::stats::Stat;
use crate::transport::{Kind, Layer};

/// Why a request has no connection to its next hop (the log line's
/// wording, and `Unreachable` REPORTs, come from here).
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Relay flag 1 (no new connection) and none to reuse.
    #[error("no connection to {0} (relay flag 1)")]
    NoConnection(NextHop),
    /// An `msrps://` next hop without the `tls_*` parameters.
    #[error("cannot connect to {0}: TLS is not configured (no tls_* parameters)")]
    NoTls(NextHop),
    /// The TLS client could not be set up for the name (not a server name).
    #[error("cannot connect to {hop}: {why}")]
    Tls { hop: NextHop, why: String },
    /// `connect()` or registering the socket failed.
    #[error("cannot connect to {hop}: {source}")]
    Connect { hop: NextHop, source: io::Error },
}

impl<H: Host> Engine<H> {
    /// The live outbound connection to `hop`, if any.
    /// Like Kamailio's TCP layer, a connection the peer opened to us counts
    /// too for plain TCP (a client behind NAT is reachable only over it);
    /// a TLS next hop only over a connection that verified its name.
    pub(super) fn existing_connection(&self, hop: &NextHop) -> Option<ConnId> {
        self.outbound
            .get(hop)
            .copied()
            .filter(|t| self.relay.conns.get(t).is_some_and(|c| !c.closing()))
            .or_else(|| {
                if hop.tls.is_some() {
                    return None;
                }
                self.relay
                    .conns
                    .iter()
                    .find(|(_, c)| {
                        c.outbound.is_none()
                            && c.kind == Kind::Tcp
                            && c.peer == hop.addr
                            && !c.closing()
                    })
                    .map(|(t, _)| *t)
            })
    }

    /// Existing connection to `hop`, or a new non-blocking connect (with a
    /// TLS client layer for `msrps://`).
    pub(super) fn connection_to(&mut self, hop: &NextHop) -> Result<ConnId, DialError> {
        if let Some(t) = self.existing_connection(hop) {
            return Ok(t);
        }
        let addr = hop.addr;
        let layer = match &hop.tls {
            None => None,
            Some(name) => {
                let ctx = self
                    .tls
                    .as_ref()
                    .ok_or_else(|| DialError::NoTls(hop.clone()))?;
                let client = ctx.connect(name).map_err(|why| DialError::Tls {
                    hop: hop.clone(),
                    why,
                })?;
                Some(Layer::dialled(client))
            }
        };
        let connect_failed = |source| DialError::Connect {
            hop: hop.clone(),
            source,
        };
        let kind = if layer.is_some() {
            Kind::Tls
        } else {
            Kind::Tcp
        };
        let stream: TcpStream = mio::net::TcpStream::connect(addr)
            .map_err(connect_failed)?
            .into();
        let t = self.alloc_id();
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        self.register(&stream, t).map_err(connect_failed)?;
        log::debug!("connecting to next hop {hop} (connection {})", t.0);
        self.stats.add(Stat::ConnectionsOpened, 1);
        self.stats.add(Stat::ConnectionsActive, 1);
        let sock = Socket::tcp(stream, self.cfg).layered(layer);
        let mut c =
            ConnState::new(addr, local, Some(addr), self.cfg, self.now).layered(kind, sock.view());
        c.tls_name = hop.tls.clone();
        c.listed = self.stats.conn_opened(t.0, addr, local, true, kind);
        self.relay.conns.insert(t, c);
        self.sockets.insert(t, sock);
        self.outbound.insert(hop.clone(), t);
        Ok(t)
    }

    /// Connection to `addr`: this worker's, else one the peer opened to
    /// another worker (Kamailio's TCP layer finds those too; a client
    /// behind NAT is reachable only over it), reached over the link with
    /// its ID there, else a new one unless `no_new`.
    /// (TLS next hops: only this worker's own connections, whose
    /// certificate it verified.)
    pub(super) fn next_hop_anywhere(
        &mut self,
        hop: &NextHop,
        no_new: bool,
    ) -> Result<super::frames::Out, DialError> {
        if !self.links.is_empty() && hop.tls.is_none() && self.existing_connection(hop).is_none() {
            let elsewhere = self
                .stats
                .find_inbound(hop.addr)
                .filter(|(w, _)| *w != self.worker);
            if let Some((w, id)) = elsewhere {
                if let Some(link) = self.links.get(&w) {
                    return Ok((*link, Some(id as i64)));
                }
            }
        }
        self.next_hop(hop, no_new).map(|d| (d, None))
    }

    /// Connection to `hop`: reused, or opened unless `no_new`.
    pub(super) fn next_hop(&mut self, hop: &NextHop, no_new: bool) -> Result<ConnId, DialError> {
        if no_new {
            return self
                .existing_connection(hop)
                .ok_or_else(|| DialError::NoConnection(hop.clone()));
        }
        self.connection_to(hop)
    }
}
