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

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;
use thiserror::Error;

pub use crate::kind::Kind;

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
            /// `PROTO:IP:PORT` the module listens on for MSRP; PROTO is `tcp`, `tls` (MSRP over TLS, `msrps`), `ws` or `wss` (MSRP over WebSocket, RFC 7977), e.g. `tcp:0.0.0.0:2855`, `tls:[::1]:2856`, `wss:0.0.0.0:443`. A `tls:`/`wss:` listener may follow with its own `;verify_client=` (`off`, `optional`, `required`), `;ca_list=FILE` and `;min_version=` (`1.2`, `1.3`) (else the `tls_*` values), e.g. `tls:0.0.0.0:2856;verify_client=required`. Bound in mod_init: a busy or bad address stops Kamailio at start-up with a clear error.
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
            /// connections per worker; more are refused (each also needs a file descriptor: see "Scale")
            MaxConnections "max_connections" int {
                default: 65_536, range: 2..=1_000_000, set: max_connections,
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
            /// seconds a frame head may take from its first byte, and a body may go without a byte while the relay reads it; longer closes the connection (a SEND cut short gets its REPORT first); 0 = never
            FrameTimeout "frame_timeout" int { default: 30, range: 0..=3600, set: frame_timeout }
            /// smallest AUTH `Expires` `msrp_cmap_save()` grants; below it answers 423 with `Min-Expires`
            AuthMinExpires "auth_min_expires" int {
                default: 60, range: 1..=31_536_000, set: auth_min_expires,
            }
            /// largest AUTH `Expires`; above it 423 with `Max-Expires`; also used when the AUTH has none
            AuthMaxExpires "auth_max_expires" int {
                default: 3600, range: 1..=31_536_000, set: auth_max_expires,
            }
            /// `host:port` put in the `Use-Path` URIs `msrp_cmap_save()` hands out (e.g. the public name); for clients on `tls:`/`ws:`/`wss:` listeners its host with that listener's port (`msrps://` and `;ws` as the transport asks); also accepted as this relay's URI in To-Path
            UsePathAddr "use_path_addr" string {
                parse: use_path_host, default: "the address the AUTH came to", set: use_path_addr,
            }
            /// KEMI function to run per frame instead of `event_route[msrp:frame-in]`, and per ended session instead of `event_route[msrp:session-end]` (its argument says which)
            EventCallback "event_callback" string {
                parse: callback_name, default: "—", set: event_callback,
            }
            /// PEM file with the relay's certificate chain (leaf first), served on `tls:` and `wss:` listeners and presented as client certificate to `msrps://` next hops (mutual TLS between relays)
            TlsCertificate "tls_certificate" string {
                parse: file_path, default: "— (required with tls:/wss: listeners)", set: tls.certificate,
            }
            /// PEM file with the private key of `tls_certificate` (PKCS#8, PKCS#1 or SEC1)
            TlsPrivateKey "tls_private_key" string {
                parse: file_path, default: "— (required with tls_certificate)", set: tls.private_key,
            }
            /// PEM bundle of the CAs that sign acceptable peer certificates: TLS clients (with `tls_verify_client`) and `msrps://` next hops
            TlsCaList "tls_ca_list" string {
                parse: file_path, default: "/etc/ssl/certs/ca-certificates.crt for next hops; none for clients", set: tls.ca_list,
            }
            /// another certificate, for TLS clients that ask for server name NAME (SNI): `NAME=CERT_FILE;key=KEY_FILE`, e.g. `chat.example.com=/etc/kamailio/msrp/chat.pem;key=/etc/kamailio/msrp/chat.key`; the certificate must carry NAME; clients without SNI or asking for another name get `tls_certificate`
            TlsSniCert "tls_sni_cert" strings {
                parse: sni_cert, default: "— (tls_certificate for every name)", set: tls.sni,
            }
            /// client certificates on `tls:`/`wss:` listeners that do not set their own `;verify_client=`: `off` (not asked for; what browsers need), `optional` (asked for, verified against `tls_ca_list` when sent), `required` (connections without a valid one fail the handshake)
            TlsVerifyClient "tls_verify_client" string {
                parse: verify_client, default: "off", set: tls.verify_client,
            }
            /// lowest TLS version accepted and offered: `1.2` or `1.3` (a listener's `;min_version=` overrides it)
            TlsMinVersion "tls_min_version" string {
                parse: tls_version, default: "1.2", set: tls.min_version,
            }
            /// an `Origin` WebSocket upgrades may come from (exact match, e.g. `https://chat.example.com`); when none is set any origin is accepted
            WsAllowedOrigins "ws_allowed_origins" strings {
                parse: origin, default: "— (any origin)", set: ws_origins,
            }
            /// largest WebSocket message (one MSRP chunk, RFC 7977) a `ws:`/`wss:` client may send, bytes; larger ones close the connection with 1009
            WsMaxMessageSize "ws_max_message_size" int {
                default: 16_777_216, range: 1024..=1_073_741_824,
                special: 0 => "no limit", set: ws_max_message,
            }
            /// bytes per second read from each client connection (MSRP bytes, after TLS/WebSocket decoding; at most one second of burst): a faster sender is read slower and held back by TCP; `msrp_set_read_rate()` sets it per connection from the script
            MaxReadRate "max_read_rate" int {
                default: 0, range: 1024..=1_073_741_824,
                special: 0 => "no limit", set: max_read_rate,
            }
            /// failed AUTHs (the script answered 401 or 403 to an AUTH that carried credentials) after which the relay closes the connection, once that answer is written (RFC 4976 §6.3); a 2xx answer to an AUTH starts the count again
            MaxAuthFailures "max_auth_failures" int {
                default: 3, range: 1..=1000,
                special: 0 => "never close", set: max_auth_failures,
            }
            /// `IP` or `IP:PORT` of the DNS server next-hop host names are resolved with (port 53 by default), instead of the `nameserver`s of `/etc/resolv.conf`; `/etc/hosts` and the search list still apply
            DnsServer "dns_server" string {
                parse: dns_server, default: "the servers of /etc/resolv.conf", set: dns.server,
            }
            /// seconds a next-hop name lookup may take (all servers and attempts); the request waits meanwhile, then fails as unreachable (REPORT 408)
            DnsTimeout "dns_timeout" int { default: 5, range: 1..=60, set: dns.timeout }
            /// name lookups in flight at once per worker; more names wait in a queue (at most `dns_timeout`)
            DnsConcurrency "dns_concurrency" int { default: 16, range: 1..=1024, set: dns.concurrency }
            /// longest time, seconds, a failed lookup (NXDOMAIN, no answer) is remembered; NXDOMAIN is remembered for the zone's negative TTL when shorter
            DnsNegativeTtl "dns_negative_ttl" int { default: 5, range: 0..=3600, set: dns.negative_ttl }
            /// largest MSRP message (all chunks of a Message-ID) a connection may send, bytes; a SEND whose Byte-Range total, or whose bytes so far, exceed it gets 413 and is not forwarded further (RFC 4975 §10); `msrp_set_max_message_size()` sets it per connection
            MaxMessageSize "max_message_size" int {
                default: 0, range: 1..=2_147_483_647,
                special: 0 => "no limit", set: max_message_size,
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
    #[error("listen: '{0}' is not of the form PROTO:IP:PORT (PROTO tcp, tls, ws or wss)")]
    BadListen(String),
    #[error("{name}: '{value}' is not one of {allowed}")]
    BadChoice {
        name: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("listen {0}: a tls:/wss: listener needs tls_certificate and tls_private_key")]
    TlsNeedsCertificate(String),
    #[error("listen {listen}: option {option} is not one of {allowed}")]
    BadListenOption {
        listen: String,
        option: String,
        allowed: &'static str,
    },
    #[error("listen {0}: verify_client=, ca_list= and min_version= are for tls:/wss: listeners")]
    TlsOptionsOnPlain(String),
    #[error(
        "listen {0}: verify_client needs ca_list= or tls_ca_list (the CAs client certificates are checked against)"
    )]
    ListenVerifyNeedsCa(String),
    #[error("tls_sni_cert: '{0}' is not NAME=CERT_FILE;key=KEY_FILE")]
    BadSniCert(String),
    #[error("tls_sni_cert needs tls_certificate (served to clients without SNI)")]
    SniNeedsCertificate,
    #[error("tls_certificate and tls_private_key go together: set both")]
    TlsKeyPair,
    #[error(
        "tls_verify_client {0} needs tls_ca_list (the CAs client certificates are checked against)"
    )]
    VerifyNeedsCa(&'static str),
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
    pub listen: Vec<Listen>,
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
    /// A frame head must complete, and a body keep moving, within this
    /// (0 = no limit): a peer cannot pin a connection with a trickle.
    pub frame_timeout: Duration,
    /// Enables `msrp_test_panic()` (used by the test-suite to prove the
    /// FFI panic guard).
    pub test_mode: bool,
    /// Certificates and verification for `tls:`/`wss:` listeners and
    /// `msrps://` next hops.
    pub tls: TlsSettings,
    /// Allowed WebSocket `Origin`s (empty: any).
    pub ws_origins: Vec<String>,
    /// Largest WebSocket message a client may send (0: no limit).
    pub ws_max_message: usize,
    /// Bytes per second read from each accepted connection (0: no limit).
    pub max_read_rate: u64,
    /// Failed AUTHs that close a connection (0: never).
    pub max_auth_failures: u32,
    /// Next-hop name resolution (`dns_*`).
    pub dns: DnsConfig,
    /// Largest message a connection may send (0: no limit), until the
    /// script sets another for it.
    pub max_message_size: u64,
}

/// A listening address, the transport spoken on it and (`tls:`/`wss:`)
/// its own TLS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub tls: ListenTls,
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}{}", self.kind.name(), self.addr, self.tls)
    }
}

mod decl;
mod dns;
mod tls;
mod values;

pub use decl::readme_table;
pub use values::parse_listen;
use values::{alias_name, callback_name, use_path_host};

pub use decl::{FromInt, IntSpec, Param, ParamDecl, ParamKind, ParamValue, PARAMS};
use dns::dns_server;
pub use dns::DnsConfig;
use tls::{check_tls, file_path, origin, sni_cert, tls_version, verify_client};
pub use tls::{ListenTls, ServerPolicy, SniCert, TlsSettings, TlsVersion, VerifyClient};

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
                frame_timeout: Duration::ZERO,
                test_mode: false,
                tls: TlsSettings::default(),
                ws_origins: Vec::new(),
                ws_max_message: 0,
                max_read_rate: 0,
                max_auth_failures: 0,
                dns: DnsConfig::default(),
                max_message_size: 0,
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
        errors.extend(check_tls(&c));
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

#[cfg(test)]
mod tests;
