//! The loop's once-a-second sweep: connection timers (RFC 4976 §6.1
//! first request, §6.5 idle, a peer that takes nothing of its queue) and
//! giving memory back after a wave of closes.

use std::time::Instant;

use super::{Engine, Host, GIVE_BACK_AFTER};
use crate::relay::FIRST_REQUEST_LATE;

impl<H: Host> Engine<H> {
    /// Closes the connections [`Relay::idle_connections`] names (RFC 4976
    /// §6.1 first request, §6.5 idle, a peer that takes nothing of its
    /// queue); one that never finished its TLS handshake or WebSocket
    /// upgrade is logged as such.
    pub(super) fn sweep_idle(&mut self, now: Instant) {
        let first = self.cfg.first_request_timeout;
        let close = self.relay.idle_connections(now);
        for (t, peer, why) in close {
            if why == FIRST_REQUEST_LATE
                && self.note_handshake_failure(
                    t,
                    &format!(
                        "nothing more from the peer within first_request_timeout ({} s)",
                        first.as_secs()
                    ),
                )
            {
                self.close(t, why);
                continue;
            }
            log::info!("closing connection {} with {peer}: {why}", t.0);
            self.close(t, why);
        }
    }

    /// After many connections closed (a mass logout, a client farm
    /// restarting), the connection maps are sized for the peak, the read
    /// pool holds buffers, and the freed connections' memory sits in the
    /// allocator: all go back, so the worker's RSS follows its load.
    pub(super) fn give_back_memory(&mut self) {
        // Once the wave is over (nothing closed since the last sweep), or
        // every 16 x GIVE_BACK_AFTER under steady churn. A smaller wave
        // counts when it closed more connections than are left: a worker
        // that held 900 TLS sessions kept ~9 MiB of free heap otherwise.
        let wave_over = self.closed == self.closed_at_sweep;
        self.closed_at_sweep = self.closed;
        let large = self.closed >= GIVE_BACK_AFTER
            || (self.closed >= GIVE_BACK_AFTER / 4 && self.closed >= self.sockets.len());
        if !large || !(wave_over || self.closed >= 16 * GIVE_BACK_AFTER) {
            return;
        }
        (self.closed, self.closed_at_sweep) = (0, 0);
        self.relay.shrink_to_fit();
        self.sockets.shrink_to_fit();
        self.yielded.shrink_to_fit();
        self.read_pool.clear();
        crate::cmap::with(crate::cmap::Cmap::shrink);
        self.host.release_memory();
    }
}
