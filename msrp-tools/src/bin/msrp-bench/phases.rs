//! One benchmark run: the relay under test, the B endpoints, the warm-up,
//! the memory-growth and throughput transfers (here), then the message
//! rate (`rate`), in that order; every phase checks the relay still runs.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use msrp_tools::load::{self, AuthedSink, Dialer, Pattern, Sink, Transfer};
use msrp_tools::process;
use msrp_tools::tcpproxy::ProxyChild;

use crate::cli::{Opts, MIB};
use crate::mem::Mem;
use crate::progress::{fmt_size, rss_growth, with_progress, Unit};
use crate::report::{add_cpu, loadavg, log_problems, OtherFigures, Report};
use crate::target::Target;

/// A transfer fails when nothing moves for this long.
const STALL: Duration = Duration::from_secs(20);

/// Runs every phase against the relay of `o`; on failure the error carries
/// the spawned relay's log tail.
pub fn run(o: &Opts, tty: bool) -> Result<Report, String> {
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
    let mut bench = Bench::new(o, tty, target)?;
    if o.idle > 0 {
        bench.scale()?;
        return bench.finish();
    }
    let proxy = bench.warm_up()?;
    bench.memory_growth()?;
    bench.throughput(&proxy)?;
    bench.message_rates(proxy)?;
    bench.finish()
}

/// The state of one run: the relay, the tool's B endpoints and what has
/// been measured so far.
pub struct Bench<'a> {
    pub o: &'a Opts,
    /// Whether to keep a live status line (stdout is a terminal).
    pub tty: bool,
    pub target: &'a mut Target,
    /// The body pattern every B endpoint verifies.
    pub pattern: Pattern,
    /// B endpoints the relay connects to; the first takes the transfers.
    pub sinks: Vec<Sink>,
    /// --use-path: B endpoints behind the relay (made for the message rate).
    pub authed: Vec<AuthedSink>,
    /// The To-Path's start through the relay: its URI.
    pub via: Vec<String>,
    /// The spawned relay's workers (none for --relay).
    pub mem: Option<Mem>,
    pub tcp: Dialer,
    pub rep: Report,
}

/// Prints one transfer's line (and the workers' memory growth over it).
fn show(label: &str, t: &Transfer, mem: Option<(u64, u64)>) {
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
}

