//! Relay layer: configuration, the per-worker event loop and relay engine,
//! and the script-facing frame context. No `unsafe` here: Kamailio is reached
//! only through the [`engine::Host`] trait and the boundary layer.
#![forbid(unsafe_code)]

pub mod cmap;
pub mod config;
pub mod engine;
mod forward;
pub mod net;
pub mod script;
pub mod stats;
pub mod tid;
mod transactions;
pub mod txtable;
