//! The soak's samples after each round, its summary table and verdict.

use super::*;

/// One sample, taken after a round.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Duration,
    pub rss_kib: u64,
    pub fds: u64,
    pub outstanding: i64,
    pub connections: i64,
}

/// What the rounds did, for the summary.
pub(super) struct Counts {
    pub rounds: u64,
    pub messages: u64,
    pub handshake_failures: i64,
}

/// The table of samples, what was verified, and the verdict; an error when
/// the bad handshakes were not all counted or anything grew.
pub(super) fn summary(
    c: &Counts,
    secure: &[Secure],
    samples: &[Sample],
    end: Sample,
) -> Result<String, String> {
    let (rounds, messages, handshake_failures) = (c.rounds, c.messages, c.handshake_failures);
    let mut out = table(samples, end);
    let _ = writeln!(
        out,
        "{rounds} rounds, {messages} 1 KiB messages and {rounds} x 8 MiB verified at B, \
         {} REPORT cases each answered exactly once; {} injected faults handled \
         (dropped chunks: one REPORT and a 413 each, no 200)",
        rounds * 4,
        rounds * 5
    );
    for s in secure {
        let _ = write!(
            out,
            "over {}: {} 1 KiB messages and {} x {} MiB verified at B; ",
            s.transport,
            s.messages,
            s.transfers,
            SECURE_BIG >> 20
        );
    }
    let bad = rounds * secure.len() as u64;
    let _ = writeln!(
        out,
        "{} TLS/WSS connections churned; {bad} plain-text handshakes closed \
         (tls_handshake_failures {handshake_failures})",
        rounds * (secure.len() * SECURE_CHURN) as u64
    );
    if handshake_failures < bad as i64 {
        return Err(format!(
            "{bad} bad TLS handshakes, tls_handshake_failures says {handshake_failures}"
        ));
    }
    verdict(samples, end).map(|v| {
        out.push_str(&v);
        out
    })
}

/// A counter of the module (`msrp_relay:NAME`, from kex).
pub(super) fn stat(k: &Kamailio, name: &str) -> Result<i64, String> {
    let stats = k.try_kamcmd(&["stats.get_statistics", "msrp_relay:"])?;
    Ok(field(&stats, &format!("msrp_relay:{name} = ")))
}

/// The number after `key` on a line of kamcmd's output (-1 without one).
pub(super) fn field(text: &str, key: &str) -> i64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

pub(super) fn sample(k: &Kamailio, at: Duration) -> Result<Sample, String> {
    let pids = k.try_worker_pids()?;
    let rss_kib = pids.iter().filter_map(|p| process::rss_kib(*p)).sum();
    let fds = pids
        .iter()
        .filter_map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
        .map(|d| d.count() as u64)
        .sum();
    let reports = k.try_kamcmd(&["msrp_relay.reports"])?;
    Ok(Sample {
        at,
        rss_kib,
        fds,
        outstanding: field(&reports, "outstanding:"),
        connections: stat(k, "connections_active")?,
    })
}

pub(super) fn table(samples: &[Sample], end: Sample) -> String {
    let mut out = String::from("    time   worker RSS    fds   tx table   connections\n");
    let step = (samples.len() / 12).max(1);
    let rows = samples.iter().step_by(step).chain(std::iter::once(&end));
    for s in rows {
        let _ = writeln!(
            out,
            "{:>7.0}s {:>9} KiB {:>6} {:>10} {:>13}",
            s.at.as_secs_f64(),
            s.rss_kib,
            s.fds,
            s.outstanding,
            s.connections
        );
    }
    out
}

/// Fails on growth: the last third of the run against the first third,
/// and an end state (after settling) with transactions left.
pub(super) fn verdict(samples: &[Sample], end: Sample) -> Result<String, String> {
    let third = (samples.len() / 3).max(1);
    let first = &samples[..third];
    let last = &samples[samples.len() - third..];
    let max = |s: &[Sample], f: fn(&Sample) -> i64| s.iter().map(f).max().unwrap_or(0);
    let rss = (
        max(first, |s| s.rss_kib as i64),
        max(last, |s| s.rss_kib as i64),
    );
    let fds = (max(first, |s| s.fds as i64), max(last, |s| s.fds as i64));
    let conns = (max(first, |s| s.connections), max(last, |s| s.connections));
    let mut problems = Vec::new();
    if rss.1 > rss.0 + 8 * 1024 {
        problems.push(format!("worker RSS grew from {} to {} KiB", rss.0, rss.1));
    }
    if fds.1 > fds.0 + 16 {
        problems.push(format!("open descriptors grew from {} to {}", fds.0, fds.1));
    }
    if conns.1 > conns.0 + 16 {
        problems.push(format!("connections grew from {} to {}", conns.0, conns.1));
    }
    if end.outstanding != 0 {
        problems.push(format!(
            "{} transactions left in the table",
            end.outstanding
        ));
    }
    if problems.is_empty() {
        Ok(format!(
            "verdict: bounded (RSS max {} -> {} KiB, fds {} -> {}, connections {} -> {}, table empty at the end)\n",
            rss.0, rss.1, fds.0, fds.1, conns.0, conns.1
        ))
    } else {
        Err(problems.join("; "))
    }
}
