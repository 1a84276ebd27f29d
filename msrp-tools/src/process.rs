//! Process helpers for harnesses that run Kamailio: signals to a process
//! group, liveness, and memory figures from `/proc`.

use std::io;

/// Sends `SIGTERM` to every process of process group `pgid`.
pub fn terminate_group(pgid: u32) -> io::Result<()> {
    signal_group(pgid, libc::SIGTERM)
}

/// Sends `SIGKILL` to every process of process group `pgid`.
pub fn kill_group(pgid: u32) -> io::Result<()> {
    signal_group(pgid, libc::SIGKILL)
}

/// Sends `SIGTERM` to process `pid` alone (Kamailio's main process: it
/// stops its children and waits for them, its log stays readable).
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) has no memory-safety preconditions; a pid > 1
    // addresses that one process.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn signal_group(pgid: u32, sig: libc::c_int) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pgid out of range"))?;
    if pgid <= 1 {
        // kill(-1, ..) or kill(0, ..) would hit far more than the group.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal process group <= 1",
        ));
    }
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
    // addresses exactly the process group `pgid` (> 1, checked above).
    let rc = unsafe { libc::kill(-pgid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; it follows the ")" that closes the comm field.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !stat[i + 1..].trim_start().starts_with('Z'),
            None => true,
        },
        Err(_) => false,
    }
}

/// A `kB` field of `/proc/PID/status` (e.g. "VmRSS", "VmHWM").
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// Proportional set size of a process in KiB (`/proc/PID/smaps_rollup`):
/// its private pages plus its share of pages other processes have
/// resident too, so shared memory summed over processes counts once.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup.lines().find_map(|line| {
        let rest = line.strip_prefix("Pss:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// RSS and PSS in KiB of a process's mappings whose name (the path column
/// of `/proc/PID/smaps`) contains `name`, e.g. `msrp_relay links`.
pub fn mapping_kib(pid: u32, name: &str) -> Option<(u64, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    Some(sum_mappings(&smaps, name))
}

fn sum_mappings(smaps: &str, name: &str) -> (u64, u64) {
    let (mut rss, mut pss, mut inside) = (0, 0, false);
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or_default();
        let kib = || f.clone().next().and_then(|v| v.parse::<u64>().ok());
        match first {
            "Rss:" if inside => rss += kib().unwrap_or(0),
            "Pss:" if inside => pss += kib().unwrap_or(0),
            // a mapping's header line: ADDR-ADDR PERMS OFFSET DEV INODE [PATH]
            _ if first.contains('-') && !first.ends_with(':') => inside = line.contains(name),
            _ => {}
        }
    }
    (rss, pss)
}

/// Peak resident set size (high water mark) of a process in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the ")" closing comm: state is field 3, utime 14, stime 15.
    let mut f = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // SAFETY: sysconf(3) only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| (utime + stime) as f64 / hz as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_mappings_of_one_name() {
        let smaps = "\
7f00-7f10 rw-s 00000000 00:01 5 /memfd:msrp_relay links (deleted)
Size:              64 kB
Rss:               12 kB
Pss:                6 kB
7f10-7f20 rw-s 00000000 00:01 6 /dev/zero (deleted)
Rss:              100 kB
Pss:               50 kB
7f20-7f30 rw-s 00000000 00:01 5 /memfd:msrp_relay links (deleted)
Rss:                4 kB
Pss:                1 kB
";
        assert_eq!(sum_mappings(smaps, "msrp_relay links"), (16, 7));
        assert_eq!(sum_mappings(smaps, "/dev/zero"), (100, 50));
        assert_eq!(sum_mappings(smaps, "nothing"), (0, 0));
    }

    #[test]
    fn own_process_figures() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(rss_kib(me).unwrap() > 0);
        assert!(peak_rss_kib(me).unwrap() >= rss_kib(me).unwrap() / 2);
        assert!(terminate_group(0).is_err());
        assert!(terminate_group(1).is_err());
    }

    #[test]
    fn cpu_time_grows_with_work() {
        // Spins until /proc shows 0.1 s more CPU (on a loaded machine that
        // takes longer than 0.1 s of wall time, so wait up to 20 s).
        let me = std::process::id();
        let before = cpu_secs(me).unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        let mut used = 0.0;
        while used < 0.1 && t.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            used = cpu_secs(me).unwrap() - before;
        }
        assert!(
            (0.1..5.0).contains(&used),
            "spinning for {:?} counted {used} s of CPU",
            t.elapsed()
        );
    }
}
