//! `proxy-yardstick`: puts `msrp-bench`'s TCP proxy (`msrp_tools::tcpproxy`)
//! and another byte-blind proxy side by side under the same load and
//! reports the CPU each costs, so the bench's yardstick can be checked
//! against a reference (issue 22 item 1: the lean C epoll proxy).
//!
//! Both proxies forward to one verifying B sink on 127.0.0.1. Each round
//! runs, for each proxy in turn (the order alternates between rounds, so a
//! neighbour's load on this shared machine falls on both): a message-rate
//! phase (`--sessions` sessions of `--msg-size` SENDs, each sent after the
//! previous 200, for `--secs`) and one `--size` single-chunk transfer. CPU
//! is the proxy process's utime + stime from /proc/PID/stat before and
//! after. Prints each run, then medians and ranges.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use msrp_tools::ids::session_id;
use msrp_tools::load::{self, Dialer, Pattern, RateCounters, Sink};
use msrp_tools::process;
use msrp_tools::tcpproxy::{self, ProxyChild};

const TIMEOUT: Duration = Duration::from_secs(15);
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Compare msrp-bench's TCP proxy with a reference proxy, same load.
#[derive(Debug, Parser)]
#[command(name = "proxy-yardstick")]
struct Cli {
    /// The reference proxy, run as `REFERENCE LISTEN_PORT 127.0.0.1
    /// TARGET_PORT` (listening on 127.0.0.1), e.g. tcpproxy.c built with
    /// gcc -O2.
    reference: PathBuf,
    /// Rounds (each runs both proxies, order alternating).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Sessions of the message-rate phase.
    #[arg(long, default_value_t = 64)]
    sessions: usize,
    /// Body bytes per SEND of the message-rate phase.
    #[arg(long, default_value_t = 1024)]
    msg_size: u64,
    /// Seconds of each message-rate phase.
    #[arg(long, default_value_t = 3)]
    secs: u64,
    /// MiB of each single-chunk transfer.
    #[arg(long, default_value_t = 512)]
    size_mib: u64,
    /// The executable whose `--tcp-proxy-child` mode is measured (default:
    /// this one, which runs the same `msrp_tools::tcpproxy` as msrp-bench).
    #[arg(long, value_name = "PATH")]
    bench_exe: Option<PathBuf>,
}

/// A proxy under test: where clients connect and its process id.
trait Proxy {
    fn addr(&self) -> SocketAddr;
    fn pid(&self) -> u32;
}

impl Proxy for ProxyChild {
    fn addr(&self) -> SocketAddr {
        ProxyChild::addr(self)
    }
    fn pid(&self) -> u32 {
        ProxyChild::pid(self)
    }
}

/// The reference proxy process; killed when dropped.
struct Reference {
    child: Child,
    addr: SocketAddr,
}

