//! The relay under test: a spawned Kamailio with the module, or an
//! existing relay given by address.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use msrp_tools::kamailio::{find_exe, find_module_so, Kamailio, RelayOpts};
use msrp_tools::load::Dialer;
use msrp_tools::tls::Certs;
use msrp_tools::Transport;

use crate::cli::Opts;
use crate::interrupt;

/// The spawned relay's event route: AUTH binds a session
/// (`msrp_cmap_save()`, for --use-path), everything else is relayed.
pub const ROUTE: &str = r#"if ($msrp(method) == "AUTH") { msrp_cmap_save(); exit; } msrp_relay();"#;

/// ", certs DIR" for --transport tls/wss with --certs.
pub fn certs_dir_note(o: &Opts) -> String {
    match &o.certs {
        Some(d) if o.transports.iter().any(|t| t.is_tls()) => format!(", certs {}", d.display()),
        _ => String::new(),
    }
}

pub struct Target {
    /// Where A connects to reach the relay.
    pub addr: SocketAddr,
    /// The relay's URI, first in every To-Path.
    pub uri: String,
    /// The relay's listeners of --transport (not tcp), in order.
    pub others: Vec<OtherTransport>,
    /// Certificates made for this run in a temporary directory.
    _certs: Option<TempCerts>,
    pub kamailio: Option<Kamailio>,
    pub description: String,
}

/// A's second way to the relay (--transport tls|ws|wss).
pub struct OtherTransport {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// The relay's URI on that listener (first in To-Path).
    pub uri: String,
    pub dialer: Dialer,
    /// The certificate directory (tls/wss), for --idle's child processes.
    pub certs_dir: Option<PathBuf>,
}

/// A certificate directory made for one run, removed at exit.
pub struct TempCerts(PathBuf);

impl Drop for TempCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The certificates for --transport tls/wss: --certs DIR (made there when
/// missing), or a temporary directory.
pub fn bench_certs(o: &Opts) -> Result<(Certs, Option<TempCerts>), String> {
    let (dir, temp) = match &o.certs {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!(
                "msrp-bench-certs-{}-{}",
                std::process::id(),
                msrp_tools::ids::random_alnum(6)
            ));
            (d.clone(), Some(TempCerts(d)))
        }
    };
    let certs = Certs::make(&dir).map_err(|e| e.to_string())?;
    Ok((certs, temp))
}

/// The certificates of a spawned relay with --transport tls/wss, and the
/// temporary directory to remove at exit.
type SpawnCerts = Option<(Certs, Option<TempCerts>)>;

/// The spawned relay's configuration: route, the extra listener and its
/// certificates, modparams.
fn relay_opts(o: &Opts) -> Result<(RelayOpts, SpawnCerts), String> {
    let mut opts = RelayOpts::default().route(ROUTE);
    let mut certs = None;
    for &t in &o.transports {
        opts = opts.listen_transport(t);
        if t.is_tls() && certs.is_none() {
            let (c, temp) = bench_certs(o)?;
            opts = opts.tls_certs(&c);
            certs = Some((c, temp));
        }
    }
    if let Some(n) = o.max_chunk {
        opts = opts.modparam_int("msrp_max_chunk_size", n);
    }
    if let Some(n) = o.workers {
        opts = opts.modparam_int("workers", n);
    }
    opts = opts.shm_mb(shm_mb(o.idle));
    for (n, v) in &o.modparams {
        opts = match v.parse::<i64>() {
            Ok(i) => opts.modparam_int(n, i),
            Err(_) => opts.modparam_str(n, v),
        };
    }
    Ok((opts, certs))
}

/// Kamailio's shared memory for `idle` idle sessions: the default 64 MiB
/// plus 1 KiB per session (the shared listings take ~376 bytes per session
/// and connection, and a listing stops growing when less than a quarter
/// of shm is free: README "Scale").
fn shm_mb(idle: usize) -> u32 {
    let extra = (idle as u64).div_ceil(1024);
    msrp_tools::kamailio::DEFAULT_SHM_MB + u32::try_from(extra).unwrap_or(u32::MAX / 2)
}

/// "5.6.3 (x86_64/linux) ..." from the first line of `kamailio -v`.
fn kamailio_version() -> String {
    find_exe("kamailio")
        .and_then(|k| std::process::Command::new(k).arg("-v").output().ok())
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(|l| l.trim_start_matches("version:").trim().to_owned())
        })
        .unwrap_or_else(|| "kamailio".into())
}

/// The spawned relay's listeners of --transport (tcp left out).
fn other_transports(
    k: &Kamailio,
    o: &Opts,
    certs: Option<&Certs>,
) -> Result<Vec<OtherTransport>, String> {
    let mut v = Vec::new();
    for &t in &o.transports {
        let addr = k
            .transport_addr(t)
            .ok_or_else(|| format!("the spawned relay has no {t} listener"))?;
        let certs = certs.filter(|_| t.is_tls());
        v.push(OtherTransport {
            transport: t,
            addr,
            uri: t.uri("127.0.0.1", addr.port(), "bench"),
            dialer: Dialer::to_test_relay(t, certs, o.ws_origin.as_deref())?,
            certs_dir: certs.map(|c| c.dir().to_path_buf()),
        });
    }
    Ok(v)
}

