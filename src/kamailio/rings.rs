//! The memory of the links between MSRP workers: one byte ring per ordered
//! pair of workers and one eventfd per worker and peer, made in mod_init so
//! the forked workers inherit them (the ring protocol is safe code in
//! `msrp_engine::ring`; here are only the mapping and the copies).
//!
//! The rings are a `MAP_SHARED` mapping of their own, not Kamailio shm: they
//! are fixed for the life of the process (nothing to allocate or free
//! later), page-aligned, and would otherwise take `workers * (workers - 1)`
//! times [`RING_BYTES`] out of the shm pool the operator sized for
//! sessions and transactions (`-M`); pages are only backed once touched.
//! The mapping is a memfd named [`MAPPING_NAME`], so `/proc/PID/smaps`
//! and `pmap` tell the links' pages from Kamailio's shm (both are shared
//! memory; `msrp-bench --idle` reports them apart).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

use msrp_engine::ring::{RingControl, RingLink, RingMemory};

/// Bytes of one ring: two reads' worth (`READ_CHUNK`, 256 KiB), so a
/// reader draining one read's worth leaves the writer room for another.
const RING_BYTES: usize = 512 * 1024;
/// The control words' share of a ring's slot (one page: the bytes stay
/// page-aligned).
const CONTROL_BYTES: usize = 4096;
const SLOT: usize = CONTROL_BYTES + RING_BYTES;
/// Name of the mapping's memfd (smaps shows `/memfd:msrp_relay links`).
const MAPPING_NAME: &std::ffi::CStr = c"msrp_relay links";

struct Rings {
    /// Start of the mapping: slot `i * workers + j` is the ring from
    /// worker i to worker j.
    base: usize,
    workers: usize,
    /// Eventfd `w * workers + p`: polled by worker w for its link to p,
    /// written by p.
    wakes: Vec<OwnedFd>,
}

static RINGS: OnceLock<Rings> = OnceLock::new();

/// Maps the rings and makes the eventfds (mod_init, before the fork).
pub fn init(workers: usize) -> Result<(), String> {
    if workers < 2 || RINGS.get().is_some() {
        return Ok(());
    }
    let len = workers * workers * SLOT;
    let fd = named_memory(len).map_err(|e| {
        format!("cannot make {len} bytes of memory for the links between MSRP workers: {e}")
    })?;
    // SAFETY: a new shared mapping of our own memfd, no address hint: it
    // touches no memory of ours. A new memfd reads as zeros, and zeroed
    // pages are empty rings (RingControl's all-zero state). The mapping
    // outlives the fd (closed when `fd` drops).
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(format!(
            "cannot map {len} bytes for the links between MSRP workers: {}",
            io::Error::last_os_error()
        ));
    }
    let mut wakes = Vec::with_capacity(workers * workers);
    for _ in 0..workers * workers {
        // SAFETY: eventfd takes no pointer; a valid result is a new fd that
        // nothing else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(format!(
                "cannot make an eventfd for the links between MSRP workers: {}",
                io::Error::last_os_error()
            ));
        }
        // SAFETY: fd is ours alone (see above).
        wakes.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let _ = RINGS.set(Rings {
        base: base as usize,
        workers,
        wakes,
    });
    Ok(())
}

/// A memfd of `len` bytes named [`MAPPING_NAME`] (pages backed once
/// touched, like anonymous shared memory).
fn named_memory(len: usize) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create reads the zero-terminated name only; a valid
    // result is a new fd that nothing else owns.
    let fd = unsafe { libc::memfd_create(MAPPING_NAME.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above, the fd is ours alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: ftruncate on our own valid fd, no pointer involved.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Worker `index`'s links to the other workers, by their index.
pub fn links(index: usize) -> io::Result<Vec<(usize, RingLink)>> {
    let Some(r) = RINGS.get() else {
        return Ok(Vec::new());
    };
    let n = r.workers;
    let mut out = Vec::with_capacity(n.saturating_sub(1));
    for peer in (0..n).filter(|&p| p != index) {
        let link = RingLink::new(
            Box::new(r.ring(index, peer)),
            Box::new(r.ring(peer, index)),
            r.wakes[index * n + peer].try_clone()?,
            r.wakes[peer * n + index].try_clone()?,
        );
        out.push((peer, link));
    }
    Ok(out)
}

impl Rings {
    fn ring(&self, from: usize, to: usize) -> ShmRing {
        let slot = self.base + (from * self.workers + to) * SLOT;
        ShmRing {
            control: slot as *const RingControl,
            data: (slot + CONTROL_BYTES) as *mut u8,
        }
    }
}

/// One ring in the mapping. Its producer only writes bytes it has not
/// published, its consumer only reads published bytes it has not
/// released (`msrp_engine::ring`): the two never touch the same bytes at
/// the same time.
struct ShmRing {
    control: *const RingControl,
    data: *mut u8,
}

// SAFETY: the pointers are into a mapping every worker process has for its
// whole life; a worker's engine and its links stay on the worker's thread
// (Send only lets the engine type be moved there).
unsafe impl Send for ShmRing {}

impl RingMemory for ShmRing {
    fn control(&self) -> &RingControl {
        // SAFETY: the mapping lives as long as the process (never
        // unmapped); the control words are at the page-aligned start of the
        // slot, within CONTROL_BYTES, and are atomics only (shared access is
        // what they are for).
        unsafe { &*self.control }
    }

    fn capacity(&self) -> usize {
        RING_BYTES
    }

    fn copy_in(&self, at: usize, src: &[u8]) {
        assert!(at + src.len() <= RING_BYTES);
        // SAFETY: within the ring's bytes (checked above); the bytes are the
        // producer's (unpublished, so the consumer does not read them), and
        // src is private memory of this process, so the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.add(at), src.len()) }
    }

    fn read_bytes(&self, at: usize, len: usize, f: &mut dyn FnMut(&[u8])) {
        assert!(at + len <= RING_BYTES);
        // SAFETY: within the ring's bytes (checked above); they were
        // published with a release store the consumer acquired, and the
        // producer does not write them until the consumer releases them,
        // after f returns.
        f(unsafe { std::slice::from_raw_parts(self.data.add(at), len) })
    }
}