impl<'a> Bench<'a> {
    fn new(o: &'a Opts, tty: bool, target: &'a mut Target) -> Result<Bench<'a>, String> {
        let pattern = Pattern::new(0x4d53_5250);
        let sinks: Vec<Sink> = (0..o.endpoints)
            .map(|_| Sink::start(o.bind, pattern.clone()))
            .collect::<Result<_, _>>()?;
        let via = vec![target.uri.clone()];
        let mem = match &target.kamailio {
            Some(k) => Some(Mem::new(k)?),
            None => None,
        };
        let mut rep = Report::new(target.description.clone());
        rep.mem_reset = mem.as_ref().is_some_and(|m| m.can_reset);
        rep.others = target
            .others
            .iter()
            .map(|t| OtherFigures::new(t.transport))
            .collect();
        rep.load_before = loadavg();
        println!("relay: {}", rep.description);
        println!(
            "B endpoints: {} on {} (tool threads: A senders, B receivers verifying every byte)",
            sinks.len(),
            o.bind
        );
        Ok(Bench {
            o,
            tty,
            target,
            pattern,
            sinks,
            authed: Vec::new(),
            via,
            mem,
            tcp: Dialer::tcp(),
            rep,
        })
    }

    /// Not measured: opens the relay's connection to B, and starts the TCP
    /// proxy baseline (a process of its own, like the relay) in front of
    /// the same B endpoint.
    fn warm_up(&mut self) -> Result<ProxyChild, String> {
        let warm = MIB;
        let (b, pattern) = (&self.sinks[0], &self.pattern);
        load::transfer(self.target.addr, &self.via, b, pattern, warm, STALL)
            .map_err(|e| format!("warm-up transfer through the relay: {e}"))?;
        load::transfer(b.addr(), &[], b, pattern, warm, STALL)
            .map_err(|e| format!("warm-up direct transfer: {e}"))?;
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let proxy = ProxyChild::start(&exe, self.o.bind, b.addr())?;
        load::transfer(proxy.addr(), &[], b, pattern, warm, STALL)
            .map_err(|e| format!("warm-up transfer through the TCP proxy: {e}"))?;
        self.rep.verified_bytes += 3 * warm;
        for ot in &self.target.others {
            let to_path = std::slice::from_ref(&ot.uri);
            load::transfer_with(&ot.dialer, ot.addr, to_path, b, pattern, warm, STALL).map_err(
                |e| {
                    format!(
                        "warm-up transfer through the relay over {}: {e}",
                        ot.transport
                    )
                },
            )?;
            self.rep.verified_bytes += warm;
        }
        if let Some(m) = &self.mem {
            self.rep.mem_idle = Some((m.rss()?, m.breakdown()));
        }
        Ok(proxy)
    }

    /// One large transfer from A to `to` (the relay, the proxy or B
    /// itself), addressed through `path` (the relay's URI, or nothing).
    fn transfer(
        &self,
        dialer: &Dialer,
        to: SocketAddr,
        path: &[String],
        size: u64,
        label: &str,
    ) -> Result<Transfer, String> {
        let b = &self.sinks[0];
        let b_bytes = || b.stats().bytes.load(Ordering::Relaxed);
        with_progress(self.tty, label, Unit::Bytes, Some(size), &b_bytes, || {
            load::transfer_with(dialer, to, path, b, &self.pattern, size, STALL)
        })
        .map_err(|e| format!("{label}: {e}"))
    }

    fn relay_transfer(&self, size: u64, label: &str) -> Result<Transfer, String> {
        self.transfer(&self.tcp, self.target.addr, &self.via, size, label)
    }

    /// Memory growth: a small transfer first, against the large runs of
    /// [`Bench::throughput`] ("target flat" in the summary).
    fn memory_growth(&mut self) -> Result<(), String> {
        let Some(m) = &self.mem else {
            return Ok(());
        };
        let small = self.o.small_size;
        let label = format!("relay {} (memory)", fmt_size(small));
        let (t, base, peak) = m.during(|| self.relay_transfer(small, &label))?;
        show(&label, &t, Some((base, peak)));
        self.rep
            .mem
            .push((format!("{} transfer", fmt_size(small)), base, peak));
        self.rep.verified_bytes += t.bytes;
        Ok(())
    }

    /// Throughput: relay (and relay over --transport), TCP proxy and direct,
    /// interleaved run by run.
    fn throughput(&mut self, proxy: &ProxyChild) -> Result<(), String> {
        let mut big_mem: Option<(u64, u64)> = None;
        for i in 1..=self.o.runs {
            self.relay_run(i, &mut big_mem)?;
            for j in 0..self.target.others.len() {
                self.other_transport_run(j, i)?;
            }
            self.proxy_run(i, proxy)?;
            self.direct_run(i)?;
        }
        if let Some((base, peak)) = big_mem {
            self.rep.mem.push((
                format!("{} transfer (worst run)", fmt_size(self.o.size)),
                base,
                peak,
            ));
        }
        Ok(())
    }

    /// Run `i` through the relay; `big_mem` keeps the largest growth.
    fn relay_run(&mut self, i: usize, big_mem: &mut Option<(u64, u64)>) -> Result<(), String> {
        let size = self.o.size;
        let label = format!("relay  run {i}/{}", self.o.runs);
        let cpu0 = self.mem.as_ref().map(Mem::cpu).transpose()?;
        let (t, mm) = match &self.mem {
            Some(m) => {
                let (t, base, peak) = m.during(|| self.relay_transfer(size, &label))?;
                if big_mem.is_none_or(|(b0, p0)| peak.saturating_sub(base) > p0.saturating_sub(b0))
                {
                    *big_mem = Some((base, peak));
                }
                (t, Some((base, peak)))
            }
            None => (self.relay_transfer(size, &label)?, None),
        };
        show(&label, &t, mm);
        if let (Some(m), Some(c0)) = (&self.mem, cpu0) {
            let r = &mut self.rep;
            add_cpu(
                &mut r.relay_cpu,
                &mut r.relay_gib_cpu,
                m.cpu()? - c0,
                t.bytes,
            );
        }
        self.rep.relay_mbs.push(t.mb_per_s());
        self.rep.relay_chunks = t.chunks;
        self.rep.verified_bytes += t.bytes;
        self.target.check_alive()
    }

    /// Run `i` through the same relay with A over --transport `j`.
    fn other_transport_run(&mut self, j: usize, i: usize) -> Result<(), String> {
        let ot = &self.target.others[j];
        let label = format!("relay/{:<3} run {i}/{}", ot.transport.name(), self.o.runs);
        let cpu0 = self.mem.as_ref().map(Mem::cpu).transpose()?;
        let to_path = std::slice::from_ref(&ot.uri);
        let t = self.transfer(&ot.dialer, ot.addr, to_path, self.o.size, &label)?;
        show(&label, &t, None);
        let of = &mut self.rep.others[j];
        if let (Some(m), Some(c0)) = (&self.mem, cpu0) {
            add_cpu(&mut of.cpu, &mut of.gib_cpu, m.cpu()? - c0, t.bytes);
        }
        of.mbs.push(t.mb_per_s());
        of.chunks = t.chunks;
        self.rep.verified_bytes += t.bytes;
        self.target.check_alive()
    }

    /// Run `i` through the plain TCP proxy, with the proxy's CPU time.
    fn proxy_run(&mut self, i: usize, proxy: &ProxyChild) -> Result<(), String> {
        let label = format!("proxy  run {i}/{}", self.o.runs);
        let cpu0 = process::cpu_secs(proxy.pid());
        let t = self.transfer(&self.tcp, proxy.addr(), &[], self.o.size, &label)?;
        show(&label, &t, None);
        if let (Some(c0), Some(c1)) = (cpu0, process::cpu_secs(proxy.pid())) {
            let r = &mut self.rep;
            add_cpu(&mut r.proxy_cpu, &mut r.proxy_gib_cpu, c1 - c0, t.bytes);
        }
        self.rep.proxy_mbs.push(t.mb_per_s());
        self.rep.verified_bytes += t.bytes;
        Ok(())
    }

    /// Run `i` from A straight to B.
    fn direct_run(&mut self, i: usize) -> Result<(), String> {
        let label = format!("direct run {i}/{}", self.o.runs);
        let b = self.sinks[0].addr();
        let t = self.transfer(&self.tcp, b, &[], self.o.size, &label)?;
        show(&label, &t, None);
        self.rep.direct_mbs.push(t.mb_per_s());
        self.rep.verified_bytes += t.bytes;
        Ok(())
    }

    /// The workers' memory after all, and any error a B endpoint saw.
    fn finish(mut self) -> Result<Report, String> {
        if let Some(m) = &self.mem {
            self.rep.mem_end = Some((m.rss()?, m.breakdown()));
        }
        let errors: Vec<String> = self.sinks.iter().flat_map(|s| s.stats().errors()).collect();
        if !errors.is_empty() {
            return Err(format!("B: {}", errors.join("; ")));
        }
        self.rep.load_after = loadavg();
        Ok(self.rep)
    }
}
