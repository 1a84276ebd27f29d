//! The transaction table in Kamailio shared memory.
//!
//! Allocated in mod_init (before any fork) with `shm_malloc`, guarded by one
//! Kamailio lock. Workers insert/arm/remove their outgoing SEND chunks; a
//! Kamailio timer (`register_timer`, slow timer process) marks armed entries
//! whose deadline passed as expired and wakes the owning worker through its
//! eventfd (created in mod_init, so every process has it); the owner sends
//! the REPORT. RPC (ctl process) lists entries and counters.

use std::ffi::c_void;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::time::Duration;

use msrp_core::FailureReport;

use super::shm::fill;
use super::sys;
use msrp_engine::txtable::{Cause, Event, TableFull, TxInfo, TxSlot, TxTable};

const TID_MAX: usize = 32;
const MSGID_MAX: usize = 64;
const PEER_MAX: usize = 48;
const NONE: u32 = u32::MAX;

const FREE: u8 = 0;
const PENDING: u8 = 1;
const EXPIRED: u8 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
struct Slot {
    state: u8,
    owner: u8,
    failure_report: u8,
    tid_len: u8,
    msgid_len: u8,
    peer_len: u8,
    _pad: [u8; 2],
    generation: u32,
    next_free: u32,
    /// CLOCK_MONOTONIC milliseconds; 0 = timer not started.
    deadline_ms: u64,
    created_ms: u64,
    range_start: u64,
    /// u64::MAX = `*`
    total: u64,
    tid: [u8; TID_MAX],
    msgid: [u8; MSGID_MAX],
    peer: [u8; PEER_MAX],
}

const COUNTERS: usize = Cause::ALL.len() + 2;

#[repr(C)]
struct Header {
    capacity: u32,
    used: u32,
    free_head: u32,
    generation: u32,
    /// REPORTs by cause, then dropped (origin gone), then table-full events.
    counters: [u64; COUNTERS],
}

/// The process-wide handle (set in mod_init, inherited by forks).
struct Shared {
    header: NonNull<Header>,
    slots: NonNull<Slot>,
    lock: NonNull<c_void>,
    wakeups: Vec<RawFd>,
}
// SAFETY: the pointers refer to Kamailio shared memory that lives for the
// whole server life; every access to it goes through the Kamailio lock.
unsafe impl Send for Shared {}
// SAFETY: as above; Kamailio processes are single-threaded.
unsafe impl Sync for Shared {}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Milliseconds of CLOCK_MONOTONIC (system-wide: comparable across the
/// Kamailio processes).
fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

#[derive(Debug, thiserror::Error)]
pub enum TableInitError {
    #[error("out of shared memory for the transaction table ({0} bytes; raise -m or lower max_transactions)")]
    NoShm(usize),
    #[error("cannot allocate a lock for the transaction table")]
    NoLock,
    #[error("cannot create eventfd for worker wake-ups: {0}")]
    EventFd(std::io::Error),
    #[error("cannot register the transaction timer")]
    Timer,
}

/// Allocates the table in shm, one eventfd per worker, and the expiry timer.
/// mod_init only.
pub fn init(capacity: u32, workers: usize) -> Result<(), TableInitError> {
    if SHARED.get().is_some() {
        return Ok(());
    }
    let size = std::mem::size_of::<Header>() + capacity as usize * std::mem::size_of::<Slot>();
    // SAFETY: plain allocation from Kamailio's shm pool (mod_init, before fork).
    let mem = unsafe { sys::msrp_shim_shm_malloc(size) };
    let Some(mem) = NonNull::new(mem) else {
        return Err(TableInitError::NoShm(size));
    };
    // SAFETY: lock_alloc + lock_init in shm.
    let lock = unsafe { sys::msrp_shim_lock_alloc() };
    let Some(lock) = NonNull::new(lock) else {
        return Err(TableInitError::NoLock);
    };
    let header = mem.cast::<Header>();
    // SAFETY: mem is at least size bytes, suitably aligned (shm_malloc
    // aligns for any type); the slots follow the header.
    let slots = unsafe { NonNull::new_unchecked(mem.as_ptr().add(std::mem::size_of::<Header>())) }
        .cast::<Slot>();
    // SAFETY: exclusive access during mod_init; writes initialise the memory.
    unsafe {
        header.as_ptr().write(Header {
            capacity,
            used: 0,
            free_head: if capacity > 0 { 0 } else { NONE },
            generation: 1,
            counters: [0; COUNTERS],
        });
        for i in 0..capacity {
            slots.as_ptr().add(i as usize).write(Slot {
                state: FREE,
                owner: 0,
                failure_report: 0,
                tid_len: 0,
                msgid_len: 0,
                peer_len: 0,
                _pad: [0; 2],
                generation: 0,
                next_free: if i + 1 < capacity { i + 1 } else { NONE },
                deadline_ms: 0,
                created_ms: 0,
                range_start: 0,
                total: 0,
                tid: [0; TID_MAX],
                msgid: [0; MSGID_MAX],
                peer: [0; PEER_MAX],
            });
        }
    }
    let mut wakeups = Vec::with_capacity(workers);
    for _ in 0..workers {
        // SAFETY: eventfd with valid flags; the fd is inherited by the forks.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(TableInitError::EventFd(std::io::Error::last_os_error()));
        }
        wakeups.push(fd);
    }
    let _ = SHARED.set(Shared {
        header,
        slots,
        lock: lock.cast(),
        wakeups,
    });
    // SAFETY: register_timer from mod_init; the callback is guarded.
    if unsafe { sys::register_timer(Some(expiry_timer), std::ptr::null_mut(), 1) } < 0 {
        return Err(TableInitError::Timer);
    }
    Ok(())
}

