//! The proxy's event loop: one thread, level-triggered epoll, one
//! [`BUF`]-byte buffer per direction moved with read(2)/write(2).
//!
//! This is the syscall pattern of the lean C proxy the relay is measured
//! against (issue 22): per event, the waiting bytes are written, then the
//! source is read until EAGAIN; a direction whose buffer holds bytes stops
//! reading (EPOLLIN removed) until its destination took them all, so a
//! slow reader back-pressures its writer through TCP, as a relay must;
//! after each event both descriptors of the pair get their interest set
//! again (two `epoll_ctl` calls, as the C proxy does). Unlike the C proxy a
//! close is passed on as a half-close (shutdown of the write side), so a
//! peer that stops sending can still receive the answer.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
use rustix::io::Errno;

use super::BUF;

/// Events taken per epoll_wait (as the C proxy).
const EVENTS: usize = 256;
/// Token of the listening socket; pair `k` direction `d` is `2k + d + 1`.
const LISTENER: u64 = 0;

/// Bytes read from one socket, not yet all written to the other.
struct Direction {
    buf: Box<[u8]>,
    len: usize,
    off: usize,
    /// The source sent its FIN: nothing more to read.
    eof: bool,
    /// The FIN was passed on (shutdown of the destination's write side).
    shut: bool,
}

/// A client and its connection to the destination; direction `d` reads
/// `streams[d]` and writes `streams[1 - d]`.
struct Pair {
    streams: [TcpStream; 2],
    dirs: [Direction; 2],
}

/// The connection is over: an I/O error on either socket, or both FINs
/// passed on.
struct Over;

impl Pair {
    /// Writes what waits in direction `d`, then reads more until EAGAIN.
    fn pump(&mut self, d: usize) -> Result<(), Over> {
        let (dir, src, dst) = (&mut self.dirs[d], &self.streams[d], &self.streams[1 - d]);
        loop {
            if dir.len > dir.off {
                match rustix::io::write(dst, &dir.buf[dir.off..dir.len]) {
                    Ok(n) => dir.off += n,
                    Err(Errno::AGAIN) => return Ok(()),
                    Err(Errno::INTR) => continue,
                    Err(_) => return Err(Over),
                }
                if dir.off < dir.len {
                    continue;
                }
                (dir.len, dir.off) = (0, 0);
            }
            if dir.eof {
                // Drained after the FIN: pass it on once.
                if !dir.shut {
                    dir.shut = true;
                    dst.shutdown(Shutdown::Write).map_err(|_| Over)?;
                }
                return Ok(());
            }
            match rustix::io::read(src, &mut dir.buf[..]) {
                Ok(0) => dir.eof = true,
                Ok(n) => (dir.len, dir.off) = (n, 0),
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(_) => return Err(Over),
            }
        }
    }

    /// Interest for `streams[d]`: readable while its direction's buffer is
    /// empty, writable while the other direction has bytes for it.
    fn interest(&self, d: usize) -> EventFlags {
        let (own, other) = (&self.dirs[d], &self.dirs[1 - d]);
        let mut f = EventFlags::empty();
        if own.len == 0 && !own.eof {
            f |= EventFlags::IN;
        }
        if other.len > other.off {
            f |= EventFlags::OUT;
        }
        f
    }

    fn done(&self) -> bool {
        self.dirs.iter().all(|d| d.shut)
    }
}

/// The loop's state: the epoll instance and the pairs by slot.
struct Proxy {
    ep: OwnedFd,
    listener: TcpListener,
    dest: SocketAddr,
    pairs: Vec<Option<Pair>>,
    /// Slots free for new pairs.
    free: Vec<usize>,
    /// Slots closed during this batch, freed after it: later events of the
    /// same batch may still name them.
    closed: Vec<usize>,
}

/// Serves forever: accepts on `listener`, connects each client to `dest`
/// and copies both ways.
pub fn serve(listener: TcpListener, dest: SocketAddr) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let ep = epoll::create(CreateFlags::CLOEXEC)?;
    epoll::add(&ep, &listener, EventData::new_u64(LISTENER), EventFlags::IN)?;
    let mut p = Proxy {
        ep,
        listener,
        dest,
        pairs: Vec::new(),
        free: Vec::new(),
        closed: Vec::new(),
    };
    let mut events: Vec<Event> = Vec::with_capacity(EVENTS);
    loop {
        events.clear();
        match epoll::wait(&p.ep, spare_capacity(&mut events), None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in &events {
            match ev.data.u64() {
                LISTENER => p.accept()?,
                token => p.event(token - 1, ev.flags)?,
            }
        }
        p.free.append(&mut p.closed);
    }
}

