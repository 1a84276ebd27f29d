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
}

impl Default for RelayOpts {
    fn default() -> Self {
        RelayOpts {
            route: DEFAULT_ROUTE.to_owned(),
            modparams: Vec::new(),
            global_lines: Vec::new(),
            listen_ports: 1,
            transports: Vec::new(),
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

/// A running Kamailio with the module loaded.
pub struct Kamailio {
    child: Option<Child>,
    pgid: u32,
    dir: PathBuf,
    log_path: PathBuf,
    ip: IpAddr,
    msrp_ports: Vec<u16>,
    transport_ports: Vec<(Transport, u16)>,
    sip_port: u16,
    /// Print the log tail and keep `dir` when dropped during a panic.
    keep_on_panic: bool,
    /// Keep `dir` when dropped (start-up failed).
    keep_dir: bool,
}

impl Kamailio {
    /// Renders the cfg, starts Kamailio and waits until the first MSRP port
    /// accepts connections (panics with the log tail otherwise).
    pub fn start(opts: RelayOpts) -> Kamailio {
        let so = module_so();
        Kamailio::try_start("msrp-relay-it", &so, &opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts Kamailio with a cfg rendered by `render` from this instance's
    /// ports and directory (for cfgs the standard template cannot express).
    pub fn start_custom(listen_ports: usize, render: impl FnOnce(&CfgVars) -> String) -> Kamailio {
        Kamailio::try_start_custom("msrp-relay-it", listen_ports, render)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Kamailio::start`] with an explicit module path, returning errors
    /// (with the log tail) instead of panicking. `tmp_prefix` names the
    /// temporary directory.
    pub fn try_start(tmp_prefix: &str, so: &Path, opts: &RelayOpts) -> Result<Kamailio, String> {
        Kamailio::try_start_custom_with(tmp_prefix, opts.listen_ports, &opts.transports, |v| {
            render_cfg(opts, so, v)
        })
    }

    /// [`Kamailio::start_custom`], returning errors instead of panicking.
    pub fn try_start_custom(
        tmp_prefix: &str,
        listen_ports: usize,
        render: impl FnOnce(&CfgVars) -> String,
    ) -> Result<Kamailio, String> {
        Kamailio::try_start_custom_with(tmp_prefix, listen_ports, &[], render)
    }

    /// [`Kamailio::try_start_custom`] with a free port for each of
    /// `transports` too ([`CfgVars::transport_ports`]; the cfg must listen
    /// on them).
    pub fn try_start_custom_with(
        tmp_prefix: &str,
        listen_ports: usize,
        transports: &[Transport],
        render: impl FnOnce(&CfgVars) -> String,
    ) -> Result<Kamailio, String> {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Kamailio::try_start_custom_on(tmp_prefix, localhost, listen_ports, transports, render)
    }

    /// [`Kamailio::try_start_custom_with`] for a cfg whose MSRP listeners
    /// are on `ip` (e.g. 127.0.0.2 for the second of several relays on one
    /// host): the start-up wait and the addresses and URIs of this instance
    /// name `ip`, and its MSRP ports are free ones of `ip`.
    pub fn try_start_custom_on(
        tmp_prefix: &str,
        ip: IpAddr,
        listen_ports: usize,
        transports: &[Transport],
        render: impl FnOnce(&CfgVars) -> String,
    ) -> Result<Kamailio, String> {
        let ports = (0..listen_ports.max(1))
            .map(|_| free_tcp_port_on(ip))
            .collect();
        Kamailio::try_start_custom_at(tmp_prefix, ip, ports, transports, render)
    }

    /// [`Kamailio::try_start_custom_on`] with the MSRP ports given (e.g. the
    /// same port on several loopback addresses, as nodes on several hosts).
    pub fn try_start_custom_at(
        tmp_prefix: &str,
        ip: IpAddr,
        msrp_ports: Vec<u16>,
        transports: &[Transport],
        render: impl FnOnce(&CfgVars) -> String,
    ) -> Result<Kamailio, String> {
        assert!(!msrp_ports.is_empty(), "no MSRP port");
        let kamailio = try_require_exe("kamailio")?;
        let modules = kamailio_modules();
        if !Path::new(modules).join("ctl.so").is_file() {
            return Err(format!(
                "{modules}ctl.so missing: install Debian's kamailio package \
                 (or set KAMAILIO_MODULES to your Kamailio's module directory)"
            ));
        }
        let vars = CfgVars {
            dir: make_tmpdir(tmp_prefix)?,
            ip,
            sip_port: free_udp_port(),
            msrp_ports,
            transport_ports: transports
                .iter()
                .map(|t| (*t, free_tcp_port_on(ip)))
                .collect(),
        };
        let cfg = render(&vars);
        let CfgVars {
            dir,
            ip,
            sip_port,
            msrp_ports,
            transport_ports,
        } = vars;
        let io = |what: &str, e: std::io::Error| format!("{what} in {}: {e}", dir.display());
        let cfg_path = dir.join("kamailio.cfg");
        fs::write(&cfg_path, &cfg).map_err(|e| io("write kamailio.cfg", e))?;
        let log_path = dir.join("kamailio.log");
        let log = fs::File::create(&log_path).map_err(|e| io("create log", e))?;
        let log2 = log.try_clone().map_err(|e| io("dup log", e))?;
        let child = Command::new(&kamailio)
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "64", "-M", "16"])
            .arg("-Y")
            .arg(&dir)
            .arg("-w")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kamailio.display()))?;
        let pgid = child.id();
        let mut k = Kamailio {
            child: Some(child),
            pgid,
            dir,
            log_path,
            ip,
            msrp_ports,
            transport_ports,
            sip_port,
            keep_on_panic: true,
            keep_dir: false,
        };
        match k.wait_listening() {
            Ok(()) => Ok(k),
            Err(e) => {
                // Dropping `k` stops the process group; keep its files.
                k.keep_dir = true;
                Err(format!("{e}\n(kept {} for inspection)", k.dir.display()))
            }
        }
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        // The first MSRP port (all are bound together in mod_init), and
        // the extra transports' ports.
        let mut waiting: Vec<SocketAddr> = vec![self.relay_addr()];
        waiting.extend(self.transport_ports.iter().map(|(_, p)| self.local(*p)));
        while let Some(addr) = waiting.first().copied() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "kamailio exited during start-up ({status}); log tail:\n{}",
                    self.log_tail(60)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                waiting.remove(0);
                continue;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "kamailio did not listen on {addr} within {START_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail(60)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Whether a drop during a panic keeps the directory and prints the log
    /// tail (default true).
    pub fn set_keep_on_panic(&mut self, keep: bool) {
        self.keep_on_panic = keep;
    }

    /// First MSRP listen address.
    pub fn relay_addr(&self) -> SocketAddr {
        self.local(self.msrp_ports[0])
    }

    /// All MSRP listen addresses.
    pub fn relay_addrs(&self) -> Vec<SocketAddr> {
        self.msrp_ports.iter().map(|p| self.local(*p)).collect()
    }

    /// `msrp://127.0.0.1:PORT/SESSION;tcp` for the first listen port (the
    /// instance's address in place of 127.0.0.1).
    pub fn relay_uri(&self, session: &str) -> String {
        format!("msrp://{}/{session};tcp", self.relay_addr())
    }

    /// The address of the MSRP listeners.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    fn local(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, port)
    }

    /// The first listener of [`RelayOpts::transports`] of transport `t`
    /// (`Tcp`: the first of those, else the first listen port).
    pub fn transport_addr(&self, t: Transport) -> Option<SocketAddr> {
        match self.transport_ports.iter().find(|(tt, _)| *tt == t) {
            Some((_, p)) => Some(self.local(*p)),
            None if t == Transport::Tcp => Some(self.relay_addr()),
            None => None,
        }
    }

    /// The relay's URI on that listener: `msrps://127.0.0.1:PORT/SESSION;tcp`
    /// for TLS, `msrp(s)://127.0.0.1:PORT/SESSION;ws` for WebSockets.
    pub fn transport_uri(&self, t: Transport, session: &str) -> Option<String> {
        let a = self.transport_addr(t)?;
        Some(t.uri(&a.ip().to_string(), a.port(), session))
    }

    /// Every listener of [`RelayOpts::transports`], in order.
    pub fn transport_listeners(&self) -> Vec<(Transport, SocketAddr)> {
        self.transport_ports
            .iter()
            .map(|(t, p)| (*t, self.local(*p)))
            .collect()
    }

    /// SIP (UDP) port Kamailio listens on.
    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    /// Temporary directory of this instance.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Main process id (also the process group id).
    pub fn main_pid(&self) -> u32 {
        self.pgid
    }

    /// Whether the main Kamailio process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Everything Kamailio logged so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until some log line satisfies `pred`; returns that line.
    pub fn wait_for_log_line(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log().lines().find(|l| pred(l)) {
                return Some(l.to_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `kamcmd -s unix:<dir>/kamailio_ctl ARGS` (timeout 10 s) and
    /// returns its stdout; panics with stderr on failure.
    pub fn kamcmd(&self, args: &[&str]) -> String {
        self.try_kamcmd(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Kamailio::kamcmd`], returning errors instead of panicking.
    pub fn try_kamcmd(&self, args: &[&str]) -> Result<String, String> {
        let kamcmd = try_require_exe("kamcmd")?;
        let sock = format!("unix:{}", self.dir.join("kamailio_ctl").display());
        let out_path = self
            .dir
            .join(format!("kamcmd-{}.out", crate::ids::random_alnum(6)));
        let err_path = out_path.with_extension("err");
        let create = |p: &Path| {
            fs::File::create(p).map_err(|e| format!("kamcmd: create {}: {e}", p.display()))
        };
        let mut child = Command::new(&kamcmd)
            .arg("-s")
            .arg(&sock)
            .args(args)
            .stdin(Stdio::null())
            .stdout(create(&out_path)?)
            .stderr(create(&err_path)?)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", kamcmd.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(format!("wait kamcmd: {e}")),
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("kamcmd {args:?} did not finish within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = fs::read_to_string(&out_path).unwrap_or_default();
        let err = fs::read_to_string(&err_path).unwrap_or_default();
        let _ = fs::remove_file(&out_path);
        let _ = fs::remove_file(&err_path);
        if !status.success() {
            return Err(format!(
                "kamcmd {args:?} failed ({status}): {err}{out}\nkamailio log tail:\n{}",
                self.log_tail(30)
            ));
        }
        Ok(out)
    }

    /// `(pid, description)` of every Kamailio process, from `core.psx`,
    /// once the MSRP workers are among them (see [`Kamailio::try_psx`]).
    pub fn processes(&self) -> Vec<(u32, String)> {
        self.try_psx().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `core.psx`, asked again until it lists an MSRP worker or
    /// [`START_TIMEOUT`] has passed: the MSRP port is bound in mod_init and
    /// accepts before the main process forks the workers (after ctl's
    /// process), so right after start-up `core.psx` may not list them yet.
    fn try_psx(&self) -> Result<Vec<(u32, String)>, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let procs = parse_psx(&self.try_kamcmd(&["core.psx"])?);
            if procs.iter().any(|(_, d)| d.starts_with("MSRP worker")) || Instant::now() >= deadline
            {
                return Ok(procs);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// PIDs of the module's MSRP worker processes.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.try_worker_pids().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Kamailio::worker_pids`], returning errors instead of panicking.
    pub fn try_worker_pids(&self) -> Result<Vec<u32>, String> {
        Ok(self
            .try_psx()?
            .into_iter()
            .filter(|(_, d)| d.starts_with("MSRP worker"))
            .map(|(p, _)| p)
            .collect())
    }

    /// Current resident set size of a process in KiB.
    pub fn rss_kib(pid: u32) -> u64 {
        crate::process::rss_kib(pid).unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
    }

    /// Peak resident set size (VmHWM) of a process in KiB.
    pub fn peak_rss_kib(pid: u32) -> u64 {
        crate::process::peak_rss_kib(pid).unwrap_or_else(|| panic!("no VmHWM for pid {pid}"))
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = crate::process::terminate_group(self.pgid);
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut exited = false;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Children that outlived the main process, or a main process that
        // ignored SIGTERM: SIGKILL the whole group (ESRCH is fine).
        let _ = crate::process::kill_group(self.pgid);
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
        if std::thread::panicking() && self.keep_on_panic {
            eprintln!(
                "kept {} for inspection; kamailio log tail:\n{}",
                self.dir.display(),
                self.log_tail(40)
            );
        } else if !self.keep_dir && std::env::var_os("MSRP_KEEP_TMP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

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
