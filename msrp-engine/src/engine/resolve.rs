//! Next hops named by host name: looked up off the event loop (see
//! [`crate::dns`]). A request that needs a name not in the cache is parked
//! on its connection ([`Incoming::Resolving`]) and forwarded when the
//! answer is back; its connection is not read meanwhile, every other one
//! is.

use crate::connid::ConnId;
use msrp_core::FrameHead;

use super::dial::DialError;
use super::frames::Out;
use super::{Engine, Host, DNS};
use crate::conn::Incoming;
use crate::dns::{Answer, Waiter};
use crate::forward::{Parked, Route};
use crate::route::{self, RouteError, Target};
use crate::stats::Stat;

/// Why a request has no connection to go out on (yet).
pub(super) enum NoDest {
    Unreachable(Unreachable),
    /// Its next hop's name is being resolved.
    Resolving(String),
}

/// Why a request's next hop cannot be reached (logged with the request's
/// sender; a SEND gets a REPORT, RFC 4976 §6.4.3).
#[derive(Debug, thiserror::Error)]
pub(super) enum Unreachable {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The next hop's name did not resolve (the resolver's words).
    #[error("{0}")]
    Name(String),
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

impl<H: Host> Engine<H> {
    /// The connection to the next hop a To-Path URI names; for a host name
    /// the answer of the lookup just finished, else the cache, else
    /// [`NoDest::Resolving`].
    pub(super) fn uri_hop(&mut self, uri: &[u8], no_new: bool) -> Result<Out, NoDest> {
        let hop = match route::target(uri)? {
            Target::Addr(hop) => hop,
            Target::Name { name, port, secure } => {
                let fresh = self
                    .dns_fresh
                    .as_ref()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, a)| a.clone());
                match fresh.or_else(|| self.dns.cached(&name, self.now)) {
                    Some(Ok(ip)) => Target::at(&name, port, secure, ip),
                    Some(Err(why)) => return Err(Unreachable::Name(why).into()),
                    None => return Err(NoDest::Resolving(name)),
                }
            }
        };
        Ok(self.next_hop_anywhere(&hop, no_new)?)
    }

    /// Parks the request `head` on `t` until `name` is resolved.
    pub(super) fn park(
        &mut self,
        t: ConnId,
        head: &FrameHead,
        route: Route,
        name: String,
    ) -> Incoming {
        let ticket = self.dns.ticket();
        log::debug!(
            "request {} on connection {} waits for next hop {name} to resolve",
            String::from_utf8_lossy(&head.transaction_id),
            t.0
        );
        let w = Waiter { conn: t, ticket };
        self.dns.wait(&name, w, self.now, self.poll.registry(), DNS);
        Incoming::Resolving(Box::new(Parked {
            head: head.clone(),
            route,
            name,
            ticket,
        }))
    }

    /// Answers from the resolver thread (its wake-up), and queued names
    /// that waited too long (from the loop's housekeeping): their requests
    /// go on.
    pub(super) fn on_dns(&mut self) {
        let now = self.now;
        let answers = self.dns.answers(now, self.poll.registry(), DNS);
        for (name, answer, waiters) in answers {
            self.stats.add(Stat::DnsLookups, 1);
            match &answer {
                Ok(ip) => log::debug!("next hop {name} resolved to {ip}"),
                Err(why) => {
                    self.stats.add(Stat::DnsFailures, 1);
                    log::warn!("next hop {name} did not resolve: {why}");
                }
            }
            for w in waiters {
                self.resume(w, answer.clone());
            }
        }
        let late = self.dns.expire(now, self.poll.registry(), DNS);
        for (w, why) in late {
            log::warn!("{why}");
            self.resume(w, Err(why));
        }
    }

    /// Whether [`Engine::on_dns`] has work without a wake-up.
    pub(super) fn dns_due(&self) -> bool {
        self.dns.has_local() || self.dns.is_waiting()
    }

    /// Forwards the request `w` parked (if its connection still waits for
    /// it) with `answer`, then reads its connection again.
    fn resume(&mut self, w: Waiter, answer: Answer) {
        let t = w.conn;
        let Some(c) = self.relay.conns.get_mut(&t) else {
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
        let next = self.relay_request(t, &parked.head, parked.route);
        self.dns_fresh = None;
        if let Some(c) = self.relay.conns.get_mut(&t) {
            c.incoming = next;
        }
        // as after a head (`on_head`): a request that failed before
        // anything was forwarded is failed once it is the incoming frame
        self.fail_at_start(t);
        self.relay.sched.wake(t);
    }
}
