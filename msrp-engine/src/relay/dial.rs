//! Connections to next hops: reusing one (the relay's own, or for plain
//! TCP one the peer opened), or asking the driver to dial a new one (with
//! a TLS client layer for `msrps://`).

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use super::Relay;
use crate::conn::{ConnState, LayerView};
use crate::connid::ConnId;
use crate::dns::Answer;
use crate::route::NextHop;
use crate::stats::Stat;
use crate::transport::Kind;

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

/// A connection the driver started to a next hop.
#[derive(Debug, Clone, Copy)]
pub struct Dialled {
    pub local: SocketAddr,
    pub kind: Kind,
    pub layer: LayerView,
}

/// What the relay asks of its driver while it decides (the driver owns
/// the sockets and the resolver).
pub trait Io {
    /// Starts a non-blocking connect to `hop` as connection `id` (with a
    /// TLS client layer for `msrps://`).
    fn connect(&mut self, id: ConnId, hop: &NextHop) -> Result<Dialled, DialError>;
    /// What `name` resolved to, when that is known now (an answer being
    /// handed out, or the cache).
    fn lookup(&mut self, name: &str, now: Instant) -> Option<Answer>;
    /// Starts resolving `name` for a request parked on `conn`; returns the
    /// ticket its answer comes back with.
    fn resolve(&mut self, name: &str, conn: ConnId, now: Instant) -> u64;
    /// SO_RCVBUF of `id`'s socket (0 for a link or when unknown).
    fn recv_buffer(&self, id: ConnId) -> usize;
}

impl Relay {
    /// The live outbound connection to `hop`, if any.
    /// Like Kamailio's TCP layer, a connection the peer opened to us counts
    /// too for plain TCP (a client behind NAT is reachable only over it);
    /// a TLS next hop only over a connection that verified its name.
    pub(crate) fn existing_connection(&self, hop: &NextHop) -> Option<ConnId> {
        self.outbound
            .get(hop)
            .copied()
            .filter(|t| self.conns.get(t).is_some_and(|c| !c.closing()))
            .or_else(|| {
                if hop.tls.is_some() {
                    return None;
                }
                self.conns
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
    pub(crate) fn connection_to(
        &mut self,
        hop: &NextHop,
        io: &mut dyn Io,
    ) -> Result<ConnId, DialError> {
        if let Some(t) = self.existing_connection(hop) {
            return Ok(t);
        }
        let addr = hop.addr;
        let d = io.connect(self.peek_id(), hop)?;
        let t = self.alloc_id();
        log::debug!("connecting to next hop {hop} (connection {})", t.0);
        self.stats.add(Stat::ConnectionsOpened, 1);
        self.stats.add(Stat::ConnectionsActive, 1);
        let mut c =
            ConnState::new(addr, d.local, Some(addr), self.cfg, self.now).layered(d.kind, d.layer);
        c.tls_name = hop.tls.clone();
        c.listed = self.stats.conn_opened(t.0, addr, d.local, true, d.kind);
        self.conns.insert(t, c);
        self.outbound.insert(hop.clone(), t);
        Ok(t)
    }

    /// Connection to `addr`: this worker's, else one the peer opened to
    /// another worker (Kamailio's TCP layer finds those too; a client
    /// behind NAT is reachable only over it), reached over the link with
    /// its ID there, else a new one unless `no_new`.
    /// (TLS next hops: only this worker's own connections, whose
    /// certificate it verified.)
    pub(crate) fn next_hop_anywhere(
        &mut self,
        hop: &NextHop,
        no_new: bool,
        io: &mut dyn Io,
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
        self.next_hop(hop, no_new, io).map(|d| (d, None))
    }

    /// Connection to `hop`: reused, or opened unless `no_new`.
    pub(crate) fn next_hop(
        &mut self,
        hop: &NextHop,
        no_new: bool,
        io: &mut dyn Io,
    ) -> Result<ConnId, DialError> {
        if no_new {
            return self
                .existing_connection(hop)
                .ok_or_else(|| DialError::NoConnection(hop.clone()));
        }
        self.connection_to(hop, io)
    }
}
