//! Module parameters: declared once in [`modparams!`](crate::modparams),
//! collected while Kamailio parses `modparam(...)` lines, validated and
//! frozen in mod_init (before any fork, so every worker inherits the same
//! copy).
//!
//! The declaration gives each parameter its name, type, default, range and
//! documentation. From it come [`Param`] (one variant per parameter), the
//! [`PARAMS`] table, the setting and range checks of [`ConfigBuilder`], the
//! README's parameter table ([`readme_table`]) and, in the boundary, the
//! exported `param_export_t` table with one setter per parameter. A name
//! that is not declared is a compile error, never a silently ignored value.

use std::ffi::CStr;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;
use thiserror::Error;

/// Every module parameter, handed to the macro `$callback` as one item per
/// parameter: `doc Variant "name" kind { spec }`, where `kind` is
///
/// * `int { default: D, range: LO..=HI [, special: V => "meaning"], set: field }`:
///   an integer; out of range (and not the special value) is an error;
/// * `string { parse: f, default: "doc", set: field }`: a string, the last
///   one wins; `f(&str) -> Result<field type, ConfigError>`;
/// * `strings { parse: f, default: "doc", set: field }`: repeatable, each
///   value parsed by `f` and pushed onto the `Vec` field;
/// * `accepted {}`: an integer accepted for stock `msrp` configs, no effect.
///
/// `set` names a field of [`Config`] (a path such as `limits.max_head`);
/// integers reach it through [`FromInt`]. The doc comment (one line) is the
/// README's "meaning" column.
#[macro_export]
macro_rules! modparams {
    ($callback:ident) => {
        $callback! {
            /// `tcp:IP:PORT` the module listens on for MSRP, e.g. `tcp:0.0.0.0:2855`, `tcp:[::1]:2855`. Bound in mod_init: a busy or bad address stops Kamailio at start-up with a clear error.
            Listen "listen" strings { parse: parse_listen, default: "— (required)", set: listen }
            /// other `host` or `host:port` under which clients address the relay in To-Path (e.g. its DNS name or public address). When no alias is set, any host name with a listen port is accepted.
            Alias "alias" strings { parse: alias_name, default: "—", set: aliases }
            /// largest SEND body per forwarded chunk
            MaxChunkSize "msrp_max_chunk_size" int {
                default: 16384, range: 2048..=16_777_216,
                special: 0 => "forward chunks as received", set: max_chunk_size,
            }
            /// MSRP worker processes; each runs an event loop over the listeners
            Workers "workers" int { default: 1, range: 1..=64, set: workers }
            /// bytes queued towards one connection above which the relay stops reading the connections feeding it
            QueueHighWatermark "queue_high_watermark" int {
                default: 524_288, range: 16_384..=1_073_741_824, set: queue_high,
            }
            /// reading resumes below this; must be below the high watermark
            QueueLowWatermark "queue_low_watermark" int {
                default: 131_072, range: 0..=1_073_741_824, set: queue_low,
            }
            /// SO_RCVBUF of the relay's sockets (set on the listeners before `listen`, so windows are negotiated small); 0 = system default
            SocketRcvbuf "socket_rcvbuf" int { default: 0, range: 0..=67_108_864, set: so_rcvbuf }
            /// SO_SNDBUF of the relay's sockets; 0 = system default
            SocketSndbuf "socket_sndbuf" int { default: 0, range: 0..=67_108_864, set: so_sndbuf }
            /// connections per worker; more are refused
            MaxConnections "max_connections" int {
                default: 4096, range: 2..=1_000_000, set: max_connections,
            }
            /// largest frame head (start line + headers); larger heads close the connection
            MaxHeaderSize "max_header_size" int {
                default: 65_536, range: 1024..=1_048_576, set: limits.max_head,
            }
            /// seconds a forwarded request waits for its response, from its last byte
            TransactionTimeout "transaction_timeout" int {
                default: 30, range: 1..=3600, set: transaction_timeout,
            }
            /// capacity of the shared-memory transaction table (~220 bytes of shm each); when full, entries are tracked by their worker only and `table_full` counts it
            MaxTransactions "max_transactions" int {
                default: 16_384, range: 16..=1_000_000, set: max_transactions,
            }
            /// seconds a new connection may stay silent before it is closed (RFC 4976 §6.1); 0 = never
            FirstRequestTimeout "first_request_timeout" int {
                default: 30, range: 0..=3600, set: first_request_timeout,
            }
            /// seconds after which a connection with nothing in flight is closed (RFC 4976 §6.5); 0 = never
            IdleTimeout "idle_timeout" int { default: 3600, range: 0..=604_800, set: idle_timeout }
            /// smallest AUTH `Expires` `msrp_cmap_save()` grants; below it answers 423 with `Min-Expires`
            AuthMinExpires "auth_min_expires" int {
                default: 60, range: 1..=31_536_000, set: auth_min_expires,
            }
            /// largest AUTH `Expires`; above it 423 with `Max-Expires`; also used when the AUTH has none
            AuthMaxExpires "auth_max_expires" int {
                default: 3600, range: 1..=31_536_000, set: auth_max_expires,
            }
            /// `host:port` put in the `Use-Path` URIs `msrp_cmap_save()` hands out (e.g. the public name); also accepted as this relay's URI in To-Path
            UsePathAddr "use_path_addr" string {
                parse: use_path_host, default: "the address the AUTH came to", set: use_path_addr,
            }
            /// KEMI function to run per frame instead of `event_route[msrp:frame-in]`
            EventCallback "event_callback" string {
                parse: callback_name, default: "—", set: event_callback,
            }
            /// 1 enables `msrp_test_panic()` (test-suite only)
            TestMode "test_mode" int { default: 0, range: 0..=1, set: test_mode }
            /// accepted for stock `msrp` configs: the connection map is always on and expires its entries itself
            CmapSize "cmap_size" accepted {}
            /// accepted for stock `msrp` configs: the connection map expires its entries itself
            TimerInterval "timer_interval" accepted {}
            /// accepted for stock `msrp` configs: the SIP message is always built from the frame head
            Sipmsg "sipmsg" accepted {}
        }
    };
}

