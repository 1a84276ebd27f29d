//! The command line (clap derive): every option with its doc, which
//! `msrp-bench --help` lists, the `soak` subcommand, and the rules across
//! options that attributes do not express (checked in [`Opts::from_args`]).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use msrp_tools::Transport;

pub const MIB: u64 = 1024 * 1024;

const ABOUT: &str = "\
msrp-bench: throughput / message-rate / memory benchmark for an MSRP relay

Large transfers run A->relay->B, A->TCP proxy->B (a child process that only
copies bytes through: the cost of any extra hop) and A->B direct, interleaved;
1 KiB SENDs run A->relay->B and A->B direct.";

const USAGE: &str = "\
msrp-bench (--spawn-relay | --relay HOST:PORT) [OPTIONS]
       msrp-bench soak [--duration SECONDS] [--workers N] [--module PATH]";

const AFTER_HELP: &str = "\
SIZE is bytes with an optional K, M or G suffix (KiB, MiB, GiB).

Exit status: 0 when every transfer and message arrived intact and the relay
kept working, 1 otherwise (data corrupted or lost, relay error or crash),
2 for bad usage. The performance targets are reported, not enforced.";

#[derive(Debug, Parser)]
#[command(
    name = "msrp-bench",
    about = ABOUT,
    override_usage = USAGE,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub bench: BenchArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mixed load against a spawned Kamailio for --duration seconds.
    ///
    /// TCP, TLS and WSS traffic, REPORTs and bad peers (see
    /// msrp_tools::soak); exits 1 when memory, descriptors, connections or
    /// the transaction table grew, or a message or REPORT was lost,
    /// corrupted or duplicated.
    Soak(SoakArgs),
}

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Length of the run.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub duration: u64,
    /// modparam workers of the spawned relay.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: i64,
    /// The module to load (default: $MSRP_RELAY_SO or libmsrp_relay.so
    /// next to this executable).
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
}

