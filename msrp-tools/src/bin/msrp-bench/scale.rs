//! `--idle N`: many idle AUTHed sessions on one relay (issue 19 item 3).
//!
//! The phase measures, in one run: the active pairs' round trips with no
//! idle session; N idle sessions opened (sessions per second) by child
//! processes (`msrp_tools::idle`); the workers' RSS they cost; the same
//! pairs again with them held; the workers' RSS once they are closed.

use std::time::{Duration, Instant};

use msrp_tools::idle::{split, IdleChildren, IdleSpec};
use msrp_tools::load::AuthedSink;
use msrp_tools::Transport;

use crate::phases::Bench;
use crate::progress::fmt_kib;
use crate::rate::RateResult;

/// After the idle sessions closed, the workers' RSS counts as settled when
/// it has not moved for this long: the relay reads every EOF first, and
/// gives memory back at the first once-a-second sweep after a second with
/// no close, so up to ~2 s after the last one.
const SETTLE: Duration = Duration::from_secs(4);
const SETTLE_MAX: Duration = Duration::from_secs(30);

impl Bench<'_> {
    /// The whole scale phase; its lines go to `rep.scale`.
    pub fn scale(&mut self) -> Result<(), String> {
        if self.mem.is_none() {
            return Err("--idle needs a spawned relay".into());
        }
        self.authed = (0..self.o.sessions)
            .map(|_| AuthedSink::start(self.target.addr, &self.target.uri, self.pattern.clone()))
            .collect::<Result<_, _>>()?;
        let quiet = self.pairs("pairs, no idle sessions")?;
        // After the pairs ran: their pooled buffers are not the idle
        // sessions' cost, nor something closing them should give back.
        let cold = (self.rss()?, self.pss()?);
        let warm = match self.o.idle_warmup {
            0 => None,
            n => Some(self.idle_warm_up(n)?),
        };
        let (rss0, parts0, pss0) = (self.rss()?, self.breakdown(), self.pss()?);
        let links0 = self.links();
        self.dump_smaps("before");
        let spec = self.idle_spec();
        let specs = split(&spec, self.o.idle, self.o.idle_per_client);
        let t0 = Instant::now();
        let mut children = self.open_idle(self.o.idle)?;
        let opened = children.wait_opened()?;
        let open_secs = t0.elapsed().as_secs_f64();
        println!(
            "opened {opened} in {open_secs:.1} s ({:.0} sessions/s)",
            opened as f64 / open_secs
        );
        let (rss1, parts1, pss1) = (self.rss()?, self.breakdown(), self.pss()?);
        self.dump_smaps("with");
        let busy = self.pairs(&format!("pairs, {opened} idle sessions"))?;
        self.target.check_alive()?;
        let close_secs = children.close()?.as_secs_f64();
        let rss2 = self.settled_rss()?;
        let (parts2, pss2) = (self.breakdown(), self.pss()?);
        let links2 = self.links();
        self.dump_smaps("after");
        let pss_per = (pss1.saturating_sub(pss0)) as f64 / opened.max(1) as f64;
        let per = (rss1.saturating_sub(rss0)) as f64 / opened.max(1) as f64;
        self.rep.scale = vec![
            format!(
                "scale:    {opened} idle AUTHed sessions over {} held by {} client processes from {} source addresses, {} active pairs",
                spec.transport,
                specs.len(),
                spec.sources.len(),
                self.o.sessions
            ),
            format!(
                "  opened in {open_secs:.1} s = {:.0} sessions/s (connect{} + AUTH + 200); closed in {close_secs:.1} s",
                opened as f64 / open_secs,
                if spec.transport == Transport::Tcp { "" } else { " + handshake" }
            ),
            format!(
                "  workers' RSS: {} before ({parts0}), {} with them ({parts1}) = {per:.2} KiB per idle session (target <= {} KiB)",
                fmt_kib(rss0),
                fmt_kib(rss1),
                if spec.transport == Transport::Tcp { 4 } else { 16 }
            ),
            format!(
                "  workers' RSS after they closed: {} ({parts2}) = {:+.1} % of before (target within 20 %)",
                fmt_kib(rss2),
                (rss2 as f64 / rss0.max(1) as f64 - 1.0) * 100.0
            ),
            format!(
                "  workers' PSS (shared pages counted once): {} before, {} with them = {pss_per:.2} KiB per idle session; {} after they closed = {:+.1} %",
                fmt_kib(pss0),
                fmt_kib(pss1),
                fmt_kib(pss2),
                (pss2 as f64 / pss0.max(1) as f64 - 1.0) * 100.0
            ),
            warm_line(warm, cold, (rss2, pss2)),
            links_line((rss0, pss0, links0), (rss2, pss2, links2)),
            pairs_line(&quiet, &busy),
        ];
        self.rep.scale.retain(|l| !l.is_empty());
        Ok(())
    }

    /// Child processes opening `count` idle sessions (`msrp_tools::idle`).
    fn open_idle(&self, count: usize) -> Result<IdleChildren, String> {
        let spec = self.idle_spec();
        let specs = split(&spec, count, self.o.idle_per_client);
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        println!(
            "opening {count} idle AUTHed sessions over {} ({} child processes, {} source addresses) ...",
            spec.transport,
            specs.len(),
            spec.sources.len()
        );
        IdleChildren::start(&exe, &specs)
    }

    /// `--idle-warmup N`: a wave of N idle sessions opened and closed, and
    /// the workers' RSS settled after it (they gave memory back): code
    /// the handshakes page in once is then in the "before" sample, not
    /// counted as memory the measured wave kept. The sessions opened.
    fn idle_warm_up(&mut self, count: usize) -> Result<usize, String> {
        println!("warm-up wave:");
        let mut children = self.open_idle(count)?;
        let opened = children.wait_opened()?;
        children.close()?;
        self.settled_rss()?;
        Ok(opened)
    }

    fn rss(&self) -> Result<u64, String> {
        self.mem.as_ref().map_or(Ok(0), |m| m.rss())
    }

    fn pss(&self) -> Result<u64, String> {
        self.mem.as_ref().map_or(Ok(0), |m| m.pss())
    }

    /// `MSRP_BENCH_SMAPS=DIR`: the workers' smaps at this point (see
    /// `Mem::dump_smaps`); after the close, `MSRP_BENCH_HOLD=SECS` also
    /// keeps the relay running that long, to look at it (gdb, /proc).
    fn dump_smaps(&self, label: &str) {
        if let Some(line) = self.mem.as_ref().and_then(|m| m.dump_smaps(label)) {
            println!("{line}");
        }
        let hold = std::env::var("MSRP_BENCH_HOLD").ok();
        if let (Some(secs), "after") = (hold.and_then(|v| v.parse().ok()), label) {
            println!("holding the relay {secs} s (MSRP_BENCH_HOLD)");
            std::thread::sleep(Duration::from_secs(secs));
        }
    }

    fn links(&self) -> (u64, u64) {
        self.mem.as_ref().map(|m| m.links()).unwrap_or_default()
    }

    fn breakdown(&self) -> String {
        self.mem.as_ref().map(|m| m.breakdown()).unwrap_or_default()
    }

    /// The workers' RSS once it stopped moving (or after [`SETTLE_MAX`]).
    fn settled_rss(&self) -> Result<u64, String> {
        let end = Instant::now() + SETTLE_MAX;
        let (mut last, mut since) = (self.rss()?, Instant::now());
        while Instant::now() < end && since.elapsed() < SETTLE {
            std::thread::sleep(Duration::from_millis(250));
            let now = self.rss()?;
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
        Ok(last)
    }

    /// The idle sessions' target: the --transport listener, else tcp.
    fn idle_spec(&self) -> IdleSpec {
        let sources = (0..self.o.idle_sources)
            .map(|i| std::net::IpAddr::from([127, 0, 0, 2 + i as u8]))
            .collect();
        let (relay, relay_uri, transport, certs) = match self.target.others.first() {
            Some(ot) => (ot.addr, ot.uri.clone(), ot.transport, ot.certs_dir.clone()),
            None => (
                self.target.addr,
                self.target.uri.clone(),
                Transport::Tcp,
                None,
            ),
        };
        IdleSpec {
            relay,
            relay_uri,
            transport,
            certs,
            count: 0,
            sources,
        }
    }

    /// The active pairs (--sessions A sessions, each to its AUTHed B over
    /// B's Use-Path) for --duration.
    fn pairs(&mut self, what: &str) -> Result<RateResult, String> {
        let label = format!("{} {what}", self.o.sessions);
        let routes = self.routes();
        let r = self.rate_phase(&label, &self.tcp, &|i| routes.relay(i), &self.relay_stats())?;
        self.record(&label, &r, None, None);
        Ok(r)
    }
}

