//! The summary's table of ratios to the yardsticks (issue 22): the relay
//! against the plain TCP proxy, and the relay with A over --transport
//! against plain TCP; each a median of per-round (message rate) or per-run
//! (large transfers) ratios, since runs side by side on a shared machine
//! compare while absolute figures drift.

use std::fmt::Write as _;

use msrp_tools::tcpproxy::ProxyChild;

use crate::cli::Opts;
use crate::phases::Bench;
use crate::progress::{fmt_size, median};
use crate::rate::RateResult;
use crate::report::Report;

/// One message-rate round: the relay, the relay over --transport and the
/// TCP proxy, measured one after the other.
#[derive(Clone)]
pub struct RateRound {
    pub relay: RateResult,
    /// Over each --transport, in order.
    pub relay_t: Vec<RateResult>,
    pub proxy: RateResult,
}

impl Bench<'_> {
    /// One round: relay, relay over --transport, TCP proxy; round 1's
    /// results and memory are the ones shown beside direct.
    pub fn rate_round(&mut self, round: usize, proxy: &ProxyChild) -> Result<(), String> {
        let label = self.round_label("relay ", round);
        let (relay, mm) = self.relay_rate(&label)?;
        if let (1, Some((base, peak))) = (round, mm) {
            let what = format!(
                "{} SENDs, {} sessions",
                fmt_size(self.o.msg_size),
                self.o.sessions
            );
            self.rep.mem.push((what, base, peak));
        }
        self.record(&label, &relay, mm, Some("worker"));
        self.target.check_alive()?;
        let mut relay_t = Vec::new();
        for j in 0..self.target.others.len() {
            let (label, r) = self.other_transport_rate(j, round)?;
            self.record(&label, &r, None, Some("worker"));
            self.target.check_alive()?;
            relay_t.push(r);
        }
        let label = self.round_label("proxy ", round);
        let proxy = self.proxy_rate(&label, proxy)?;
        self.record(&label, &proxy, None, Some("proxy"));
        if round == 1 {
            self.rep.rate_relay = Some(relay.clone());
            for (of, r) in self.rep.others.iter_mut().zip(&relay_t) {
                of.rate = Some(r.clone());
            }
            self.rep.rate_proxy = Some(proxy.clone());
        }
        self.rep.rounds.push(RateRound {
            relay,
            relay_t,
            proxy,
        });
        Ok(())
    }

    /// A phase's label, with its round when there are several.
    pub fn round_label(&self, what: &str, round: usize) -> String {
        match self.o.rounds {
            1 => self.rate_label(what),
            n => format!("{} (round {round}/{n})", self.rate_label(what)),
        }
    }
}

/// A target a median ratio is held to.
#[derive(Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn show(self, median: f64) -> String {
        let (op, x, met) = match self {
            Target::AtMost(x) => ("<=", x, median <= x),
            Target::AtLeast(x) => (">=", x, median >= x),
        };
        format!("{op} {x:.2}: {}", if met { "met" } else { "MISSED" })
    }
}

/// `a[i] / b[i]` for every run where both are known.
fn ratios(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect()
}

fn some(v: &[f64]) -> Vec<Option<f64>> {
    v.iter().copied().map(Some).collect()
}

/// One row: the median of `r`, every ratio, and the target if there is one.
fn row(s: &mut String, what: &str, r: &[f64], target: Option<Target>) {
    if r.is_empty() {
        return;
    }
    let m = median(r);
    let each = r
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(" ");
    let t = target.map(|t| t.show(m)).unwrap_or_default();
    let line = format!("  {what:<34} {m:6.2}  ({each})  {t}");
    let _ = writeln!(s, "{}", line.trim_end());
}

