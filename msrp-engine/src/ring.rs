//! Links between workers over shared-memory byte rings.
//!
//! One single-producer single-consumer ring per ordered pair of workers,
//! in memory every worker maps (the host makes it before the workers are
//! forked and hands it over as [`RingMemory`]). A worker's link to another
//! is a [`RingLink`]: it writes into the ring towards the peer and reads
//! the ring from it, as it would a stream socket: reads and writes answer
//! `WouldBlock` when the ring is empty or full.
//!
//! No system call while both workers are busy: each side writes the
//! other's eventfd only when that side said it waits,
//! * the consumer before it sleeps in `epoll_wait` when its last read found
//!   the ring empty ([`RingLink::before_sleep`]), and
//! * the producer when its write found the ring full,
//!
//! each setting its flag, then looking at the ring again (a store, a full
//! fence, a load on both sides: one of the two sees the other).
//!
//! This file is safe code: the index arithmetic (wrap, full/empty, partial
//! vectored writes) and the wake protocol. The host's [`RingMemory`] does
//! the copies in and out of the mapping.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use bytes::BytesMut;

/// One side's words, on a cache line of their own.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Side {
    /// Bytes this side has ever written (producer) or read (consumer).
    pos: AtomicU64,
    /// Producer: it waits for space; consumer: it sleeps. Set by the side,
    /// cleared by either.
    waits: AtomicU32,
}

/// The shared words of one ring. All zero is the empty ring, so a zeroed
/// mapping needs no initialisation.
#[repr(C)]
#[derive(Default)]
pub struct RingControl {
    producer: Side,
    consumer: Side,
}

/// The memory of one ring: its control words and `capacity()` bytes.
pub trait RingMemory: Send {
    fn control(&self) -> &RingControl;
    /// Bytes of the ring (more than 0).
    fn capacity(&self) -> usize;
    /// Copies `src` to ring bytes `at..at + src.len()` (within capacity;
    /// the producer's, unpublished).
    fn copy_in(&self, at: usize, src: &[u8]);
    /// Hands ring bytes `at..at + len` (within capacity, published, not
    /// yet consumed) to `f`.
    fn read_bytes(&self, at: usize, len: usize, f: &mut dyn FnMut(&[u8]));
}

/// Where `len` bytes from stream position `pos` lie in a ring of `cap`
/// bytes: offset of the first run, its length, the length of the run that
/// wrapped to offset 0.
pub fn runs(pos: u64, len: usize, cap: usize) -> (usize, usize, usize) {
    let at = (pos % cap as u64) as usize;
    let first = len.min(cap - at);
    (at, first, len - first)
}

/// Bytes free in a ring of `cap` bytes after `head` were written and
/// `tail` read.
pub fn room(head: u64, tail: u64, cap: usize) -> usize {
    cap - (head - tail) as usize
}