/// The benchmark's options as given; [`Opts::from_args`] applies the
/// --quick defaults and checks them.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Start Kamailio with the msrp_relay module on free 127.0.0.1 ports
    /// (stopped at exit); kamailio from PATH or /usr/sbin, module from
    /// --module, $MSRP_RELAY_SO or libmsrp_relay.so next to this executable.
    #[arg(long, help_heading = "Target")]
    pub spawn_relay: bool,
    /// The module to load (with --spawn-relay).
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    pub module: Option<PathBuf>,
    /// modparam msrp_max_chunk_size (with --spawn-relay; default: the
    /// module's default, 16384).
    #[arg(long, value_name = "N", help_heading = "Target")]
    pub max_chunk: Option<i64>,
    /// modparam workers (with --spawn-relay; default 1).
    #[arg(long, value_name = "N", help_heading = "Target")]
    pub workers: Option<i64>,
    /// Message rate through B endpoints that AUTH at the relay and get
    /// SENDs over their own connection via their Use-Path (To-Path <U_B>
    /// <B>); with several workers, sessions cross between them.
    #[arg(long, help_heading = "Target")]
    pub use_path: bool,
    /// With --use-path and --workers 2 or more: every session crosses
    /// workers (A's connection is redialled until another worker than its
    /// B endpoint's accepted it; B chosen among the endpoints by worker)
    #[arg(long, help_heading = "Target")]
    pub cross: bool,
    /// One more msrp_relay modparam (with --spawn-relay; repeatable; VALUE
    /// an integer or a string).
    #[arg(long = "modparam", value_name = "NAME=VALUE", value_parser = parse_modparam, help_heading = "Target")]
    pub modparams: Vec<(String, String)>,
    /// tcp (default), tls, ws or wss, or several separated by commas
    /// (e.g. tls,wss): the spawned relay gets one more listener of each,
    /// and every relay phase also runs with A connecting over each (B
    /// endpoints stay plain TCP), side by side with plain TCP (with
    /// --spawn-relay).
    #[arg(long, value_name = "T", value_parser = parse_transport, value_delimiter = ',', help_heading = "Target")]
    pub transport: Vec<Transport>,
    /// Certificates for tls/wss (scripts/make-certs.sh makes them there if
    /// DIR/ca.pem is missing; default: a temporary directory removed at
    /// exit).
    #[arg(long, value_name = "DIR", help_heading = "Target")]
    pub certs: Option<PathBuf>,
    /// Origin header of the ws/wss upgrades (default none).
    #[arg(long, value_name = "ORIGIN", help_heading = "Target")]
    pub ws_origin: Option<String>,
    /// An already running relay (no memory figures).
    #[arg(long, value_name = "HOST:PORT", help_heading = "Target")]
    pub relay: Option<String>,
    /// Address of the tool's B endpoints, which the relay connects to.
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST), help_heading = "Target")]
    pub bind: IpAddr,
    /// Large-transfer size, one single-chunk SEND [default: 256M; --quick 32M].
    #[arg(long, value_name = "SIZE", value_parser = parse_nonzero_size, help_heading = "Workload")]
    pub size: Option<u64>,
    /// Size of the transfer whose memory growth is compared with --size's
    /// [default: 16M; --quick 4M].
    #[arg(long, value_name = "SIZE", value_parser = parse_nonzero_size, help_heading = "Workload")]
    pub small_size: Option<u64>,
    /// Large transfers per path; the median is reported [default: 3;
    /// --quick 2].
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Workload")]
    pub runs: Option<usize>,
    /// Message-rate rounds: the relay (and the relay over --transport) and
    /// the TCP proxy alternate this many times; ratios to the proxy are
    /// medians of the per-round ratios [default: 3; --quick 1].
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Workload")]
    pub rounds: Option<usize>,
    /// Parallel sessions of the message-rate test [default: 50; --quick 10].
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Workload")]
    pub sessions: Option<usize>,
    /// B endpoints the sessions are spread over.
    #[arg(long, value_name = "N", value_parser = parse_count, default_value = "5", help_heading = "Workload")]
    pub endpoints: usize,
    /// Body of each message-rate SEND.
    #[arg(long, value_name = "SIZE", value_parser = parse_nonzero_size, default_value = "1K", help_heading = "Workload")]
    pub msg_size: u64,
    /// Length of each message-rate measurement [default: 5; --quick 1.5].
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = "Workload")]
    pub duration: Option<Duration>,
    /// Scale phase only: N idle AUTHed sessions (over --transport when
    /// given, else tcp) held by child processes, with --sessions active
    /// pairs measured before, during and after (see README "Scale").
    #[arg(long, value_name = "N", help_heading = "Scale")]
    pub idle: Option<usize>,
    /// Idle sessions per child process (each must stay under its
    /// open-files limit).
    #[arg(long, value_name = "N", value_parser = parse_count, default_value = "15000", help_heading = "Scale")]
    pub idle_per_client: usize,
    /// Source addresses 127.0.0.2 .. 127.0.0.(N+1) the idle sessions are
    /// spread over (one address reaches one relay port from ~28,000
    /// ephemeral ports) [default: one per 20,000 sessions].
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Scale")]
    pub idle_sources: Option<usize>,
    /// Before the "before" sample, open and close this many idle sessions
    /// (a warm-up wave: the TLS code is paged in and the workers have
    /// given memory back once, so what stays after the measured wave is
    /// what it left); the report gives "after" against both samples.
    #[arg(long, value_name = "N", default_value = "0", help_heading = "Scale")]
    pub idle_warmup: usize,
    /// Fast smoke run (~10 s): --size 32M --small-size 4M --runs 2
    /// --sessions 10 --duration 1.5; options given explicitly still win.
    #[arg(long, help_heading = "Workload")]
    pub quick: bool,
}

/// The benchmark's options, defaults applied and checked.
#[derive(Debug, Clone)]
pub struct Opts {
    pub spawn: bool,
    pub relay: Option<String>,
    pub module: Option<PathBuf>,
    pub max_chunk: Option<i64>,
    pub workers: Option<i64>,
    /// The message-rate phase through AUTHed B endpoints and their
    /// Use-Paths (RFC 4976 §5) instead of the relay connecting to B.
    pub use_path: bool,
    /// Every message-rate session crosses workers (with --use-path).
    pub cross: bool,
    /// Extra `modparam("msrp_relay", NAME, VALUE)` lines (with --spawn-relay).
    pub modparams: Vec<(String, String)>,
    /// The senders' other transports, beside plain TCP (tcp left out).
    pub transports: Vec<Transport>,
    pub certs: Option<PathBuf>,
    pub ws_origin: Option<String>,
    pub bind: IpAddr,
    pub size: u64,
    pub small_size: u64,
    pub runs: usize,
    pub rounds: usize,
    pub sessions: usize,
    pub endpoints: usize,
    pub msg_size: u64,
    pub duration: Duration,
    pub quick: bool,
    /// --idle: idle sessions (0: the normal phases).
    pub idle: usize,
    pub idle_per_client: usize,
    pub idle_sources: usize,
    pub idle_warmup: usize,
}

