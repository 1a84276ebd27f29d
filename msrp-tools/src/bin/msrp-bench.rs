//! `msrp-bench`: throughput, message-rate and memory benchmark for an MSRP
//! relay (the msrp_relay Kamailio module, or any relay given by address).
//!
//! Everything is measured in one run and compared within that run (relay
//! path against a direct A->B path using the same tool, sizes and threads),
//! because absolute figures on a shared machine move from run to run while
//! ratios taken side by side stay meaningful. Large transfers also run
//! through a plain TCP proxy process (`msrp_tools::tcpproxy`), the price of
//! one more hop that only copies bytes through. See `--help`.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use msrp_tools::kamailio::{find_exe, find_module_so, Kamailio, RelayOpts};
use msrp_tools::load::{
    self, AuthedSink, Dialer, Pattern, RateCounters, Sink, SinkStats, Transfer,
};
use msrp_tools::process;
use msrp_tools::tcpproxy::ProxyChild;
use msrp_tools::tls::Certs;
use msrp_tools::Transport;

const MIB: u64 = 1024 * 1024;

const USAGE: &str = "\
msrp-bench: throughput / message-rate / memory benchmark for an MSRP relay

Large transfers run A->relay->B, A->TCP proxy->B (a child process that only
copies bytes through: the cost of any extra hop) and A->B direct, interleaved;
1 KiB SENDs run A->relay->B and A->B direct.

USAGE:
    msrp-bench (--spawn-relay | --relay HOST:PORT) [OPTIONS]

TARGET:
    --spawn-relay          start Kamailio with the msrp_relay module on free
                           127.0.0.1 ports (stopped at exit); kamailio from PATH
                           or /usr/sbin, module from --module, $MSRP_RELAY_SO or
                           libmsrp_relay.so next to this executable
    --module PATH          the module to load (with --spawn-relay)
    --max-chunk N          modparam msrp_max_chunk_size (with --spawn-relay;
                           default: the module's default, 16384)
    --workers N            modparam workers (with --spawn-relay; default 1)
    --use-path             message rate through B endpoints that AUTH at the
                           relay and get SENDs over their own connection
                           via their Use-Path (To-Path <U_B> <B>); with
                           several workers, sessions cross between them
    --modparam NAME=VALUE  one more msrp_relay modparam (with
                           --spawn-relay; repeatable; VALUE an integer or
                           a string)
    --transport T          tcp (default), tls, ws or wss: the spawned relay
                           gets one more listener of that transport, and
                           every relay phase also runs with A connecting
                           over it (B endpoints stay plain TCP), side by
                           side with plain TCP (with --spawn-relay)
    --certs DIR            certificates for tls/wss (scripts/make-certs.sh
                           makes them there if DIR/ca.pem is missing;
                           default: a temporary directory removed at exit)
    --ws-origin ORIGIN     Origin header of the ws/wss upgrades (default none)
    --relay HOST:PORT      an already running relay (no memory figures)
    --bind IP              address of the tool's B endpoints, which the relay
                           connects to (default 127.0.0.1)

WORKLOAD:
    --size SIZE            large-transfer size, one single-chunk SEND (256M)
    --small-size SIZE      size of the transfer whose memory growth is
                           compared with --size's (16M)
    --runs N               large transfers per path; the median is reported (3)
    --sessions N           parallel sessions of the message-rate test (50)
    --endpoints N          B endpoints the sessions are spread over (5)
    --msg-size SIZE        body of each message-rate SEND (1K)
    --duration SECS        length of each message-rate measurement (5)
    --quick                fast smoke run (~10 s): --size 32M --small-size 4M
                           --runs 2 --sessions 10 --duration 1.5; options given
                           explicitly still win
    -h, --help             this text

SIZE is bytes with an optional K, M or G suffix (KiB, MiB, GiB).

Exit status: 0 when every transfer and message arrived intact and the relay
kept working, 1 otherwise (data corrupted or lost, relay error or crash),
2 for bad usage. The performance targets are reported, not enforced.";

/// Command-line options.
#[derive(Debug, Clone)]
struct Opts {
    spawn: bool,
    relay: Option<String>,
    module: Option<PathBuf>,
    max_chunk: Option<i64>,
    workers: Option<i64>,
    /// The message-rate phase through AUTHed B endpoints and their
    /// Use-Paths (RFC 4976 §5) instead of the relay connecting to B.
    use_path: bool,
    /// Extra `modparam("msrp_relay", NAME, VALUE)` lines (with --spawn-relay).
    modparams: Vec<(String, String)>,
    /// The senders' second transport (tcp: none).
    transport: Transport,
    certs: Option<PathBuf>,
    ws_origin: Option<String>,
    bind: IpAddr,
    size: u64,
    small_size: u64,
    runs: usize,
    sessions: usize,
    endpoints: usize,
    msg_size: u64,
    duration: Duration,
    quick: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits = lower
        .trim_end_matches("ib")
        .trim_end_matches('b')
        .to_owned();
    let (num, mult) = match digits.chars().last() {
        Some('k') => (&digits[..digits.len() - 1], 1024),
        Some('m') => (&digits[..digits.len() - 1], MIB),
        Some('g') => (&digits[..digits.len() - 1], 1024 * MIB),
        _ => (digits.as_str(), 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size {s:?} (e.g. 1048576, 512K, 256M, 1G)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

fn parse_num<T: std::str::FromStr>(name: &str, s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{name}: bad number {s:?}"))
}

/// The spawned relay's event route: AUTH binds a session
/// (`msrp_cmap_save()`, for --use-path), everything else is relayed.
const ROUTE: &str = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; } msrp_relay();"#;

fn parse_args(args: &[String]) -> Result<Option<Opts>, String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts {
        spawn: false,
        relay: None,
        module: None,
        max_chunk: None,
        workers: None,
        use_path: false,
        modparams: Vec::new(),
        transport: Transport::Tcp,
        certs: None,
        ws_origin: None,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        size: if quick { 32 * MIB } else { 256 * MIB },
        small_size: if quick { 4 * MIB } else { 16 * MIB },
        runs: if quick { 2 } else { 3 },
        sessions: if quick { 10 } else { 50 },
        endpoints: 5,
        msg_size: 1024,
        duration: Duration::from_secs_f64(if quick { 1.5 } else { 5.0 }),
        quick,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match name {
            "-h" | "--help" => return Ok(None),
            "--quick" => {}
            "--spawn-relay" => o.spawn = true,
            "--relay" => o.relay = Some(value()?),
            "--module" => o.module = Some(PathBuf::from(value()?)),
            "--max-chunk" => o.max_chunk = Some(parse_num(name, &value()?)?),
            "--workers" => o.workers = Some(parse_num(name, &value()?)?),
            "--use-path" => o.use_path = true,
            "--modparam" => {
                let v = value()?;
                let (n, val) = v
                    .split_once('=')
                    .filter(|(n, _)| !n.trim().is_empty())
                    .ok_or_else(|| format!("--modparam {v:?}: expected NAME=VALUE"))?;
                o.modparams
                    .push((n.trim().to_owned(), val.trim().to_owned()));
            }
            "--transport" => {
                o.transport = value()?
                    .parse()
                    .map_err(|e: String| format!("--transport: {e}"))?
            }
            "--certs" => o.certs = Some(PathBuf::from(value()?)),
            "--ws-origin" => o.ws_origin = Some(value()?),
            "--bind" => o.bind = parse_num(name, &value()?)?,
            "--size" => o.size = parse_size(&value()?)?,
            "--small-size" => o.small_size = parse_size(&value()?)?,
            "--runs" => o.runs = parse_num(name, &value()?)?,
            "--sessions" => o.sessions = parse_num(name, &value()?)?,
            "--endpoints" => o.endpoints = parse_num(name, &value()?)?,
            "--msg-size" => o.msg_size = parse_size(&value()?)?,
            "--duration" => {
                let secs: f64 = parse_num(name, &value()?)?;
                if !(secs.is_finite() && secs > 0.0 && secs < 86_400.0) {
                    return Err("--duration: expected seconds > 0".into());
                }
                o.duration = Duration::from_secs_f64(secs);
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    if o.spawn == o.relay.is_some() {
        return Err("give exactly one of --spawn-relay and --relay HOST:PORT".into());
    }
    if !o.spawn
        && (o.module.is_some()
            || o.max_chunk.is_some()
            || o.workers.is_some()
            || !o.modparams.is_empty()
            || o.transport != Transport::Tcp)
    {
        return Err(
            "--module, --max-chunk, --workers, --modparam and --transport need --spawn-relay"
                .into(),
        );
    }
    if o.certs.is_some() && !o.transport.is_tls() {
        return Err("--certs needs --transport tls or wss".into());
    }
    if o.ws_origin.is_some() && !o.transport.is_ws() {
        return Err("--ws-origin needs --transport ws or wss".into());
    }
    if o.runs == 0 || o.sessions == 0 || o.endpoints == 0 {
        return Err("--runs, --sessions and --endpoints must be at least 1".into());
    }
    if o.size == 0 || o.small_size == 0 || o.msg_size == 0 {
        return Err("sizes must be at least 1 byte".into());
    }
    Ok(Some(o))
}

// ---------------------------------------------------------------------------
// Interrupts: Kamailio runs in its own process group, so a Ctrl-C on the
// terminal does not reach it; stop it ourselves.

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static RELAY_PGID: AtomicU32 = AtomicU32::new(0);
static RELAY_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only stores
        // to an atomic, which is async-signal-safe; signal(2) has no other
        // preconditions.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
    let _ = std::thread::Builder::new()
        .name("interrupt-watch".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_millis(50));
            if !INTERRUPTED.load(Ordering::SeqCst) {
                continue;
            }
            eprintln!("\ninterrupted");
            let pgid = RELAY_PGID.load(Ordering::SeqCst);
            if pgid > 1 {
                eprintln!("stopping the relay (process group {pgid})");
                let _ = process::terminate_group(pgid);
                let deadline = Instant::now() + Duration::from_secs(3);
                while process::alive(pgid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = process::kill_group(pgid);
                let dir = RELAY_DIR.lock().ok().and_then(|d| d.clone());
                if let Some(d) = dir {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
            std::process::exit(130);
        });
}

// ---------------------------------------------------------------------------
// Formatting and progress.

fn fmt_size(b: u64) -> String {
    if b >= MIB && b % MIB == 0 {
        format!("{} MiB", b / MIB)
    } else if b >= MIB {
        format!("{:.1} MiB", b as f64 / MIB as f64)
    } else if b >= 1024 && b % 1024 == 0 {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} B")
    }
}

fn fmt_kib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

fn fmt_growth(base: u64, peak: u64) -> String {
    let d = peak as i64 - base as i64;
    format!(
        "{}{:.1} MiB",
        if d < 0 { "-" } else { "+" },
        d.abs() as f64 / 1024.0
    )
}

/// "; worker RSS X -> peak Y (+Z MiB)" for a phase's progress line.
fn rss_growth(base: u64, peak: u64) -> String {
    format!(
        "; worker RSS {} -> peak {} ({})",
        fmt_kib(base),
        fmt_kib(peak),
        fmt_growth(base, peak)
    )
}

#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    Msgs,
}

/// Runs `work`; meanwhile, on a terminal, keeps one status line updated with
/// `count()` and its rate.
fn with_progress<T>(
    tty: bool,
    label: &str,
    unit: Unit,
    total: Option<u64>,
    count: &(dyn Fn() -> u64 + Sync),
    work: impl FnOnce() -> T,
) -> T {
    if !tty {
        return work();
    }
    let finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            let base = count();
            let mut last = (start, base);
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = Instant::now();
                let n = count().saturating_sub(base);
                let dt = now.duration_since(last.0).as_secs_f64();
                if dt < 0.25 {
                    continue;
                }
                let rate = (n.saturating_sub(last.1.saturating_sub(base))) as f64 / dt;
                last = (now, n + base);
                let mut line = format!("\r\x1b[K  {label}: ");
                match unit {
                    Unit::Bytes => {
                        let _ = write!(line, "{:.0} MiB", n as f64 / MIB as f64);
                        if let Some(t) = total {
                            let _ = write!(line, " / {}", fmt_size(t));
                        }
                        let _ = write!(line, "  {:.1} MB/s", rate / 1e6);
                    }
                    Unit::Msgs => {
                        let _ = write!(line, "{n} messages  {rate:.0} msg/s");
                    }
                }
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
            }
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"\r\x1b[K");
            let _ = out.flush();
        });
        let r = work();
        finished.store(true, Ordering::Relaxed);
        r
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// The relay under test.