/// The table: relay/proxy per message and per transfer, then (with
/// --transport) the transport against plain TCP.
pub fn table(s: &mut String, o: &Opts, rep: &Report) {
    let us = |r: &RateResult| r.cpu_us_per_msg();
    let rounds = &rep.rounds;
    let relay_us: Vec<_> = rounds.iter().map(|r| us(&r.relay)).collect();
    let proxy_us: Vec<_> = rounds.iter().map(|r| us(&r.proxy)).collect();
    let per_msg = ratios(&relay_us, &proxy_us);
    let mbs = ratios(&some(&rep.relay_mbs), &some(&rep.proxy_mbs));
    let gib = ratios(&rep.relay_gib_cpu, &rep.proxy_gib_cpu);
    if per_msg.is_empty() && mbs.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "against the yardsticks, median of per-round ratios ({} message-rate round{}, {} transfer run{}):",
        rounds.len(),
        if rounds.len() == 1 { "" } else { "s" },
        o.runs,
        if o.runs == 1 { "" } else { "s" }
    );
    let msg = fmt_size(o.msg_size);
    let rate: Vec<f64> = rounds
        .iter()
        .map(|r| r.relay.per_s / r.proxy.per_s.max(1e-9))
        .collect();
    row(
        s,
        &format!("CPU per {msg} message, relay/proxy"),
        &per_msg,
        Some(Target::AtMost(1.0)),
    );
    row(s, "message rate, relay/proxy", &rate, None);
    row(
        s,
        "throughput, relay/proxy",
        &mbs,
        Some(Target::AtLeast(1.0)),
    );
    row(
        s,
        "CPU per GiB, relay/proxy",
        &gib,
        Some(Target::AtMost(1.2)),
    );
    for (j, ot) in rep.others.iter().enumerate() {
        let t = ot.transport;
        let t_us: Vec<_> = rounds
            .iter()
            .map(|r| r.relay_t.get(j).and_then(us))
            .collect();
        let t_mbs = ratios(&some(&ot.mbs), &some(&rep.relay_mbs));
        row(
            s,
            &format!("throughput, {t}/tcp"),
            &t_mbs,
            Some(Target::AtLeast(0.85)),
        );
        row(
            s,
            &format!("CPU per {msg} message, {t}/tcp"),
            &ratios(&t_us, &relay_us),
            Some(Target::AtMost(1.1)),
        );
        row(
            s,
            &format!("CPU per GiB, {t}/tcp"),
            &ratios(&ot.gib_cpu, &rep.relay_gib_cpu),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::opts;
    use crate::rate::test_rate as rate;
    use crate::report::OtherFigures;
    use msrp_tools::Transport;

    #[test]
    fn ratios_are_medians_of_rounds_against_their_targets() {
        let o = opts("--spawn-relay --transport tls,wss --runs 2 --rounds 3").unwrap();
        let mut rep = Report::new("spawned test".into());
        rep.relay_mbs = vec![1000.0, 1200.0];
        rep.proxy_mbs = vec![1000.0, 1000.0];
        rep.relay_gib_cpu = vec![Some(0.6), Some(0.5)];
        rep.proxy_gib_cpu = vec![Some(0.5), None];
        let mut tls = OtherFigures::new(Transport::Tls);
        tls.mbs = vec![900.0, 600.0];
        tls.gib_cpu = vec![Some(1.2), Some(1.0)];
        rep.others.push(tls);
        rep.others.push(OtherFigures::new(Transport::Wss));
        // relay 20/16/18 us, proxy 20 us: per round 1.00 0.80 0.90
        for (relay_cpu, tls_cpu) in [(2.0, 2.2), (1.6, 2.0), (1.8, 1.8)] {
            rep.rounds.push(RateRound {
                relay: rate(10_000.0, 100_000, relay_cpu),
                relay_t: vec![
                    rate(9_000.0, 100_000, tls_cpu),
                    rate(9_000.0, 100_000, 2.0 * relay_cpu),
                ],
                proxy: rate(20_000.0, 100_000, 2.0),
            });
        }
        let mut s = String::new();
        table(&mut s, &o, &rep);
        assert!(
            s.contains("(3 message-rate rounds, 2 transfer runs)"),
            "{s}"
        );
        let line = |what: &str| s.lines().find(|l| l.contains(what)).unwrap().to_owned();
        assert!(
            line("CPU per 1 KiB message, relay/proxy")
                .ends_with("0.90  (1.00 0.80 0.90)  <= 1.00: met"),
            "{s}"
        );
        assert!(
            line("message rate, relay/proxy").contains("0.50  (0.50 0.50 0.50)"),
            "{s}"
        );
        assert!(
            line("throughput, relay/proxy").ends_with("1.10  (1.00 1.20)  >= 1.00: met"),
            "{s}"
        );
        // the second run's proxy CPU is unknown: one ratio
        assert!(
            line("CPU per GiB, relay/proxy").ends_with("1.20  (1.20)  <= 1.20: met"),
            "{s}"
        );
        assert!(
            line("throughput, tls/tcp").ends_with("0.70  (0.90 0.50)  >= 0.85: MISSED"),
            "{s}"
        );
        assert!(
            line("CPU per 1 KiB message, tls/tcp")
                .ends_with("1.10  (1.10 1.25 1.00)  <= 1.10: met"),
            "{s}"
        );
        assert!(
            line("CPU per 1 KiB message, wss/tcp")
                .ends_with("2.00  (2.00 2.00 2.00)  <= 1.10: MISSED"),
            "{s}"
        );
        // no wss transfer runs: no rows for them
        assert!(!s.contains("throughput, wss/tcp"), "{s}");
        // Without rounds or runs, no table.
        let mut s = String::new();
        table(&mut s, &o, &Report::new("x".into()));
        assert!(s.is_empty(), "{s}");
    }
}