/// Runs `f` with the table locked.
fn locked<R>(f: impl FnOnce(&mut Header, &mut [Slot]) -> R) -> Option<R> {
    let s = SHARED.get()?;
    // SAFETY: the lock lives in shm for the server's life.
    unsafe { sys::msrp_shim_lock_get(s.lock.as_ptr()) };
    // SAFETY: under the lock no other process touches the table; the slots
    // array has `capacity` entries (set in init and never changed).
    let r = unsafe {
        let h = &mut *s.header.as_ptr();
        let slots = std::slice::from_raw_parts_mut(s.slots.as_ptr(), h.capacity as usize);
        // never unwind while holding the lock
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(h, slots)))
    };
    // SAFETY: releases the lock taken above.
    unsafe { sys::msrp_shim_lock_release(s.lock.as_ptr()) };
    r.ok()
}

fn fr_code(fr: FailureReport) -> u8 {
    match fr {
        FailureReport::Yes => 1,
        FailureReport::Partial => 2,
        FailureReport::No => 0,
    }
}

/// Timer callback (slow timer process): expire due entries, wake owners.
unsafe extern "C" fn expiry_timer(_ticks: u32, _param: *mut c_void) {
    super::guard::guard("transaction timer", (), || {
        let now = now_ms();
        let mut owners: u64 = 0;
        locked(|_, slots| {
            for s in slots.iter_mut() {
                if s.state == PENDING && s.deadline_ms != 0 && s.deadline_ms <= now {
                    s.state = EXPIRED;
                    owners |= 1u64 << (s.owner.min(63));
                }
            }
        });
        if let Some(sh) = SHARED.get() {
            for (i, fd) in sh.wakeups.iter().enumerate() {
                if owners & (1u64 << i.min(63)) != 0 {
                    let one: u64 = 1;
                    // SAFETY: fd is an eventfd; writing 8 bytes increments it.
                    unsafe { libc::write(*fd, (&one as *const u64).cast(), 8) };
                }
            }
        }
    })
}

/// A worker's handle on the shared table.
pub struct ShmTxTable {
    worker: u8,
    /// The last origin address and its text: every chunk of a stream has
    /// the same origin, and formatting it was a per-chunk allocation.
    peer_text: Option<(std::net::SocketAddr, String)>,
}

impl ShmTxTable {
    pub fn for_worker(worker: usize) -> Self {
        ShmTxTable {
            worker: worker.min(63) as u8,
            peer_text: None,
        }
    }
}

impl TxTable for ShmTxTable {
    fn insert(&mut self, info: &TxInfo<'_>) -> Result<TxSlot, TableFull> {
        let owner = self.worker;
        let now = now_ms();
        let peer = match &self.peer_text {
            Some((a, t)) if *a == info.origin => t,
            _ => {
                let t = info.origin.to_string();
                &self.peer_text.insert((info.origin, t)).1
            }
        };
        let r = locked(|h, slots| {
            let i = h.free_head;
            if i == NONE {
                h.counters[Cause::ALL.len() + 1] += 1;
                return Err(TableFull {
                    capacity: h.capacity,
                });
            }
            let s = &mut slots[i as usize];
            h.free_head = s.next_free;
            h.used += 1;
            h.generation = h.generation.wrapping_add(1).max(1);
            s.state = PENDING;
            s.owner = owner;
            s.generation = h.generation;
            s.next_free = NONE;
            s.deadline_ms = 0;
            s.created_ms = now;
            s.failure_report = fr_code(info.failure_report);
            s.range_start = info.range_start;
            s.total = info.total.unwrap_or(u64::MAX);
            s.tid_len = fill(&mut s.tid, info.tid);
            s.msgid_len = fill(&mut s.msgid, info.message_id);
            s.peer_len = fill(&mut s.peer, peer.as_bytes());
            Ok(TxSlot {
                index: i,
                generation: s.generation,
            })
        });
        r.unwrap_or(Err(TableFull { capacity: 0 }))
    }

