//! Module parameters: collected while Kamailio parses `modparam(...)` lines,
//! validated and frozen in mod_init (before any fork, so every worker inherits
//! the same copy).

use std::net::SocketAddr;
use std::sync::OnceLock;

use parking_lot::Mutex;
use thiserror::Error;

/// Default for `msrp_max_chunk_size` (bytes of body per forwarded chunk).
pub const DEFAULT_MAX_CHUNK_SIZE: usize = 16 * 1024;
/// Allowed range for `msrp_max_chunk_size`; 0 means "do not re-chunk".
pub const MIN_MAX_CHUNK_SIZE: usize = 2048;
pub const MAX_MAX_CHUNK_SIZE: usize = 16 * 1024 * 1024;
/// Worker processes: default and upper bound.
pub const DEFAULT_WORKERS: usize = 1;
pub const MAX_WORKERS: usize = 64;
/// Per-connection output queue watermarks (bytes): above high, the relay stops
/// reading the connections that feed it; below low it resumes.
pub const DEFAULT_QUEUE_HIGH: usize = 512 * 1024;
pub const DEFAULT_QUEUE_LOW: usize = 128 * 1024;
/// Bytes read from a socket per read call (bounds per-connection read memory).
pub const READ_CHUNK: usize = 256 * 1024;
/// RFC 4976 §6.1 / §6.5 connection timers (seconds).
pub const DEFAULT_FIRST_REQUEST_TIMEOUT: u64 = 30;
pub const DEFAULT_IDLE_TIMEOUT: u64 = 3600;
/// Capacity of the shared transaction table (entries of ~220 bytes of shm).
pub const DEFAULT_MAX_TRANSACTIONS: u32 = 16384;
/// Seconds a forwarded request waits for its response (RFC 4976 §6.4.1).
pub const DEFAULT_TRANSACTION_TIMEOUT: u64 = 30;
/// Most connections one worker keeps (new ones are refused beyond this).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("listen: {0:?} is not of the form tcp:IP:PORT")]
    BadListen(String),
    #[error("{name} = {value} is out of range ({range})")]
    OutOfRange {
        name: &'static str,
        value: i64,
        range: String,
    },
    #[error("no listen address: add modparam(\"msrp_relay\", \"listen\", \"tcp:IP:PORT\")")]
    NoListen,
    #[error("queue_low_watermark ({low}) must be below queue_high_watermark ({high})")]
    Watermarks { low: usize, high: usize },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// Other `host[:port]` names of this relay (modparam `alias`).
    pub aliases: Vec<String>,
    /// Capacity of the shared transaction table.
    pub max_transactions: u32,
    /// AUTH `Expires` bounds (RFC 4976 §6.3), seconds.
    pub auth_min_expires: u64,
    pub auth_max_expires: u64,
    /// `host:port` put into Use-Path URIs (default: the address the AUTH
    /// arrived on).
    pub use_path_addr: Option<String>,
    /// KEMI function run for each frame instead of event_route[msrp:frame-in].
    pub event_callback: Option<String>,
    /// 0 = forward chunks as they come.
    pub max_chunk_size: usize,
    pub workers: usize,
    pub queue_high: usize,
    pub queue_low: usize,
    /// SO_RCVBUF / SO_SNDBUF for the relay's sockets (0 = system default).
    pub so_rcvbuf: usize,
    pub so_sndbuf: usize,
    pub max_connections: usize,
    pub limits: msrp_core::Limits,
    /// How long a forwarded request waits for its response, counted from
    /// its last byte (RFC 4976 §6.4.1: 30 s).
    pub transaction_timeout: std::time::Duration,
    /// RFC 4976 §6.1: a new connection's first request must arrive within
    /// this (0 = no limit).
    pub first_request_timeout: std::time::Duration,
    /// RFC 4976 §6.5: idle connections are closed after this (0 = never).
    pub idle_timeout: std::time::Duration,
    /// Enables `msrp_test_panic()` (used by the test-suite to prove the
    /// FFI panic guard).
    pub test_mode: bool,
}

