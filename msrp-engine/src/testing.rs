//! Test support: what a test (or a benchmark) needs to run the engine
//! without Kamailio — a default configuration, an in-memory transaction
//! table, and a host whose "script" relays every frame.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::config::{self, Config};
use crate::engine::Host;
use crate::script::FrameCtx;
use crate::txtable::{Event, TableFull, TxInfo, TxSlot, TxTable};

/// The configuration a bare `modparam("msrp_relay", "listen", ...)` gives.
pub fn config(listen: Vec<SocketAddr>) -> Config {
    Config {
        listen,
        aliases: Vec::new(),
        max_transactions: config::DEFAULT_MAX_TRANSACTIONS,
        auth_min_expires: 60,
        auth_max_expires: 3600,
        use_path_addr: None,
        event_callback: None,
        max_chunk_size: config::DEFAULT_MAX_CHUNK_SIZE,
        workers: config::DEFAULT_WORKERS,
        queue_high: config::DEFAULT_QUEUE_HIGH,
        queue_low: config::DEFAULT_QUEUE_LOW,
        so_rcvbuf: 0,
        so_sndbuf: 0,
        max_connections: config::DEFAULT_MAX_CONNECTIONS,
        limits: msrp_core::Limits::default(),
        transaction_timeout: Duration::from_secs(config::DEFAULT_TRANSACTION_TIMEOUT),
        first_request_timeout: Duration::from_secs(config::DEFAULT_FIRST_REQUEST_TIMEOUT),
        idle_timeout: Duration::from_secs(config::DEFAULT_IDLE_TIMEOUT),
        test_mode: false,
    }
}

/// A transaction table in process memory, with its own expiry (what the
/// Kamailio timer does for the shared one), checked on every
/// `take_expired`.
#[derive(Default)]
pub struct MemTable {
    /// index -> (generation, deadline once armed)
    slots: Vec<Option<(u32, Option<Instant>)>>,
    generation: u32,
    pub counts: Vec<Event>,
}

impl TxTable for MemTable {
    fn insert(&mut self, _info: &TxInfo<'_>) -> Result<TxSlot, TableFull> {
        self.generation += 1;
        let g = self.generation;
        let index = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.slots[index] = Some((g, None));
        Ok(TxSlot {
            index: index as u32,
            generation: g,
        })
    }

    fn arm(&mut self, slot: TxSlot, timeout: Duration) {
        if let Some(Some((g, d))) = self.slots.get_mut(slot.index as usize) {
            if *g == slot.generation {
                *d = Some(Instant::now() + timeout);
            }
        }
    }

    fn remove(&mut self, slot: TxSlot) {
        if let Some(s) = self.slots.get_mut(slot.index as usize) {
            if s.is_some_and(|(g, _)| g == slot.generation) {
                *s = None;
            }
        }
    }

    fn take_expired(&mut self) -> Vec<TxSlot> {
        let now = Instant::now();
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some((g, Some(d))) if *d <= now => Some(TxSlot {
                    index: i as u32,
                    generation: *g,
                }),
                _ => None,
            })
            .collect()
    }

    fn count(&mut self, event: Event) {
        self.counts.push(event);
    }

    fn wakeup_fd(&self) -> Option<RawFd> {
        None
    }

    fn clear_wakeup(&mut self) {}

    fn poll_expired(&self) -> bool {
        true
    }
}

/// A host whose script calls `msrp_relay()` for every frame (and answers
/// nothing itself).
pub struct RelayAll;

impl Host for RelayAll {
    fn run_route(&mut self, mut ctx: FrameCtx) -> FrameCtx {
        ctx.relay();
        ctx
    }

    fn tick(&mut self) {}
}

/// Counts nothing (the engine's counters go to Kamailio in production).
pub struct NoStats;

impl crate::stats::StatsSink for NoStats {
    fn add(&mut self, _stat: crate::stats::Stat, _v: i64) {}
}