/// ", certs DIR" for --transport tls/wss with --certs.
fn certs_dir_note(o: &Opts) -> String {
    match &o.certs {
        Some(d) if o.transport.is_tls() => format!(", certs {}", d.display()),
        _ => String::new(),
    }
}

struct Target {
    /// Where A connects to reach the relay.
    addr: SocketAddr,
    /// The relay's URI, first in every To-Path.
    uri: String,
    /// The relay's listener of --transport (not tcp), when there is one.
    other: Option<OtherTransport>,
    kamailio: Option<Kamailio>,
    description: String,
}

/// A's second way to the relay (--transport tls|ws|wss).
struct OtherTransport {
    transport: Transport,
    addr: SocketAddr,
    /// The relay's URI on that listener (first in To-Path).
    uri: String,
    dialer: Dialer,
    /// Certificates made for this run in a temporary directory.
    _certs: Option<TempCerts>,
}

/// A certificate directory made for one run, removed at exit.
struct TempCerts(PathBuf);

impl Drop for TempCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The certificates for --transport tls/wss: --certs DIR (made there when
/// missing), or a temporary directory.
fn bench_certs(o: &Opts) -> Result<(Certs, Option<TempCerts>), String> {
    let (dir, temp) = match &o.certs {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!(
                "msrp-bench-certs-{}-{}",
                std::process::id(),
                msrp_tools::ids::random_alnum(6)
            ));
            (d.clone(), Some(TempCerts(d)))
        }
    };
    let certs = Certs::make(&dir).map_err(|e| e.to_string())?;
    Ok((certs, temp))
}