#[derive(Debug, Default)]
struct Builder {
    listen: Vec<SocketAddr>,
    aliases: Vec<String>,
    use_path_addr: Option<String>,
    event_callback: Option<String>,
    ints: Vec<(&'static str, i64)>,
    errors: Vec<ConfigError>,
}

static BUILDER: Mutex<Option<Builder>> = Mutex::new(None);
static CONFIG: OnceLock<Config> = OnceLock::new();

/// Parses `tcp:IP:PORT` (also `IP:PORT`; IPv6 as `tcp:[::1]:2855`).
pub fn parse_listen(s: &str) -> Result<SocketAddr, ConfigError> {
    let t = s.trim();
    let rest = match t.split_once(':') {
        Some((proto, rest)) if proto.eq_ignore_ascii_case("tcp") => rest,
        _ => t,
    };
    rest.parse::<SocketAddr>()
        .map_err(|_| ConfigError::BadListen(s.to_string()))
}

/// `modparam("msrp_relay", "listen", ...)`: repeatable.
pub fn add_listen(value: &str) -> Result<(), ConfigError> {
    let addr = parse_listen(value)?;
    BUILDER
        .lock()
        .get_or_insert_with(Builder::default)
        .listen
        .push(addr);
    Ok(())
}

/// `modparam("msrp_relay", "alias", "host[:port]")`: repeatable; another
/// name or address under which the relay appears in To-Path URIs.
pub fn add_alias(value: &str) {
    BUILDER
        .lock()
        .get_or_insert_with(Builder::default)
        .aliases
        .push(value.trim().to_ascii_lowercase());
}

/// `modparam("msrp_relay", "use_path_addr", "host:port")`.
pub fn set_use_path_addr(value: &str) {
    BUILDER
        .lock()
        .get_or_insert_with(Builder::default)
        .use_path_addr = Some(value.trim().to_string());
}

/// `modparam("msrp_relay", "event_callback", "ksr_function")` (KEMI).
pub fn set_event_callback(value: &str) {
    let v = value.trim();
    BUILDER
        .lock()
        .get_or_insert_with(Builder::default)
        .event_callback = (!v.is_empty()).then(|| v.to_string());
}

/// Integer modparams; validated in [`freeze`].
pub fn set_int(name: &'static str, value: i64) {
    BUILDER
        .lock()
        .get_or_insert_with(Builder::default)
        .ints
        .push((name, value));
}

fn range(
    name: &'static str,
    v: i64,
    lo: i64,
    hi: i64,
    extra_ok: Option<i64>,
) -> Result<usize, ConfigError> {
    if (v >= lo && v <= hi) || Some(v) == extra_ok {
        Ok(v as usize)
    } else {
        Err(ConfigError::OutOfRange {
            name,
            value: v,
            range: match extra_ok {
                Some(e) => format!("{e} or {lo}..={hi}"),
                None => format!("{lo}..={hi}"),
            },
        })
    }
}

/// Validates the collected parameters and freezes the configuration.
pub fn freeze() -> Result<&'static Config, Vec<ConfigError>> {
    if let Some(c) = CONFIG.get() {
        return Ok(c);
    }
    let b = BUILDER.lock().take().unwrap_or_default();
    let mut errors = b.errors;
    let mut c = Config {
        listen: b.listen,
        aliases: b.aliases,
        auth_min_expires: 60,
        auth_max_expires: 3600,
        use_path_addr: b.use_path_addr,
        event_callback: b.event_callback,
        max_transactions: DEFAULT_MAX_TRANSACTIONS,
        max_chunk_size: DEFAULT_MAX_CHUNK_SIZE,
        workers: DEFAULT_WORKERS,
        queue_high: DEFAULT_QUEUE_HIGH,
        queue_low: DEFAULT_QUEUE_LOW,
        so_rcvbuf: 0,
        so_sndbuf: 0,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        limits: msrp_core::Limits::default(),
        transaction_timeout: std::time::Duration::from_secs(DEFAULT_TRANSACTION_TIMEOUT),
        first_request_timeout: std::time::Duration::from_secs(DEFAULT_FIRST_REQUEST_TIMEOUT),
        idle_timeout: std::time::Duration::from_secs(DEFAULT_IDLE_TIMEOUT),
        test_mode: false,
    };
    for (name, v) in b.ints {
        let r = match name {
            "msrp_max_chunk_size" => range(
                name,
                v,
                MIN_MAX_CHUNK_SIZE as i64,
                MAX_MAX_CHUNK_SIZE as i64,
                Some(0),
            )
            .map(|v| c.max_chunk_size = v),
            "workers" => range(name, v, 1, MAX_WORKERS as i64, None).map(|v| c.workers = v),
            "queue_high_watermark" => {
                range(name, v, 16 * 1024, 1 << 30, None).map(|v| c.queue_high = v)
            }
            "queue_low_watermark" => range(name, v, 0, 1 << 30, None).map(|v| c.queue_low = v),
            "socket_rcvbuf" => range(name, v, 0, 64 << 20, None).map(|v| c.so_rcvbuf = v),
            "socket_sndbuf" => range(name, v, 0, 64 << 20, None).map(|v| c.so_sndbuf = v),
            "max_connections" => range(name, v, 2, 1_000_000, None).map(|v| c.max_connections = v),
            "max_header_size" => range(name, v, 1024, 1 << 20, None).map(|v| c.limits.max_head = v),
            "first_request_timeout" => range(name, v, 0, 3600, None)
                .map(|v| c.first_request_timeout = std::time::Duration::from_secs(v as u64)),
            "idle_timeout" => range(name, v, 0, 86400 * 7, None)
                .map(|v| c.idle_timeout = std::time::Duration::from_secs(v as u64)),
            "auth_min_expires" => {
                range(name, v, 1, 86400 * 365, None).map(|v| c.auth_min_expires = v as u64)
            }
            "auth_max_expires" => {
                range(name, v, 1, 86400 * 365, None).map(|v| c.auth_max_expires = v as u64)
            }
            "max_transactions" => {
                range(name, v, 16, 1_000_000, None).map(|v| c.max_transactions = v as u32)
            }
            "transaction_timeout" => range(name, v, 1, 3600, None)
                .map(|v| c.transaction_timeout = std::time::Duration::from_secs(v as u64)),
            "test_mode" => range(name, v, 0, 1, None).map(|v| c.test_mode = v == 1),
            _ => Ok(()),
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    if c.listen.is_empty() {
        errors.push(ConfigError::NoListen);
    }
    if c.auth_min_expires > c.auth_max_expires {
        errors.push(ConfigError::OutOfRange {
            name: "auth_min_expires",
            value: c.auth_min_expires as i64,
            range: format!("at most auth_max_expires ({})", c.auth_max_expires),
        });
    }
    if c.queue_low >= c.queue_high {
        errors.push(ConfigError::Watermarks {
            low: c.queue_low,
            high: c.queue_high,
        });
    }
    c.limits.max_line = c.limits.max_line.min(c.limits.max_head);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CONFIG.get_or_init(|| c))
}

/// The frozen configuration (after mod_init).
pub fn get() -> Option<&'static Config> {
    CONFIG.get()
}
