//! Certificate reload (`msrp_relay.tls_reload`). The RPC runs in Kamailio's
//! RPC process (ctl, jsonrpcs), not in an MSRP worker, so it cannot touch
//! the workers' rustls configurations. It reads and checks every TLS file
//! itself (the same `TlsContext::new` the workers use): a missing or bad
//! file is answered with an error naming it, and nothing changes. When all
//! is well it counts up a generation number in shared memory; each worker
//! sees the new number on its next loop pass (at most 100 ms later) and
//! builds its own configurations from the files
//! (`msrp_engine::engine` `reload_tls_if_asked`).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use msrp_engine::config;
use msrp_engine::transport::tls::TlsContext;

use super::rpccall::Call;
use super::sys;

/// The generation counter in shm.
struct Generation(NonNull<AtomicU64>);

// SAFETY: the counter is an atomic in Kamailio shm, allocated in mod_init
// (before any fork) and never freed; every access is an atomic operation,
// which works across processes sharing the mapping.
unsafe impl Send for Generation {}
// SAFETY: as above.
unsafe impl Sync for Generation {}

static GENERATION: OnceLock<Generation> = OnceLock::new();

/// Allocates the counter (mod_init, before the workers are forked).
pub fn init() -> Result<(), String> {
    let size = std::mem::size_of::<AtomicU64>();
    // SAFETY: plain shm allocation in mod_init; shm_malloc aligns for any
    // type.
    let mem = NonNull::new(unsafe { sys::msrp_shim_shm_malloc(size) })
        .ok_or_else(|| format!("out of shared memory ({size} bytes)"))?
        .cast::<AtomicU64>();
    // SAFETY: the block is fresh, large and aligned enough for an
    // AtomicU64; no other process exists yet.
    unsafe { mem.as_ptr().write(AtomicU64::new(0)) };
    let _ = GENERATION.set(Generation(mem));
    Ok(())
}

fn counter() -> Option<&'static AtomicU64> {
    // SAFETY: initialised in `init`, lives in shm for the server's life.
    GENERATION.get().map(|g| unsafe { g.0.as_ref() })
}

/// The current generation: 0 until the first successful reload.
pub fn generation() -> u64 {
    counter().map_or(0, |c| c.load(Ordering::Acquire))
}

/// `msrp_relay.tls_reload`: reads and checks every TLS file; on success
/// the workers are told to read them too, and the answer is the new
/// generation, the files read and the served certificate's SHA-256.
pub fn rpc_tls_reload(call: &Call) {
    let (Some(cfg), Some(counter)) = (config::get(), counter()) else {
        call.fault(500, "msrp_relay is not initialised");
        return;
    };
    let ctx = match TlsContext::new(&cfg.tls, &cfg.listen) {
        Ok(ctx) => ctx,
        Err(e) => {
            log::error!("msrp_relay.tls_reload: {e}; the running certificates stay in use");
            call.fault(500, &format!("{e} (the running certificates stay in use)"));
            return;
        }
    };
    let generation = counter.fetch_add(1, Ordering::AcqRel) + 1;
    let sources = ctx.sources();
    log::info!(
        "msrp_relay.tls_reload: TLS files checked, generation {generation}: MSRP workers read them again"
    );
    let Some(s) = call.add_struct() else {
        return;
    };
    s.int("generation", generation);
    if let Some(f) = &sources.fingerprint {
        s.str("certificate_sha256", f);
    }
    for (param, file) in &sources.files {
        s.str(param, &file.display().to_string());
    }
}
