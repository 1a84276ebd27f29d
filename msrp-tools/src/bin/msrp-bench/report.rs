//! What one run measured ([`Report`]) and the summary printed at its end;
//! the relay log's warnings and errors, the machine and its load.

use std::fmt::Write as _;

use msrp_tools::Transport;

use crate::cli::Opts;
use crate::progress::{fmt_growth, fmt_kib, fmt_size, median};
use crate::rate::RateResult;
use crate::yardstick::{self, RateRound};

/// What one run measured, for the summary.
#[derive(Default)]
pub struct Report {
    pub description: String,
    pub relay_mbs: Vec<f64>,
    pub direct_mbs: Vec<f64>,
    /// A->plain TCP proxy->B (the extra-hop baseline).
    pub proxy_mbs: Vec<f64>,
    /// (CPU seconds, bytes) over the large transfers: the relay's MSRP
    /// workers, and the TCP proxy process.
    pub relay_cpu: Option<(f64, u64)>,
    pub proxy_cpu: Option<(f64, u64)>,
    pub relay_chunks: u64,
    pub rate_relay: Option<RateResult>,
    /// Through the plain TCP proxy (its CPU per message is the floor any
    /// extra hop pays for the same sockets and syscalls).
    pub rate_proxy: Option<RateResult>,
    pub rate_direct: Option<RateResult>,
    /// --transport (not tcp): the relay with A over each of them.
    pub others: Vec<OtherFigures>,
    /// Every message-rate round (the `rate_*` fields above are round 1's).
    pub rounds: Vec<RateRound>,
    /// CPU seconds per GiB of each large-transfer run, by path (None: not
    /// measured), aligned with the `*_mbs` runs.
    pub relay_gib_cpu: Vec<Option<f64>>,
    pub proxy_gib_cpu: Vec<Option<f64>>,
    /// (label, RSS before, peak) in KiB.
    pub mem: Vec<(String, u64, u64)>,
    pub mem_idle: Option<(u64, String)>,
    pub mem_end: Option<(u64, String)>,
    pub mem_reset: bool,
    pub verified_bytes: u64,
    pub verified_msgs: u64,
    pub log_problems: Vec<String>,
    pub log_problem_count: usize,
    pub load_before: String,
    pub load_after: String,
    /// --idle: the scale phase's summary lines (the only phase run).
    pub scale: Vec<String>,
}

/// The relay with A over one --transport: throughput runs, the workers'
/// (CPU seconds, bytes) and CPU per GiB of each run, chunks at B, round
/// 1's message rate.
pub struct OtherFigures {
    pub transport: Transport,
    pub mbs: Vec<f64>,
    pub cpu: Option<(f64, u64)>,
    pub gib_cpu: Vec<Option<f64>>,
    pub chunks: u64,
    pub rate: Option<RateResult>,
}

impl OtherFigures {
    pub fn new(transport: Transport) -> OtherFigures {
        OtherFigures {
            transport,
            mbs: Vec::new(),
            cpu: None,
            gib_cpu: Vec::new(),
            chunks: 0,
            rate: None,
        }
    }
}

impl Report {
    pub fn new(description: String) -> Report {
        Report {
            description,
            ..Report::default()
        }
    }
}

/// Below this much CPU time per path, CPU per GB is flagged as coarse
/// (`/proc` counts in clock ticks of 10 ms).
pub const MIN_CPU_SECS: f64 = 0.25;

/// Adds one transfer's CPU time and bytes to a path's total, and its CPU
/// per GiB to the path's runs.
pub fn add_cpu(total: &mut Option<(f64, u64)>, runs: &mut Vec<Option<f64>>, secs: f64, bytes: u64) {
    runs.push((bytes > 0).then(|| secs * (1u64 << 30) as f64 / bytes as f64));
    let (s, b) = total.get_or_insert((0.0, 0));
    *s += secs;
    *b += bytes;
}

