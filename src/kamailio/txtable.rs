//! The transaction table in Kamailio shared memory.
//!
//! Allocated in mod_init (before any fork) with `shm_malloc`, guarded by one
//! Kamailio lock ([`ShmSlots`]). Its logic — free list, generations,
//! deadlines, expiry, listing — is safe code in msrp-engine
//! ([`msrp_engine::txtable::slots`]); this layer places it in shm, supplies
//! the shared clock and the wake-ups. Workers insert/arm/remove their
//! outgoing SEND chunks; a Kamailio timer (`register_timer`, slow timer
//! process) marks armed entries whose deadline passed as expired and wakes
//! the owning worker through its eventfd (created in mod_init, so every
//! process has it); the owner sends the REPORT. RPC (ctl process) lists
//! entries and counters.

use std::ffi::c_void;
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::time::Duration;

use super::shm::ShmSlots;
use super::sys;
pub use msrp_engine::txtable::slots::{EntryView, Snapshot};
use msrp_engine::txtable::slots::{Record, Slots, TableHead};
use msrp_engine::txtable::{Event, TableFull, TxInfo, TxSlot, TxTable};

/// The process-wide handle (set in mod_init, inherited by forks).
struct Shared {
    table: ShmSlots<Record, TableHead>,
    wakeups: Vec<RawFd>,
}

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
    #[error("transaction table: {0} (raise -m or lower max_transactions)")]
    Shm(String),
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
    let table = ShmSlots::with_head(TableHead::new(capacity), capacity as usize, Record::FREE)
        .map_err(TableInitError::Shm)?;
    table.locked_with_head(|h, r| Slots::new(h, r).format());
    let mut wakeups = Vec::with_capacity(workers);
    for _ in 0..workers {
        // SAFETY: eventfd with valid flags; the fd is inherited by the forks.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(TableInitError::EventFd(std::io::Error::last_os_error()));
        }
        wakeups.push(fd);
    }
    let _ = SHARED.set(Shared { table, wakeups });
    // SAFETY: register_timer from mod_init; the callback is guarded.
    if unsafe { sys::register_timer(Some(expiry_timer), std::ptr::null_mut(), 1) } < 0 {
        return Err(TableInitError::Timer);
    }
    Ok(())
}

/// Runs `f` on the table with its lock held.
fn locked<R>(f: impl FnOnce(&mut Slots<'_>) -> R) -> Option<R> {
    SHARED
        .get()?
        .table
        .locked_with_head(|h, r| f(&mut Slots::new(h, r)))
}

/// Timer callback (slow timer process): expire due entries, wake owners.
unsafe extern "C" fn expiry_timer(_ticks: u32, _param: *mut c_void) {
    super::guard::guard("transaction timer", (), || {
        let now = now_ms();
        let owners = locked(|t| t.expire_due(now)).unwrap_or(0);
        let workers = SHARED.get().map_or(0, |sh| sh.wakeups.len());
        for i in (0..workers).filter(|i| owners & (1u64 << (*i).min(63)) != 0) {
            wake(i);
        }
    })
}

/// Wakes worker `w` (its loop handles the wake-up as a timer tick, and
/// looks at the listeners again: `msrp_engine::balance`).
pub fn wake(w: usize) {
    if let Some(fd) = SHARED.get().and_then(|sh| sh.wakeups.get(w)) {
        let one: u64 = 1;
        // SAFETY: fd is an eventfd; writing 8 bytes increments it.
        unsafe { libc::write(*fd, (&one as *const u64).cast(), 8) };
    }
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
        locked(|t| t.insert(info, owner, peer, now)).unwrap_or(Err(TableFull { capacity: 0 }))
    }

    fn arm(&mut self, slot: TxSlot, timeout: Duration) {
        let at = now_ms() + timeout.as_millis() as u64;
        locked(|t| t.arm(slot, at));
    }

    fn remove(&mut self, slot: TxSlot) {
        locked(|t| t.remove(slot));
    }

    fn take_expired(&mut self) -> Vec<TxSlot> {
        let owner = self.worker;
        locked(|t| t.take_expired(owner)).unwrap_or_default()
    }

    fn count(&mut self, event: Event) {
        locked(|t| t.count(event));
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

/// Snapshot of the table for RPC.
pub fn snapshot(limit: usize) -> Option<Snapshot> {
    let now = now_ms();
    locked(|t| t.snapshot(limit, now))
}
