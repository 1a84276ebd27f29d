//! Fixed arrays of plain records (with an optional header) in Kamailio
//! shared memory behind one Kamailio lock: allocated in mod_init (before
//! fork), so every process sees the same records.

use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::sys;
pub use msrp_engine::fixed::{fill, text};
pub use msrp_engine::hashlist::Keyed;
use msrp_engine::hashlist::{HashList, Head, Seg, Slot, Store, NIL, SEGMENT};

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

/// A list of records in shm that the workers write and other processes
/// read: add, remove by index, find by key (another worker's session or
/// connection), view for RPC. Its logic is [`msrp_engine::hashlist`]; this
/// places the header, the bucket heads and the record segments in shm.
pub struct ShmList<S: Keyed>(OnceLock<ListMem<S>>);

/// One shm block: the list's [`Head`], its bucket heads, the counts of its
/// record segments ([`Seg`]) and their addresses (0: not made), behind one
/// lock.
struct ListMem<S> {
    /// Bytes of the block at `head` (for `release_pages`).
    size: usize,
    head: NonNull<Head>,
    buckets: NonNull<u32>,
    seg_info: NonNull<Seg>,
    segs: NonNull<usize>,
    lock: NonNull<c_void>,
    _rec: PhantomData<S>,
}

// SAFETY: the block is Kamailio shm that lives for the server's life, and
// the segments live until given back; both are mapped at the same address in
// every process and only touched under the lock; Kamailio processes are
// single-threaded.
unsafe impl<S: Keyed> Send for ListMem<S> {}
// SAFETY: as above.
unsafe impl<S: Keyed> Sync for ListMem<S> {}

/// A listing refused to grow (logged once per process).
static LIST_FULL_LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The segments of a [`ListMem`], as [`msrp_engine::hashlist`] reaches them.
struct Segments<'a, S> {
    addrs: &'a mut [usize],
    _rec: PhantomData<S>,
}

impl<S: Keyed> Segments<'_, S> {
    fn at(&self, i: u32) -> *mut Slot<S> {
        let seg = self.addrs[(i / SEGMENT) as usize];
        assert!(seg != 0, "record {i} of a segment not made");
        // SAFETY: a made segment holds SEGMENT records (see `make`).
        unsafe { (seg as *mut Slot<S>).add((i % SEGMENT) as usize) }
    }
}

impl<S: Keyed> Store<S> for Segments<'_, S> {
    fn slot(&self, i: u32) -> &Slot<S> {
        // SAFETY: `at` points into a made, initialised segment; the lock is
        // held while `self` exists (it only lives inside `ShmList::with`).
        unsafe { &*self.at(i) }
    }

    fn slot_mut(&mut self, i: u32) -> &mut Slot<S> {
        // SAFETY: as in `slot`, and `&mut self` makes the borrow unique.
        unsafe { &mut *self.at(i) }
    }

    fn make(&mut self, n: usize) -> bool {
        let size = SEGMENT as usize * std::mem::size_of::<Slot<S>>();
        // SAFETY: plain reads of Kamailio's shm counters.
        let (free, total) = unsafe { (sys::msrp_shim_shm_available(), sys::msrp_shim_shm_size()) };
        // A listing never takes the last quarter of shm: Kamailio and the
        // transaction table need it more than other workers need to find
        // one more session (those are still relayed by their own worker).
        if free < size as std::ffi::c_ulong + total / 4 {
            if !LIST_FULL_LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                log::warn!(
                    "a shared-memory listing stops growing at {} records: less than a quarter of shared memory (-m) is free; sessions past it are not found by other workers",
                    n * SEGMENT as usize
                );
            }
            return false;
        }
        // SAFETY: plain shm allocation (Kamailio's allocator takes its own
        // lock, so any process may allocate); freed in `unmake`.
        let Some(mem) = NonNull::new(unsafe { sys::msrp_shim_shm_malloc(size) }) else {
            return false;
        };
        let base = mem.cast::<Slot<S>>().as_ptr();
        for k in 0..SEGMENT as usize {
            // SAFETY: k < SEGMENT records within the `size` bytes just
            // allocated, aligned by shm_malloc.
            unsafe { base.add(k).write(Slot::EMPTY) };
        }
        self.addrs[n] = base as usize;
        true
    }

    fn unmake(&mut self, n: usize) {
        let seg = std::mem::replace(&mut self.addrs[n], 0);
        if seg == 0 {
            return;
        }
        let size = SEGMENT as usize * std::mem::size_of::<Slot<S>>();
        give_back_pages(seg, size);
        // SAFETY: `seg` came from shm_malloc in `make` and no record of it
        // is in use (hashlist gives back only empty segments); its address
        // is cleared above, so nothing reaches it any more.
        unsafe { sys::msrp_shim_shm_free(seg as *mut c_void) };
    }
}