impl Reference {
    /// Starts it on a free loopback port and waits until it accepts.
    fn start(exe: &PathBuf, dest: SocketAddr) -> Result<Reference, String> {
        let port = TcpListener::bind((LOOPBACK, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let child = Command::new(exe)
            .args([
                port.to_string(),
                dest.ip().to_string(),
                dest.port().to_string(),
            ])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", exe.display()))?;
        let r = Reference {
            child,
            addr: SocketAddr::new(LOOPBACK, port),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(r.addr).is_err() {
            if Instant::now() >= deadline {
                return Err(format!("{} does not listen on {}", exe.display(), r.addr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(r)
    }
}

impl Proxy for Reference {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One proxy's figures over the rounds.
#[derive(Default)]
struct Figures {
    us_per_msg: Vec<f64>,
    s_per_gib: Vec<f64>,
    mb_per_s: Vec<f64>,
}

fn cpu(pid: u32) -> Result<f64, String> {
    process::cpu_secs(pid).ok_or_else(|| format!("no /proc/{pid}/stat"))
}

/// The message-rate phase through `p`: CPU microseconds per message.
fn rate(o: &Cli, p: &dyn Proxy, sink: &Sink, pattern: &Pattern) -> Result<f64, String> {
    let counters = RateCounters::default();
    let before = sink.stats().messages.load(Ordering::SeqCst);
    let (dialer, addr) = (Dialer::tcp(), p.addr());
    let (sent, cpu_secs) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.sessions)
            .map(|_| {
                let (counters, dialer) = (&counters, &dialer);
                let to = vec![sink.uri(&session_id())];
                s.spawn(move || {
                    let r = load::rate_session_with(
                        dialer, addr, to, o.msg_size, pattern, counters, TIMEOUT,
                    );
                    if r.is_err() {
                        counters.stop.store(true, Ordering::SeqCst);
                    }
                    r
                })
            })
            .collect();
        let deadline = Instant::now() + TIMEOUT;
        while counters.ready.load(Ordering::SeqCst) < o.sessions as u64
            && !counters.stop.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let c0 = cpu(p.pid());
        counters.go.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(o.secs));
        counters.stop.store(true, Ordering::SeqCst);
        let mut sent = 0;
        for h in handles {
            sent += h.join().map_err(|_| "a session panicked".to_string())??;
        }
        Ok::<_, String>((sent, cpu(p.pid())? - c0?))
    })?;
    let deadline = Instant::now() + TIMEOUT;
    while sink.stats().messages.load(Ordering::SeqCst) - before < sent {
        if Instant::now() >= deadline || sink.stats().error_count() > 0 {
            return Err(format!("B did not receive all {sent} messages intact"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(cpu_secs * 1e6 / sent.max(1) as f64)
}

/// One large transfer through `p`: (CPU seconds per GiB, MB/s).
fn large(o: &Cli, p: &dyn Proxy, sink: &Sink, pattern: &Pattern) -> Result<(f64, f64), String> {
    let c0 = cpu(p.pid())?;
    let t = load::transfer(p.addr(), &[], sink, pattern, o.size_mib << 20, TIMEOUT)?;
    let c1 = cpu(p.pid())?;
    Ok(((c1 - c0) * GIB / t.bytes as f64, t.mb_per_s()))
}

/// "median (min-max)", or "n/a" for no values.
fn median_range(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return format!("{:>7}", "n/a");
    }
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    format!("{median:7.2} ({:.2}-{:.2})", s[0], s[n - 1])
}

/// Per-round ratios; a round whose reference figure is 0 (no 10 ms CPU
/// tick counted in a short transfer) has none.
fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(_, y)| **y > 0.0)
        .map(|(x, y)| x / y)
        .collect()
}

fn run(o: &Cli) -> Result<(), String> {
    let pattern = Pattern::new(22);
    let sink = Sink::start(LOOPBACK, pattern.clone())?;
    let exe = match &o.bench_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| format!("own path: {e}"))?,
    };
    let bench = ProxyChild::start(&exe, LOOPBACK, sink.addr())?;
    let reference = Reference::start(&o.reference, sink.addr())?;
    let proxies: [(&str, &dyn Proxy); 2] = [("msrp-bench", &bench), ("reference", &reference)];
    let mut figs = [Figures::default(), Figures::default()];
    for (_, p) in proxies {
        load::transfer(p.addr(), &[], &sink, &pattern, 64 << 20, TIMEOUT)?; // warm-up
    }
    for round in 0..o.rounds {
        for k in [round % 2, 1 - round % 2] {
            let (name, p) = proxies[k];
            let us = rate(o, p, &sink, &pattern)?;
            let (s_gib, mbs) = large(o, p, &sink, &pattern)?;
            println!(
                "round {round} {name:10}: {us:6.2} us CPU per message, {s_gib:5.3} s CPU per GiB, {mbs:7.1} MB/s"
            );
            figs[k].us_per_msg.push(us);
            figs[k].s_per_gib.push(s_gib);
            figs[k].mb_per_s.push(mbs);
        }
    }
    let [b, r] = &figs;
    println!("\nmedian (range) of {} rounds, alternating:", o.rounds);
    println!("                      msrp-bench proxy      reference          bench/reference");
    for (what, x, y) in [
        ("CPU us per message", &b.us_per_msg, &r.us_per_msg),
        ("CPU s per GiB     ", &b.s_per_gib, &r.s_per_gib),
        ("MB/s              ", &b.mb_per_s, &r.mb_per_s),
    ] {
        println!(
            "{what}    {}   {}   {}",
            median_range(x),
            median_range(y),
            median_range(&ratios(x, y))
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Some(code) = tcpproxy::child_mode("proxy-yardstick") {
        return code;
    }
    let o = Cli::parse();
    if o.rounds == 0 || o.sessions == 0 {
        eprintln!("proxy-yardstick: --rounds and --sessions must be at least 1");
        return ExitCode::from(2);
    }
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy-yardstick: {e}");
            ExitCode::FAILURE
        }
    }
}