pub fn loadavg() -> String {
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
pub fn log_problems(log: &str) -> (Vec<String>, usize) {
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

pub fn summary(o: &Opts, rep: &Report) -> String {
    let mut s = String::new();
    header(&mut s, rep);
    if !rep.scale.is_empty() {
        for l in &rep.scale {
            let _ = writeln!(s, "{l}");
        }
        data_and_log(&mut s, rep);
        return s;
    }
    throughput(&mut s, o, rep);
    cpu_per_gb(&mut s, rep);
    message_rate(&mut s, o, rep);
    yardstick::table(&mut s, o, rep);
    memory(&mut s, o, rep);
    data_and_log(&mut s, rep);
    s
}

fn header(s: &mut String, rep: &Report) {
    let _ = writeln!(s, "==== msrp-bench summary ====");
    let _ = writeln!(s, "relay:    {}", rep.description);
    let _ = writeln!(s, "machine:  {}", machine());
    let _ = writeln!(
        s,
        "load avg: {} at start, {} at end",
        rep.load_before, rep.load_after
    );
}

/// MB/s of each path (median and runs) and their ratios.
fn throughput(s: &mut String, o: &Opts, rep: &Report) {
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
    for ot in &rep.others {
        let _ = writeln!(
            s,
            "  {:<20} {:8.1} MB/s   (B received {} chunks; runs {})",
            format!("A-({})->relay->B", ot.transport),
            median(&ot.mbs),
            ot.chunks,
            runs(&ot.mbs)
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
    for ot in &rep.others {
        let t = ot.transport;
        let _ = writeln!(
            s,
            "  {:<20} {:8.2}        (A over {t} against A over tcp, same relay)",
            format!("ratio relay {t}/tcp"),
            median(&ot.mbs) / relay
        );
    }
}

/// Worker and proxy CPU seconds per GB over all large transfers.
fn cpu_per_gb(s: &mut String, rep: &Report) {
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
        for (t, (ts, tb)) in rep
            .others
            .iter()
            .filter_map(|ot| ot.cpu.map(|c| (ot.transport, c)))
        {
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
}

/// Messages per second of each path, CPU per message.
fn message_rate(s: &mut String, o: &Opts, rep: &Report) {
    let (Some(rr), Some(rd)) = (&rep.rate_relay, &rep.rate_direct) else {
        return;
    };
    let _ = writeln!(
        s,
        "message rate, {} SEND + 200 round trips, {} sessions over {} B endpoints, {:.1} s{}:",
        fmt_size(o.msg_size),
        o.sessions,
        o.endpoints,
        o.duration.as_secs_f64(),
        match rep.rounds.len() {
            0 | 1 => String::new(),
            n => format!(" (round 1 of {n}; all rounds below)"),
        }
    );
    let _ = writeln!(s, "  direct A->B          {:8.0} msg/s", rd.per_s);
    let _ = writeln!(s, "  A->relay->B          {:8.0} msg/s", rr.per_s);
    for ot in &rep.others {
        if let Some(rt) = &ot.rate {
            let _ = writeln!(
                s,
                "  {:<20} {:8.0} msg/s",
                format!("A-({})->relay->B", ot.transport),
                rt.per_s
            );
        }
    }
    if let Some(rp) = &rep.rate_proxy {
        let _ = writeln!(s, "  A->TCP proxy->B      {:8.0} msg/s", rp.per_s);
    }
    cpu_per_message(s, rep, rr);
    let _ = writeln!(
        s,
        "  ratio relay/direct   {:8.2}",
        rr.per_s / rd.per_s.max(1e-9)
    );
}

/// " (coarse: ...)" when a phase measured too little CPU time to trust.
fn coarse(r: &RateResult) -> &'static str {
    if r.cpu.unwrap_or(0.0) < MIN_CPU_SECS {
        " (coarse: under 0.25 s of CPU measured)"
    } else {
        ""
    }
}

/// Relay worker (and TCP proxy) CPU microseconds per message.
fn cpu_per_message(s: &mut String, rep: &Report, rr: &RateResult) {
    let Some(us) = rr.cpu_us_per_msg() else {
        return;
    };
    let _ = writeln!(
        s,
        "  CPU per message: relay worker {us:6.1} us{}",
        coarse(rr)
    );
    for (t, rt, tus) in rep.others.iter().filter_map(|ot| {
        let rt = ot.rate.as_ref()?;
        Some((ot.transport, rt, rt.cpu_us_per_msg()?))
    }) {
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

/// The workers' memory per phase and the flatness target.
fn memory(s: &mut String, o: &Opts, rep: &Report) {
    if rep.mem.is_empty() {
        return;
    }
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

/// Bytes and messages verified; the relay log's warnings and errors.
fn data_and_log(s: &mut String, rep: &Report) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::opts;
    use crate::rate::test_rate as rate;

    #[test]
    fn summary_shows_the_other_transport_beside_tcp() {
        let o = opts("--spawn-relay --transport tls --runs 2").unwrap();
        let mut rep = Report::new("spawned test".into());
        rep.relay_mbs = vec![1000.0, 1200.0];
        rep.direct_mbs = vec![3000.0, 3000.0];
        rep.proxy_mbs = vec![1500.0, 1500.0];
        rep.relay_cpu = Some((2.0, 2_000_000_000));
        rep.proxy_cpu = Some((1.0, 2_000_000_000));
        rep.relay_chunks = 16384;
        let mut tls = OtherFigures::new(Transport::Tls);
        tls.mbs = vec![500.0, 700.0];
        tls.cpu = Some((3.0, 2_000_000_000));
        tls.chunks = 16384;
        tls.rate = Some(rate(10000.0, 50_000, 3.0));
        rep.others.push(tls);
        rep.rate_relay = Some(rate(20000.0, 100_000, 3.0));
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
        rep.others.clear();
        let s = summary(&o, &rep);
        assert!(!s.contains("tls"), "{s}");
    }

    #[test]
    fn log_problems_are_grouped_by_source_location() {
        let log = "a [x.c:1] WARNING: one\nb [x.c:1] WARNING: two\nc ERROR: three\n\
                   d [y.c:2] INFO: fine\n\
                   e ERROR: Cannot import load_tm function from tm module\n";
        let (shown, total) = log_problems(log);
        assert_eq!(total, 3);
        assert_eq!(shown, ["2 x a [x.c:1] WARNING: one", "1 x c ERROR: three"]);
    }
}
