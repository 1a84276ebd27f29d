//! The spawned relay's MSRP worker processes: memory (RSS, peak) and CPU
//! time from /proc, summed over the workers.

use msrp_tools::kamailio::Kamailio;
use msrp_tools::process;

use crate::progress::fmt_kib;

/// Memory of the relay's MSRP worker processes (summed when several).
pub struct Mem {
    pids: Vec<u32>,
    /// VmHWM can be reset per phase (`/proc/PID/clear_refs`).
    pub can_reset: bool,
}

impl Mem {
    pub fn new(k: &Kamailio) -> Result<Mem, String> {
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

    pub fn rss(&self) -> Result<u64, String> {
        self.sum(process::rss_kib)
    }

    /// The workers' PSS: shared memory they all touched counts once
    /// (summed RSS counts a shared page once per worker).
    pub fn pss(&self) -> Result<u64, String> {
        self.sum(process::pss_kib)
    }

    /// RSS and PSS of the links between workers (the rings' mapping,
    /// `src/kamailio/rings.rs`): shared memory touched by traffic that
    /// crosses workers, pages that stay once touched.
    pub fn links(&self) -> (u64, u64) {
        self.pids
            .iter()
            .filter_map(|p| process::mapping_kib(*p, "msrp_relay links"))
            .fold((0, 0), |(r, p), (r1, p1)| (r + r1, p + p1))
    }

    /// CPU seconds the workers have used so far.
    pub fn cpu(&self) -> Result<f64, String> {
        self.sum(process::cpu_secs)
    }

    /// "anon X MiB, shmem Y MiB": private memory vs Kamailio shared memory
    /// the workers touched (both count in RSS).
    pub fn breakdown(&self) -> String {
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

    /// With `MSRP_BENCH_SMAPS=DIR` set, copies each worker's
    /// `/proc/PID/smaps` to `DIR/LABEL-PID.smaps`, to see which mappings
    /// hold memory at a point of a run (heap, pkg pool, shm); the path
    /// written, or why not.
    pub fn dump_smaps(&self, label: &str) -> Option<String> {
        let dir = std::path::PathBuf::from(std::env::var_os("MSRP_BENCH_SMAPS")?);
        let copy = |p: &u32| -> Result<(), String> {
            let text = std::fs::read(format!("/proc/{p}/smaps")).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(format!("{label}-{p}.smaps")), text)
                .map_err(|e| format!("{}: {e}", dir.display()))
        };
        let r = std::fs::create_dir_all(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))
            .and_then(|_| self.pids.iter().try_for_each(copy));
        Some(match r {
            Ok(()) => format!("smaps of the workers at \"{label}\" in {}", dir.display()),
            Err(e) => format!("smaps at \"{label}\" not written: {e}"),
        })
    }

    pub fn peak(&self) -> Result<u64, String> {
        self.sum(process::peak_rss_kib)
    }

    /// Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`).
    fn reset_peak(&self) -> bool {
        self.pids
            .iter()
            .all(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok())
    }

    /// Measures the peak while `work` runs: (RSS before, peak) in KiB.
    pub fn during<T>(
        &self,
        work: impl FnOnce() -> Result<T, String>,
    ) -> Result<(T, u64, u64), String> {
        if self.can_reset {
            self.reset_peak();
        }
        let base = self.rss()?;
        let r = work()?;
        Ok((r, base, self.peak()?))
    }
}