impl Target {
    fn spawn(o: &Opts) -> Result<Target, String> {
        let so = match &o.module {
            Some(p) => {
                std::fs::canonicalize(p).map_err(|e| format!("--module {}: {e}", p.display()))?
            }
            None => find_module_so()?,
        };
        let mut opts = RelayOpts::default().route(ROUTE);
        let t = o.transport;
        let mut certs = None;
        if t != Transport::Tcp {
            opts = opts.listen_transport(t);
            if t.is_tls() {
                let (c, temp) = bench_certs(o)?;
                opts = opts.tls_certs(&c);
                certs = Some((c, temp));
            }
        }
        if let Some(n) = o.max_chunk {
            opts = opts.modparam_int("msrp_max_chunk_size", n);
        }
        if let Some(n) = o.workers {
            opts = opts.modparam_int("workers", n);
        }
        for (n, v) in &o.modparams {
            opts = match v.parse::<i64>() {
                Ok(i) => opts.modparam_int(n, i),
                Err(_) => opts.modparam_str(n, v),
            };
        }
        let mut k = Kamailio::try_start("msrp-bench", &so, &opts)?;
        k.set_keep_on_panic(true);
        RELAY_PGID.store(k.main_pid(), Ordering::SeqCst);
        if let Ok(mut d) = RELAY_DIR.lock() {
            *d = Some(k.dir().to_path_buf());
        }
        let version = find_exe("kamailio")
            .and_then(|k| std::process::Command::new(k).arg("-v").output().ok())
            .and_then(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .map(|l| l.trim_start_matches("version:").trim().to_owned())
            })
            .unwrap_or_else(|| "kamailio".into());
        let extra: String = o
            .modparams
            .iter()
            .map(|(n, v)| format!(", {n} {v}"))
            .collect();
        let other = match k.transport_addr(t).filter(|_| t != Transport::Tcp) {
            Some(addr) => {
                let dialer =
                    Dialer::to_test_relay(t, certs.as_ref().map(|c| &c.0), o.ws_origin.as_deref())?;
                Some(OtherTransport {
                    transport: t,
                    addr,
                    uri: t.uri("127.0.0.1", addr.port(), "bench"),
                    dialer,
                    _certs: certs.and_then(|c| c.1),
                })
            }
            None => None,
        };
        let also = match (&other, certs_dir_note(o)) {
            (Some(ot), note) => format!(
                "; A also over {} (listen {}:{}{note})",
                ot.transport, ot.transport, ot.addr
            ),
            (None, _) => String::new(),
        };
        let description = format!(
            "spawned {version} + {} (workers {}, msrp_max_chunk_size {}{extra}{also}; route: {ROUTE})",
            so.display(),
            o.workers.map_or("1 (default)".into(), |n| n.to_string()),
            o.max_chunk
                .map_or("16384 (default)".into(), |n| n.to_string()),
        );
        Ok(Target {
            addr: k.relay_addr(),
            uri: k.relay_uri("bench"),
            other,
            kamailio: Some(k),
            description,
        })
    }

    fn existing(spec: &str) -> Result<Target, String> {
        let addr = spec
            .to_socket_addrs()
            .map_err(|e| format!("--relay {spec}: {e}"))?
            .next()
            .ok_or_else(|| format!("--relay {spec}: no address"))?;
        let (host, port) = spec
            .rsplit_once(':')
            .ok_or_else(|| format!("--relay {spec}: expected HOST:PORT"))?;
        Ok(Target {
            addr,
            uri: format!("msrp://{host}:{port}/bench;tcp"),
            other: None,
            kamailio: None,
            description: format!("existing relay at {spec} ({addr})"),
        })
    }

    /// Error if the spawned relay died.
    fn check_alive(&mut self) -> Result<(), String> {
        if let Some(k) = self.kamailio.as_mut() {
            if !k.is_running() {
                return Err(format!(
                    "the relay (kamailio) exited; log tail:\n{}",
                    k.log_tail(40)
                ));
            }
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        self.kamailio
            .as_ref()
            .map(|k| format!("\nrelay log tail:\n{}", k.log_tail(30)))
            .unwrap_or_default()
    }
}

/// Memory of the relay's MSRP worker processes (summed when several).
struct Mem {
    pids: Vec<u32>,
    can_reset: bool,
}

impl Mem {
    fn new(k: &Kamailio) -> Result<Mem, String> {
        let pids = k.try_worker_pids()?;
        if pids.is_empty() {
            return Err("kamcmd core.psx lists no \"MSRP worker\" process".into());
        }
        let mut m = Mem {
            pids,
            can_reset: true,
        };
        m.can_reset = m.reset_peak();
        Ok(m)
    }

    fn sum<T: Default + std::ops::Add<Output = T>>(
        &self,
        f: fn(u32) -> Option<T>,
    ) -> Result<T, String> {
        self.pids.iter().try_fold(T::default(), |acc, p| {
            f(*p)
                .map(|v| acc + v)
                .ok_or_else(|| format!("MSRP worker {p} is gone"))
        })
    }

    fn rss(&self) -> Result<u64, String> {
        self.sum(process::rss_kib)
    }

    /// CPU seconds the workers have used so far.
    fn cpu(&self) -> Result<f64, String> {
        self.sum(process::cpu_secs)
    }

    /// "anon X MiB, shmem Y MiB": private memory vs Kamailio shared memory
    /// the workers touched (both count in RSS).
    fn breakdown(&self) -> String {
        let f = |field: &str| -> u64 {
            self.pids
                .iter()
                .filter_map(|p| process::status_kib(*p, field))
                .sum()
        };
        format!(
            "anon {}, shmem {}",
            fmt_kib(f("RssAnon")),
            fmt_kib(f("RssShmem"))
        )
    }

    fn peak(&self) -> Result<u64, String> {
        self.sum(process::peak_rss_kib)
    }

    /// Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`).
    fn reset_peak(&self) -> bool {
        self.pids
            .iter()
            .all(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok())
    }

    /// Measures the peak while `work` runs: (RSS before, peak) in KiB.
    fn during<T>(&self, work: impl FnOnce() -> Result<T, String>) -> Result<(T, u64, u64), String> {
        if self.can_reset {
            self.reset_peak();
        }
        let base = self.rss()?;
        let r = work()?;
        Ok((r, base, self.peak()?))
    }
}

// ---------------------------------------------------------------------------
// Phases.

#[derive(Clone)]
struct RateResult {
    per_s: f64,
    window: u64,
    sent: u64,
    secs: f64,
    /// MSRP workers' CPU seconds over the whole phase, when known.
    cpu: Option<f64>,
}

impl RateResult {
    /// Worker CPU microseconds per relayed message (all messages of the
    /// phase, warm-up included, against the CPU of the whole phase).
    fn cpu_us_per_msg(&self) -> Option<f64> {
        self.cpu
            .filter(|_| self.sent > 0)
            .map(|c| c * 1e6 / self.sent as f64)
    }
}

/// Where session `i` connects to and its To-Path.
type Route<'a> = dyn Fn(usize) -> (SocketAddr, Vec<String>) + Sync + 'a;

