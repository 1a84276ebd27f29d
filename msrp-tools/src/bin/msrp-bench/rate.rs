//! The message-rate phases: sessions that each send their next SEND when
//! the previous one's 200 arrived (through the relay that 200 is the
//! relay's own, RFC 4976 §6.4.1), through the relay, the relay over
//! --transport, the TCP proxy and direct; every message verified at B.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use msrp_tools::ids::session_id;
use msrp_tools::load::{self, AuthedSink, Dialer, RateCounters, Sink, SinkStats};
use msrp_tools::process;
use msrp_tools::tcpproxy::ProxyChild;

use crate::mem::Mem;
use crate::phases::Bench;
use crate::progress::{fmt_size, rss_growth, with_progress, Unit};

/// A session fails when it cannot connect, or a 200 does not come, in
/// this time; so does B when it has not received every message by then.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct RateResult {
    pub per_s: f64,
    pub window: u64,
    pub sent: u64,
    pub secs: f64,
    /// MSRP workers' CPU seconds over the whole phase, when known.
    pub cpu: Option<f64>,
    /// Round-trip time percentiles over every round trip of the phase
    /// (warm-up included), in milliseconds: (p50, p99).
    pub rtt_ms: (f64, f64),
}

/// (p50, p99) of round-trip times in microseconds, in milliseconds.
fn percentiles(mut us: Vec<u32>) -> (f64, f64) {
    if us.is_empty() {
        return (0.0, 0.0);
    }
    us.sort_unstable();
    let at = |q: f64| f64::from(us[((us.len() - 1) as f64 * q).round() as usize]) / 1000.0;
    (at(0.5), at(0.99))
}

impl RateResult {
    /// Worker CPU microseconds per relayed message (all messages of the
    /// phase, warm-up included, against the CPU of the whole phase).
    pub fn cpu_us_per_msg(&self) -> Option<f64> {
        self.cpu
            .filter(|_| self.sent > 0)
            .map(|c| c * 1e6 / self.sent as f64)
    }
}

/// A phase's result for the summary tests: `sent` messages at `per_s`,
/// `cpu` worker seconds.
#[cfg(test)]
pub fn test_rate(per_s: f64, sent: u64, cpu: f64) -> RateResult {
    RateResult {
        per_s,
        window: sent,
        sent,
        secs: 1.0,
        cpu: Some(cpu),
        rtt_ms: (0.5, 1.0),
    }
}

/// Where session `i` connects to and its To-Path.
type Route<'a> = dyn Fn(usize) -> (SocketAddr, Vec<String>) + Sync + 'a;

/// What the session threads of one phase share: the counters and the first
/// failure, which stops them all.
#[derive(Default)]
struct Sessions {
    counters: RateCounters,
    failure: Mutex<Option<String>>,
}

impl Sessions {
    fn fail(&self, e: String) {
        self.counters.stop.store(true, Ordering::SeqCst);
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
    }

