//! Giving the worker's free heap back to the system after a close wave
//! (issue 19 item 3): glibc `malloc_trim(0)` after emptying the calling
//! thread's cache of freed chunks.
//!
//! glibc keeps up to [`PER_BIN`] recently freed chunks per size class
//! ([`BINS`] classes of 16 bytes, up to 1032-byte requests) in a
//! per-thread cache (tcache) that `malloc_trim` does not touch: to the
//! arena they are in use. After a wave of connections closed they are
//! the last chunks the connections freed, up to 448 of them scattered
//! over the heap, each keeping its page resident. They are taken out of
//! the cache, the cache is refilled with new chunks (taken together from
//! the free heap), and the taken ones are freed while the cache is full,
//! so they go back to the arena, where `malloc_trim` can give their pages
//! back.

use std::ffi::c_void;

/// glibc's default tcache: 64 size classes (`glibc.malloc.tcache_max`
/// 1032 bytes), 7 chunks each (`glibc.malloc.tcache_count`).
const BINS: usize = 64;
const PER_BIN: usize = 7;

/// The largest request that lands in tcache class `bin`: chunk sizes are
/// 32 + 16 * bin bytes, 8 of them glibc's header.
fn request(bin: usize) -> usize {
    24 + 16 * bin
}

/// Every chunk the thread's tcache holds, freed into the arena (see the
/// module doc), then `malloc_trim(0)`.
pub fn give_back() {
    let mut cached = [[std::ptr::null_mut::<c_void>(); PER_BIN]; BINS];
    let mut refill = [[std::ptr::null_mut::<c_void>(); PER_BIN]; BINS];
    for taken in [&mut cached, &mut refill] {
        for (bin, ptrs) in taken.iter_mut().enumerate() {
            for p in ptrs.iter_mut() {
                // SAFETY: a plain allocation, freed below; a null result
                // (out of memory) is skipped by free.
                *p = unsafe { libc::malloc(request(bin)) };
            }
        }
    }
    for ptrs in refill.iter().chain(cached.iter()) {
        for &p in ptrs {
            // SAFETY: each pointer came from malloc above and is freed
            // once (free(NULL) does nothing).
            unsafe { libc::free(p) };
        }
    }
    // SAFETY: malloc_trim only walks glibc's own arenas under their
    // locks; no pointer of ours is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}