impl Opts {
    /// Applies the defaults (smaller with --quick, explicit values win) and
    /// the rules across options.
    pub fn from_args(a: BenchArgs) -> Result<Opts, clap::Error> {
        let q = a.quick;
        let o = Opts {
            spawn: a.spawn_relay,
            relay: a.relay,
            module: a.module,
            max_chunk: a.max_chunk,
            workers: a.workers,
            use_path: a.use_path,
            cross: a.cross,
            modparams: a.modparams,
            transports: others(&a.transport),
            certs: a.certs,
            ws_origin: a.ws_origin,
            bind: a.bind,
            size: a.size.unwrap_or(if q { 32 * MIB } else { 256 * MIB }),
            small_size: a.small_size.unwrap_or(if q { 4 * MIB } else { 16 * MIB }),
            runs: a.runs.unwrap_or(if q { 2 } else { 3 }),
            rounds: a.rounds.unwrap_or(if q { 1 } else { 3 }),
            sessions: a.sessions.unwrap_or(if q { 10 } else { 50 }),
            endpoints: a.endpoints,
            msg_size: a.msg_size,
            duration: a
                .duration
                .unwrap_or(Duration::from_secs_f64(if q { 1.5 } else { 5.0 })),
            quick: q,
            idle: a.idle.unwrap_or(0),
            idle_per_client: a.idle_per_client,
            idle_sources: a
                .idle_sources
                .unwrap_or_else(|| a.idle.unwrap_or(0).div_ceil(20_000).max(1)),
            idle_warmup: a.idle_warmup,
        };
        o.check()
            .map_err(|m| Cli::command().error(ErrorKind::ArgumentConflict, m))?;
        Ok(o)
    }

    fn check(&self) -> Result<(), &'static str> {
        if self.spawn == self.relay.is_some() {
            return Err("give exactly one of --spawn-relay and --relay HOST:PORT");
        }
        let spawn_only = self.module.is_some()
            || self.max_chunk.is_some()
            || self.workers.is_some()
            || !self.modparams.is_empty()
            || !self.transports.is_empty();
        if !self.spawn && spawn_only {
            return Err(
                "--module, --max-chunk, --workers, --modparam and --transport need --spawn-relay",
            );
        }
        if self.cross && !(self.use_path && self.spawn && self.workers.unwrap_or(1) >= 2) {
            return Err("--cross needs --use-path, --spawn-relay and --workers 2 or more");
        }
        if self.certs.is_some() && !self.transports.iter().any(|t| t.is_tls()) {
            return Err("--certs needs --transport tls or wss");
        }
        if self.idle > 0 && !self.spawn {
            return Err("--idle needs --spawn-relay (it measures the workers' memory)");
        }
        if self.idle_warmup > 0 && self.idle == 0 {
            return Err("--idle-warmup goes with --idle");
        }
        if self.idle_sources > 250 {
            return Err("--idle-sources: at most 250 (127.0.0.2 .. 127.0.0.251)");
        }
        if self.idle > 0 && self.transports.len() > 1 {
            return Err("--idle takes one --transport");
        }
        if self.ws_origin.is_some() && !self.transports.iter().any(|t| t.is_ws()) {
            return Err("--ws-origin needs --transport ws or wss");
        }
        Ok(())
    }
}

