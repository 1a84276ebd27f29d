//! The Kamailio backend of the `log` facade: the engine and the boundary log
//! with `log::info!` etc., and lines come out through Kamailio's own logger
//! (LOG_FX) as `INFO: <msrp_relay> [msrp-engine/src/engine.rs:123]: ...`,
//! honouring `debug=` and per-module log levels (checked per line, so
//! `kamcmd cfg.set_now_int core debug 3` takes effect at once).

use std::sync::Once;

use super::sys;

/// Kamailio log levels (dprint.h; bindgen types them i32 or u32 by sign).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
#[allow(clippy::unnecessary_cast)]
enum Level {
    Err = sys::L_ERR as i32,
    Warn = sys::L_WARN as i32,
    Info = sys::L_INFO as i32,
    Dbg = sys::L_DBG as i32,
}

impl From<log::Level> for Level {
    fn from(l: log::Level) -> Self {
        match l {
            log::Level::Error => Level::Err,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            log::Level::Debug | log::Level::Trace => Level::Dbg,
        }
    }
}

/// Whether a message at `level` would be printed (avoids formatting cost).
fn enabled(level: Level) -> bool {
    // SAFETY: reads Kamailio's debug level globals; valid in every process
    // after the core has parsed its configuration.
    unsafe { sys::msrp_shim_log_enabled(level as i32) != 0 }
}

/// Writes one log line. `file`/`line` are the Rust source location.
fn write(level: Level, file: &str, line: u32, func: &str, msg: &str) {
    let prefix = format!("<msrp_relay> [{file}:{line}]: \0");
    let func = format!("{func}\0");
    let len = i32::try_from(msg.len()).unwrap_or(i32::MAX);
    // SAFETY: prefix and func are NUL-terminated and outlive the call; msg is
    // passed with its length (printed with %.*s, no NUL needed).
    unsafe {
        sys::msrp_shim_log(
            level as i32,
            prefix.as_ptr().cast(),
            func.as_ptr().cast(),
            msg.as_ptr().cast(),
            len,
        )
    }
}

struct KamailioLogger;

/// Whether this is the process's main thread (its thread ID is the process
/// ID). Kamailio's logger is not thread-safe; the worker's resolver thread
/// (msrp-engine's `dns`) and the crates it runs (tokio, mio, hickory) must
/// never reach it: their lines are dropped (the engine logs what matters
/// of their answers on the loop).
fn on_main_thread() -> bool {
    // SAFETY: gettid and getpid have no preconditions and cannot fail.
    unsafe { libc::gettid() == libc::getpid() }
}

impl log::Log for KamailioLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        enabled(metadata.level().into()) && on_main_thread()
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = record.level().into();
        if !enabled(level) || !on_main_thread() {
            return;
        }
        let msg = record.args().to_string();
        write(
            level,
            record.file().unwrap_or("?"),
            record.line().unwrap_or(0),
            record.module_path().unwrap_or("msrp_relay"),
            &msg,
        );
    }

    fn flush(&self) {}
}

static LOGGER: KamailioLogger = KamailioLogger;
static INSTALL: Once = Once::new();

/// Makes Kamailio the `log` backend of this process (and its forks). Called
/// by every entry point's guard, so it holds before the first line: modparam
/// setters run before mod_init.
pub fn install() {
    INSTALL.call_once(|| {
        if log::set_logger(&LOGGER).is_ok() {
            // Kamailio decides per line (its level can change at run time).
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
}
