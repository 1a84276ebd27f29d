//! msrp_relay: a Kamailio module that makes Kamailio an MSRP relay
//! (RFC 4975/4976) — it owns its MSRP sockets, streams messages of any size
//! through bounded memory, and routes each frame through
//! `event_route[msrp:frame-in]`.
//!
//! Layers (see docs/ARCHITECTURE.md):
//! * [`kamailio`] (this crate): the unsafe boundary (exports, parameters,
//!   script functions, `$msrp(...)`, processes, bindings, C shim, the
//!   Kamailio backend of the `log` facade);
//! * `msrp-engine` (separate crate, no unsafe, no Kamailio symbol):
//!   configuration, event loop, relay engine, transactions and REPORTs;
//! * `msrp-core` (separate crate): the sans-IO protocol core.

pub mod kamailio;