/// Bytes read from a socket per read call (bounds per-connection read memory).
pub const READ_CHUNK: usize = 256 * 1024;

/// Defaults and bounds other code names, taken from the declaration.
pub const DEFAULT_MAX_CHUNK_SIZE: usize = Param::MaxChunkSize.int_spec().default as usize;
/// Allowed range for `msrp_max_chunk_size`; 0 means "do not re-chunk".
pub const MIN_MAX_CHUNK_SIZE: usize = Param::MaxChunkSize.int_spec().min as usize;
pub const MAX_MAX_CHUNK_SIZE: usize = Param::MaxChunkSize.int_spec().max as usize;
pub const DEFAULT_WORKERS: usize = Param::Workers.int_spec().default as usize;
pub const MAX_WORKERS: usize = Param::Workers.int_spec().max as usize;
pub const DEFAULT_QUEUE_HIGH: usize = Param::QueueHighWatermark.int_spec().default as usize;
pub const DEFAULT_QUEUE_LOW: usize = Param::QueueLowWatermark.int_spec().default as usize;
pub const DEFAULT_FIRST_REQUEST_TIMEOUT: u64 = Param::FirstRequestTimeout.int_spec().default as u64;
pub const DEFAULT_IDLE_TIMEOUT: u64 = Param::IdleTimeout.int_spec().default as u64;
pub const DEFAULT_MAX_TRANSACTIONS: u32 = Param::MaxTransactions.int_spec().default as u32;
pub const DEFAULT_TRANSACTION_TIMEOUT: u64 = Param::TransactionTimeout.int_spec().default as u64;
pub const DEFAULT_MAX_CONNECTIONS: usize = Param::MaxConnections.int_spec().default as usize;

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
    #[error("{name}: expects {expected}")]
    WrongType {
        name: &'static str,
        expected: &'static str,
    },
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
    pub transaction_timeout: Duration,
    /// RFC 4976 §6.1: a new connection's first request must arrive within
    /// this (0 = no limit).
    pub first_request_timeout: Duration,
    /// RFC 4976 §6.5: idle connections are closed after this (0 = never).
    pub idle_timeout: Duration,
    /// Enables `msrp_test_panic()` (used by the test-suite to prove the
    /// FFI panic guard).
    pub test_mode: bool,
}