/// The report line of the active pairs' round trips without and with the
/// idle sessions.
fn pairs_line(quiet: &RateResult, busy: &RateResult) -> String {
    format!(
        "  active pairs' round trip p99: {:.2} ms with none, {:.2} ms with them = {:.2}x (target <= 1.5x); p50 {:.2} / {:.2} ms; {:.0} / {:.0} msg/s",
        quiet.rtt_ms.1,
        busy.rtt_ms.1,
        busy.rtt_ms.1 / quiet.rtt_ms.1.max(1e-9),
        quiet.rtt_ms.0,
        busy.rtt_ms.0,
        quiet.per_s,
        busy.per_s
    )
}

/// The report line of a warm-up wave (empty without one): "after"
/// against the sample taken before the warm-up, as without it.
fn warm_line(warm: Option<usize>, (rss, pss): (u64, u64), (rss2, pss2): (u64, u64)) -> String {
    let Some(n) = warm else {
        return String::new();
    };
    let pct = |a: u64, b: u64| (a as f64 / b.max(1) as f64 - 1.0) * 100.0;
    format!(
        "  warm-up: {n} idle sessions opened and closed before the \"before\" sample; against the sample before the warm-up ({} RSS, {} PSS) after is {:+.1} % RSS / {:+.1} % PSS",
        fmt_kib(rss),
        fmt_kib(pss),
        pct(rss2, rss),
        pct(pss2, pss)
    )
}

/// "After" against "before" without the links' ring pages: those are
/// touched by the pairs' traffic (each pairs phase connects anew, so its
/// sessions may cross between other workers), not by the idle sessions.
fn links_line(before: (u64, u64, (u64, u64)), after: (u64, u64, (u64, u64))) -> String {
    let (rss0, pss0, (lr0, lp0)) = before;
    let (rss2, pss2, (lr2, lp2)) = after;
    let pct = |a: u64, b: u64| (a as f64 / b.max(1) as f64 - 1.0) * 100.0;
    format!(
        "  without the links' ring pages (RSS {} before, {} after; PSS {} / {}): after is {:+.1} % RSS / {:+.1} % PSS of before",
        fmt_kib(lr0),
        fmt_kib(lr2),
        fmt_kib(lp0),
        fmt_kib(lp2),
        pct(rss2.saturating_sub(lr2), rss0.saturating_sub(lr0)),
        pct(pss2.saturating_sub(lp2), pss0.saturating_sub(lp0))
    )
}