    fn sleep_unless_stopped(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.counters.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep(Duration::from_millis(20).min(end - now));
        }
    }

    /// Until `n` sessions are connected (or one failed).
    fn wait_ready(&self, n: usize) {
        let deadline = Instant::now() + TIMEOUT;
        while self.counters.ready.load(Ordering::SeqCst) < n as u64
            && !self.counters.stop.load(Ordering::SeqCst)
        {
            if Instant::now() >= deadline {
                self.fail("sessions did not connect in time".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Messages sent (and answered) by all sessions.
    fn join(&self, handles: Vec<ScopedJoinHandle<'_, u64>>) -> u64 {
        let mut sent = 0;
        for h in handles {
            match h.join() {
                Ok(n) => sent += n,
                Err(_) => self.fail("a session thread panicked".into()),
            }
        }
        sent
    }
}

/// Messages B endpoints have received so far.
fn delivered(sinks: &[&Arc<SinkStats>]) -> u64 {
    sinks
        .iter()
        .map(|s| s.messages.load(Ordering::Relaxed))
        .sum()
}

/// Every message must reach B intact: waits until B has all `sent`.
fn await_delivery(
    label: &str,
    sinks: &[&Arc<SinkStats>],
    before: u64,
    sent: u64,
) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let errors: Vec<String> = sinks.iter().flat_map(|s| s.errors()).collect();
        if !errors.is_empty() {
            return Err(format!("{label}: B: {}", errors.join("; ")));
        }
        let got = delivered(sinks) - before;
        if got == sent {
            return Ok(());
        }
        if got > sent || Instant::now() >= deadline {
            return Err(format!(
                "{label}: {sent} messages sent and answered, B received {got}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Where each path's sessions connect and their To-Paths.
pub struct Routes<'a> {
    relay: SocketAddr,
    via: &'a [String],
    sinks: &'a [Sink],
    authed: &'a [AuthedSink],
}

impl Routes<'_> {
    /// Through the relay to a B endpoint it connects to or, with
    /// --use-path, over an AUTHed B's own connection via its Use-Path.
    pub fn relay(&self, i: usize) -> (SocketAddr, Vec<String>) {
        if !self.authed.is_empty() {
            let b = &self.authed[i % self.authed.len()];
            return (
                self.relay,
                vec![b.use_path().to_owned(), b.uri().to_owned()],
            );
        }
        let sink = &self.sinks[i % self.sinks.len()];
        let mut to = self.via.to_vec();
        to.push(sink.uri(&session_id()));
        (self.relay, to)
    }

    /// Direct: each session connects to its B endpoint itself.
    fn direct(&self, i: usize) -> (SocketAddr, Vec<String>) {
        let sink = &self.sinks[i % self.sinks.len()];
        (sink.addr(), vec![sink.uri(&session_id())])
    }
}

impl Bench<'_> {
    /// All message-rate phases, in order: relay, relay over --transport,
    /// TCP proxy (stopped after it), direct.
    pub fn message_rates(&mut self, proxy: ProxyChild) -> Result<(), String> {
        if self.o.use_path {
            self.authed = (0..self.o.endpoints)
                .map(|_| {
                    AuthedSink::start(self.target.addr, &self.target.uri, self.pattern.clone())
                })
                .collect::<Result<_, _>>()?;
        }
        for round in 1..=self.o.rounds {
            self.rate_round(round, &proxy)?;
        }
        drop(proxy);

        let label = self.rate_label("direct");
        let routes = self.routes();
        let r = self.rate_phase(&label, &self.tcp, &|i| routes.direct(i), &self.sink_stats())?;
        self.record(&label, &r, None, None);
        self.rep.rate_direct = Some(r);
        Ok(())
    }

    pub fn rate_label(&self, what: &str) -> String {
        let o = self.o;
        format!("{what} {} x {} sessions", fmt_size(o.msg_size), o.sessions)
    }

    /// Prints a phase's line (and `cpu_of`'s CPU per message); counts its
    /// messages as verified.
    pub fn record(
        &mut self,
        label: &str,
        r: &RateResult,
        mem: Option<(u64, u64)>,
        cpu_of: Option<&str>,
    ) {
        let mut line = format!(
            "{label}: {:.0} msg/s ({} round trips in {:.1} s, {:.2} ms each; p50 {:.2} ms, p99 {:.2} ms)",
            r.per_s,
            r.window,
            r.secs,
            self.o.sessions as f64 * 1000.0 / r.per_s.max(1e-9),
            r.rtt_ms.0,
            r.rtt_ms.1
        );
        if let Some((base, peak)) = mem {
            line.push_str(&rss_growth(base, peak));
        }
        println!("{line}");
        if let (Some(who), Some(us)) = (cpu_of, r.cpu_us_per_msg()) {
            println!("{label}: {who} CPU {us:.1} us per message");
        }
        self.rep.verified_msgs += r.sent;
    }

    pub fn routes(&self) -> Routes<'_> {
        Routes {
            relay: self.target.addr,
            via: &self.via,
            sinks: &self.sinks,
            authed: &self.authed,
        }
    }

    fn sink_stats(&self) -> Vec<&Arc<SinkStats>> {
        self.sinks.iter().map(Sink::stats).collect()
    }

    /// The B endpoints the relay delivers to (AUTHed ones with --use-path).
    pub fn relay_stats(&self) -> Vec<&Arc<SinkStats>> {
        if self.authed.is_empty() {
            self.sink_stats()
        } else {
            self.authed.iter().map(AuthedSink::stats).collect()
        }
    }

    /// Through the relay, with the workers' CPU time and memory growth.
    pub fn relay_rate(&self, label: &str) -> Result<(RateResult, Option<(u64, u64)>), String> {
        let routes = self.routes();
        let route = |i: usize| routes.relay(i);
        let stats = self.relay_stats();
        let Some(m) = &self.mem else {
            return Ok((self.rate_phase(label, &self.tcp, &route, &stats)?, None));
        };
        let c0 = m.cpu()?;
        let (mut r, base, peak) = m.during(|| self.rate_phase(label, &self.tcp, &route, &stats))?;
        r.cpu = Some(m.cpu()? - c0);
        Ok((r, Some((base, peak))))
    }

    /// The same relay, A over --transport `j`: the same To-Paths with the
    /// relay's URI on that listener first (a Use-Path stays as handed out).
    pub fn other_transport_rate(
        &self,
        j: usize,
        round: usize,
    ) -> Result<(String, RateResult), String> {
        let ot = &self.target.others[j];
        let label = self.round_label(&format!("relay/{}", ot.transport.name()), round);
        let routes = self.routes();
        let via_other = |i: usize| {
            let (_, mut to) = routes.relay(i);
            if routes.authed.is_empty() {
                to[0] = ot.uri.clone();
            }
            (ot.addr, to)
        };
        let c0 = self.mem.as_ref().map(Mem::cpu).transpose()?;
        let mut r = self.rate_phase(&label, &ot.dialer, &via_other, &self.relay_stats())?;
        if let (Some(m), Some(c0)) = (&self.mem, c0) {
            r.cpu = Some(m.cpu()? - c0);
        }
        Ok((label, r))
    }

    /// Through the TCP proxy, with its CPU time: byte-blind, so B answers A
    /// itself; the proxy forwards every session to the first B endpoint.
    pub fn proxy_rate(&self, label: &str, proxy: &ProxyChild) -> Result<RateResult, String> {
        let b = &self.sinks[0];
        let via_proxy = |_: usize| (proxy.addr(), vec![b.uri(&session_id())]);
        let c0 = process::cpu_secs(proxy.pid());
        let mut r = self.rate_phase(label, &self.tcp, &via_proxy, &[b.stats()])?;
        if let (Some(c0), Some(c1)) = (c0, process::cpu_secs(proxy.pid())) {
            r.cpu = Some(c1 - c0);
        }
        Ok(r)
    }

    /// One measurement: `o.sessions` sessions along `route`, a warm-up,
    /// then `o.duration` counted; every message checked at `sinks`.
    pub fn rate_phase(
        &self,
        label: &str,
        dialer: &Dialer,
        route: &Route<'_>,
        sinks: &[&Arc<SinkStats>],
    ) -> Result<RateResult, String> {
        let before = delivered(sinks);
        let sessions = Sessions::default();
        let (window, secs, sent) = std::thread::scope(|s| {
            let handles = self.start_sessions(s, &sessions, dialer, route);
            // All connected (or a failure), then go.
            sessions.wait_ready(handles.len());
            sessions.counters.go.store(true, Ordering::SeqCst);
            sessions.sleep_unless_stopped(Duration::from_millis(500).min(self.o.duration / 4));
            let ok = || sessions.counters.ok.load(Ordering::Relaxed);
            let (c0, t0) = (ok(), Instant::now());
            with_progress(self.tty, label, Unit::Msgs, None, &ok, || {
                sessions.sleep_unless_stopped(self.o.duration)
            });
            let (c1, secs) = (ok(), t0.elapsed().as_secs_f64());
            sessions.counters.stop.store(true, Ordering::SeqCst);
            (c1 - c0, secs, sessions.join(handles))
        });
        if let Some(e) = sessions.failure.into_inner().ok().flatten() {
            return Err(format!("{label}: {e}"));
        }
        await_delivery(label, sinks, before, sent)?;
        let times = sessions.counters.round_trips_us.into_inner();
        Ok(RateResult {
            per_s: window as f64 / secs,
            window,
            sent,
            secs,
            cpu: None,
            rtt_ms: percentiles(times.unwrap_or_default()),
        })
    }

    /// One thread per session, waiting for `go`.
    fn start_sessions<'scope, 'env>(
        &'env self,
        s: &'scope Scope<'scope, 'env>,
        sessions: &'env Sessions,
        dialer: &'env Dialer,
        route: &Route<'_>,
    ) -> Vec<ScopedJoinHandle<'scope, u64>> {
        let (o, pattern) = (self.o, &self.pattern);
        let mut handles = Vec::with_capacity(o.sessions);
        for i in 0..o.sessions {
            let (addr, to_path) = route(i);
            let counters = &sessions.counters;
            // (only sessions to the relay itself, not to the proxy or B)
            let to_relay =
                addr == self.target.addr || self.target.others.iter().any(|t| t.addr == addr);
            let cross = o.cross && !self.authed.is_empty() && to_relay;
            let spawned = std::thread::Builder::new()
                .name(format!("session-{i}"))
                .spawn_scoped(s, move || {
                    let pick = |a: SocketAddr| self.crossing_path(i, a);
                    if cross {
                        load::rate_session_picking(
                            dialer, addr, &pick, 60, o.msg_size, pattern, counters, TIMEOUT,
                        )
                    } else {
                        load::rate_session_with(
                            dialer, addr, to_path, o.msg_size, pattern, counters, TIMEOUT,
                        )
                    }
                    .unwrap_or_else(|e| {
                        sessions.fail(format!("session {i}: {e}"));
                        0
                    })
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    sessions.fail(format!("cannot start session thread {i}: {e}"));
                    break;
                }
            }
        }
        handles
    }
}

impl Bench<'_> {
    /// --cross: the To-Path of session `i` whose connection comes from `a`:
    /// a B endpoint another worker holds (`None`: every B is on A's worker,
    /// dial again). Workers from `msrp_relay.connections`.
    fn crossing_path(&self, i: usize, a: SocketAddr) -> Option<Vec<String>> {
        let k = self.target.kamailio.as_ref()?;
        for _ in 0..100 {
            let list = k.try_kamcmd(&["msrp_relay.connections"]).ok()?;
            let worker = |peer: SocketAddr| worker_in(&list, peer);
            let Some(wa) = worker(a) else {
                // not accepted yet
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let others: Vec<_> = self
                .authed
                .iter()
                .filter(|b| worker(b.local()).is_some_and(|w| w != wa))
                .collect();
            let b = others.get(i % others.len().max(1))?;
            return Some(vec![b.use_path().to_owned(), b.uri().to_owned()]);
        }
        None
    }
}

/// The worker of the connection from `peer` in a `msrp_relay.connections`
/// listing.
fn worker_in(list: &str, peer: SocketAddr) -> Option<u64> {
    let needle = format!("PEER: {peer}\n");
    list.split('{').find(|b| b.contains(&needle)).and_then(|b| {
        b.lines()
            .find_map(|l| l.trim().strip_prefix("WORKER: "))
            .and_then(|v| v.trim().parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn worker_of_a_listed_peer() {
        let list = "{\n\tID: 1\n\tWORKER: 0\n\tPEER: 127.0.0.1:4000\n}\n{\n\tID: 2\n\tWORKER: 1\n\tPEER: 127.0.0.1:40001\n}\n";
        let at = |p: &str| super::worker_in(list, p.parse().unwrap());
        assert_eq!(at("127.0.0.1:4000"), Some(0));
        assert_eq!(at("127.0.0.1:40001"), Some(1));
        assert_eq!(at("127.0.0.1:400"), None);
    }

    #[test]
    fn round_trip_percentiles() {
        assert_eq!(percentiles(Vec::new()), (0.0, 0.0));
        let us: Vec<u32> = (1..=1000).rev().map(|i| i * 10).collect();
        let (p50, p99) = percentiles(us);
        assert!((p50 - 5.01).abs() < 0.011, "{p50}");
        assert!((p99 - 9.9).abs() < 0.011, "{p99}");
    }
}
