//! Socket reads for the engine: one `recv` of up to [`READ_CHUNK`] bytes per
//! call, into pooled read buffers.
//!
//! A fresh 256 KiB allocation per read made the kernel's copy take a page
//! fault per 4 KiB (a quarter of the worker's time at 1 GB/s), so buffers are
//! reused once every piece of their last reads has been written out. Safe
//! Rust cannot read into uninitialised memory (`Read::read_buf` is unstable),
//! so pooled buffers are kept initialised: a buffer is zeroed when it is
//! allocated and when its memory is reclaimed, i.e. one `memset` per byte
//! that large reads consumed — cheap next to the kernel's copy, and without
//! any `unsafe`.

use std::io::{self, Read};
use std::net::TcpStream;

use bytes::BytesMut;

use crate::config::READ_CHUNK;

/// Read buffers kept per worker (each [`READ_CHUNK`] bytes).
const READ_POOL: usize = 8;
/// A pooled buffer is read into while it has this much room left.
const MIN_ROOM: usize = READ_CHUNK / 4;
/// Reads smaller than this are copied out of the pooled buffer, so a queued
/// 1 KiB message never pins 256 KiB.
const SMALL_READ: usize = READ_CHUNK / 8;

/// Initialised read buffers (`len()` bytes of room each), at most
/// [`READ_POOL`].
#[derive(Default)]
pub struct ReadPool {
    bufs: Vec<BytesMut>,
}

impl ReadPool {
    /// A buffer with at least [`MIN_ROOM`] initialised bytes: a pooled one
    /// with room left, a pooled one whose earlier pieces are all gone
    /// (zeroed again), else a new one.
    fn take(&mut self) -> BytesMut {
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
    pub fn read(&mut self, stream: &TcpStream, rbuf: &mut BytesMut) -> io::Result<usize> {
        let mut buf = self.take();
        let rest = rbuf.len();
        if buf.len() < rest + MIN_ROOM {
            // an unparsed head longer than a pooled buffer (max_header_size)
            buf = BytesMut::zeroed(rest + READ_CHUNK);
        }
        let want = (buf.len() - rest).min(READ_CHUNK);
        buf[..rest].copy_from_slice(rbuf);
        let r = (&*stream).read(&mut buf[rest..rest + want]);
        let n = match r {
            Ok(n) if n > 0 => n,
            other => {
                self.give(buf);
                return other;
            }
        };
        *rbuf = if rest + n < SMALL_READ {
            BytesMut::from(&buf[..rest + n])
        } else {
            buf.split_to(rest + n)
        };
        self.give(buf);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn appends_after_the_unparsed_rest_and_reports_eof() {
        let (mut a, b) = pair();
        let mut pool = ReadPool::default();
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
    fn large_reads_reuse_pooled_memory_once_released() {
        let (mut a, b) = pair();
        let payload: Vec<u8> = (0..READ_CHUNK).map(|i| (i % 251) as u8).collect();
        let mut pool = ReadPool::default();
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
    fn a_head_longer_than_a_buffer_still_reads() {
        let (mut a, b) = pair();
        let mut pool = ReadPool::default();
        let mut rbuf = BytesMut::from(&vec![b'x'; READ_CHUNK + 10][..]);
        a.write_all(b"y").unwrap();
        assert_eq!(pool.read(&b, &mut rbuf).unwrap(), 1);
        assert_eq!(rbuf.len(), READ_CHUNK + 11);
        assert_eq!(rbuf[READ_CHUNK + 10], b'y');
    }
}
