//! Gauges operators graph (`connections_tcp|tls|ws|wss`, `sessions_active`,
//! `bytes_queued`; Prometheus `kamailio_msrp_relay_*` through xhttp_prom).
//!
//! Kamailio counters are per process and summed when read, and only ever
//! added to; so each worker counts its own connections, sessions and queued
//! bytes once a second and adds the change since its last count. Counting
//! once a second instead of at every queue change keeps the write path
//! untouched; a gauge is at most a second old.

use super::{Engine, Host};
use crate::stats::Stat;
use crate::transport::Kind;

/// How many gauges there are.
pub(super) const N_GAUGES: usize = 6;

/// The gauges, in the order [`Engine::gauges`] keeps their last values.
const GAUGES: [Stat; N_GAUGES] = [
    Stat::ConnectionsTcp,
    Stat::ConnectionsTls,
    Stat::ConnectionsWs,
    Stat::ConnectionsWss,
    Stat::SessionsActive,
    Stat::BytesQueued,
];

impl<H: Host> Engine<H> {
    /// Counts this worker's gauges now and publishes their changes.
    pub(super) fn refresh_gauges(&mut self) {
        let mut now = [0i64; GAUGES.len()];
        for c in self.relay.conns.values().filter(|c| c.link.is_none()) {
            let i = match c.kind {
                Kind::Tcp => 0,
                Kind::Tls => 1,
                Kind::Ws => 2,
                Kind::Wss => 3,
            };
            now[i] += 1;
            now[5] += c.queued() as i64;
        }
        now[4] = crate::cmap::with(|m| m.len()) as i64;
        for (i, stat) in GAUGES.into_iter().enumerate() {
            let delta = now[i] - self.gauges[i];
            if delta != 0 {
                self.relay.stats.add(stat, delta);
                self.gauges[i] = now[i];
            }
        }
    }
}
