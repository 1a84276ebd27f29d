//! Test and benchmark tooling for the `msrp_relay` Kamailio module.
//!
//! Everything here talks MSRP (RFC 4975) over real sockets (TCP, TLS,
//! WebSocket) with blocking I/O and explicit timeouts, so integration tests
//! can drive a real relay without an async runtime:
//!
//! - [`peer`]: one MSRP connection (send requests/responses, read frames);
//! - [`endpoint`]: a listening MSRP endpoint (the "B" side a relay connects to);
//! - [`body`]: deterministic pseudo-random bodies of any size, hashed while
//!   streamed, never held whole in memory;
//! - [`ids`]: random transaction and message identifiers;
//! - [`kamailio`]: runs a real Kamailio with the module (tests, `msrp-bench`);
//! - [`load`]: lean load generation and verifying sinks for `msrp-bench`;
//! - [`process`]: small process helpers (signals, liveness, memory figures);
//! - [`tcpproxy`]: a plain TCP proxy, the extra-hop baseline of `msrp-bench`;
//! - [`tls`]: rustls configurations from PEM files, the test certificates of
//!   `scripts/make-certs.sh` ([`tls::Certs`]);
//! - [`stream`]: TCP or TLS under a peer, and [`Transport`] (tcp, tls, ws,
//!   wss);
//! - [`ws`]: MSRP over WebSocket (RFC 7977): handshake options, raw frames;
//! - [`pyws`]: drives `tests/ws_client.py` (Python `websockets`, a
//!   third-party WebSocket client) from Rust tests.

pub mod body;
pub mod endpoint;
pub mod error;
pub mod idle;
pub mod ids;
pub mod kamailio;
pub mod load;
pub mod peer;
pub mod process;
pub mod pyws;
pub mod soak;
pub mod stream;
pub mod tcpproxy;
pub mod tls;
pub mod ws;

pub use body::BodyGen;
pub use endpoint::Endpoint;
pub use msrp_core::EndFlag;
pub use peer::{Peer, PeerError, ReceivedFrame, Request};
pub use stream::Transport;
