//! Output: writing the connections' queues out (at the end of a loop
//! pass, or when a socket turns writable); the queueing and the
//! watermarks are the relay's ([`crate::relay::Relay::push_stream`]).

use crate::connid::ConnId;

use super::{Engine, Host};
use crate::stats::Stat;

impl<H: Host> Engine<H> {
    /// `t` has bytes to write at the end of this loop pass (one vectored
    /// write for everything queued meanwhile, not one per piece).
    pub(super) fn mark_dirty(&mut self, t: ConnId) {
        self.relay.mark_dirty(t);
    }

    pub(super) fn on_writable(&mut self, t: ConnId) {
        let (Some(c), Some(sock)) = (self.relay.conns.get_mut(&t), self.sockets.get(&t)) else {
            return;
        };
        if !c.is_connected() {
            match sock.check_connected() {
                Ok(false) => return,
                Ok(true) => {
                    c.connected();
                    log::debug!("connected to next hop {} (connection {})", c.peer, t.0);
                    // data may already be waiting to be read
                    self.relay.sched.wake(t);
                }
                Err(e) => {
                    let peer = c.peer;
                    log::warn!("connect to next hop {peer} failed: {e}");
                    self.close(t, "connect failed");
                    return;
                }
            }
        }
        self.flush(t);
    }

    /// Writes as much of the output queue as the socket takes, and wakes
    /// the sources that waited for it to drain.
    pub(super) fn flush(&mut self, t: ConnId) {
        let (Some(c), Some(sock)) = (self.relay.conns.get_mut(&t), self.sockets.get_mut(&t)) else {
            return;
        };
        c.dirty = false;
        if !c.is_connected() {
            return;
        }
        let (peer, now) = (c.peer, self.relay.now);
        match sock.write_out(&mut self.relay, t, now) {
            Ok(n) => self.relay.stats.add(Stat::BytesOut, n as i64),
            Err(e) => {
                log::info!("connection {} with {peer}: write error: {e}", t.0);
                self.close(t, "write error");
                return;
            }
        }
        if let Some(why) = self.relay.after_write(t) {
            self.close(t, why);
        }
    }
}
