//! Logging through Kamailio's own logger (LOG_FX), so lines read
//! `INFO: <msrp_relay> [src/relay/engine.rs:123]: ...` and honour
//! `debug=` and per-module log levels.

use super::sys;

/// Kamailio log levels (dprint.h; bindgen types them i32 or u32 by sign).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
#[allow(clippy::unnecessary_cast)]
pub enum Level {
    Alert = sys::L_ALERT as i32,
    Crit = sys::L_CRIT as i32,
    Err = sys::L_ERR as i32,
    Warn = sys::L_WARN as i32,
    Notice = sys::L_NOTICE as i32,
    Info = sys::L_INFO as i32,
    Dbg = sys::L_DBG as i32,
}

/// Whether a message at `level` would be printed (avoids formatting cost).
pub fn enabled(level: Level) -> bool {
    // SAFETY: reads Kamailio's debug level globals; valid in every process
    // after the core has parsed its configuration.
    unsafe { sys::msrp_shim_log_enabled(level as i32) != 0 }
}

/// Writes one log line. `file`/`line` are the Rust source location.
pub fn write(level: Level, file: &str, line: u32, func: &str, msg: &str) {
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

#[macro_export]
macro_rules! klog {
    ($lvl:ident, $($arg:tt)*) => {{
        let lvl = $crate::kamailio::log::Level::$lvl;
        if $crate::kamailio::log::enabled(lvl) {
            $crate::kamailio::log::write(lvl, file!(), line!(), module_path!(), &format!($($arg)*));
        }
    }};
}
#[macro_export]
macro_rules! log_err { ($($arg:tt)*) => { $crate::klog!(Err, $($arg)*) }; }
#[macro_export]
macro_rules! log_warn { ($($arg:tt)*) => { $crate::klog!(Warn, $($arg)*) }; }
#[macro_export]
macro_rules! log_info { ($($arg:tt)*) => { $crate::klog!(Info, $($arg)*) }; }
#[macro_export]
macro_rules! log_dbg { ($($arg:tt)*) => { $crate::klog!(Dbg, $($arg)*) }; }
