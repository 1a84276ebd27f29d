//! The driver's side of what the relay asks while it decides
//! ([`Io`]): dialling a next hop (with a TLS client layer for `msrps://`),
//! name lookups, socket facts.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use mio::Poll;
use rustc_hash::FxHashMap as HashMap;

use super::socket::Socket;
use super::{register, DNS};
use crate::config::Config;
use crate::connid::ConnId;
use crate::dns::{Answer, Dns, Waiter};
use crate::relay::{DialError, Dialled, Io};
use crate::route::NextHop;
use crate::transport::tls::TlsContext;
use crate::transport::{Kind, Layer};

/// The engine's fields the relay's requests need (borrowed beside the
/// relay, see `Engine::split`).
pub(super) struct Wires<'a> {
    pub poll: &'a Poll,
    pub sockets: &'a mut HashMap<ConnId, Socket>,
    pub tls: Option<&'a Arc<TlsContext>>,
    pub dns: &'a mut Dns,
    pub cfg: &'static Config,
}

impl Io for Wires<'_> {
    fn connect(&mut self, id: ConnId, hop: &NextHop) -> Result<Dialled, DialError> {
        let layer = match &hop.tls {
            None => None,
            Some(name) => {
                let ctx = self.tls.ok_or_else(|| DialError::NoTls(hop.clone()))?;
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
        let stream: TcpStream = mio::net::TcpStream::connect(hop.addr)
            .map_err(connect_failed)?
            .into();
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        register(self.poll, &stream, id).map_err(connect_failed)?;
        let sock = Socket::tcp(stream, self.cfg).layered(layer);
        let layer = sock.view();
        self.sockets.insert(id, sock);
        Ok(Dialled { local, kind, layer })
    }

    fn lookup(&mut self, name: &str, now: Instant) -> Option<Answer> {
        self.dns.cached(name, now)
    }

    fn resolve(&mut self, name: &str, conn: ConnId, now: Instant) -> u64 {
        let ticket = self.dns.ticket();
        let w = Waiter { conn, ticket };
        self.dns.wait(name, w, now, self.poll.registry(), DNS);
        ticket
    }

    fn recv_buffer(&self, id: ConnId) -> usize {
        self.sockets.get(&id).map_or(0, |s| s.recv_buffer())
    }
}