/// An integer parameter's default and allowed values.
#[derive(Debug, Clone, Copy)]
pub struct IntSpec {
    pub default: i64,
    pub min: i64,
    pub max: i64,
    /// A value outside `min..=max` that is allowed too, and what it means.
    pub special: Option<(i64, &'static str)>,
}

impl IntSpec {
    /// Fails the build when the default is not an allowed value or a bound
    /// is negative (every [`FromInt`] target is unsigned).
    pub const fn new(
        default: i64,
        range: std::ops::RangeInclusive<i64>,
        special: Option<(i64, &'static str)>,
    ) -> IntSpec {
        let spec = IntSpec {
            default,
            min: *range.start(),
            max: *range.end(),
            special,
        };
        assert!(spec.min >= 0 && spec.min <= spec.max, "bad modparam range");
        assert!(spec.allows(default), "modparam default out of range");
        spec
    }

    pub const fn allows(&self, v: i64) -> bool {
        (v >= self.min && v <= self.max) || matches!(self.special, Some((s, _)) if s == v)
    }

    /// The allowed values as error messages and the README show them.
    pub fn range_text(&self) -> String {
        match self.special {
            Some((s, _)) => format!("{s} or {}..={}", self.min, self.max),
            None => format!("{}..={}", self.min, self.max),
        }
    }

    fn check(&self, name: &'static str, value: i64) -> Result<i64, ConfigError> {
        if self.allows(value) {
            Ok(value)
        } else {
            Err(ConfigError::OutOfRange {
                name,
                value,
                range: self.range_text(),
            })
        }
    }
}

/// What a parameter takes.
#[derive(Debug, Clone, Copy)]
pub enum ParamKind {
    Int(IntSpec),
    /// One string; `default` documents what applies when it is not set.
    Str {
        default: &'static str,
    },
    /// A repeatable string.
    StrList {
        default: &'static str,
    },
    /// Any integer, without effect (stock `msrp` compatibility).
    Accepted,
}

impl ParamKind {
    /// Whether Kamailio hands the value over as a string (PARAM_STRING).
    pub const fn takes_string(&self) -> bool {
        matches!(self, ParamKind::Str { .. } | ParamKind::StrList { .. })
    }

    fn type_text(&self) -> &'static str {
        match self {
            ParamKind::Int(_) => "int",
            ParamKind::Str { .. } => "string",
            ParamKind::StrList { .. } => "string, repeatable",
            ParamKind::Accepted => "int, ignored",
        }
    }
}

/// One declared module parameter.
#[derive(Debug, Clone, Copy)]
pub struct ParamDecl {
    pub name: &'static str,
    /// `name` NUL-terminated, for Kamailio's tables.
    pub c_name: &'static CStr,
    pub kind: ParamKind,
    /// One line: what the parameter does.
    pub doc: &'static str,
}

/// A value Kamailio passed for a parameter.
#[derive(Debug, Clone, Copy)]
pub enum ParamValue<'a> {
    Int(i64),
    Str(&'a str),
}

/// Converts a range-checked (hence non-negative) integer parameter into the
/// type of its [`Config`] field.
pub trait FromInt {
    fn from_int(v: i64) -> Self;
}

impl FromInt for usize {
    fn from_int(v: i64) -> Self {
        usize::try_from(v.max(0)).unwrap_or(usize::MAX)
    }
}

impl FromInt for u32 {
    fn from_int(v: i64) -> Self {
        u32::try_from(v.max(0)).unwrap_or(u32::MAX)
    }
}

impl FromInt for u64 {
    fn from_int(v: i64) -> Self {
        u64::try_from(v.max(0)).unwrap_or(u64::MAX)
    }
}

impl FromInt for bool {
    fn from_int(v: i64) -> Self {
        v != 0
    }
}

/// Seconds.
impl FromInt for Duration {
    fn from_int(v: i64) -> Self {
        Duration::from_secs(u64::from_int(v))
    }
}

/// `concat!(name, "\0")` as a `&CStr`, checked at compile time.
const fn c_name(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("modparam name must not contain NUL"),
    }
}