    fn arm(&mut self, slot: TxSlot, timeout: Duration) {
        let at = now_ms() + timeout.as_millis() as u64;
        locked(|_, slots| {
            if let Some(s) = slots.get_mut(slot.index as usize) {
                if s.generation == slot.generation && s.state == PENDING {
                    s.deadline_ms = at.max(1);
                }
            }
        });
    }

    fn remove(&mut self, slot: TxSlot) {
        locked(|h, slots| {
            if let Some(s) = slots.get_mut(slot.index as usize) {
                if s.generation == slot.generation && s.state != FREE {
                    s.state = FREE;
                    s.generation = 0;
                    s.next_free = h.free_head;
                    h.free_head = slot.index;
                    h.used -= 1;
                }
            }
        });
    }

    fn take_expired(&mut self) -> Vec<TxSlot> {
        let owner = self.worker;
        locked(|_, slots| {
            slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.state == EXPIRED && s.owner == owner)
                .map(|(i, s)| TxSlot {
                    index: i as u32,
                    generation: s.generation,
                })
                .collect()
        })
        .unwrap_or_default()
    }

    fn count(&mut self, event: Event) {
        let i = match event {
            Event::Report(c) => c as usize,
            Event::ReportDropped => Cause::ALL.len(),
            Event::TableFull => Cause::ALL.len() + 1,
        };
        locked(|h, _| h.counters[i] += 1);
    }

    fn wakeup_fd(&self) -> Option<RawFd> {
        SHARED.get()?.wakeups.get(self.worker as usize).copied()
    }

    fn clear_wakeup(&mut self) {
        if let Some(fd) = self.wakeup_fd() {
            let mut v: u64 = 0;
            // SAFETY: non-blocking eventfd; reads 8 bytes into v.
            unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        }
    }
}

/// One entry as RPC shows it.
pub struct EntryView {
    pub tid: String,
    pub worker: u8,
    pub state: &'static str,
    pub age_ms: u64,
    /// ms until expiry; None while the request is still being sent.
    pub expires_in_ms: Option<i64>,
    pub message_id: String,
    pub origin: String,
    pub failure_report: &'static str,
    pub range_start: u64,
    pub total: Option<u64>,
}

/// What RPC shows of the table.
pub struct Snapshot {
    /// At most the `limit` asked for.
    pub entries: Vec<EntryView>,
    pub used: u32,
    pub capacity: u32,
    /// REPORT counters by cause, then dropped and table-full counts.
    pub counters: Vec<(&'static str, u64)>,
}

/// Snapshot of the table for RPC.
pub fn snapshot(limit: usize) -> Option<Snapshot> {
    let now = now_ms();
    locked(|h, slots| {
        let entries = slots
            .iter()
            .filter(|s| s.state != FREE)
            .take(limit)
            .map(|s| EntryView {
                tid: String::from_utf8_lossy(&s.tid[..s.tid_len as usize]).into_owned(),
                worker: s.owner,
                state: if s.state == EXPIRED {
                    "expired"
                } else {
                    "pending"
                },
                age_ms: now.saturating_sub(s.created_ms),
                expires_in_ms: (s.deadline_ms != 0).then(|| s.deadline_ms as i64 - now as i64),
                message_id: String::from_utf8_lossy(&s.msgid[..s.msgid_len as usize]).into_owned(),
                origin: String::from_utf8_lossy(&s.peer[..s.peer_len as usize]).into_owned(),
                failure_report: match s.failure_report {
                    1 => "yes",
                    2 => "partial",
                    _ => "no",
                },
                range_start: s.range_start,
                total: (s.total != u64::MAX).then_some(s.total),
            })
            .collect();
        let mut counters: Vec<(&'static str, u64)> = Cause::ALL
            .iter()
            .map(|c| (c.name(), h.counters[*c as usize]))
            .collect();
        counters.push(("dropped_origin_gone", h.counters[Cause::ALL.len()]));
        counters.push(("table_full", h.counters[Cause::ALL.len() + 1]));
        Snapshot {
            entries,
            used: h.used,
            capacity: h.capacity,
            counters,
        }
    })
}
