//! Socket reads into uninitialised memory, the engine's
//! [`SpareRecv`](msrp_engine::io::SpareRecv): safe std cannot express it
//! (`Read::read_buf` is unstable), and the engine's safe default zeroes its
//! read buffers (4 % of the worker at 1 GB/s). `unsafe` lives here, in the
//! boundary layer.

use std::io;
use std::os::fd::BorrowedFd;

use bytes::BytesMut;
use socket2::SockRef;

/// One `recv` appended to `buf`: into its spare capacity when it has some
/// (at most `max` bytes), else into `max` bytes of new capacity. The spare
/// capacity is not zeroed first. `Ok(0)`: the peer closed.
pub fn recv_append(fd: BorrowedFd<'_>, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    if buf.capacity() == buf.len() {
        buf.reserve(max);
    }
    let len = buf.len();
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    let n = SockRef::from(&fd).recv(&mut spare[..want])?;
    // SAFETY: socket2's `recv` returns how many bytes the kernel wrote at the
    // start of the slice it was given, which starts at `buf.len()` and lies
    // within the capacity; so the first `len + n` bytes are initialised.
    // `min` keeps that true even if a broken libc returned more.
    unsafe { buf.set_len(len + n.min(want)) };
    Ok(n)
}
