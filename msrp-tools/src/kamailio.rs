//! Runs a real Kamailio with the msrp_relay module on free 127.0.0.1 ports in
//! its own temporary directory, and stops it (its whole process group) on
//! drop.
//!
//! Shared by the integration tests (`tests/common/mod.rs` re-exports it) and
//! by `msrp-bench --spawn-relay`. The plain methods panic with a clear
//! message (what tests want); the `try_` variants return errors instead.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::stream::Transport;
use crate::tls::Certs;

/// Where Debian's kamailio package keeps its modules.
pub const DEBIAN_KAMAILIO_MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/";

/// Kamailio's module directory, with a trailing `/`: `$KAMAILIO_MODULES`,
/// else "Default paths to modules" of `kamailio -I` (the kamailio found by
/// [`find_exe`], so a Kamailio built into another prefix and put first in
/// `PATH` brings its own modules), else Debian's.
pub fn kamailio_modules() -> &'static str {
    static DIR: OnceLock<String> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var("KAMAILIO_MODULES")
            .ok()
            .filter(|d| !d.is_empty())
            .or_else(|| {
                let out = Command::new(find_exe("kamailio")?)
                    .arg("-I")
                    .stderr(Stdio::null())
                    .output()
                    .ok()?;
                parse_module_dir(&String::from_utf8_lossy(&out.stdout))
            })
            .unwrap_or_else(|| DEBIAN_KAMAILIO_MODULES.to_owned());
        if dir.ends_with('/') {
            dir
        } else {
            format!("{dir}/")
        }
    })
}

/// The first directory of "Default paths to modules:" in `kamailio -I`.
pub fn parse_module_dir(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("Default paths to modules:"))
        .and_then(|v| v.split(':').map(str::trim).find(|d| !d.is_empty()))
        .map(str::to_owned)
}

/// How long Kamailio may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long Kamailio may take to stop after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Default `event_route[msrp:frame-in]` body.
pub const DEFAULT_ROUTE: &str = r#"xlog("L_INFO", "frame-in $msrp(method) tid=$msrp(transid) from $si:$sp\n");
    msrp_relay();"#;

/// A modparam value: int or string literal.
#[derive(Debug, Clone)]
pub enum ModValue {
    Int(i64),
    Str(String),
}