#[allow(clippy::too_many_arguments)]
fn rate_phase(
    label: &str,
    dialer: &Dialer,
    route: &Route<'_>,
    sinks: &[&Arc<SinkStats>],
    o: &Opts,
    pattern: &Pattern,
    tty: bool,
) -> Result<RateResult, String> {
    let delivered = || -> u64 {
        sinks
            .iter()
            .map(|s| s.messages.load(Ordering::Relaxed))
            .sum()
    };
    let before = delivered();
    let counters = RateCounters::default();
    let timeout = Duration::from_secs(15);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let fail = |e: String| {
        counters.stop.store(true, Ordering::SeqCst);
        if let Ok(mut f) = failure.lock() {
            f.get_or_insert(e);
        }
    };
    let sleep_unless_stopped = |d: Duration| {
        let end = Instant::now() + d;
        while !counters.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep(Duration::from_millis(20).min(end - now));
        }
    };
    let warmup = Duration::from_millis(500).min(o.duration / 4);
    let (window, secs, sent) = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(o.sessions);
        for i in 0..o.sessions {
            let (addr, to_path) = route(i);
            let (counters, fail) = (&counters, &fail);
            let spawned = std::thread::Builder::new()
                .name(format!("session-{i}"))
                .spawn_scoped(s, move || {
                    load::rate_session_with(
                        dialer, addr, to_path, o.msg_size, pattern, counters, timeout,
                    )
                    .unwrap_or_else(|e| {
                        fail(format!("session {i}: {e}"));
                        0
                    })
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    fail(format!("cannot start session thread {i}: {e}"));
                    break;
                }
            }
        }
        // All connected (or a failure), then go.
        let deadline = Instant::now() + timeout;
        while counters.ready.load(Ordering::SeqCst) < handles.len() as u64
            && !counters.stop.load(Ordering::SeqCst)
        {
            if Instant::now() >= deadline {
                fail("sessions did not connect in time".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        counters.go.store(true, Ordering::SeqCst);
        sleep_unless_stopped(warmup);
        let c0 = counters.ok.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let count = || counters.ok.load(Ordering::Relaxed);
        with_progress(tty, label, Unit::Msgs, None, &count, || {
            sleep_unless_stopped(o.duration)
        });
        let c1 = counters.ok.load(Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        counters.stop.store(true, Ordering::SeqCst);
        let mut sent = 0;
        for h in handles {
            match h.join() {
                Ok(n) => sent += n,
                Err(_) => fail("a session thread panicked".into()),
            }
        }
        (c1 - c0, secs, sent)
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(format!("{label}: {e}"));
    }
    // Every message must reach B intact.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let errors: Vec<String> = sinks.iter().flat_map(|s| s.errors()).collect();
        if !errors.is_empty() {
            return Err(format!("{label}: B: {}", errors.join("; ")));
        }
        let got = delivered() - before;
        if got == sent {
            break;
        }
        if got > sent || Instant::now() >= deadline {
            return Err(format!(
                "{label}: {sent} messages sent and answered, B received {got}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(RateResult {
        per_s: window as f64 / secs,
        window,
        sent,
        secs,
        cpu: None,
    })
}

struct Report {
    description: String,
    relay_mbs: Vec<f64>,
    direct_mbs: Vec<f64>,
    /// A->plain TCP proxy->B (the extra-hop baseline).
    proxy_mbs: Vec<f64>,
    /// (CPU seconds, bytes) over the large transfers: the relay's MSRP
    /// workers, and the TCP proxy process.
    relay_cpu: Option<(f64, u64)>,
    proxy_cpu: Option<(f64, u64)>,
    relay_chunks: u64,
    rate_relay: Option<RateResult>,
    /// Through the plain TCP proxy (its CPU per message is the floor any
    /// extra hop pays for the same sockets and syscalls).
    rate_proxy: Option<RateResult>,
    rate_direct: Option<RateResult>,
    /// --transport (not tcp): the relay with A over that transport
    /// (throughput runs, workers' (CPU seconds, bytes), chunks at B,
    /// message rate).
    other: Option<Transport>,
    relay_t_mbs: Vec<f64>,
    relay_t_cpu: Option<(f64, u64)>,
    relay_t_chunks: u64,
    rate_relay_t: Option<RateResult>,
    /// (label, RSS before, peak) in KiB.
    mem: Vec<(String, u64, u64)>,
    mem_idle: Option<(u64, String)>,
    mem_end: Option<(u64, String)>,
    mem_reset: bool,
    verified_bytes: u64,
    verified_msgs: u64,
    log_problems: Vec<String>,
    log_problem_count: usize,
    load_before: String,
    load_after: String,
}

impl Report {
    fn new(description: String) -> Report {
        Report {
            description,
            relay_mbs: Vec::new(),
            direct_mbs: Vec::new(),
            proxy_mbs: Vec::new(),
            relay_cpu: None,
            proxy_cpu: None,
            relay_chunks: 0,
            rate_relay: None,
            rate_proxy: None,
            rate_direct: None,
            other: None,
            relay_t_mbs: Vec::new(),
            relay_t_cpu: None,
            relay_t_chunks: 0,
            rate_relay_t: None,
            mem: Vec::new(),
            mem_idle: None,
            mem_end: None,
            mem_reset: false,
            verified_bytes: 0,
            verified_msgs: 0,
            log_problems: Vec::new(),
            log_problem_count: 0,
            load_before: String::new(),
            load_after: String::new(),
        }
    }
}

/// Below this much CPU time per path, CPU per GB is flagged as coarse
/// (`/proc` counts in clock ticks of 10 ms).
const MIN_CPU_SECS: f64 = 0.25;

/// Adds one transfer's CPU time and bytes to a path's total.
fn add_cpu(total: &mut Option<(f64, u64)>, secs: f64, bytes: u64) {
    let (s, b) = total.get_or_insert((0.0, 0));
    *s += secs;
    *b += bytes;
}

/// A transfer fails when nothing moves for this long.
const STALL: Duration = Duration::from_secs(20);

fn run(o: &Opts, tty: bool) -> Result<Report, String> {
    let mut target = if o.spawn {
        println!("starting Kamailio with the msrp_relay module ...");
        Target::spawn(o)?
    } else {
        Target::existing(o.relay.as_deref().unwrap_or_default())?
    };
    let r = run_phases(o, tty, &mut target);
    match r {
        Ok(mut rep) => {
            target.check_alive()?;
            if let Some(k) = &target.kamailio {
                let (problems, count) = log_problems(&k.log());
                rep.log_problems = problems;
                rep.log_problem_count = count;
            }
            Ok(rep)
        }
        Err(e) => {
            let alive = target.check_alive().err().unwrap_or_default();
            Err(format!("{e}{}\n{alive}", target.log_tail()))
        }
    }
}

fn run_phases(o: &Opts, tty: bool, target: &mut Target) -> Result<Report, String> {
    let pattern = Pattern::new(0x4d53_5250);
    let sinks: Vec<Sink> = (0..o.endpoints)
        .map(|_| Sink::start(o.bind, pattern.clone()))
        .collect::<Result<_, _>>()?;
    let b = &sinks[0];
    let via = vec![target.uri.clone()];
    let mem = match &target.kamailio {
        Some(k) => Some(Mem::new(k)?),
        None => None,
    };
    let mut rep = Report::new(target.description.clone());
    rep.mem_reset = mem.as_ref().is_some_and(|m| m.can_reset);
    rep.other = target.other.as_ref().map(|t| t.transport);
    rep.load_before = loadavg();
    let tcp = Dialer::tcp();
    println!("relay: {}", rep.description);
    println!(
        "B endpoints: {} on {} (tool threads: A senders, B receivers verifying every byte)",
        sinks.len(),
        o.bind
    );

    // Warm-up (not measured): opens the relay's connection to B.
    let warm = MIB;
    load::transfer(target.addr, &via, b, &pattern, warm, STALL)
        .map_err(|e| format!("warm-up transfer through the relay: {e}"))?;
    load::transfer(b.addr(), &[], b, &pattern, warm, STALL)
        .map_err(|e| format!("warm-up direct transfer: {e}"))?;
    // The baseline: a plain TCP proxy (a process of its own, like the
    // relay) in front of the same B endpoint.
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let proxy = ProxyChild::start(&exe, o.bind, b.addr())?;
    load::transfer(proxy.addr(), &[], b, &pattern, warm, STALL)
        .map_err(|e| format!("warm-up transfer through the TCP proxy: {e}"))?;
    rep.verified_bytes += 3 * warm;
    if let Some(ot) = &target.other {
        load::transfer_with(
            &ot.dialer,
            ot.addr,
            std::slice::from_ref(&ot.uri),
            b,
            &pattern,
            warm,
            STALL,
        )
        .map_err(|e| {
            format!(
                "warm-up transfer through the relay over {}: {e}",
                ot.transport
            )
        })?;
        rep.verified_bytes += warm;
    }
    if let Some(m) = &mem {
        rep.mem_idle = Some((m.rss()?, m.breakdown()));
    }

    let relay_addr = target.addr;
    let b_bytes = || b.stats().bytes.load(Ordering::Relaxed);
    // One large transfer from A to `to` (the relay, the proxy or B itself),
    // addressed through `path` (the relay's URI, or nothing).
    let transfer_via =
        |dialer: &Dialer, to: SocketAddr, path: &[String], size: u64, label: &str| {
            with_progress(tty, label, Unit::Bytes, Some(size), &b_bytes, || {
                load::transfer_with(dialer, to, path, b, &pattern, size, STALL)
            })
            .map_err(|e| format!("{label}: {e}"))
        };
    let transfer_to = |to: SocketAddr, path: &[String], size: u64, label: &str| {
        transfer_via(&tcp, to, path, size, label)
    };
    let relay_transfer = |size: u64, label: &str| transfer_to(relay_addr, &via, size, label);
    let show = |label: &str, t: &Transfer, mem: Option<(u64, u64)>| {
        let mut line = format!(
            "{label}: {} in {:.2} s = {:.1} MB/s ({} chunk{} at B)",
            fmt_size(t.bytes),
            t.elapsed.as_secs_f64(),
            t.mb_per_s(),
            t.chunks,
            if t.chunks == 1 { "" } else { "s" }
        );
        if let Some((base, peak)) = mem {
            line.push_str(&rss_growth(base, peak));
        }
        println!("{line}");
    };

    // 1. Memory growth: a small transfer first, then the large runs below.
    if let Some(m) = &mem {
        let label = format!("relay {} (memory)", fmt_size(o.small_size));
        let (t, base, peak) = m.during(|| relay_transfer(o.small_size, &label))?;
        show(&label, &t, Some((base, peak)));
        rep.mem
            .push((format!("{} transfer", fmt_size(o.small_size)), base, peak));
        rep.verified_bytes += t.bytes;
    }

    // 2. Throughput, relay and direct interleaved.
    let mut big_mem: Option<(u64, u64)> = None;
    for i in 1..=o.runs {
        let label = format!("relay  run {i}/{}", o.runs);
        let cpu0 = mem.as_ref().map(Mem::cpu).transpose()?;
        let (t, mm) = match &mem {
            Some(m) => {
                let (t, base, peak) = m.during(|| relay_transfer(o.size, &label))?;
                if big_mem.is_none_or(|(b0, p0)| peak.saturating_sub(base) > p0.saturating_sub(b0))
                {
                    big_mem = Some((base, peak));
                }
                (t, Some((base, peak)))
            }
            None => (relay_transfer(o.size, &label)?, None),
        };
        show(&label, &t, mm);
        if let (Some(m), Some(c0)) = (&mem, cpu0) {
            add_cpu(&mut rep.relay_cpu, m.cpu()? - c0, t.bytes);
        }
        rep.relay_mbs.push(t.mb_per_s());
        rep.relay_chunks = t.chunks;
        rep.verified_bytes += t.bytes;
        target.check_alive()?;

        // The same relay, A over --transport.
        if let Some(ot) = &target.other {
            let label = format!("relay/{:<3} run {i}/{}", ot.transport.name(), o.runs);
            let cpu0 = mem.as_ref().map(Mem::cpu).transpose()?;
            let t = transfer_via(
                &ot.dialer,
                ot.addr,
                std::slice::from_ref(&ot.uri),
                o.size,
                &label,
            )?;
            show(&label, &t, None);
            if let (Some(m), Some(c0)) = (&mem, cpu0) {
                add_cpu(&mut rep.relay_t_cpu, m.cpu()? - c0, t.bytes);
            }
            rep.relay_t_mbs.push(t.mb_per_s());
            rep.relay_t_chunks = t.chunks;
            rep.verified_bytes += t.bytes;
            target.check_alive()?;
        }

        let label = format!("proxy  run {i}/{}", o.runs);
        let cpu0 = process::cpu_secs(proxy.pid());
        let t = transfer_to(proxy.addr(), &[], o.size, &label)?;
        show(&label, &t, None);
        if let (Some(c0), Some(c1)) = (cpu0, process::cpu_secs(proxy.pid())) {
            add_cpu(&mut rep.proxy_cpu, c1 - c0, t.bytes);
        }
        rep.proxy_mbs.push(t.mb_per_s());
        rep.verified_bytes += t.bytes;

        let label = format!("direct run {i}/{}", o.runs);
        let t = transfer_to(b.addr(), &[], o.size, &label)?;
        show(&label, &t, None);
        rep.direct_mbs.push(t.mb_per_s());
        rep.verified_bytes += t.bytes;
    }
    if let Some((base, peak)) = big_mem {
        rep.mem.push((
            format!("{} transfer (worst run)", fmt_size(o.size)),
            base,
            peak,
        ));
    }

    // 3. Message rate.
    let rate_label =
        |what: &str| format!("{what} {} x {} sessions", fmt_size(o.msg_size), o.sessions);
    let show_rate = |label: &str, r: &RateResult, mem: Option<(u64, u64)>| {
        let mut line = format!(
            "{label}: {:.0} msg/s ({} round trips in {:.1} s, {:.2} ms each)",
            r.per_s,
            r.window,
            r.secs,
            o.sessions as f64 * 1000.0 / r.per_s.max(1e-9)
        );
        if let Some((base, peak)) = mem {
            line.push_str(&rss_growth(base, peak));
        }
        println!("{line}");
    };
    // --use-path: B endpoints behind the relay, reached over their AUTHed
    // connections through their Use-Paths
    let authed: Vec<AuthedSink> = if o.use_path {
        (0..o.endpoints)
            .map(|_| AuthedSink::start(relay_addr, &target.uri, pattern.clone()))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let via_relay = |i: usize| {
        if !authed.is_empty() {
            let b = &authed[i % authed.len()];
            return (
                relay_addr,
                vec![b.use_path().to_owned(), b.uri().to_owned()],
            );
        }
        let sink = &sinks[i % sinks.len()];
        let mut to = via.clone();
        to.push(sink.uri(&msrp_tools::ids::session_id()));
        (relay_addr, to)
    };
    let sink_stats: Vec<&Arc<SinkStats>> = sinks.iter().map(Sink::stats).collect();
    let relay_stats: Vec<&Arc<SinkStats>> = if authed.is_empty() {
        sink_stats.clone()
    } else {
        authed.iter().map(AuthedSink::stats).collect()
    };
    let direct = |i: usize| {
        let sink = &sinks[i % sinks.len()];
        (sink.addr(), vec![sink.uri(&msrp_tools::ids::session_id())])
    };
    let label = rate_label("relay ");
    let (r, mm) = match &mem {
        Some(m) => {
            let c0 = m.cpu()?;
            let (mut r, base, peak) =
                m.during(|| rate_phase(&label, &tcp, &via_relay, &relay_stats, o, &pattern, tty))?;
            r.cpu = Some(m.cpu()? - c0);
            rep.mem.push((
                format!("{} SENDs, {} sessions", fmt_size(o.msg_size), o.sessions),
                base,
                peak,
            ));
            (r, Some((base, peak)))
        }
        None => (
            rate_phase(&label, &tcp, &via_relay, &relay_stats, o, &pattern, tty)?,
            None,
        ),
    };
    show_rate(&label, &r, mm);
    if let Some(us) = r.cpu_us_per_msg() {
        println!("{label}: worker CPU {us:.1} us per message");
    }
    rep.verified_msgs += r.sent;
    rep.rate_relay = Some(r.clone());
    target.check_alive()?;

    // The same relay, A over --transport: the same To-Paths with the
    // relay's URI on that listener first (a Use-Path stays as handed out).
    if let Some(ot) = &target.other {
        let label = rate_label(&format!("relay/{}", ot.transport.name()));
        let via_other = |i: usize| {
            let (_, mut to) = via_relay(i);
            if authed.is_empty() {
                to[0] = ot.uri.clone();
            }
            (ot.addr, to)
        };
        let c0 = mem.as_ref().map(Mem::cpu).transpose()?;
        let mut r = rate_phase(
            &label,
            &ot.dialer,
            &via_other,
            &relay_stats,
            o,
            &pattern,
            tty,
        )?;
        if let (Some(m), Some(c0)) = (&mem, c0) {
            r.cpu = Some(m.cpu()? - c0);
        }
        show_rate(&label, &r, None);
        if let Some(us) = r.cpu_us_per_msg() {
            println!("{label}: worker CPU {us:.1} us per message");
        }
        rep.verified_msgs += r.sent;
        rep.rate_relay_t = Some(r);
        target.check_alive()?;
    }

    // Through the TCP proxy: byte-blind, so B answers A itself; the proxy
    // forwards every session to the first B endpoint.
    let label = rate_label("proxy ");
    let via_proxy = |_: usize| (proxy.addr(), vec![b.uri(&msrp_tools::ids::session_id())]);
    let c0 = process::cpu_secs(proxy.pid());
    let mut r = rate_phase(&label, &tcp, &via_proxy, &sink_stats[..1], o, &pattern, tty)?;
    if let (Some(c0), Some(c1)) = (c0, process::cpu_secs(proxy.pid())) {
        r.cpu = Some(c1 - c0);
    }
    show_rate(&label, &r, None);
    if let Some(us) = r.cpu_us_per_msg() {
        println!("{label}: proxy CPU {us:.1} us per message");
    }
    rep.verified_msgs += r.sent;
    rep.rate_proxy = Some(r);
    drop(proxy);

    let label = rate_label("direct");
    // Direct: each session connects to its B endpoint itself.
    let r = rate_phase(&label, &tcp, &direct, &sink_stats, o, &pattern, tty)?;
    show_rate(&label, &r, None);
    rep.verified_msgs += r.sent;
    rep.rate_direct = Some(r);

    if let Some(m) = &mem {
        rep.mem_end = Some((m.rss()?, m.breakdown()));
    }
    let errors: Vec<String> = sinks.iter().flat_map(|s| s.stats().errors()).collect();
    if !errors.is_empty() {
        return Err(format!("B: {}", errors.join("; ")));
    }
    rep.load_after = loadavg();
    Ok(rep)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            (v.len() == 3).then(|| v.join(" "))
        })
        .unwrap_or_else(|| "?".into())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {kernel}")
}

/// Warnings and errors in the relay's log: one example per source location
/// (`[file:line]`) with its count, and the total.
fn log_problems(log: &str) -> (Vec<String>, usize) {
    const MARKS: [&str; 6] = [
        " WARNING:",
        " ERROR:",
        " CRITICAL:",
        " ALERT:",
        " BUG:",
        "panic",
    ];
    // The cfg loads sl.so without tm: sl says so at start-up, harmlessly.
    const BENIGN: &str = "Cannot import load_tm function from tm module";
    let mut groups: Vec<(String, String, usize)> = Vec::new();
    let mut total = 0;
    for l in log.lines() {
        if !MARKS.iter().any(|m| l.contains(m)) || l.contains(BENIGN) {
            continue;
        }
        total += 1;
        let key = match (l.find('['), l.find(']')) {
            (Some(a), Some(b)) if a < b => l[a..=b].to_owned(),
            _ => l.to_owned(),
        };
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.2 += 1,
            None => groups.push((key, l.trim().to_owned(), 1)),
        }
    }
    let shown = groups
        .into_iter()
        .take(8)
        .map(|(_, line, n)| format!("{n} x {line}"))
        .collect();
    (shown, total)
}

fn summary(o: &Opts, rep: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "==== msrp-bench summary ====");
    let _ = writeln!(s, "relay:    {}", rep.description);
    let _ = writeln!(s, "machine:  {}", machine());
    let _ = writeln!(
        s,
        "load avg: {} at start, {} at end",
        rep.load_before, rep.load_after
    );
    let relay = median(&rep.relay_mbs);
    let direct = median(&rep.direct_mbs);
    let proxy = median(&rep.proxy_mbs);
    let ratio = relay / direct;
    let runs = |v: &[f64]| {
        v.iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join("/")
    };
    let _ = writeln!(
        s,
        "throughput, one {} single-chunk SEND, median of {} (runs: relay {}; TCP proxy {}; direct {}):",
        fmt_size(o.size),
        o.runs,
        runs(&rep.relay_mbs),
        runs(&rep.proxy_mbs),
        runs(&rep.direct_mbs),
    );
    let _ = writeln!(s, "  direct A->B          {direct:8.1} MB/s");
    let _ = writeln!(
        s,
        "  A->TCP proxy->B      {proxy:8.1} MB/s   (baseline: a process that only copies bytes through)"
    );
    let _ = writeln!(
        s,
        "  A->relay->B          {relay:8.1} MB/s   (B received {} chunks)",
        rep.relay_chunks
    );
    let relay_t = rep.other.map(|t| (t, median(&rep.relay_t_mbs)));
    if let Some((t, mbs)) = relay_t {
        let _ = writeln!(
            s,
            "  {:<20} {mbs:8.1} MB/s   (B received {} chunks; runs {})",
            format!("A-({t})->relay->B"),
            rep.relay_t_chunks,
            runs(&rep.relay_t_mbs)
        );
    }
    let _ = writeln!(
        s,
        "  ratio relay/direct   {ratio:8.2}        target >= 0.45: {}",
        if ratio >= 0.45 { "met" } else { "MISSED" }
    );
    let _ = writeln!(
        s,
        "  ratio proxy/direct   {:8.2}        (what any extra hop costs here)",
        proxy / direct
    );
    let _ = writeln!(s, "  ratio relay/proxy    {:8.2}", relay / proxy);
    if let Some((t, mbs)) = relay_t {
        let _ = writeln!(
            s,
            "  {:<20} {:8.2}        (A over {t} against A over tcp, same relay)",
            format!("ratio relay {t}/tcp"),
            mbs / relay
        );
    }
    if let (Some((rs, rb)), Some((ps, pb))) = (rep.relay_cpu, rep.proxy_cpu) {
        let (rc, pc) = (rs / (rb as f64 / 1e9), ps / (pb as f64 / 1e9));
        let _ = writeln!(
            s,
            "  CPU per GB, all runs relay workers {rc:.2} s, TCP proxy {pc:.2} s (relay/proxy {:.2}){}",
            rc / pc,
            if rs.min(ps) < MIN_CPU_SECS {
                " (coarse: under 0.25 s of CPU measured, /proc counts 10 ms ticks)"
            } else {
                ""
            }
        );
        if let (Some(t), Some((ts, tb))) = (rep.other, rep.relay_t_cpu) {
            let tc = ts / (tb as f64 / 1e9);
            let _ = writeln!(
                s,
                "  CPU per GB, all runs relay workers with A over {t} {tc:.2} s ({t}/tcp {:.2}){}",
                tc / rc,
                if ts < MIN_CPU_SECS {
                    " (coarse: under 0.25 s of CPU measured)"
                } else {
                    ""
                }
            );
        }
    }
    if let (Some(rr), Some(rd)) = (&rep.rate_relay, &rep.rate_direct) {
        let _ = writeln!(
            s,
            "message rate, {} SEND + 200 round trips, {} sessions over {} B endpoints, {:.1} s:",
            fmt_size(o.msg_size),
            o.sessions,
            o.endpoints,
            o.duration.as_secs_f64()
        );
        let _ = writeln!(s, "  direct A->B          {:8.0} msg/s", rd.per_s);
        let _ = writeln!(s, "  A->relay->B          {:8.0} msg/s", rr.per_s);
        if let (Some(t), Some(rt)) = (rep.other, &rep.rate_relay_t) {
            let _ = writeln!(
                s,
                "  {:<20} {:8.0} msg/s",
                format!("A-({t})->relay->B"),
                rt.per_s
            );
        }
        if let Some(rp) = &rep.rate_proxy {
            let _ = writeln!(s, "  A->TCP proxy->B      {:8.0} msg/s", rp.per_s);
        }
        let coarse = |r: &RateResult| {
            if r.cpu.unwrap_or(0.0) < MIN_CPU_SECS {
                " (coarse: under 0.25 s of CPU measured)"
            } else {
                ""
            }
        };
        if let Some(us) = rr.cpu_us_per_msg() {
            let _ = writeln!(
                s,
                "  CPU per message: relay worker {us:6.1} us{}",
                coarse(rr)
            );
            if let (Some(t), Some((rt, tus))) = (
                rep.other,
                rep.rate_relay_t
                    .as_ref()
                    .and_then(|rt| rt.cpu_us_per_msg().map(|u| (rt, u))),
            ) {
                let _ = writeln!(
                    s,
                    "                   {:<12} {tus:6.1} us{} ({t}/tcp {:.2})",
                    format!("relay, {t}"),
                    coarse(rt),
                    tus / us
                );
            }
            if let Some((rp, pus)) = rep
                .rate_proxy
                .as_ref()
                .and_then(|rp| rp.cpu_us_per_msg().map(|p| (rp, p)))
            {
                let _ = writeln!(
                    s,
                    "                   TCP proxy    {pus:6.1} us{} (relay/proxy {:.2})",
                    coarse(rp),
                    us / pus
                );
            }
        }
        let _ = writeln!(
            s,
            "  ratio relay/direct   {:8.2}",
            rr.per_s / rd.per_s.max(1e-9)
        );
    }
    if !rep.mem.is_empty() {
        let _ = writeln!(
            s,
            "relay memory (MSRP worker VmHWM{}; growth over RSS at phase start):",
            if rep.mem_reset {
                ", reset per phase"
            } else {
                " since start"
            }
        );
        if let Some((k, b)) = &rep.mem_idle {
            let _ = writeln!(
                s,
                "  idle                           RSS  {:>9} ({b})",
                fmt_kib(*k)
            );
        }
        for (label, base, peak) in &rep.mem {
            let _ = writeln!(
                s,
                "  {label:<30} peak {:>9} ({})",
                fmt_kib(*peak),
                fmt_growth(*base, *peak)
            );
        }
        if let Some((k, b)) = &rep.mem_end {
            let _ = writeln!(
                s,
                "  after all                      RSS  {:>9} ({b})",
                fmt_kib(*k)
            );
        }
        if rep.mem.len() >= 2 {
            let g = |i: usize| rep.mem[i].2 as i64 - rep.mem[i].1 as i64;
            let (small, big) = (g(0), g(1));
            let flat = big <= small.max(0) + 4096;
            let _ = writeln!(
                s,
                "  target flat: {} growth {:+.1} MiB vs {} growth {:+.1} MiB: {}",
                fmt_size(o.size),
                big as f64 / 1024.0,
                fmt_size(o.small_size),
                small as f64 / 1024.0,
                if flat { "met" } else { "MISSED" }
            );
        }
    }
    let _ = writeln!(
        s,
        "data:     every body byte verified at B ({} in large transfers, {} messages); none lost",
        fmt_size(rep.verified_bytes),
        rep.verified_msgs
    );
    if rep.log_problem_count > 0 {
        let _ = writeln!(
            s,
            "relay log: {} warning/error lines (count x first line, per source location):",
            rep.log_problem_count
        );
        for l in &rep.log_problems {
            let _ = writeln!(s, "  {l}");
        }
    } else if rep.description.starts_with("spawned") {
        let _ = writeln!(s, "relay log: no warnings or errors");
    }
    s
}