/// `ParamKind` of a declaration item.
macro_rules! param_kind {
    (int { default: $d:expr, range: $r:expr, $(special: $s:literal => $sd:literal,)? set: $($f:ident).+ $(,)? }) => {
        ParamKind::Int(IntSpec::new($d, $r, param_kind!(@special $($s, $sd)?)))
    };
    (string { parse: $p:path, default: $d:literal, set: $($f:ident).+ $(,)? }) => {
        ParamKind::Str { default: $d }
    };
    (strings { parse: $p:path, default: $d:literal, set: $($f:ident).+ $(,)? }) => {
        ParamKind::StrList { default: $d }
    };
    (accepted {}) => {
        ParamKind::Accepted
    };
    (@special) => { None };
    (@special $s:literal, $sd:literal) => { Some(($s, $sd)) };
}

/// Stores value `$v` of `$p` into `$b` ([`ConfigBuilder`]).
macro_rules! param_set {
    ($b:ident, $p:ident, $v:ident, int { default: $d:expr, range: $r:expr, $(special: $s:literal => $sd:literal,)? set: $($f:ident).+ $(,)? }) => {
        if let Some(i) = $b.int($p, $v)? {
            $b.config.$($f).+ = FromInt::from_int(i);
        }
    };
    ($b:ident, $p:ident, $v:ident, string { parse: $parse:path, default: $d:literal, set: $($f:ident).+ $(,)? }) => {
        $b.config.$($f).+ = $parse($b.string($p, $v)?)?
    };
    ($b:ident, $p:ident, $v:ident, strings { parse: $parse:path, default: $d:literal, set: $($f:ident).+ $(,)? }) => {
        $b.config.$($f).+.push($parse($b.string($p, $v)?)?)
    };
    ($b:ident, $p:ident, $v:ident, accepted {}) => {
        $b.int($p, $v).map(drop)?
    };
}

/// Generates [`Param`], [`PARAMS`] and [`ConfigBuilder::set`] from the
/// declaration.
macro_rules! declare_params {
    ($( $(#[doc = $doc:literal])+ $id:ident $name:literal $kind:ident { $($spec:tt)* } )*) => {
        /// A declared module parameter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Param {
            $( #[doc = concat!("`", $name, "`")] $id, )*
        }

        /// Every parameter, in declaration order (`PARAMS[p as usize]`
        /// declares `p`).
        pub const PARAMS: &[ParamDecl] = &[
            $( ParamDecl {
                name: $name,
                c_name: c_name(concat!($name, "\0")),
                kind: param_kind!($kind { $($spec)* }),
                doc: concat!($($doc),+),
            }, )*
        ];

        impl Param {
            pub const ALL: &'static [Param] = &[ $(Param::$id),* ];
            pub const COUNT: usize = Param::ALL.len();

            pub const fn decl(self) -> &'static ParamDecl {
                &PARAMS[self as usize]
            }
        }

        impl ConfigBuilder {
            /// `modparam("msrp_relay", p, v)`. A string that does not parse
            /// is an error now (Kamailio refuses the modparam line); an
            /// integer out of range is kept for [`ConfigBuilder::build`],
            /// which reports all of them together.
            pub fn set(&mut self, p: Param, v: ParamValue<'_>) -> Result<(), ConfigError> {
                match p {
                    $( Param::$id => { param_set!(self, p, v, $kind { $($spec)* }); } )*
                }
                Ok(())
            }
        }
    };
}

modparams!(declare_params);

impl Param {
    /// The parameter's [`IntSpec`]; a compile error (in const context) for
    /// a parameter that is not an `int`.
    pub const fn int_spec(self) -> IntSpec {
        match self.decl().kind {
            ParamKind::Int(spec) => spec,
            _ => panic!("not an int modparam"),
        }
    }
}

/// Collects parameter values in the order Kamailio sets them.
#[derive(Debug)]
pub struct ConfigBuilder {
    config: Config,
    /// Range errors, reported together by [`ConfigBuilder::build`].
    errors: Vec<ConfigError>,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder::new()
    }
}