/// The "relay:" line of a spawned relay.
fn spawned_description(o: &Opts, so: &Path, others: &[OtherTransport]) -> String {
    let extra: String = o
        .modparams
        .iter()
        .map(|(n, v)| format!(", {n} {v}"))
        .collect();
    let also = match others {
        [] => String::new(),
        _ => {
            let over: Vec<String> = others.iter().map(|ot| ot.transport.to_string()).collect();
            let listen: Vec<String> = others
                .iter()
                .map(|ot| format!("{}:{}", ot.transport, ot.addr))
                .collect();
            format!(
                "; A also over {} (listen {}{})",
                over.join(", "),
                listen.join(", "),
                certs_dir_note(o)
            )
        }
    };
    format!(
        "spawned {} + {} (workers {}, msrp_max_chunk_size {}, shared memory -m {} MiB{extra}{also}; route: {ROUTE})",
        kamailio_version(),
        so.display(),
        o.workers.map_or("1 (default)".into(), |n| n.to_string()),
        o.max_chunk
            .map_or("16384 (default)".into(), |n| n.to_string()),
        shm_mb(o.idle),
    )
}

impl Target {
    pub fn spawn(o: &Opts) -> Result<Target, String> {
        let so = match &o.module {
            Some(p) => {
                std::fs::canonicalize(p).map_err(|e| format!("--module {}: {e}", p.display()))?
            }
            None => find_module_so()?,
        };
        let (opts, certs) = relay_opts(o)?;
        let mut k = Kamailio::try_start("msrp-bench", &so, &opts)?;
        k.set_keep_on_panic(true);
        interrupt::watch_relay(&k);
        let (certs, temp) = match certs {
            Some((c, t)) => (Some(c), t),
            None => (None, None),
        };
        let others = other_transports(&k, o, certs.as_ref())?;
        let description = spawned_description(o, &so, &others);
        Ok(Target {
            addr: k.relay_addr(),
            uri: k.relay_uri("bench"),
            others,
            _certs: temp,
            kamailio: Some(k),
            description,
        })
    }

    pub fn existing(spec: &str) -> Result<Target, String> {
        let addr = spec
            .to_socket_addrs()
            .map_err(|e| format!("--relay {spec}: {e}"))?
            .next()
            .ok_or_else(|| format!("--relay {spec}: no address"))?;
        let (host, port) = spec
            .rsplit_once(':')
            .ok_or_else(|| format!("--relay {spec}: expected HOST:PORT"))?;
        Ok(Target {
            addr,
            uri: format!("msrp://{host}:{port}/bench;tcp"),
            others: Vec::new(),
            _certs: None,
            kamailio: None,
            description: format!("existing relay at {spec} ({addr})"),
        })
    }

    /// Error if the spawned relay died.
    pub fn check_alive(&mut self) -> Result<(), String> {
        if let Some(k) = self.kamailio.as_mut() {
            if !k.is_running() {
                return Err(format!(
                    "the relay (kamailio) exited; log tail:\n{}",
                    k.log_tail(40)
                ));
            }
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        self.kamailio
            .as_ref()
            .map(|k| format!("\nrelay log tail:\n{}", k.log_tail(30)))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::opts;

    #[test]
    fn certs_and_dialers_for_the_transports() {
        // --certs DIR: made there (and kept).
        let dir = std::env::temp_dir().join(format!(
            "msrp-bench-test-certs-{}",
            msrp_tools::ids::random_alnum(8)
        ));
        let mut o = opts("--spawn-relay --transport tls").unwrap();
        o.certs = Some(dir.clone());
        let (certs, temp) = bench_certs(&o).unwrap();
        assert!(temp.is_none());
        assert!(dir.join("relay.pem").is_file());
        assert!(certs_dir_note(&o).contains(&dir.display().to_string()));
        let d = Dialer::to_test_relay(Transport::Tls, Some(&certs), None).unwrap();
        assert_eq!(d.transport(), Transport::Tls);
        assert!(Dialer::to_test_relay(Transport::Wss, None, None).is_err());
        assert_eq!(
            Dialer::to_test_relay(Transport::Ws, None, Some("https://o"))
                .unwrap()
                .transport(),
            Transport::Ws
        );
        std::fs::remove_dir_all(&dir).unwrap();
        // No --certs: a temporary directory, removed with its guard.
        o.certs = None;
        let (certs, temp) = bench_certs(&o).unwrap();
        assert!(certs.ca().is_file());
        drop(temp);
        assert!(!certs.dir().exists());
    }

    #[test]
    fn shared_memory_grows_with_the_idle_sessions() {
        assert_eq!(shm_mb(0), 64, "Debian's default without --idle");
        assert_eq!(shm_mb(1), 65);
        // the 100k run's listings (~37 MiB) stay under three quarters of shm
        assert_eq!(shm_mb(100_000), 162);
    }
}
