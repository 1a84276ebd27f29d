//! Fixed arrays of plain records (with an optional header) in Kamailio
//! shared memory behind one Kamailio lock: allocated in mod_init (before
//! fork), so every process sees the same records.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::sys;
pub use msrp_engine::fixed::{fill, text};

/// A header `H` and `len` records `S` in one shm block, behind one lock.
pub struct ShmSlots<S: Copy + 'static, H: Copy + 'static = ()> {
    head: NonNull<H>,
    base: NonNull<S>,
    len: usize,
    lock: NonNull<c_void>,
}

// SAFETY: the memory is Kamailio shm that lives for the server's life and is
// only touched under the lock; Kamailio processes are single-threaded.
unsafe impl<S: Copy + 'static, H: Copy + 'static> Send for ShmSlots<S, H> {}
// SAFETY: as above.
unsafe impl<S: Copy + 'static, H: Copy + 'static> Sync for ShmSlots<S, H> {}

impl<S: Copy + 'static> ShmSlots<S> {
    /// `len` records set to `init` (mod_init only).
    pub fn alloc(len: usize, init: S) -> Result<Self, String> {
        Self::with_head((), len, init)
    }
}

impl<S: Copy + 'static, H: Copy + 'static> ShmSlots<S, H> {
    /// `head` followed by `len` records set to `init` (mod_init only).
    pub fn with_head(head: H, len: usize, init: S) -> Result<Self, String> {
        // The records start at the first offset after the header that is
        // aligned for them.
        let offset = std::mem::size_of::<H>().next_multiple_of(std::mem::align_of::<S>());
        let size = offset + len.max(1) * std::mem::size_of::<S>();
        // SAFETY: plain shm allocation in mod_init.
        let mem = NonNull::new(unsafe { sys::msrp_shim_shm_malloc(size) })
            .ok_or_else(|| format!("out of shared memory ({size} bytes)"))?;
        // SAFETY: lock_alloc + lock_init in shm.
        let lock = NonNull::new(unsafe { sys::msrp_shim_lock_alloc() })
            .ok_or_else(|| "cannot allocate a lock".to_string())?;
        let head_ptr = mem.cast::<H>();
        // SAFETY: offset + len records are within the allocation of `size`
        // bytes; shm_malloc aligns for any type and `offset` keeps the
        // records' alignment.
        let base =
            unsafe { NonNull::new_unchecked(mem.as_ptr().cast::<u8>().add(offset)) }.cast::<S>();
        // SAFETY: exclusive access in mod_init; the writes initialise the
        // header and every record (see above for the bounds).
        unsafe {
            head_ptr.as_ptr().write(head);
            for i in 0..len {
                base.as_ptr().add(i).write(init);
            }
        }
        Ok(ShmSlots {
            head: head_ptr,
            base,
            len,
            lock,
        })
    }

    /// Runs `f` on the header and the records with the lock held (never
    /// unwinding through it).
    pub fn locked_with_head<R>(&self, f: impl FnOnce(&mut H, &mut [S]) -> R) -> Option<R> {
        // SAFETY: the lock lives in shm for the server's life.
        unsafe { sys::msrp_shim_lock_get(self.lock.as_ptr()) };
        // SAFETY: under the lock no other process touches the block; the
        // header and the `len` records were initialised in `with_head`.
        let (head, slots) = unsafe {
            (
                &mut *self.head.as_ptr(),
                std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len),
            )
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(head, slots)));
        // SAFETY: releases the lock taken above.
        unsafe { sys::msrp_shim_lock_release(self.lock.as_ptr()) };
        r.ok()
    }

    /// Runs `f` on the records with the lock held.
    pub fn locked<R>(&self, f: impl FnOnce(&mut [S]) -> R) -> Option<R> {
        self.locked_with_head(|_, slots| f(slots))
    }
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
pub struct ShmList<S: Record>(OnceLock<ShmSlots<S, ListHead>>);

/// Where a [`ShmList`]'s next free record is looked for, and how many are
/// used: adding is O(1) while there is room and when full (it was a scan
/// of every record under the lock, per AUTH and per accepted connection).
#[derive(Clone, Copy)]
pub struct ListHead {
    used: usize,
    next: usize,
}

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
            let head = ListHead { used: 0, next: 0 };
            let _ = self.0.set(ShmSlots::with_head(head, n, S::EMPTY)?);
        }
        Ok(())
    }

    /// Stores `record` in a free slot; returns its index (`None`: full or
    /// not initialised).
    pub fn add(&self, record: S) -> Option<u32> {
        self.0.get()?.locked_with_head(|head, slots| {
            if head.used >= slots.len() {
                return None;
            }
            // From the record after the last one added, wrapping.
            let n = slots.len();
            let i = (0..n)
                .map(|k| (head.next + k) % n)
                .find(|&i| !slots[i].used())?;
            slots[i] = record;
            head.used += 1;
            head.next = (i + 1) % n;
            Some(i as u32)
        })?
    }

    pub fn remove(&self, index: u32) {
        if let Some(t) = self.0.get() {
            t.locked_with_head(|head, slots| {
                if let Some(s) = slots.get_mut(index as usize) {
                    if s.used() {
                        head.used -= 1;
                    }
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