impl ConfigBuilder {
    /// Every parameter at its declared default.
    pub fn new() -> ConfigBuilder {
        let mut b = ConfigBuilder {
            config: Config {
                listen: Vec::new(),
                aliases: Vec::new(),
                max_transactions: 0,
                auth_min_expires: 0,
                auth_max_expires: 0,
                use_path_addr: None,
                event_callback: None,
                max_chunk_size: 0,
                workers: 0,
                queue_high: 0,
                queue_low: 0,
                so_rcvbuf: 0,
                so_sndbuf: 0,
                max_connections: 0,
                limits: msrp_core::Limits::default(),
                transaction_timeout: Duration::ZERO,
                first_request_timeout: Duration::ZERO,
                idle_timeout: Duration::ZERO,
                test_mode: false,
            },
            errors: Vec::new(),
        };
        for &p in Param::ALL {
            if let ParamKind::Int(spec) = p.decl().kind {
                // Defaults are checked at compile time (IntSpec::new).
                let _ = b.set(p, ParamValue::Int(spec.default));
            }
        }
        b
    }

    /// The integer of `v`, or `None` (error recorded) when out of range.
    fn int(&mut self, p: Param, v: ParamValue<'_>) -> Result<Option<i64>, ConfigError> {
        let d = p.decl();
        let ParamValue::Int(i) = v else {
            return Err(ConfigError::WrongType {
                name: d.name,
                expected: "an integer",
            });
        };
        match d.kind {
            ParamKind::Int(spec) => match spec.check(d.name, i) {
                Ok(i) => Ok(Some(i)),
                Err(e) => {
                    self.errors.push(e);
                    Ok(None)
                }
            },
            _ => Ok(Some(i)),
        }
    }

    fn string<'a>(&self, p: Param, v: ParamValue<'a>) -> Result<&'a str, ConfigError> {
        match v {
            ParamValue::Str(s) => Ok(s),
            ParamValue::Int(_) => Err(ConfigError::WrongType {
                name: p.decl().name,
                expected: "a string",
            }),
        }
    }

    /// Checks what single parameters cannot (a listen address, the
    /// watermarks' and AUTH bounds' order) and returns the configuration,
    /// or every error found.
    pub fn build(self) -> Result<Config, Vec<ConfigError>> {
        let ConfigBuilder {
            config: mut c,
            mut errors,
        } = self;
        if c.listen.is_empty() {
            errors.push(ConfigError::NoListen);
        }
        if c.auth_min_expires > c.auth_max_expires {
            errors.push(ConfigError::OutOfRange {
                name: Param::AuthMinExpires.decl().name,
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
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }
}

static BUILDER: Mutex<Option<ConfigBuilder>> = Mutex::new(None);
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

/// `alias`: compared case-insensitively with To-Path hosts.
fn alias_name(s: &str) -> Result<String, ConfigError> {
    Ok(s.trim().to_ascii_lowercase())
}

fn use_path_host(s: &str) -> Result<Option<String>, ConfigError> {
    Ok(Some(s.trim().to_string()))
}

/// `event_callback`: empty means "use the event route".
fn callback_name(s: &str) -> Result<Option<String>, ConfigError> {
    let v = s.trim();
    Ok((!v.is_empty()).then(|| v.to_string()))
}

/// `modparam("msrp_relay", p, v)` while Kamailio parses its configuration;
/// see [`ConfigBuilder::set`].
pub fn set(p: Param, v: ParamValue<'_>) -> Result<(), ConfigError> {
    BUILDER
        .lock()
        .get_or_insert_with(ConfigBuilder::new)
        .set(p, v)
}

/// Validates the collected parameters and freezes the configuration.
pub fn freeze() -> Result<&'static Config, Vec<ConfigError>> {
    if let Some(c) = CONFIG.get() {
        return Ok(c);
    }
    let c = BUILDER.lock().take().unwrap_or_default().build()?;
    Ok(CONFIG.get_or_init(|| c))
}

/// The frozen configuration (after mod_init).
pub fn get() -> Option<&'static Config> {
    CONFIG.get()
}