/// `msrp-bench soak [--duration SECONDS] [--workers N] [--module PATH]`:
/// see `msrp_tools::soak`. Exits 1 when anything grew, was lost or was
/// reported wrongly.
fn soak_main(args: &[String]) -> ExitCode {
    let mut duration = Duration::from_secs(3600);
    let mut workers = 1;
    let mut module = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next();
        let parsed = match (a.as_str(), v) {
            ("--duration", Some(v)) => v.parse().map(|s| duration = Duration::from_secs(s)).ok(),
            ("--workers", Some(v)) => v.parse().map(|n| workers = n).ok(),
            ("--module", Some(v)) => {
                module = Some(PathBuf::from(v));
                Some(())
            }
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("msrp-bench soak: bad option {a} (use --duration SECONDS, --workers N, --module PATH)");
            return ExitCode::from(2);
        }
    }
    let so = match module.map_or_else(find_module_so, Ok) {
        Ok(so) => so,
        Err(e) => {
            eprintln!("msrp-bench soak: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "soak: {} s, {workers} worker(s), {}",
        duration.as_secs(),
        so.display()
    );
    match msrp_tools::soak::run(&so, duration, workers) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("soak FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(msrp_tools::tcpproxy::CHILD_ARG) {
        return match msrp_tools::tcpproxy::child_main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("msrp-bench {}: {e}", msrp_tools::tcpproxy::CHILD_ARG);
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some("soak") {
        return soak_main(&args[1..]);
    }
    let o = match parse_args(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("msrp-bench: {e}\n(see msrp-bench --help)");
            return ExitCode::from(2);
        }
    };
    install_interrupt_handler();
    let tty = std::io::stdout().is_terminal();
    if o.quick {
        println!("quick run (small sizes and durations): figures are only indicative");
    }
    let started = Instant::now();
    match run(&o, tty) {
        Ok(rep) => {
            println!();
            print!("{}", summary(&o, &rep));
            println!("(total {:.0} s)", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(_) if INTERRUPTED.load(Ordering::SeqCst) => {
            // The interrupt watcher is stopping the relay and exits.
            std::thread::sleep(Duration::from_secs(10));
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("msrp-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("1K").unwrap(), 1024);
        assert_eq!(parse_size("256M").unwrap(), 256 * MIB);
        assert_eq!(parse_size("256MiB").unwrap(), 256 * MIB);
        assert_eq!(parse_size("1g").unwrap(), 1024 * MIB);
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn options() {
        let o = parse_args(&args("--spawn-relay --quick --runs 5"))
            .unwrap()
            .unwrap();
        assert!(o.spawn && o.quick);
        assert_eq!(o.runs, 5);
        assert_eq!(o.size, 32 * MIB);
        let o = parse_args(&args("--relay 127.0.0.1:2855 --size=1M --duration 0.5"))
            .unwrap()
            .unwrap();
        assert_eq!(o.size, MIB);
        assert_eq!(o.duration, Duration::from_millis(500));
        assert!(parse_args(&args("--size 1M")).is_err());
        assert!(parse_args(&args("--relay h:1 --spawn-relay")).is_err());
        assert!(parse_args(&args("--relay h:1 --max-chunk 4096")).is_err());
        assert!(parse_args(&args("--spawn-relay --bogus")).is_err());
        assert!(parse_args(&args("--help")).unwrap().is_none());
    }

    #[test]
    fn transport_options() {
        let o = parse_args(&args(
            "--spawn-relay --transport wss --certs /tmp/c --ws-origin https://a.example",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(o.transport, Transport::Wss);
        assert_eq!(o.certs, Some(PathBuf::from("/tmp/c")));
        assert_eq!(o.ws_origin.as_deref(), Some("https://a.example"));
        let o = parse_args(&args("--spawn-relay")).unwrap().unwrap();
        assert_eq!(o.transport, Transport::Tcp);
        assert!(parse_args(&args("--spawn-relay --transport udp")).is_err());
        assert!(parse_args(&args("--relay h:1 --transport tls")).is_err());
        assert!(parse_args(&args("--spawn-relay --transport ws --certs /tmp/c")).is_err());
        assert!(parse_args(&args("--spawn-relay --transport tls --ws-origin x")).is_err());
        assert!(parse_args(&args("--spawn-relay --certs /tmp/c")).is_err());
    }

    #[test]
    fn certs_and_dialers_for_the_transports() {
        // --certs DIR: made there (and kept).
        let dir = std::env::temp_dir().join(format!(
            "msrp-bench-test-certs-{}",
            msrp_tools::ids::random_alnum(8)
        ));
        let mut o = parse_args(&args("--spawn-relay --transport tls"))
            .unwrap()
            .unwrap();
        o.certs = Some(dir.clone());
        let (certs, temp) = bench_certs(&o).unwrap();
        assert!(temp.is_none());
        assert!(dir.join("relay.pem").is_file());
        assert!(certs_dir_note(&o).contains(&dir.display().to_string()));
        let d = Dialer::to_test_relay(Transport::Tls, Some(&certs), None).unwrap();
        assert_eq!(d.transport(), Transport::Tls);
        assert!(Dialer::to_test_relay(Transport::Wss, None, None).is_err());
        assert_eq!(
            Dialer::to_test_relay(Transport::Ws, None, Some("https://o"))
                .unwrap()
                .transport(),
            Transport::Ws
        );
        std::fs::remove_dir_all(&dir).unwrap();
        // No --certs: a temporary directory, removed with its guard.
        o.certs = None;
        let (certs, temp) = bench_certs(&o).unwrap();
        assert!(certs.ca().is_file());
        drop(temp);
        assert!(!certs.dir().exists());
    }

    fn rate(per_s: f64, sent: u64, cpu: f64) -> RateResult {
        RateResult {
            per_s,
            window: sent,
            sent,
            secs: 1.0,
            cpu: Some(cpu),
        }
    }

    #[test]
    fn summary_shows_the_other_transport_beside_tcp() {
        let o = parse_args(&args("--spawn-relay --transport tls --runs 2"))
            .unwrap()
            .unwrap();
        let mut rep = Report::new("spawned test".into());
        rep.relay_mbs = vec![1000.0, 1200.0];
        rep.direct_mbs = vec![3000.0, 3000.0];
        rep.proxy_mbs = vec![1500.0, 1500.0];
        rep.relay_cpu = Some((2.0, 2_000_000_000));
        rep.proxy_cpu = Some((1.0, 2_000_000_000));
        rep.relay_chunks = 16384;
        rep.other = Some(Transport::Tls);
        rep.relay_t_mbs = vec![500.0, 700.0];
        rep.relay_t_cpu = Some((3.0, 2_000_000_000));
        rep.relay_t_chunks = 16384;
        rep.rate_relay = Some(rate(20000.0, 100_000, 3.0));
        rep.rate_relay_t = Some(rate(10000.0, 50_000, 3.0));
        rep.rate_direct = Some(rate(40000.0, 200_000, 0.0));
        let s = summary(&o, &rep);
        assert!(
            s.contains(
                "A-(tls)->relay->B       600.0 MB/s   (B received 16384 chunks; runs 500/700)"
            ),
            "{s}"
        );
        assert!(s.contains("ratio relay tls/tcp      0.55"), "{s}");
        assert!(
            s.contains("relay workers with A over tls 1.50 s (tls/tcp 1.50)"),
            "{s}"
        );
        assert!(s.contains("A-(tls)->relay->B       10000 msg/s"), "{s}");
        assert!(s.contains("relay, tls     60.0 us"), "{s}");
        assert!(s.contains("(tls/tcp 2.00)"), "{s}");
        // Without --transport none of it.
        rep.other = None;
        let s = summary(&o, &rep);
        assert!(!s.contains("tls"), "{s}");
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
    }
}
