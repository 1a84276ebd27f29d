//! The relay engine of msrp_relay: configuration, the per-worker event loop,
//! forwarding with re-chunking, the transaction tracker that owes REPORTs,
//! and the script-facing frame context.
//!
//! The crate has no Kamailio symbol and no `unsafe`: Kamailio is reached only
//! through traits the boundary implements ([`engine::Host`],
//! [`txtable::TxTable`], [`stats::StatsSink`], [`cmap::Mirror`]), and logs go
//! through the `log` facade (the boundary installs a Kamailio backend). So
//! everything here builds and is tested with plain `cargo test`.
#![forbid(unsafe_code)]

pub mod acct;
pub mod balance;
pub mod cmap;
pub mod config;
pub mod conn;
pub mod connid;
pub mod dns;
pub mod engine;
pub mod fixed;
pub mod forward;
pub mod hashlist;
pub mod io;
pub mod kind;
pub mod link;
pub mod net;
pub mod rate;
pub mod relay;
pub mod report;
pub mod ring;
pub mod route;
pub mod sched;
pub mod script;
pub mod stats;
pub mod stream;
pub mod testing;
pub mod tid;
pub mod tracker;
pub mod transport;
pub mod txtable;
