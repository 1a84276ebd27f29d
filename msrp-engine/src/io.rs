//! Socket reads for the engine: one `recv` of up to [`READ_CHUNK`] bytes per
//! call, into pooled read buffers.
//!
//! A fresh 256 KiB allocation per read made the kernel's copy take a page
//! fault per 4 KiB (a quarter of the worker's time at 1 GB/s), so buffers are
//! reused once every piece of their last reads has been written out.
//!
//! Two ways to read into a pooled buffer:
//! * by default, without `unsafe`: safe Rust cannot read into uninitialised
//!   memory (`Read::read_buf` is unstable), so pooled buffers are kept
//!   initialised — zeroed when allocated and when their memory is
//!   reclaimed, one `memset` per byte large reads consumed (4 % of the
//!   worker's samples at 1 GB/s);
//! * with a [`SpareRecv`] the host provides (`ReadPool::with_spare_recv`):
//!   a `recv` into the buffer's uninitialised spare capacity, which needs
//!   `unsafe` and so lives in the host's boundary layer (Kamailio's module
//!   passes `src/kamailio/sockio.rs`).

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

use bytes::BytesMut;

use crate::config::READ_CHUNK;
use crate::stream::Stream;

/// One `recv` from the stream appended to the buffer's spare capacity (at
/// most the given number of bytes); `Ok(0)`: the peer closed.
pub type SpareRecv = fn(BorrowedFd<'_>, &mut BytesMut, usize) -> io::Result<usize>;

/// Read buffers kept per worker (each [`READ_CHUNK`] bytes).
const READ_POOL: usize = 8;
/// A pooled initialised buffer is read into while it has this much room
/// left.
const MIN_ROOM: usize = READ_CHUNK / 4;
/// Reads smaller than this are copied out of the pooled buffer, so a queued
/// 1 KiB message never pins 256 KiB.
const SMALL_READ: usize = READ_CHUNK / 8;

/// Pooled read buffers, at most [`READ_POOL`]: initialised ones (`len()`
/// bytes of room each) by default, empty ones with a [`SpareRecv`].
#[derive(Default)]
pub struct ReadPool {
    bufs: Vec<BytesMut>,
    spare: Option<SpareRecv>,
    /// The last read returned less than it had room for: the socket's
    /// receive queue was empty then.
    short: bool,
}

impl ReadPool {
    /// A pool that reads with `recv` into uninitialised capacity.
    pub fn with_spare_recv(recv: SpareRecv) -> Self {
        ReadPool {
            bufs: Vec::new(),
            spare: Some(recv),
            short: false,
        }
    }

    /// Whether the last successful read returned fewer bytes than it had
    /// room for. A TCP `recv` stops early only when the receive queue is
    /// empty, so with edge-triggered polling any later byte raises a new
    /// event, and the read that would answer `EAGAIN` can be skipped
    /// (unless the peer's shutdown was already signalled: its 0 comes from
    /// no new event).
    pub fn last_read_short(&self) -> bool {
        self.short
    }

    /// Drops the pooled buffers (pieces still queued keep theirs alive).
    pub fn clear(&mut self) {
        self.bufs = Vec::new();
    }

    /// An initialised buffer with at least [`MIN_ROOM`] bytes: a pooled one
    /// with room left, a pooled one whose earlier pieces are all gone
    /// (zeroed again), else a new one.
    fn take_zeroed(&mut self) -> BytesMut {
        if let Some(i) = self.bufs.iter().position(|b| b.len() >= MIN_ROOM) {
            return self.bufs.swap_remove(i);
        }
        for i in 0..self.bufs.len() {
            let b = &mut self.bufs[i];
            b.clear();
            if b.try_reclaim(READ_CHUNK) {
                b.resize(READ_CHUNK, 0);
                return self.bufs.swap_remove(i);
            }
        }
        BytesMut::zeroed(READ_CHUNK)
    }

    /// An empty buffer with room for a whole read: a pooled one whose
    /// earlier pieces are all gone, else a new one.
    fn take_empty(&mut self) -> BytesMut {
        match self
            .bufs
            .iter_mut()
            .position(|b| b.is_empty() && b.try_reclaim(READ_CHUNK))
        {
            Some(i) => self.bufs.swap_remove(i),
            None => BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Returns a buffer (its front may still back queued pieces); the
    /// oldest one goes when the pool is full.
    fn give(&mut self, b: BytesMut) {
        if self.bufs.len() >= READ_POOL {
            self.bufs.remove(0);
        }
        self.bufs.push(b);
    }

    /// One `recv` from `stream` appended to `rbuf` (the unparsed rest of
    /// earlier reads): `Ok(n)` bytes came, `Ok(0)` the peer closed; on an
    /// error `rbuf` is unchanged.
    pub fn read(&mut self, stream: &Stream, rbuf: &mut BytesMut) -> io::Result<usize> {
        self.read_at_most(stream, rbuf, READ_CHUNK)
    }

    /// [`ReadPool::read`] of at most `max` bytes (at least 1; at most
    /// [`READ_CHUNK`]): a connection under a read-rate limit takes no more
    /// than its allowance from the socket.
    pub fn read_at_most(
        &mut self,
        stream: &Stream,
        rbuf: &mut BytesMut,
        max: usize,
    ) -> io::Result<usize> {
        let max = max.clamp(1, READ_CHUNK);
        self.short = false;
        if let Stream::Ring(link) = stream {
            let r = self.read_appending(rbuf, max, |b, m| link.read_append(b, m));
            // no short-read stop for a ring: its reader tells the writer it
            // sleeps only after a read that found the ring empty
            self.short = false;
            return r;
        }
        match self.spare {
            Some(recv) => self.read_appending(rbuf, max, |b, m| recv(stream.as_fd(), b, m)),
            None => self.read_zeroed(stream, rbuf, max),
        }
    }

    fn read_zeroed(
        &mut self,
        stream: &Stream,
        rbuf: &mut BytesMut,
        max: usize,
    ) -> io::Result<usize> {
        let mut buf = self.take_zeroed();
        let rest = rbuf.len();
        if buf.len() < rest + MIN_ROOM {
            // an unparsed head longer than a pooled buffer (max_header_size)
            buf = BytesMut::zeroed(rest + READ_CHUNK);
        }
        let want = (buf.len() - rest).min(max);
        buf[..rest].copy_from_slice(rbuf);
        let mut reader = stream;
        let n = match reader.read(&mut buf[rest..rest + want]) {
            Ok(n) if n > 0 => n,
            other => {
                self.give(buf);
                return other;
            }
        };
        self.short = n < want;
        Self::keep(&mut buf, rest, rest + n, rbuf);
        self.give(buf);
        Ok(n)
    }

    /// Appends to an empty pooled buffer (no zeroing) what `fill` gives:
    /// a `recv` into spare capacity, or the ring of a link to another
    /// worker (copied out of shared memory, no `unsafe`).
    fn read_appending(
        &mut self,
        rbuf: &mut BytesMut,
        max: usize,
        fill: impl FnOnce(&mut BytesMut, usize) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut buf = self.take_empty();
        let rest = rbuf.len();
        buf.extend_from_slice(rbuf);
        // what `fill` has room for (it reserves `max` when there is none)
        let room = match buf.capacity() - buf.len() {
            0 => max,
            spare => spare.min(max),
        };
        let r = fill(&mut buf, max);
        if let Ok(n @ 1..) = r {
            self.short = n < room;
            Self::keep(&mut buf, rest, rest + n, rbuf);
        }
        buf.clear();
        self.give(buf);
        r
    }

    /// Appends to `dst` what `fill` appends to the buffer it is given:
    /// when `expect` (what `fill` will add, about) is a large read's worth,
    /// an empty pooled buffer holding `dst`'s bytes first, so that what a
    /// layer decrypts or decodes lands in reused memory as a plain read
    /// does (growing `dst` instead reallocates and copies it on every
    /// read whose pieces are still queued); else `dst` itself.
    pub fn append_pooled<R>(
        &mut self,
        dst: &mut BytesMut,
        expect: usize,
        fill: impl FnOnce(&mut BytesMut) -> R,
    ) -> R {
        if expect < SMALL_READ {
            dst.reserve(expect);
            return fill(dst);
        }
        let mut buf = self.take_empty();
        buf.extend_from_slice(dst);
        let r = fill(&mut buf);
        if buf.len() > dst.len() {
            let (rest, len) = (dst.len(), buf.len());
            Self::keep(&mut buf, rest, len, dst);
        }
        buf.clear();
        self.give(buf);
        r
    }

    /// Makes the first `len` bytes of `buf` the connection's unparsed bytes
    /// `dst`, which already holds the first `rest` of them: split off (no
    /// copy); or, when small, copied out so that a queued 1 KiB message never
    /// pins 256 KiB: into `dst`'s own memory when nothing else uses it any
    /// more and it is not much larger than needed (a fresh ~1 KiB allocation
    /// per read, a large-bin request for glibc, made it run
    /// `malloc_consolidate` on most messages), else into a new allocation of
    /// just that size (so an idle connection keeps at most 1.5 times its
    /// last read, not the largest it ever had).
    fn keep(buf: &mut BytesMut, rest: usize, len: usize, dst: &mut BytesMut) {
        if len >= SMALL_READ {
            *dst = buf.split_to(len);
        } else if dst.len() == rest
            && dst.try_reclaim(len - rest)
            && dst.capacity() <= len + len / 2
        {
            dst.extend_from_slice(&buf[rest..len]);
        } else {
            *dst = BytesMut::from(&buf[..len]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, Stream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, Stream::Tcp(b))
    }

    /// A safe stand-in for the host's spare-capacity recv (it zeroes what
    /// it reads into, which the real one does not need to).
    fn zeroing_recv(fd: BorrowedFd<'_>, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let len = buf.len();
        buf.resize(len + max, 0);
        let s = std::fs::File::from(fd.try_clone_to_owned()?);
        let r = (&s).read(&mut buf[len..]);
        buf.truncate(len + *r.as_ref().unwrap_or(&0));
        r
    }

    fn pools() -> [ReadPool; 2] {
        [ReadPool::default(), ReadPool::with_spare_recv(zeroing_recv)]
    }

    #[test]
    fn appends_after_the_unparsed_rest_and_reports_eof() {
        for pool in pools() {
            appends_after_the_unparsed_rest(pool);
        }
    }

    fn appends_after_the_unparsed_rest(mut pool: ReadPool) {
        let (mut a, b) = pair();
        let mut rbuf = BytesMut::from(&b"rest:"[..]);
        a.write_all(b"hello").unwrap();
        let n = pool.read(&b, &mut rbuf).unwrap();
        assert_eq!(n, 5);
        assert_eq!(&rbuf[..], b"rest:hello");
        drop(a);
        assert_eq!(pool.read(&b, &mut rbuf).unwrap(), 0);
        assert_eq!(&rbuf[..], b"rest:hello");
    }

    #[test]
    fn small_reads_reuse_the_connections_memory_once_released() {
        for pool in pools() {
            small_reads(pool);
        }
    }

    fn small_reads(mut pool: ReadPool) {
        let (mut a, b) = pair();
        let mut rbuf = BytesMut::new();
        a.write_all(b"hello").unwrap();
        assert_eq!(pool.read(&b, &mut rbuf).unwrap(), 5);
        let at = rbuf.as_ptr();
        // parsed and gone: the next small read lands in the same memory
        drop(rbuf.split_to(5));
        a.write_all(b"world").unwrap();
        assert_eq!(pool.read(&b, &mut rbuf).unwrap(), 5);
        assert_eq!((&rbuf[..], rbuf.as_ptr()), (&b"world"[..], at));
        // a piece still queued keeps its bytes: the next read goes elsewhere
        let queued = rbuf.split_to(5).freeze();
        a.write_all(b"again").unwrap();
        assert_eq!(pool.read(&b, &mut rbuf).unwrap(), 5);
        assert_eq!((&queued[..], &rbuf[..]), (&b"world"[..], &b"again"[..]));
        assert_ne!(rbuf.as_ptr(), at);
        // a much smaller read does not keep the larger memory
        drop((queued, rbuf.split_to(5)));
        a.write_all(b"x").unwrap();
        assert_eq!(pool.read(&b, &mut rbuf).unwrap(), 1);
        assert_eq!((&rbuf[..], rbuf.capacity()), (&b"x"[..], 1));
    }

    #[test]
    fn large_reads_reuse_pooled_memory_once_released() {
        for pool in pools() {
            large_reads(pool);
        }
    }

    fn large_reads(mut pool: ReadPool) {
        let (mut a, b) = pair();
        let payload: Vec<u8> = (0..READ_CHUNK).map(|i| (i % 251) as u8).collect();
        let mut got = Vec::new();
        let writer = std::thread::spawn(move || {
            for _ in 0..16 {
                a.write_all(&payload).unwrap();
            }
        });
        while got.len() < 16 * READ_CHUNK {
            let mut rbuf = BytesMut::new();
            let n = pool.read(&b, &mut rbuf).unwrap();
            assert!(n > 0 && n <= READ_CHUNK);
            got.extend_from_slice(&rbuf);
            // dropping rbuf releases the piece: the pool stays bounded
            assert!(pool.bufs.len() <= READ_POOL);
        }
        writer.join().unwrap();
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, v)| *v == ((i % READ_CHUNK) % 251) as u8));
    }

    #[test]
    fn appended_bytes_follow_the_rest_in_pooled_memory() {
        let mut pool = ReadPool::default();
        let big = vec![7u8; READ_CHUNK / 2];
        let mut dst = BytesMut::from(&b"rest"[..]);
        let n = pool.append_pooled(&mut dst, big.len(), |b| {
            b.extend_from_slice(&big);
            b.len()
        });
        assert_eq!(n, 4 + big.len());
        assert_eq!(&dst[..4], b"rest");
        assert!(dst[4..] == big[..]);
        // the pool holds the buffer the bytes are in: once they are gone
        // it is taken again, not a new one
        let at = dst.as_ptr();
        drop(dst);
        let mut dst = BytesMut::new();
        pool.append_pooled(&mut dst, big.len(), |b| b.extend_from_slice(&big));
        assert_eq!(dst.as_ptr(), at);
        // small: straight into dst; nothing appended leaves it as it was
        let mut small = BytesMut::from(&b"ab"[..]);
        pool.append_pooled(&mut small, 3, |b| b.extend_from_slice(b"cde"));
        assert_eq!(&small[..], b"abcde");
        pool.append_pooled(&mut dst, READ_CHUNK, |_| ());
        assert!(dst[..] == big[..]);
    }

    #[test]
    fn a_head_longer_than_a_buffer_still_reads() {
        for pool in pools() {
            long_head(pool);
        }
    }

    fn long_head(mut pool: ReadPool) {
        let (mut a, b) = pair();
        let mut rbuf = BytesMut::from(&vec![b'x'; READ_CHUNK + 10][..]);
        a.write_all(b"y").unwrap();
        assert_eq!(pool.read(&b, &mut rbuf).unwrap(), 1);
        assert_eq!(rbuf.len(), READ_CHUNK + 11);
        assert_eq!(rbuf[READ_CHUNK + 10], b'y');
    }
}
