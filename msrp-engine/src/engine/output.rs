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

    /// `t`'s socket takes bytes again; for a next hop being dialled, the
    /// connect ended.
    pub(super) fn on_writable(&mut self, t: ConnId) {
        let (Some(c), Some(sock)) = (self.relay.conns.get(&t), self.sockets.get(&t)) else {
            return;
        };
        if !c.is_connected() {
            let result = match sock.check_connected() {
                Ok(false) => return,
                Ok(true) => Ok(()),
                Err(e) => Err(e),
            };
            let (relay, mut io) = self.split();
            if !relay.dialled(t, result, &mut io) {
                self.finish_closed();
                return;
            }
        }
        self.flush(t);
    }

    /// Writes as much of the output queue as the socket takes, and wakes
    /// the sources that waited for it to drain.
    pub(super) fn flush(&mut self, t: ConnId) {
        if !self.relay.write_turn(t) {
            return;
        }
        let (Some(c), Some(sock)) = (self.relay.conns.get(&t), self.sockets.get_mut(&t)) else {
            return;
        };
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