/// Copies as much of `bufs` as `room` bytes from stream position `head`:
/// whole slices, then the part of one that fits. Returns the bytes copied.
pub fn copy_vectored(mem: &dyn RingMemory, head: u64, room: usize, bufs: &[IoSlice<'_>]) -> usize {
    let cap = mem.capacity();
    let mut done = 0;
    for b in bufs {
        let take = b.len().min(room - done);
        let (at, first, second) = runs(head + done as u64, take, cap);
        mem.copy_in(at, &b[..first]);
        if second > 0 {
            mem.copy_in(0, &b[first..take]);
        }
        done += take;
        if done == room {
            break;
        }
    }
    done
}

/// The writing end of a ring.
struct Producer {
    mem: Box<dyn RingMemory>,
    head: Cell<u64>,
    /// The consumer's position last seen (room known without reading its
    /// cache line).
    tail_seen: Cell<u64>,
}

impl Producer {
    fn ctl(&self) -> &RingControl {
        self.mem.control()
    }

    fn room(&self, want: usize) -> usize {
        let cap = self.mem.capacity();
        let r = room(self.head.get(), self.tail_seen.get(), cap);
        if r >= want {
            return r;
        }
        self.tail_seen
            .set(self.ctl().consumer.pos.load(Ordering::Acquire));
        room(self.head.get(), self.tail_seen.get(), cap)
    }

    /// Copies what fits; `(bytes, consumer to wake)`; `WouldBlock` when
    /// full (the producer then waits for space).
    fn write(&self, bufs: &[IoSlice<'_>]) -> io::Result<(usize, bool)> {
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        if want == 0 {
            return Ok((0, false));
        }
        let mut room = self.room(want);
        if room == 0 {
            let w = &self.ctl().producer.waits;
            w.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            room = self.room(want);
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            w.store(0, Ordering::Relaxed);
        }
        let n = copy_vectored(&*self.mem, self.head.get(), room, bufs);
        self.head.set(self.head.get() + n as u64);
        self.ctl()
            .producer
            .pos
            .store(self.head.get(), Ordering::Release);
        fence(Ordering::SeqCst);
        Ok((n, take_flag(&self.ctl().consumer.waits)))
    }
}

/// The reading end of a ring.
struct Consumer {
    mem: Box<dyn RingMemory>,
    tail: Cell<u64>,
    /// The last read found the ring empty: the worker waits for a wake.
    armed: Cell<bool>,
    /// The flag is set in shared memory (the worker is in `epoll_wait`).
    sleeping: Cell<bool>,
}

impl Consumer {
    fn ctl(&self) -> &RingControl {
        self.mem.control()
    }

    /// Appends at most `max` bytes to `dst`; `(bytes, producer to wake)`;
    /// `WouldBlock` when empty.
    fn read(&self, dst: &mut BytesMut, max: usize) -> io::Result<(usize, bool)> {
        let head = self.ctl().producer.pos.load(Ordering::Acquire);
        let tail = self.tail.get();
        let n = ((head - tail) as usize).min(max);
        if n == 0 {
            self.armed.set(max > 0);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.armed.set(false);
        let (at, first, second) = runs(tail, n, self.mem.capacity());
        self.mem
            .read_bytes(at, first, &mut |b| dst.extend_from_slice(b));
        if second > 0 {
            self.mem
                .read_bytes(0, second, &mut |b| dst.extend_from_slice(b));
        }
        self.tail.set(tail + n as u64);
        self.ctl()
            .consumer
            .pos
            .store(tail + n as u64, Ordering::Release);
        fence(Ordering::SeqCst);
        Ok((n, take_flag(&self.ctl().producer.waits)))
    }

    /// Says the worker sleeps if its last read found the ring empty; true
    /// when bytes came since (read them instead of sleeping).
    fn before_sleep(&self) -> bool {
        if !self.armed.get() {
            return false;
        }
        let w = &self.ctl().consumer.waits;
        w.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.ctl().producer.pos.load(Ordering::Acquire) != self.tail.get() {
            w.store(0, Ordering::Relaxed);
            self.armed.set(false);
            return true;
        }
        self.sleeping.set(true);
        false
    }

    fn after_sleep(&self) {
        if self.sleeping.replace(false) {
            self.ctl().consumer.waits.store(0, Ordering::Relaxed);
        }
    }
}

/// Clears a waiting flag the other side set; true when it was set (that
/// side is to be woken).
fn take_flag(f: &AtomicU32) -> bool {
    f.load(Ordering::Relaxed) == 1 && f.swap(0, Ordering::AcqRel) == 1
}

/// A worker's link to another worker: the ring towards it, the ring from
/// it, its own eventfd (polled; written by the peer) and the peer's.
pub struct RingLink {
    tx: Producer,
    rx: Consumer,
    wake: OwnedFd,
    peer: File,
}

impl RingLink {
    /// `tx`: the ring this worker writes; `rx`: the one it reads; `wake`:
    /// this worker's eventfd for the link, `peer`: the other worker's.
    pub fn new(
        tx: Box<dyn RingMemory>,
        rx: Box<dyn RingMemory>,
        wake: OwnedFd,
        peer: OwnedFd,
    ) -> RingLink {
        let head = tx.control().producer.pos.load(Ordering::Acquire);
        let seen = tx.control().consumer.pos.load(Ordering::Acquire);
        let tail = rx.control().consumer.pos.load(Ordering::Acquire);
        RingLink {
            tx: Producer {
                mem: tx,
                head: Cell::new(head),
                tail_seen: Cell::new(seen),
            },
            rx: Consumer {
                mem: rx,
                tail: Cell::new(tail),
                armed: Cell::new(true),
                sleeping: Cell::new(false),
            },
            wake,
            peer: File::from(peer),
        }
    }

    /// Appends at most `max` bytes from the peer to `dst` (never `Ok(0)`:
    /// a link does not close).
    pub fn read_append(&self, dst: &mut BytesMut, max: usize) -> io::Result<usize> {
        let (n, wake) = self.rx.read(dst, max)?;
        if wake {
            self.notify();
        }
        Ok(n)
    }

    /// Copies as much of `bufs` as fits into the ring to the peer.
    pub fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let (n, wake) = self.tx.write(bufs)?;
        if wake {
            self.notify();
        }
        Ok(n)
    }

    /// Called before the worker waits for events: true when the peer sent
    /// bytes after the last read found none (the link is to be read now,
    /// no wake will come for them).
    pub fn before_sleep(&self) -> bool {
        self.rx.before_sleep()
    }

    /// Whether the peer wrote bytes this worker has not read yet.
    pub fn has_input(&self) -> bool {
        self.rx.ctl().producer.pos.load(Ordering::Acquire) != self.rx.tail.get()
    }

    /// Called when the worker's wait returned.
    pub fn after_sleep(&self) {
        self.rx.after_sleep()
    }

    /// Wakes the peer. A full eventfd counter (`WouldBlock`) already wakes
    /// it; there is nothing else to do about an error.
    fn notify(&self) {
        if let Err(e) = (&self.peer).write(&1u64.to_ne_bytes()) {
            if e.kind() != io::ErrorKind::WouldBlock {
                log::error!("cannot wake the other MSRP worker: {e}");
            }
        }
    }
}

/// The fd the worker polls for this link: readable (and writable) after
/// the peer wrote bytes while this worker slept, or freed space while it
/// waited for some. Each wake of an eventfd reports it readable and
/// writable to an edge-triggered epoll, so one wake serves both.
impl AsFd for RingLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

#[cfg(test)]
mod tests;
