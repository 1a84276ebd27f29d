//! Formatting of sizes and memory, the live status line, medians.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli::MIB;

pub fn fmt_size(b: u64) -> String {
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

pub fn fmt_kib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

pub fn fmt_growth(base: u64, peak: u64) -> String {
    let d = peak as i64 - base as i64;
    format!(
        "{}{:.1} MiB",
        if d < 0 { "-" } else { "+" },
        d.abs() as f64 / 1024.0
    )
}

/// "; worker RSS X -> peak Y (+Z MiB)" for a phase's progress line.
pub fn rss_growth(base: u64, peak: u64) -> String {
    format!(
        "; worker RSS {} -> peak {} ({})",
        fmt_kib(base),
        fmt_kib(peak),
        fmt_growth(base, peak)
    )
}

#[derive(Clone, Copy)]
pub enum Unit {
    Bytes,
    Msgs,
}

/// Runs `work`; meanwhile, on a terminal, keeps one status line updated with
/// `count()` and its rate.
pub fn with_progress<T>(
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

pub fn median(v: &[f64]) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
    }

    #[test]
    fn sizes_and_growth_read_as_operators_write_them() {
        assert_eq!(fmt_size(1023), "1023 B");
        assert_eq!(fmt_size(4096), "4 KiB");
        assert_eq!(fmt_size(256 * MIB), "256 MiB");
        assert_eq!(fmt_size(3 * MIB / 2), "1.5 MiB");
        assert_eq!(fmt_growth(5000, 100), "-4.8 MiB");
        assert_eq!(
            rss_growth(1024, 3000),
            "; worker RSS 1.0 MiB -> peak 2.9 MiB (+1.9 MiB)"
        );
    }
}
