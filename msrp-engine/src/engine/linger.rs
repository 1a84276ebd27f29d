//! Lingering close of WebSocket connections the relay ends itself (a
//! message over `ws_max_message_size`, a protocol error, a timeout).
//!
//! The relay writes its Close frame (RFC 6455 §7.1.7: 1009, 1002, ...) and
//! closes. Closing a socket that still has unread input makes the kernel
//! send a TCP RST, and a browser that is still sending (the rest of the
//! oversized message) loses the Close frame with it: the page sees 1006
//! instead of 1009. So the relay shuts its side down (FIN after the Close
//! frame) and reads and discards what the peer still sends, until the
//! peer closes or [`LINGER`] passes, and only then closes the socket.

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::socket::Socket;
use super::{Engine, Host};
use crate::conn::{ConnState, Stream};

/// How long a closed connection is drained at most.
const LINGER: Duration = Duration::from_secs(2);
/// Connections drained at once per worker; beyond, they close at once.
const MAX_LINGERING: usize = 64;
/// Bytes discarded per connection at most.
const MAX_DRAIN: usize = 4 << 20;

/// A socket the relay has closed its side of, drained until the peer
/// closes.
pub(super) struct Lingering {
    stream: TcpStream,
    until: Instant,
    drained: usize,
}

impl<H: Host> Engine<H> {
    /// `c`, a connection the relay is closing after its goodbye (Close
    /// frame, close_notify), lingers when it is a WebSocket whose peer has
    /// not closed.
    pub(super) fn linger(&mut self, c: &ConnState, sock: &Socket) {
        if !c.kind.ws() || c.eof() || self.lingering.len() >= MAX_LINGERING {
            return;
        }
        let Stream::Tcp(s) = &sock.stream else {
            return;
        };
        // a second descriptor of the socket (non-blocking like the first)
        let Ok(dup) = s.try_clone() else {
            return;
        };
        let _ = dup.shutdown(Shutdown::Write);
        self.lingering.push(Lingering {
            stream: dup,
            until: self.relay.now + LINGER,
            drained: 0,
        });
    }

    /// Reads and discards what lingering connections have; closes those
    /// whose peer closed, that passed [`LINGER`] or [`MAX_DRAIN`].
    pub(super) fn drain_lingering(&mut self, now: Instant) {
        let mut buf = [0u8; 16384];
        self.lingering.retain_mut(|l| {
            if now >= l.until {
                return false;
            }
            loop {
                match (&l.stream).read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        l.drained += n;
                        if l.drained > MAX_DRAIN {
                            return false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
            }
        });
    }
}