impl Proxy {
    /// One client (level-triggered: the next one comes with the next
    /// wait). A client whose destination cannot be reached is closed.
    fn accept(&mut self) -> io::Result<()> {
        let client = match self.listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(_) => return Ok(()),
        };
        let Ok(server) = TcpStream::connect(self.dest) else {
            return Ok(());
        };
        for s in [&client, &server] {
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
        }
        let dir = || Direction {
            buf: vec![0u8; BUF].into_boxed_slice(),
            len: 0,
            off: 0,
            eof: false,
            shut: false,
        };
        let pair = Pair {
            streams: [client, server],
            dirs: [dir(), dir()],
        };
        let k = match self.free.pop() {
            Some(k) => k,
            None => {
                self.pairs.push(None);
                self.pairs.len() - 1
            }
        };
        for (d, s) in pair.streams.iter().enumerate() {
            epoll::add(&self.ep, s, token(k, d), EventFlags::IN)?;
        }
        self.pairs[k] = Some(pair);
        Ok(())
    }

    /// Readiness of pair `t / 2`'s socket `t % 2`.
    fn event(&mut self, t: u64, flags: EventFlags) -> io::Result<()> {
        let (k, d) = ((t / 2) as usize, (t % 2) as usize);
        let Some(pair) = self.pairs.get_mut(k).and_then(Option::as_mut) else {
            return Ok(()); // closed earlier in this batch
        };
        let mut rc = Ok(());
        if flags.contains(EventFlags::OUT) {
            rc = pair.pump(1 - d);
        }
        if rc.is_ok() && flags.intersects(EventFlags::IN | EventFlags::HUP | EventFlags::ERR) {
            rc = pair.pump(d);
        }
        // A hang-up after our side's FIN: nothing can move any more.
        let hung = flags.intersects(EventFlags::HUP | EventFlags::ERR) && pair.dirs[d].eof;
        if rc.is_err() || hung || pair.done() {
            self.pairs[k] = None; // closing both sockets leaves the epoll set
            self.closed.push(k);
            return Ok(());
        }
        for d in [d, 1 - d] {
            epoll::modify(&self.ep, &pair.streams[d], token(k, d), pair.interest(d))?;
        }
        Ok(())
    }
}

fn token(k: usize, d: usize) -> EventData {
    EventData::new_u64((2 * k + d) as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn stream_of(id: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 13 + id * 31) % 251) as u8).collect()
    }

    /// Several pairs at once, rounds after each other (closed slots are
    /// reused), and a destination that reads only after its sockets and the
    /// proxy's buffers are full: every stream arrives whole and unmixed,
    /// and each close comes back.
    #[test]
    fn concurrent_pairs_survive_back_pressure_and_slot_reuse() {
        const CLIENTS: usize = 4;
        const LEN: usize = 4 * 1024 * 1024;
        let dest = TcpListener::bind("127.0.0.1:0").unwrap();
        let dest_addr = dest.local_addr().unwrap();
        let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        std::thread::spawn(move || serve(proxy, dest_addr));
        let limit = Some(Duration::from_secs(20));
        for round in 0..3 {
            let writers: Vec<_> = (0..CLIENTS)
                .map(|id| {
                    let mut a = TcpStream::connect(proxy_addr).unwrap();
                    a.set_read_timeout(limit).unwrap();
                    std::thread::spawn(move || {
                        a.write_all(&stream_of(id, LEN)).unwrap();
                        a.shutdown(Shutdown::Write).unwrap();
                        let mut back = Vec::new();
                        a.read_to_end(&mut back).unwrap();
                        back
                    })
                })
                .collect();
            let mut conns: Vec<TcpStream> =
                (0..CLIENTS).map(|_| dest.accept().unwrap().0).collect();
            // nobody reads yet: the writers block, the proxy must stop reading
            std::thread::sleep(Duration::from_millis(300));
            let mut seen = Vec::new();
            for b in &mut conns {
                b.set_read_timeout(limit).unwrap();
                let mut got = Vec::new();
                b.read_to_end(&mut got).unwrap();
                let id = (0..CLIENTS).find(|&id| got == stream_of(id, LEN));
                assert!(id.is_some(), "round {round}: a stream changed on the way");
                seen.push(id);
                b.write_all(b"bye").unwrap();
            }
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), CLIENTS, "round {round}: a stream came twice");
            drop(conns);
            for w in writers {
                assert_eq!(w.join().unwrap(), b"bye");
            }
        }
    }
}
