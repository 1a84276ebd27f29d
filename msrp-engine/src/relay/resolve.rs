//! Next hops named by host name: looked up off the event loop (the driver
//! owns the resolver, see [`crate::dns`]). A request that needs a name not
//! in the cache is parked on its connection ([`Incoming::Resolving`]) and
//! forwarded when the answer is back; its connection is not read
//! meanwhile, every other one is.

use msrp_core::FrameHead;

use super::dial::DialError;
use super::frames::Out;
use super::{Io, Relay};
use crate::conn::Incoming;
use crate::connid::ConnId;
use crate::dns::{Answer, Waiter};
use crate::forward::{Parked, Route};
use crate::route::{self, RouteError, Target};

/// Why a request has no connection to go out on (yet).
pub enum NoDest {
    Unreachable(Unreachable),
    /// Its next hop's name is being resolved.
    Resolving(String),
}

/// Why a request's next hop cannot be reached (logged with the request's
/// sender; a SEND gets a REPORT, RFC 4976 §6.4.3).
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The next hop's name did not resolve (the resolver's words).
    #[error(transparent)]
    Name(crate::dns::LookupError),
    #[error("its session's connection is gone")]
    SessionGone,
    #[error("no link to MSRP worker {0}")]
    NoLink(usize),
    #[error("no next hop")]
    NoNextHop,
}

impl<T: Into<Unreachable>> From<T> for NoDest {
    fn from(e: T) -> NoDest {
        NoDest::Unreachable(e.into())
    }
}

impl Relay {
    /// The connection to the next hop a To-Path URI names; for a host name
    /// the answer of the lookup just finished, else the cache, else
    /// [`NoDest::Resolving`].
    pub(crate) fn uri_hop(
        &mut self,
        uri: &[u8],
        no_new: bool,
        io: &mut dyn Io,
    ) -> Result<Out, NoDest> {
        let hop = match route::target(uri)? {
            Target::Addr(hop) => hop,
            Target::Name { name, port, secure } => {
                let fresh = self
                    .dns_fresh
                    .as_ref()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, a)| a.clone());
                match fresh.or_else(|| io.lookup(&name, self.now)) {
                    Some(Ok(ip)) => Target::at(&name, port, secure, ip),
                    Some(Err(why)) => return Err(Unreachable::Name(why).into()),
                    None => return Err(NoDest::Resolving(name)),
                }
            }
        };
        Ok(self.next_hop_anywhere(&hop, no_new, io)?)
    }

    /// Parks the request `head` on `t` until `name` is resolved.
    pub(crate) fn park(
        &mut self,
        t: ConnId,
        head: &FrameHead,
        route: Route,
        name: String,
        io: &mut dyn Io,
    ) -> Incoming {
        log::debug!(
            "request {} on connection {} waits for next hop {name} to resolve",
            String::from_utf8_lossy(&head.transaction_id),
            t.0
        );
        let ticket = io.resolve(&name, t, self.now);
        Incoming::Resolving(Box::new(Parked {
            head: head.clone(),
            route,
            name,
            ticket,
        }))
    }

    /// Forwards the request `w` parked (if its connection still waits for
    /// it) with `answer`, then reads its connection again.
    pub fn resume(&mut self, w: Waiter, answer: Answer, io: &mut dyn Io) {
        let t = w.conn;
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        let parked = match std::mem::replace(&mut c.incoming, Incoming::Idle) {
            Incoming::Resolving(p) if p.ticket == w.ticket => p,
            other => {
                c.incoming = other;
                return;
            }
        };
        self.dns_fresh = Some((parked.name.clone(), answer));
        let next = self.relay_request(t, &parked.head, parked.route, io);
        self.dns_fresh = None;
        if let Some(c) = self.conns.get_mut(&t) {
            c.incoming = next;
        }
        // as after a head (`on_head`): a request that failed before
        // anything was forwarded is failed once it is the incoming frame
        self.fail_at_start(t, io);
        self.sched.wake(t);
    }
}
