//! Test support: what a test (or a benchmark) needs to run the engine
//! without Kamailio — a default configuration, an in-memory transaction
//! table, and a host whose "script" relays every frame.

pub mod fake;

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigBuilder, Param, ParamValue};
use crate::engine::Host;
use crate::script::FrameCtx;
use crate::txtable::{Event, TableFull, TxInfo, TxSlot, TxTable};

/// The configuration a bare `modparam("msrp_relay", "listen", ...)` per
/// address gives: every other parameter at its declared default.
pub fn config(listen: Vec<SocketAddr>) -> Config {
    let mut b = ConfigBuilder::new();
    let mut c = match b.set(Param::Listen, ParamValue::Str("127.0.0.1:2855")) {
        Ok(()) => b
            .build()
            .unwrap_or_else(|e| panic!("default configuration: {e:?}")),
        Err(e) => panic!("default configuration: {e}"),
    };
    c.listen = listen
        .into_iter()
        .map(|addr| crate::config::Listen {
            kind: crate::transport::Kind::Tcp,
            addr,
            tls: Default::default(),
        })
        .collect();
    c
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