impl ModValue {
    fn render(&self) -> String {
        match self {
            ModValue::Int(i) => i.to_string(),
            ModValue::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RelayOpts {
    /// Body of `event_route[msrp:frame-in]`.
    pub route: String,
    /// Extra `modparam("msrp_relay", name, value)` lines.
    pub modparams: Vec<(String, ModValue)>,
    /// Extra global cfg lines (placed before the modules are loaded).
    pub global_lines: Vec<String>,
    /// Number of MSRP listen ports (each gets a `listen` modparam).
    pub listen_ports: usize,
    /// More listeners after those: one free port each, `listen`
    /// `tls:`/`ws:`/`wss:`/`tcp:127.0.0.1:PORT` (see
    /// [`Kamailio::transport_addr`]). TLS ones need the TLS modparams
    /// ([`RelayOpts::tls_certs`]).
    pub transports: Vec<Transport>,
    /// Kamailio's shared memory, MiB (`-m`; [`DEFAULT_SHM_MB`], as
    /// Debian's unit gives).
    pub shm_mb: u32,
}

/// `-m` of an instance unless [`RelayOpts::shm_mb`] says otherwise.
pub const DEFAULT_SHM_MB: u32 = 64;

impl Default for RelayOpts {
    fn default() -> Self {
        RelayOpts {
            route: DEFAULT_ROUTE.to_owned(),
            modparams: Vec::new(),
            global_lines: Vec::new(),
            listen_ports: 1,
            transports: Vec::new(),
            shm_mb: DEFAULT_SHM_MB,
        }
    }
}

impl RelayOpts {
    pub fn route(mut self, body: &str) -> Self {
        self.route = body.to_owned();
        self
    }

    pub fn modparam_int(mut self, name: &str, v: i64) -> Self {
        self.modparams.push((name.to_owned(), ModValue::Int(v)));
        self
    }

    pub fn modparam_str(mut self, name: &str, v: &str) -> Self {
        self.modparams
            .push((name.to_owned(), ModValue::Str(v.to_owned())));
        self
    }

    pub fn global(mut self, line: &str) -> Self {
        self.global_lines.push(line.to_owned());
        self
    }

    /// Kamailio's shared memory, MiB (`-m`).
    pub fn shm_mb(mut self, mb: u32) -> Self {
        self.shm_mb = mb;
        self
    }

    /// One more listener of this transport, on a free port of its own.
    pub fn listen_transport(mut self, t: Transport) -> Self {
        self.transports.push(t);
        self
    }

    /// `tls_certificate`, `tls_private_key` and `tls_ca_list` from a set of
    /// `scripts/make-certs.sh` (the relay's pair, the test CA).
    pub fn tls_certs(mut self, certs: &Certs) -> Self {
        for (name, value) in certs.relay_modparams() {
            self = self.modparam_str(name, &value);
        }
        self
    }
}

/// Path of the module: `$MSRP_RELAY_SO`, else `libmsrp_relay.so` in the
/// directory of the running executable or its parent (`target/<profile>/`
/// holds both the tools and the module; test binaries live in its `deps/`).
pub fn find_module_so() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MSRP_RELAY_SO") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(format!(
                "MSRP_RELAY_SO={} does not name an existing file",
                p.display()
            ));
        }
        return absolute(&p);
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("libmsrp_relay.so"))
        .collect();
    match candidates.iter().find(|p| p.is_file()) {
        Some(so) => absolute(so),
        None => Err(format!(
            "module not found at {} (build it with `cargo build` first, or set MSRP_RELAY_SO)",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

/// [`find_module_so`], panicking with its message.
pub fn module_so() -> PathBuf {
    find_module_so().unwrap_or_else(|e| panic!("{e}"))
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    fs::canonicalize(p).map_err(|e| format!("cannot resolve {}: {e}", p.display()))
}

/// An executable in `PATH`, or in `/usr/sbin` / `/usr/local/sbin` (where
/// kamailio and kamcmd live; a non-root `PATH` may lack them).
pub fn find_exe(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/local/sbin".into());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn try_require_exe(name: &str) -> Result<PathBuf, String> {
    find_exe(name).ok_or_else(|| {
        format!("`{name}` not found in PATH (nor /usr/sbin): install Debian's kamailio package")
    })
}

/// Path of a required executable; panics with a clear message if missing.
pub fn require_exe(name: &str) -> PathBuf {
    try_require_exe(name).unwrap_or_else(|e| panic!("{e}"))
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_tcp_port() -> u16 {
    free_tcp_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A free TCP port on `ip` (bound then released): other loopback addresses
/// may serve as source addresses of other programs' connections, whose
/// ports are then taken there and not on 127.0.0.1.
pub fn free_tcp_port_on(ip: IpAddr) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    l.local_addr().expect("local_addr").port()
}

/// A free UDP port on 127.0.0.1 (bound then released).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1:0");
    s.local_addr().expect("local_addr").port()
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

fn make_tmpdir(prefix: &str) -> Result<PathBuf, String> {
    let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{n}-{}",
        std::process::id(),
        crate::ids::random_alnum(6)
    ));
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Per-instance values a cfg is rendered from.
#[derive(Debug)]
pub struct CfgVars {
    /// Temporary directory (runtime dir, working dir, ctl socket, log).
    pub dir: PathBuf,
    /// The address the MSRP listeners are on (127.0.0.1 unless started
    /// with [`Kamailio::try_start_custom_on`]).
    pub ip: IpAddr,
    /// Free UDP port for Kamailio's SIP listener.
    pub sip_port: u16,
    /// Free TCP ports for the MSRP listeners.
    pub msrp_ports: Vec<u16>,
    /// Free TCP ports for [`RelayOpts::transports`], in that order.
    pub transport_ports: Vec<(Transport, u16)>,
}

mod instance;

pub use instance::*;

/// Parses `kamcmd core.psx` output (`PID: n` / `DSC: text` entries).
pub fn parse_psx(out: &str) -> Vec<(u32, String)> {
    let mut res = Vec::new();
    let mut pid: Option<u32> = None;
    for line in out.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("PID:") {
            pid = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("DSC:") {
            if let Some(p) = pid.take() {
                res.push((p, v.trim().to_owned()));
            }
        }
    }
    res
}

/// The standard cfg: the template of the test plan with `opts` filled in.
pub fn render_cfg(opts: &RelayOpts, so: &Path, v: &CfgVars) -> String {
    let (dir, sip_port, msrp_ports) = (&v.dir, v.sip_port, &v.msrp_ports);
    let mut cfg = String::new();
    let _ = writeln!(cfg, "#!KAMAILIO");
    let _ = writeln!(cfg, "debug=2");
    let _ = writeln!(cfg, "log_stderror=yes");
    let _ = writeln!(cfg, "fork=yes");
    let _ = writeln!(cfg, "children=1");
    let _ = writeln!(cfg, "disable_tcp=yes");
    let _ = writeln!(cfg, "listen=udp:127.0.0.1:{sip_port}");
    for l in &opts.global_lines {
        let _ = writeln!(cfg, "{l}");
    }
    let _ = writeln!(cfg, "mpath=\"{}\"", kamailio_modules());
    let _ = writeln!(cfg, "loadmodule \"ctl.so\"");
    let _ = writeln!(
        cfg,
        "modparam(\"ctl\", \"binrpc\", \"unix:{}/kamailio_ctl\")",
        dir.display()
    );
    let _ = writeln!(cfg, "loadmodule \"pv.so\"");
    let _ = writeln!(cfg, "loadmodule \"xlog.so\"");
    let _ = writeln!(cfg, "loadmodule \"sl.so\"");
    let _ = writeln!(cfg, "loadmodule \"{}\"", so.display());
    for p in msrp_ports.iter() {
        let _ = writeln!(
            cfg,
            "modparam(\"msrp_relay\", \"listen\", \"tcp:127.0.0.1:{p}\")"
        );
    }
    for (t, p) in &v.transport_ports {
        let _ = writeln!(
            cfg,
            "modparam(\"msrp_relay\", \"listen\", \"{t}:127.0.0.1:{p}\")"
        );
    }
    for (name, v) in &opts.modparams {
        let _ = writeln!(cfg, "modparam(\"msrp_relay\", \"{name}\", {})", v.render());
    }
    let _ = writeln!(cfg, "request_route {{ drop; }}");
    let _ = writeln!(cfg, "event_route[msrp:frame-in] {{");
    let _ = writeln!(cfg, "    {}", opts.route);
    let _ = writeln!(cfg, "}}");
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psx_and_cfg() {
        let out = "PID: 10\nRANK: 0\nDSC: main process - attendant\n\
                   PID: 11\nRANK: 1\nDSC: MSRP worker 1\n";
        assert_eq!(
            parse_psx(out),
            vec![
                (10, "main process - attendant".to_owned()),
                (11, "MSRP worker 1".to_owned())
            ]
        );
        let opts = RelayOpts::default()
            .route("msrp_relay();")
            .modparam_int("workers", 2)
            .modparam_str("x", "a\"b");
        let v = CfgVars {
            dir: "/tmp/d".into(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            sip_port: 5060,
            msrp_ports: vec![2855, 2856],
            transport_ports: vec![(Transport::Tls, 2857), (Transport::Wss, 2858)],
        };
        let cfg = render_cfg(&opts, Path::new("/m.so"), &v);
        assert!(cfg.contains("modparam(\"msrp_relay\", \"listen\", \"tls:127.0.0.1:2857\")"));
        assert!(cfg.contains("modparam(\"msrp_relay\", \"listen\", \"wss:127.0.0.1:2858\")"));
        let certs = Certs::open(Path::new("/nonexistent"));
        assert!(certs.is_err());
        assert!(cfg.contains("modparam(\"msrp_relay\", \"listen\", \"tcp:127.0.0.1:2856\")"));
        assert!(cfg.contains("modparam(\"msrp_relay\", \"workers\", 2)"));
        assert!(cfg.contains("modparam(\"msrp_relay\", \"x\", \"a\\\"b\")"));
        assert!(cfg.contains("loadmodule \"/m.so\""));
        assert!(cfg.contains("unix:/tmp/d/kamailio_ctl"));
    }

    #[test]
    fn module_dir_from_kamailio_info() {
        let debian =
            "Print out of kamailio internals\n  Version: kamailio 5.6.3 (x86_64/linux) \n  \
                      Default config: /etc/kamailio/kamailio.cfg\n  \
                      Default paths to modules: /usr/lib/x86_64-linux-gnu/kamailio/modules\n";
        assert_eq!(
            parse_module_dir(debian).as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/kamailio/modules")
        );
        let several = "  Default paths to modules: /opt/k/lib64/kamailio/modules:/opt/k/lib/kamailio/modules\n";
        assert_eq!(
            parse_module_dir(several).as_deref(),
            Some("/opt/k/lib64/kamailio/modules")
        );
        assert_eq!(parse_module_dir("Version: kamailio 5.6.3\n"), None);
    }
}
