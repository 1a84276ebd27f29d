//! A fixed array of plain records in Kamailio shared memory behind one
//! Kamailio lock: allocated in mod_init (before fork), so every process
//! sees the same records.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::sys;

pub struct ShmSlots<S: Copy + 'static> {
    base: NonNull<S>,
    len: usize,
    lock: NonNull<c_void>,
}

// SAFETY: the memory is Kamailio shm that lives for the server's life and is
// only touched under the lock; Kamailio processes are single-threaded.
unsafe impl<S: Copy + 'static> Send for ShmSlots<S> {}
// SAFETY: as above.
unsafe impl<S: Copy + 'static> Sync for ShmSlots<S> {}

impl<S: Copy + 'static> ShmSlots<S> {
    /// `len` records set to `init` (mod_init only).
    pub fn alloc(len: usize, init: S) -> Result<Self, String> {
        let size = len.max(1) * std::mem::size_of::<S>();
        // SAFETY: plain shm allocation in mod_init.
        let mem = unsafe { sys::msrp_shim_shm_malloc(size) };
        let base = NonNull::new(mem.cast::<S>())
            .ok_or_else(|| format!("out of shared memory ({size} bytes)"))?;
        // SAFETY: lock_alloc + lock_init in shm.
        let lock = NonNull::new(unsafe { sys::msrp_shim_lock_alloc() })
            .ok_or_else(|| "cannot allocate a lock".to_string())?;
        for i in 0..len {
            // SAFETY: i < len records fit in the allocation (shm_malloc
            // aligns for any type).
            unsafe { base.as_ptr().add(i).write(init) };
        }
        Ok(ShmSlots { base, len, lock })
    }

    /// Runs `f` on the records with the lock held (never unwinding through
    /// it).
    pub fn locked<R>(&self, f: impl FnOnce(&mut [S]) -> R) -> Option<R> {
        // SAFETY: the lock lives in shm for the server's life.
        unsafe { sys::msrp_shim_lock_get(self.lock.as_ptr()) };
        // SAFETY: under the lock no other process touches the records.
        let slots = unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(slots)));
        // SAFETY: releases the lock taken above.
        unsafe { sys::msrp_shim_lock_release(self.lock.as_ptr()) };
        r.ok()
    }
}

/// Copies what fits of `src` into a fixed field; returns the length kept.
pub fn fill(dst: &mut [u8], src: &[u8]) -> u8 {
    let n = src.len().min(dst.len()).min(u8::MAX as usize);
    dst[..n].copy_from_slice(&src[..n]);
    n as u8
}

/// Wall-clock seconds, for records other processes display.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A record of a [`ShmList`].
pub trait Record: Copy + 'static {
    /// An unused record.
    const EMPTY: Self;
    fn used(&self) -> bool;
}

/// A fixed-size list of records in shm that the workers write and other
/// processes (RPC) read: add into a free record, remove by index, view the
/// used ones.
pub struct ShmList<S: Record>(OnceLock<ShmSlots<S>>);

impl<S: Record> Default for ShmList<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Record> ShmList<S> {
    pub const fn new() -> Self {
        ShmList(OnceLock::new())
    }

    /// mod_init: room for `n` records (more are not listed).
    pub fn init(&self, n: usize) -> Result<(), String> {
        if self.0.get().is_none() {
            let _ = self.0.set(ShmSlots::alloc(n, S::EMPTY)?);
        }
        Ok(())
    }

    /// Stores `record` in a free slot; returns its index (`None`: full or
    /// not initialised).
    pub fn add(&self, record: S) -> Option<u32> {
        self.0.get()?.locked(|slots| {
            let (i, s) = slots.iter_mut().enumerate().find(|(_, s)| !s.used())?;
            *s = record;
            Some(i as u32)
        })?
    }

    pub fn remove(&self, index: u32) {
        if let Some(t) = self.0.get() {
            t.locked(|slots| {
                if let Some(s) = slots.get_mut(index as usize) {
                    *s = S::EMPTY;
                }
            });
        }
    }

    /// Changes the used record at `index` with `f`.
    pub fn update(&self, index: u32, f: impl FnOnce(&mut S)) {
        if let Some(t) = self.0.get() {
            t.locked(|slots| {
                if let Some(s) = slots.get_mut(index as usize).filter(|s| s.used()) {
                    f(s);
                }
            });
        }
    }

    /// `view` of every used record it accepts.
    pub fn view<V>(&self, mut view: impl FnMut(&S) -> Option<V>) -> Vec<V> {
        self.0
            .get()
            .and_then(|t| {
                t.locked(|slots| {
                    slots
                        .iter()
                        .filter(|s| s.used())
                        .filter_map(&mut view)
                        .collect()
                })
            })
            .unwrap_or_default()
    }
}

/// The text of a fixed field of which `n` bytes are used.
pub fn text(field: &[u8], n: u8) -> String {
    String::from_utf8_lossy(&field[..(n as usize).min(field.len())]).into_owned()
}
