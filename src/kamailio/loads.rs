//! How many connections each MSRP worker holds, in shared memory, so that
//! new connections go to the least loaded worker (`msrp_engine::engine`
//! `accept`, the rule in `msrp_engine::balance`). The workers share the
//! listening sockets, and a shared socket's wake-ups favour whichever
//! worker epoll wakes first: without this, 3,000 connections opened at
//! once landed 591 / 1,982 / 427 on three workers (1,010 / 992 / 998 with
//! it).
//!
//! One counter per worker, each on its own cache line (a worker writes its
//! own at every accept; the others only read), in Kamailio shm allocated in
//! mod_init, before the fork.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::sys;

/// One worker's counter, alone on its cache line.
#[repr(C, align(64))]
struct Load(AtomicU64);

struct Loads {
    base: NonNull<Load>,
    workers: usize,
}

// SAFETY: the counters are atomics in Kamailio shm, allocated in mod_init
// (before any fork) and never freed; every access is an atomic operation,
// which works across processes sharing the mapping.
unsafe impl Send for Loads {}
// SAFETY: as above.
unsafe impl Sync for Loads {}

static LOADS: OnceLock<Loads> = OnceLock::new();

/// Allocates one counter per worker (mod_init; nothing with one worker).
pub fn init(workers: usize) -> Result<(), String> {
    if workers < 2 || LOADS.get().is_some() {
        return Ok(());
    }
    let size = workers * std::mem::size_of::<Load>();
    // SAFETY: plain shm allocation in mod_init; the block is aligned below.
    let raw = unsafe { sys::msrp_shim_shm_malloc(size + 64) };
    let raw = NonNull::new(raw).ok_or_else(|| format!("out of shared memory ({size} bytes)"))?;
    // shm_malloc aligns to 8 or 16 bytes: round up to the cache line (the
    // block is never freed, so the offset need not be remembered)
    let off = raw.as_ptr().align_offset(64);
    // SAFETY: `off` < 64 and the block has 64 bytes to spare, so the
    // counters fit; the result is non-null as `raw` is.
    let base = unsafe { NonNull::new_unchecked(raw.as_ptr().cast::<u8>().add(off)) }.cast::<Load>();
    for i in 0..workers {
        // SAFETY: in bounds (see above), aligned for `Load`; no other
        // process exists yet.
        unsafe { base.as_ptr().add(i).write(Load(AtomicU64::new(0))) };
    }
    let _ = LOADS.set(Loads { base, workers });
    Ok(())
}

fn counters() -> Option<&'static [Load]> {
    let l = LOADS.get()?;
    // SAFETY: `workers` counters were written in `init`; they live in shm
    // for the server's life and are only accessed atomically.
    Some(unsafe { std::slice::from_raw_parts(l.base.as_ptr(), l.workers) })
}

/// Worker `worker` holds `connections` now.
pub fn publish(worker: usize, connections: u64) {
    if let Some(c) = counters().and_then(|c| c.get(worker)) {
        c.0.store(connections, Ordering::Relaxed);
    }
}

/// The worker holding the fewest connections and how many (as last
/// published), or `None` with one worker.
pub fn least() -> Option<(usize, u64)> {
    counters()?
        .iter()
        .map(|c| c.0.load(Ordering::Relaxed))
        .enumerate()
        .min_by_key(|&(_, n)| n)
}
