//! Next hops named by host name: the resolver thread's answers (see
//! [`crate::dns`]) go to the requests the relay parked for them
//! ([`crate::relay::Relay::resume`]).

use super::{Engine, Host, DNS};
use crate::dns::{Answer, Waiter};
use crate::stats::Stat;

impl<H: Host> Engine<H> {
    /// Answers from the resolver thread (its wake-up), and queued names
    /// that waited too long (from the loop's housekeeping): their requests
    /// go on.
    pub(super) fn on_dns(&mut self) {
        let now = self.relay.now;
        let answers = self.dns.answers(now, self.poll.registry(), DNS);
        for (name, answer, waiters) in answers {
            self.relay.stats.add(Stat::DnsLookups, 1);
            match &answer {
                Ok(ip) => log::debug!("next hop {name} resolved to {ip}"),
                Err(why) => {
                    self.relay.stats.add(Stat::DnsFailures, 1);
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

    fn resume(&mut self, w: Waiter, answer: Answer) {
        let (relay, mut io) = self.split();
        relay.resume(w, answer, &mut io);
    }
}