/// Bytes with an optional K, M or G suffix (KiB, MiB, GiB; "256MiB" too).
pub fn parse_size(s: &str) -> Result<u64, String> {
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

fn parse_nonzero_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("sizes must be at least 1 byte".into()),
        n => Ok(n),
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("bad number {s:?}")),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("bad number {s:?}"))?;
    if !(secs.is_finite() && secs > 0.0 && secs < 86_400.0) {
        return Err("expected seconds > 0".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_modparam(s: &str) -> Result<(String, String), String> {
    let (n, v) = s
        .split_once('=')
        .filter(|(n, _)| !n.trim().is_empty())
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    Ok((n.trim().to_owned(), v.trim().to_owned()))
}

fn parse_transport(s: &str) -> Result<Transport, String> {
    s.parse()
}

/// The transports other than tcp, each once, in the order given.
fn others(given: &[Transport]) -> Vec<Transport> {
    let mut v: Vec<Transport> = Vec::new();
    for &t in given {
        if t != Transport::Tcp && !v.contains(&t) {
            v.push(t);
        }
    }
    v
}

/// Parses a benchmark command line (not a subcommand), for tests.
#[cfg(test)]
pub fn opts(s: &str) -> Result<Opts, clap::Error> {
    let cli = Cli::try_parse_from(std::iter::once("msrp-bench").chain(s.split_whitespace()))?;
    assert!(cli.command.is_none(), "{s}: a subcommand");
    Opts::from_args(cli.bench)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("1K").unwrap(), 1024);
        assert_eq!(parse_size("256M").unwrap(), 256 * MIB);
        assert_eq!(parse_size("256MiB").unwrap(), 256 * MIB);
        assert_eq!(parse_size("1g").unwrap(), 1024 * MIB);
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn options() {
        let o = opts("--spawn-relay --quick --runs 5").unwrap();
        assert!(o.spawn && o.quick);
        assert_eq!(o.runs, 5);
        assert_eq!(o.size, 32 * MIB);
        assert_eq!((o.small_size, o.sessions), (4 * MIB, 10));
        assert_eq!(o.duration, Duration::from_millis(1500));
        let o = opts("--relay 127.0.0.1:2855 --size=1M --duration 0.5").unwrap();
        assert_eq!(o.size, MIB);
        assert_eq!(o.duration, Duration::from_millis(500));
        assert_eq!((o.small_size, o.runs, o.sessions), (16 * MIB, 3, 50));
        assert_eq!((o.endpoints, o.msg_size), (5, 1024));
        assert_eq!(o.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(opts("--size 1M").is_err());
        assert!(opts("").is_err());
        assert!(opts("--relay h:1 --spawn-relay").is_err());
        assert!(opts("--relay h:1 --max-chunk 4096").is_err());
        assert!(opts("--spawn-relay --bogus").is_err());
        assert!(opts("--spawn-relay --runs 0").is_err());
        assert!(opts("--spawn-relay --msg-size 0").is_err());
        assert!(opts("--spawn-relay --duration 0").is_err());
        assert!(opts("--spawn-relay --workers x").is_err());
        let o = opts("--spawn-relay --idle 100000 --sessions 16").unwrap();
        assert_eq!(
            (o.idle, o.idle_per_client, o.idle_sources),
            (100_000, 15_000, 5)
        );
        assert_eq!(opts("--spawn-relay").unwrap().idle, 0);
        let o = opts("--spawn-relay --idle 20000 --idle-warmup 6000").unwrap();
        assert_eq!((o.idle, o.idle_warmup), (20_000, 6_000));
        assert!(opts("--spawn-relay --idle-warmup 10").is_err());
        assert!(opts("--relay h:1 --idle 10").is_err());
        assert!(opts("--spawn-relay --idle 10 --idle-sources 300").is_err());
        let help = opts("--help").unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        assert!(help.to_string().contains("--small-size <SIZE>"));
    }

    #[test]
    fn modparams_repeat() {
        let o = opts("--spawn-relay --modparam a=1 --modparam=b=x").unwrap();
        assert_eq!(
            o.modparams,
            [("a".into(), "1".into()), ("b".into(), "x".into())]
        );
        assert!(opts("--spawn-relay --modparam =1").is_err());
        assert!(opts("--spawn-relay --modparam a").is_err());
    }

    #[test]
    fn transport_options() {
        let o = opts("--spawn-relay --transport wss --certs /tmp/c --ws-origin https://a.example")
            .unwrap();
        assert_eq!(o.transports, [Transport::Wss]);
        assert_eq!(o.certs, Some(PathBuf::from("/tmp/c")));
        assert_eq!(o.ws_origin.as_deref(), Some("https://a.example"));
        let o = opts("--spawn-relay").unwrap();
        assert!(o.transports.is_empty());
        assert!(opts("--relay h:1 --transport tcp").is_ok());
        let o = opts("--spawn-relay --transport tls,wss,tls,tcp").unwrap();
        assert_eq!(o.transports, [Transport::Tls, Transport::Wss]);
        assert!(opts("--spawn-relay --transport ws --certs /tmp/c").is_err());
        assert!(opts("--spawn-relay --transport ws,tls --certs /tmp/c").is_ok());
        assert!(opts("--spawn-relay --transport tls,wss --idle 10").is_err());
        assert!(opts("--spawn-relay --transport udp").is_err());
        assert!(opts("--relay h:1 --transport tls").is_err());
        assert!(opts("--spawn-relay --transport ws --certs /tmp/c").is_err());
        assert!(opts("--spawn-relay --transport tls --ws-origin x").is_err());
        assert!(opts("--spawn-relay --certs /tmp/c").is_err());
    }

    #[test]
    fn soak_subcommand() {
        let parse = |s: &str| {
            Cli::try_parse_from(std::iter::once("msrp-bench").chain(s.split_whitespace()))
        };
        let Some(Command::Soak(s)) = parse("soak").unwrap().command else {
            panic!("no soak");
        };
        assert_eq!((s.duration, s.workers, s.module), (3600, 1, None));
        let Some(Command::Soak(s)) = parse("soak --duration 60 --workers 2 --module /m.so")
            .unwrap()
            .command
        else {
            panic!("no soak");
        };
        assert_eq!((s.duration, s.workers), (60, 2));
        assert_eq!(s.module, Some(PathBuf::from("/m.so")));
        assert!(parse("soak --duration 1.5").is_err());
        assert!(parse("soak --bogus").is_err());
        assert!(parse("--spawn-relay soak").is_err());
    }
}