/// The README's parameter table, rendered from the declaration.
pub fn readme_table() -> String {
    let mut t =
        String::from("| name | type | default | range | meaning |\n|---|---|---|---|---|\n");
    for d in PARAMS {
        let (default, range) = match d.kind {
            ParamKind::Int(spec) => {
                let range = match spec.special {
                    Some((s, what)) => format!("`{}..={}`; `{s}` = {what}", spec.min, spec.max),
                    None => format!("`{}..={}`", spec.min, spec.max),
                };
                (format!("`{}`", spec.default), range)
            }
            ParamKind::Str { default } | ParamKind::StrList { default } => {
                (default.to_string(), "—".to_string())
            }
            ParamKind::Accepted => ("—".to_string(), "any".to_string()),
        };
        t.push_str(&format!(
            "| `{}` | {} | {default} | {range} | {} |\n",
            d.name,
            d.kind.type_text(),
            d.doc.trim()
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(params: &[(Param, ParamValue<'_>)]) -> Result<Config, Vec<ConfigError>> {
        let mut b = ConfigBuilder::new();
        b.set(Param::Listen, ParamValue::Str("tcp:127.0.0.1:2855"))
            .expect("listen");
        for (p, v) in params {
            b.set(*p, *v).expect("set");
        }
        b.build()
    }

    fn errors(params: &[(Param, ParamValue<'_>)]) -> Vec<String> {
        match built(params) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn defaults() {
        let c = built(&[]).expect("defaults are valid");
        assert_eq!(c.listen, vec!["127.0.0.1:2855".parse().expect("addr")]);
        assert!(c.aliases.is_empty());
        assert_eq!(c.max_chunk_size, 16384);
        assert_eq!(c.workers, 1);
        assert_eq!(c.queue_high, 512 * 1024);
        assert_eq!(c.queue_low, 128 * 1024);
        assert_eq!((c.so_rcvbuf, c.so_sndbuf), (0, 0));
        assert_eq!(c.max_connections, 4096);
        assert_eq!(c.limits.max_head, 65536);
        assert_eq!(c.limits.max_head, msrp_core::Limits::default().max_head);
        assert_eq!(c.transaction_timeout, Duration::from_secs(30));
        assert_eq!(c.max_transactions, 16384);
        assert_eq!(c.first_request_timeout, Duration::from_secs(30));
        assert_eq!(c.idle_timeout, Duration::from_secs(3600));
        assert_eq!((c.auth_min_expires, c.auth_max_expires), (60, 3600));
        assert_eq!(c.use_path_addr, None);
        assert_eq!(c.event_callback, None);
        assert!(!c.test_mode);
        // the named constants follow the declaration
        assert_eq!(DEFAULT_MAX_CHUNK_SIZE, c.max_chunk_size);
        assert_eq!(DEFAULT_WORKERS, c.workers);
        assert_eq!((MIN_MAX_CHUNK_SIZE, MAX_MAX_CHUNK_SIZE), (2048, 16 << 20));
        assert_eq!(MAX_WORKERS, 64);
    }

    #[test]
    fn values_reach_their_fields() {
        use ParamValue::{Int, Str};
        let c = built(&[
            (Param::Alias, Str(" Relay.Example.NET ")),
            (Param::Alias, Str("192.0.2.1:2855")),
            (Param::Listen, Str("tcp:[::1]:2856")),
            (Param::MaxChunkSize, Int(2048)),
            (Param::Workers, Int(64)),
            (Param::QueueHighWatermark, Int(65536)),
            (Param::QueueLowWatermark, Int(0)),
            (Param::SocketRcvbuf, Int(4096)),
            (Param::SocketSndbuf, Int(8192)),
            (Param::MaxConnections, Int(2)),
            (Param::MaxHeaderSize, Int(1024)),
            (Param::TransactionTimeout, Int(3600)),
            (Param::MaxTransactions, Int(16)),
            (Param::FirstRequestTimeout, Int(0)),
            (Param::IdleTimeout, Int(604_800)),
            (Param::AuthMinExpires, Int(10)),
            (Param::AuthMaxExpires, Int(20)),
            (Param::UsePathAddr, Str(" relay.example.net:2855 ")),
            (Param::EventCallback, Str(" ksr_msrp_event ")),
            (Param::TestMode, Int(1)),
            (Param::CmapSize, Int(-5)),
            (Param::TimerInterval, Int(10)),
            (Param::Sipmsg, Int(1)),
        ])
        .expect("valid");
        assert_eq!(c.aliases, vec!["relay.example.net", "192.0.2.1:2855"]);
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.listen[1], "[::1]:2856".parse().expect("addr"));
        assert_eq!(c.max_chunk_size, 2048);
        assert_eq!(c.workers, 64);
        assert_eq!((c.queue_high, c.queue_low), (65536, 0));
        assert_eq!((c.so_rcvbuf, c.so_sndbuf), (4096, 8192));
        assert_eq!(c.max_connections, 2);
        assert_eq!(c.limits.max_head, 1024);
        assert_eq!(c.limits.max_line, 1024, "max_line never above max_head");
        assert_eq!(c.transaction_timeout, Duration::from_secs(3600));
        assert_eq!(c.max_transactions, 16);
        assert_eq!(c.first_request_timeout, Duration::ZERO);
        assert_eq!(c.idle_timeout, Duration::from_secs(604_800));
        assert_eq!((c.auth_min_expires, c.auth_max_expires), (10, 20));
        assert_eq!(c.use_path_addr.as_deref(), Some("relay.example.net:2855"));
        assert_eq!(c.event_callback.as_deref(), Some("ksr_msrp_event"));
        assert!(c.test_mode);
        // the last value wins; an empty event_callback means the event route
        let c = built(&[
            (Param::Workers, Int(3)),
            (Param::Workers, Int(4)),
            (Param::EventCallback, Str("f")),
            (Param::EventCallback, Str("  ")),
        ])
        .expect("valid");
        assert_eq!(c.workers, 4);
        assert_eq!(c.event_callback, None);
    }

    #[test]
    fn special_value_zero_disables_rechunking() {
        let c = built(&[(Param::MaxChunkSize, ParamValue::Int(0))]).expect("0 allowed");
        assert_eq!(c.max_chunk_size, 0);
        assert_eq!(
            errors(&[(Param::MaxChunkSize, ParamValue::Int(1))]),
            ["msrp_max_chunk_size = 1 is out of range (0 or 2048..=16777216)"]
        );
        assert_eq!(
            errors(&[(Param::MaxChunkSize, ParamValue::Int(16_777_217))]),
            ["msrp_max_chunk_size = 16777217 is out of range (0 or 2048..=16777216)"]
        );
    }

    #[test]
    fn every_int_bound_is_enforced() {
        for &p in Param::ALL {
            let d = p.decl();
            let ParamKind::Int(spec) = d.kind else {
                continue;
            };
            for ok in [spec.min, spec.max, spec.default] {
                let r = built(&[(p, ParamValue::Int(ok))]);
                // a bound can invert the watermarks or the AUTH bounds:
                // that is not a range error of this parameter
                if let Err(e) = r {
                    assert!(
                        e.iter()
                            .all(|e| !matches!(e, ConfigError::OutOfRange { name, range, .. }
                            if *name == d.name && *range == spec.range_text())),
                        "{} = {ok}: {e:?}",
                        d.name
                    );
                }
            }
            for bad in [spec.min - 1, spec.max + 1, i64::MIN, i64::MAX] {
                if spec.allows(bad) {
                    continue;
                }
                let e = errors(&[(p, ParamValue::Int(bad))]);
                let want = format!("{} = {bad} is out of range ({})", d.name, spec.range_text());
                assert!(e.contains(&want), "{}: {e:?}", d.name);
            }
        }
    }

    #[test]
    fn out_of_range_values_are_all_reported_and_not_applied() {
        use ParamValue::Int;
        let e = errors(&[
            (Param::Workers, Int(0)),
            (Param::Workers, Int(65)),
            (Param::TestMode, Int(2)),
        ]);
        assert_eq!(
            e,
            [
                "workers = 0 is out of range (1..=64)",
                "workers = 65 is out of range (1..=64)",
                "test_mode = 2 is out of range (0..=1)",
            ]
        );
    }

    #[test]
    fn inverted_watermarks() {
        use ParamValue::Int;
        for (low, high) in [(65536, 65536), (131072, 65536)] {
            let e = errors(&[
                (Param::QueueLowWatermark, Int(low)),
                (Param::QueueHighWatermark, Int(high)),
            ]);
            assert_eq!(
                e,
                [format!(
                    "queue_low_watermark ({low}) must be below queue_high_watermark ({high})"
                )]
            );
        }
        // default low (131072) above a small high
        let e = errors(&[(Param::QueueHighWatermark, Int(16384))]);
        assert_eq!(
            e,
            ["queue_low_watermark (131072) must be below queue_high_watermark (16384)"]
        );
    }

    #[test]
    fn auth_bounds_in_order() {
        use ParamValue::Int;
        let e = errors(&[(Param::AuthMinExpires, Int(7200))]);
        assert_eq!(
            e,
            ["auth_min_expires = 7200 is out of range (at most auth_max_expires (3600))"]
        );
    }

    #[test]
    fn missing_listen() {
        let e = ConfigBuilder::new().build().expect_err("no listen");
        assert_eq!(e.len(), 1);
        assert!(matches!(e[0], ConfigError::NoListen));
        assert_eq!(
            e[0].to_string(),
            "no listen address: add modparam(\"msrp_relay\", \"listen\", \"tcp:IP:PORT\")"
        );
    }

    #[test]
    fn bad_listen_is_refused_when_set() {
        let mut b = ConfigBuilder::new();
        for bad in [
            "garbage",
            "tcp:127.0.0.1",
            "udp:127.0.0.1:2855",
            "tcp:1.2.3.4:99999",
            "",
        ] {
            let e = b.set(Param::Listen, ParamValue::Str(bad)).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("listen: {bad:?} is not of the form tcp:IP:PORT")
            );
        }
        for good in ["tcp:127.0.0.1:2855", "TCP:[::1]:2855", " 10.0.0.1:1 "] {
            b.set(Param::Listen, ParamValue::Str(good)).expect(good);
        }
        assert_eq!(b.build().expect("valid").listen.len(), 3);
    }

    #[test]
    fn wrong_value_type_is_an_error() {
        let mut b = ConfigBuilder::new();
        let e = b
            .set(Param::Workers, ParamValue::Str("2"))
            .expect_err("string for int");
        assert_eq!(e.to_string(), "workers: expects an integer");
        let e = b
            .set(Param::Listen, ParamValue::Int(2855))
            .expect_err("int for string");
        assert_eq!(e.to_string(), "listen: expects a string");
    }

    #[test]
    fn declaration_is_consistent() {
        assert_eq!(Param::COUNT, PARAMS.len());
        for (i, &p) in Param::ALL.iter().enumerate() {
            assert_eq!(p as usize, i);
            let d = p.decl();
            assert_eq!(d.c_name.to_str(), Ok(d.name));
            assert!(!d.doc.trim().is_empty(), "{} has no doc", d.name);
            assert!(
                !d.doc.contains('|') && !d.doc.contains('\n'),
                "{}: doc must fit one table cell",
                d.name
            );
            assert_eq!(
                PARAMS.iter().filter(|o| o.name == d.name).count(),
                1,
                "{} declared twice",
                d.name
            );
        }
        for name in ["cmap_size", "timer_interval", "sipmsg"] {
            assert!(
                PARAMS
                    .iter()
                    .any(|d| d.name == name && matches!(d.kind, ParamKind::Accepted)),
                "stock-compat {name} must stay accepted"
            );
        }
    }

    /// README.md's parameter table is the declaration's: names, types,
    /// defaults, ranges and meanings cannot drift.
    #[test]
    fn readme_lists_every_parameter() {
        let readme = include_str!("../../README.md");
        let table = readme_table();
        assert!(
            readme.contains(&table),
            "README.md's parameter table differs from the declaration in \
             msrp-engine/src/config.rs; replace it with:\n\n{table}"
        );
    }
}
