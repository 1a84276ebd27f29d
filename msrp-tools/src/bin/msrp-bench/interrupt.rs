//! Interrupts: Kamailio runs in its own process group, so a Ctrl-C on the
//! terminal does not reach it; stop it ourselves.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use msrp_tools::kamailio::Kamailio;
use msrp_tools::process;

/// Set by the signal handler; the watcher thread acts on it.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The spawned relay's process group and run directory (see [`watch_relay`]).
static RELAY_PGID: AtomicU32 = AtomicU32::new(0);
static RELAY_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// An interrupt from now on stops the relay `k` and removes its directory.
pub fn watch_relay(k: &Kamailio) {
    RELAY_PGID.store(k.main_pid(), Ordering::SeqCst);
    if let Ok(mut d) = RELAY_DIR.lock() {
        *d = Some(k.dir().to_path_buf());
    }
}

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP stop a watched relay, then this process
/// (exit status 130).
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only stores
        // to an atomic, which is async-signal-safe; signal(2) has no other
        // preconditions.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
    let _ = std::thread::Builder::new()
        .name("interrupt-watch".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_millis(50));
            if !INTERRUPTED.load(Ordering::SeqCst) {
                continue;
            }
            eprintln!("\ninterrupted");
            let pgid = RELAY_PGID.load(Ordering::SeqCst);
            if pgid > 1 {
                eprintln!("stopping the relay (process group {pgid})");
                let _ = process::terminate_group(pgid);
                let deadline = Instant::now() + Duration::from_secs(3);
                while process::alive(pgid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = process::kill_group(pgid);
                let dir = RELAY_DIR.lock().ok().and_then(|d| d.clone());
                if let Some(d) = dir {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
            std::process::exit(130);
        });
}
