//! Certificate reload: when the host's TLS generation changes (Kamailio:
//! RPC `msrp_relay.tls_reload`, after it has read and checked every file),
//! the worker reads the files again and builds new rustls configurations.
//! New handshakes use them; each established connection keeps the `Arc`
//! of the configuration it was made with, so it goes on undisturbed.

use std::sync::Arc;

use super::{Engine, Host};
use crate::transport::tls::TlsContext;

impl<H: Host> Engine<H> {
    /// Builds a new [`TlsContext`] from the same `tls_*` parameters and
    /// listener options if the host's generation moved. A file that fails
    /// now (changed again since the RPC checked it) is logged and the
    /// running configuration stays; the generation is taken as seen either
    /// way, so a bad file is not read again on every loop pass.
    pub(super) fn reload_tls_if_asked(&mut self) {
        let generation = self.host.tls_generation();
        if generation == self.tls_gen || self.tls.is_none() {
            return;
        }
        self.tls_gen = generation;
        match TlsContext::new(&self.cfg.tls, &self.cfg.listen) {
            Ok(ctx) => {
                log::info!(
                    "MSRP worker {}: TLS files read again (generation {generation}{}); new handshakes use them",
                    self.relay.worker,
                    ctx.sources()
                        .fingerprint
                        .as_deref()
                        .map(|f| format!(", certificate SHA-256 {f}"))
                        .unwrap_or_default()
                );
                self.tls = Some(Arc::new(ctx));
            }
            Err(e) => log::error!(
                "MSRP worker {}: TLS reload (generation {generation}) failed, the previous certificates stay in use: {e}",
                self.relay.worker
            ),
        }
    }
}
