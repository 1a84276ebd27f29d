//! Next hops named by host name: looked up off the event loop (see
//! [`crate::dns`]). A request that needs a name not in the cache is parked
//! on its connection ([`Incoming::Resolving`]) and forwarded when the
//! answer is back; its connection is not read meanwhile, every other one
//! is.

use mio::Token;
use msrp_core::FrameHead;

use super::frames::Out;
use super::{Engine, Host, DNS};
use crate::conn::Incoming;
use crate::dns::{Answer, Waiter};
use crate::forward::{Parked, Route};
use crate::route::{self, Target};
use crate::stats::Stat;

/// Why a request has no connection to go out on (yet).
pub(super) enum NoDest {
    Unreachable(String),
    /// Its next hop's name is being resolved.
    Resolving(String),
}

impl<H: Host> Engine<H> {
    /// The connection to the next hop a To-Path URI names; for a host name
    /// the answer of the lookup just finished, else the cache, else
    /// [`NoDest::Resolving`].
    pub(super) fn uri_hop(&mut self, uri: &[u8], no_new: bool) -> Result<Out, NoDest> {
        let hop = match route::target(uri).map_err(NoDest::Unreachable)? {
            Target::Addr(hop) => hop,
            Target::Name { name, port, secure } => {
                let fresh = self
                    .dns_fresh
                    .as_ref()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, a)| a.clone());
                match fresh.or_else(|| self.dns.cached(&name, self.now)) {
                    Some(Ok(ip)) => Target::at(&name, port, secure, ip),
                    Some(Err(why)) => return Err(NoDest::Unreachable(why)),
                    None => return Err(NoDest::Resolving(name)),
                }
            }
        };
        self.next_hop_anywhere(&hop, no_new)
            .map_err(NoDest::Unreachable)
    }

    /// Parks the request `head` on `t` until `name` is resolved.
    pub(super) fn park(
        &mut self,
        t: Token,
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
        let w = Waiter { conn: t.0, ticket };
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
        let t = Token(w.conn);
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
        let next = self.relay_request(t, &parked.head, parked.route);
        self.dns_fresh = None;
        if let Some(c) = self.conns.get_mut(&t) {
            c.incoming = next;
        }
        // as after a head (`on_head`): a request that failed before
        // anything was forwarded is failed once it is the incoming frame
        self.fail_at_start(t);
        self.sched.wake(t);
    }
}
