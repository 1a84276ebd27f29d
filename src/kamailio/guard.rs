//! Panics never cross the FFI boundary: every entry point Kamailio calls runs
//! its body through [`guard`], which catches the unwind, logs it through
//! Kamailio and returns the entry's error value instead.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; on panic logs `what` with the panic message and returns `on_panic`.
pub fn guard<R>(what: &str, on_panic: R, f: impl FnOnce() -> R) -> R {
    super::log::install();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            // Logging itself must not unwind out of here.
            let _ = catch_unwind(|| {
                log::error!("panic caught in {what}: {msg} (entry point returned an error, process continues)");
            });
            on_panic
        }
    }
}

/// Silences the default panic hook's stderr dump (Kamailio logs the panic via
/// [`guard`]), keeping the location in our own log line.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = catch_unwind(|| {
            log::debug!("panic at {loc}");
        });
    }));
}