/// Hands the whole pages inside `[addr, addr + len)` back to the kernel.
/// shm_free only puts a block on Kamailio's free lists: its pool is one
/// `MAP_SHARED` mapping made at start-up and never unmapped, so pages once
/// touched stay resident, and in the page tables (RSS, PSS) of every
/// worker that touched them. `MADV_REMOVE` frees the backing shmem pages
/// and unmaps them from every process; they read as zeros when the
/// allocator hands them out again.
fn give_back_pages(addr: usize, len: usize) {
    // SAFETY: the range lies inside the `len` bytes shm_malloc gave this
    // list, which stay its own until the shm_free that follows (an
    // allocator keeps nothing inside a block in use: fragment headers are
    // outside it); nothing reads the block before then, so the zeroed
    // pages are never taken for records.
    if let Err(e) = unsafe { advise_pages(addr, len, libc::MADV_REMOVE) } {
        log::debug!("madvise(MADV_REMOVE) of a freed listing segment failed: {e}");
    }
}

/// `madvise(advice)` on the whole pages inside `[addr, addr + len)`.
///
/// # Safety
/// The range must be memory the caller may apply `advice` to.
unsafe fn advise_pages(addr: usize, len: usize, advice: c_int) -> std::io::Result<()> {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return Ok(()),
    };
    let (from, to) = (addr.next_multiple_of(page), (addr + len) / page * page);
    if to <= from {
        return Ok(());
    }
    // SAFETY: page-aligned sub-range of the caller's range (see above).
    match unsafe { libc::madvise(from as *mut c_void, to - from, advice) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

impl<S: Keyed> Default for ShmList<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Keyed> ShmList<S> {
    pub const fn new() -> Self {
        ShmList(OnceLock::new())
    }

    /// mod_init: room for `n` records (more are not listed). Takes the
    /// header, 4 bytes per bucket (n/2 to n buckets) and 20 per segment of
    /// `SEGMENT` records now; the records as they are needed (given back
    /// when a segment is empty again, see `hashlist`).
    pub fn init(&self, n: usize) -> Result<(), String> {
        if self.0.get().is_none() {
            let _ = self.0.set(ListMem::alloc(n)?);
        }
        Ok(())
    }

    /// Runs `f` on the list with the lock held (never unwinding through it).
    fn with<R>(&self, f: impl FnOnce(&mut HashList<'_, S, Segments<'_, S>>) -> R) -> Option<R> {
        let m = self.0.get()?;
        // SAFETY: the lock lives in shm for the server's life.
        unsafe { sys::msrp_shim_lock_get(m.lock.as_ptr()) };
        // SAFETY: under the lock no other process touches the block; the
        // header, buckets and segment addresses were initialised in `alloc`
        // with the lengths the header gives.
        let (head, buckets, seg_info, addrs) = unsafe {
            let head = &mut *m.head.as_ptr();
            let nb = head.buckets();
            let ns = head.segments();
            (
                head,
                std::slice::from_raw_parts_mut(m.buckets.as_ptr(), nb),
                std::slice::from_raw_parts_mut(m.seg_info.as_ptr(), ns),
                std::slice::from_raw_parts_mut(m.segs.as_ptr(), ns),
            )
        };
        let mut segs = Segments {
            addrs,
            _rec: PhantomData,
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f(&mut HashList::new(head, buckets, seg_info, &mut segs))
        }));
        // SAFETY: releases the lock taken above.
        unsafe { sys::msrp_shim_lock_release(m.lock.as_ptr()) };
        r.ok()
    }

    /// Stores `record`; returns its index (`None`: full or not initialised).
    pub fn add(&self, record: S) -> Option<u32> {
        self.with(|l| l.add(record))?
    }

    pub fn remove(&self, index: u32) {
        self.with(|l| l.remove(index));
    }

    /// Changes the used record at `index` with `f` (not its key).
    pub fn update(&self, index: u32, f: impl FnOnce(&mut S)) {
        self.with(|l| l.update(index, f));
    }

    /// The first record with `key` that `f` accepts.
    pub fn find<V>(&self, key: &[u8], f: impl FnMut(&S) -> Option<V>) -> Option<V> {
        self.with(|l| l.find(key, f))?
    }

    /// Drops this process's own mappings of the list's pages (bucket heads
    /// and records), after many closes: every worker that looked a
    /// session up or listed them has those pages in its page tables, so
    /// each counted them in its RSS long after the sessions left. The
    /// contents stay (shared memory); the worker maps again only what it
    /// touches next.
    pub fn release_pages(&self) {
        let Some(m) = self.0.get() else { return };
        let size = SEGMENT as usize * std::mem::size_of::<Slot<S>>();
        let r = self.with(|l| {
            let segs = &*l.store.addrs;
            // SAFETY: MADV_DONTNEED of a MAP_SHARED mapping only drops this
            // process's page-table entries: the shmem pages and their
            // contents stay, and the next touch maps them again. The
            // block and the made segments are this list's, held under
            // its lock.
            unsafe {
                advise_pages(m.head.as_ptr() as usize, m.size, libc::MADV_DONTNEED)?;
                for &seg in segs.iter().filter(|&&a| a != 0) {
                    advise_pages(seg, size, libc::MADV_DONTNEED)?;
                }
            }
            Ok::<(), std::io::Error>(())
        });
        if let Some(Err(e)) = r {
            log::debug!("madvise(MADV_DONTNEED) of a listing failed: {e}");
        }
    }

    /// `view` of the used records it accepts, the first `limit`.
    pub fn view<V>(&self, limit: usize, view: impl FnMut(&S) -> Option<V>) -> Vec<V> {
        self.with(|l| l.view(limit, view)).unwrap_or_default()
    }
}

