//! Output: queueing forwarded bytes and the relay's own frames on a
//! connection, the watermarks that hold its sources back, and writing the
//! queues out (at the end of a loop pass, or when a socket turns
//! writable).

use crate::connid::ConnId;
use bytes::Bytes;

use super::{Engine, Host};
use crate::stats::Stat;

impl<H: Host> Engine<H> {
    /// Appends bytes of the chunk being streamed into `dest` to its output
    /// queue (`end`: its end-line); they are written at the end of this
    /// loop pass.
    pub(super) fn push_stream(&mut self, dest: ConnId, b: Bytes, end: bool) {
        self.relay.push_stream(dest, b, end, self.now);
    }

    /// `t` has bytes to write at the end of this loop pass (one vectored
    /// write for everything queued meanwhile, not one per piece).
    pub(super) fn mark_dirty(&mut self, t: ConnId) {
        self.relay.mark_dirty(t);
    }

    /// Queues a complete frame (a response, a REPORT) for `dest`: right
    /// away, or after the chunk currently being streamed into it.
    pub(super) fn push_frame(&mut self, dest: ConnId, frame: Bytes) {
        self.relay.push_frame(dest, frame, self.now);
    }

    /// Pauses `src` while `dest` has more than the high watermark queued.
    pub(super) fn check_backpressure(&mut self, src: ConnId, dest: ConnId) -> bool {
        self.relay.hold_back(src, dest)
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
        match sock.write_out(c, self.now) {
            Ok(n) => self.stats.add(Stat::BytesOut, n as i64),
            Err(e) => {
                let peer = c.peer;
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
