//! A running Kamailio: start, wait for its listeners, addresses, log,
//! `kamcmd`, its processes and memory; stopped with its process group on
//! drop.

use super::*;

/// Where and how one instance is started.
struct Launch<'a> {
    ip: IpAddr,
    msrp_ports: Vec<u16>,
    transports: &'a [Transport],
    /// Kamailio's shared memory, MiB (`-m`).
    shm_mb: u32,
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
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ports = (0..opts.listen_ports.max(1))
            .map(|_| free_tcp_port_on(ip))
            .collect();
        let launch = Launch {
            ip,
            msrp_ports: ports,
            transports: &opts.transports,
            shm_mb: opts.shm_mb,
        };
        Kamailio::launch(tmp_prefix, launch, |v| render_cfg(opts, so, v))
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
        let launch = Launch {
            ip,
            msrp_ports,
            transports,
            shm_mb: DEFAULT_SHM_MB,
        };
        Kamailio::launch(tmp_prefix, launch, render)
    }

    fn launch(
        tmp_prefix: &str,
        Launch {
            ip,
            msrp_ports,
            transports,
            shm_mb,
        }: Launch<'_>,
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
            .args(["-DD", "-E", "-m", &shm_mb.to_string(), "-M", "16"])
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