impl<S: Keyed> ListMem<S> {
    fn alloc(n: usize) -> Result<Self, String> {
        let head = Head::new(n);
        let (nb, ns) = (head.buckets(), head.segments());
        let at_buckets = std::mem::size_of::<Head>().next_multiple_of(8);
        let at_info = (at_buckets + nb * 4).next_multiple_of(8);
        let at_segs = (at_info + ns * std::mem::size_of::<Seg>()).next_multiple_of(8);
        let size = at_segs + ns * 8;
        // SAFETY: plain shm allocation in mod_init.
        let mem = NonNull::new(unsafe { sys::msrp_shim_shm_malloc(size) })
            .ok_or_else(|| format!("out of shared memory ({size} bytes)"))?;
        // SAFETY: lock_alloc + lock_init in shm.
        let lock = NonNull::new(unsafe { sys::msrp_shim_lock_alloc() })
            .ok_or_else(|| "cannot allocate a lock".to_string())?;
        let base = mem.as_ptr().cast::<u8>();
        // SAFETY: the four parts lie within the `size` bytes allocated, at
        // offsets aligned to 8 (shm_malloc aligns the block for any type);
        // exclusive access in mod_init initialises every part.
        unsafe {
            let h = mem.cast::<Head>();
            h.as_ptr().write(head);
            let buckets = base.add(at_buckets).cast::<u32>();
            for i in 0..nb {
                buckets.add(i).write(NIL);
            }
            let seg_info = base.add(at_info).cast::<Seg>();
            let segs = base.add(at_segs).cast::<usize>();
            for i in 0..ns {
                seg_info.add(i).write(Seg::UNMADE);
                segs.add(i).write(0);
            }
            Ok(ListMem {
                size,
                head: h,
                buckets: NonNull::new_unchecked(buckets),
                seg_info: NonNull::new_unchecked(seg_info),
                segs: NonNull::new_unchecked(segs),
                lock,
                _rec: PhantomData,
            })
        }
    }
}
