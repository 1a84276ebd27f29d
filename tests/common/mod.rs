//! Harness for integration tests: runs a real Kamailio with the msrp_relay
//! module on free 127.0.0.1 ports in its own temporary directory, and stops
//! it (its whole process group) on drop.
//!
//! Missing prerequisites (the kamailio binary, the module's .so) make tests
//! fail with a clear message; they never skip.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use msrp_tools::body::{hex, BodyGen};
pub use msrp_tools::{EndFlag, Endpoint, Peer, PeerError, ReceivedFrame, Request};

/// Where Debian's kamailio package keeps its modules.
pub const KAMAILIO_MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/";

/// How long Kamailio may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long Kamailio may take to stop after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Default timeout for one expected MSRP frame.
pub const T: Duration = Duration::from_secs(5);

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
}

impl Default for RelayOpts {
    fn default() -> Self {
        RelayOpts {
            route: DEFAULT_ROUTE.to_owned(),
            modparams: Vec::new(),
            global_lines: Vec::new(),
            listen_ports: 1,
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
}

/// Path of the module under test: `$MSRP_RELAY_SO`, else
/// `target/<profile>/libmsrp_relay.so` next to this test binary's `deps/`.
pub fn module_so() -> PathBuf {
    if let Some(p) = std::env::var_os("MSRP_RELAY_SO") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "MSRP_RELAY_SO={} does not name an existing file",
            p.display()
        );
        return absolute(&p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is not inside target/<profile>/deps");
    let so = profile_dir.join("libmsrp_relay.so");
    assert!(
        so.is_file(),
        "module not found at {} (build it with `cargo build` first, or set MSRP_RELAY_SO)",
        so.display()
    );
    absolute(&so)
}

fn absolute(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap_or_else(|e| panic!("cannot resolve {}: {e}", p.display()))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // kamailio and kamcmd live in /usr/sbin, which a non-root PATH may lack.
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/local/sbin".into());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Path of a required executable; panics with a clear message if missing.
pub fn require_exe(name: &str) -> PathBuf {
    find_in_path(name).unwrap_or_else(|| {
        panic!("`{name}` not found in PATH (nor /usr/sbin): install Debian's kamailio package")
    })
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A free UDP port on 127.0.0.1 (bound then released).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1:0");
    s.local_addr().expect("local_addr").port()
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

fn make_tmpdir() -> PathBuf {
    let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "msrp-relay-it-{}-{n}-{}",
        std::process::id(),
        msrp_tools::ids::random_alnum(6)
    ));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// Per-instance values a cfg is rendered from.
#[derive(Debug)]
pub struct CfgVars {
    /// Temporary directory (runtime dir, working dir, ctl socket, log).
    pub dir: PathBuf,
    /// Free UDP port for Kamailio's SIP listener.
    pub sip_port: u16,
    /// Free TCP ports for the MSRP listeners.
    pub msrp_ports: Vec<u16>,
}

/// A running Kamailio with the module loaded.
pub struct Kamailio {
    child: Option<Child>,
    pgid: u32,
    dir: PathBuf,
    log_path: PathBuf,
    msrp_ports: Vec<u16>,
    sip_port: u16,
}

impl Kamailio {
    /// Renders the cfg, starts Kamailio and waits until the first MSRP port
    /// accepts connections (panics with the log tail otherwise).
    pub fn start(opts: RelayOpts) -> Kamailio {
        let so = module_so();
        Kamailio::start_custom(opts.listen_ports, |v| render_cfg(&opts, &so, v))
    }

    /// Starts Kamailio with a cfg rendered by `render` from this instance's
    /// ports and directory (for cfgs the standard template cannot express).
    pub fn start_custom(listen_ports: usize, render: impl FnOnce(&CfgVars) -> String) -> Kamailio {
        let kamailio = require_exe("kamailio");
        assert!(
            Path::new(KAMAILIO_MODULES).join("ctl.so").is_file(),
            "{KAMAILIO_MODULES}ctl.so missing: install Debian's kamailio package"
        );
        let vars = CfgVars {
            dir: make_tmpdir(),
            sip_port: free_udp_port(),
            msrp_ports: (0..listen_ports.max(1)).map(|_| free_tcp_port()).collect(),
        };
        let cfg = render(&vars);
        let CfgVars {
            dir,
            sip_port,
            msrp_ports,
        } = vars;
        let cfg_path = dir.join("kamailio.cfg");
        fs::write(&cfg_path, &cfg).expect("write kamailio.cfg");
        let log_path = dir.join("kamailio.log");
        let log = fs::File::create(&log_path).expect("create log");
        let log2 = log.try_clone().expect("dup log");
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
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kamailio.display()));
        let pgid = child.id();
        let mut k = Kamailio {
            child: Some(child),
            pgid,
            dir,
            log_path,
            msrp_ports,
            sip_port,
        };
        k.wait_listening();
        k
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = self.relay_addr();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "kamailio exited during start-up ({status}); log tail:\n{}",
                    self.log_tail(60)
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "kamailio did not listen on {addr} within {START_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// First MSRP listen address.
    pub fn relay_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.msrp_ports[0]))
    }

    /// All MSRP listen addresses.
    pub fn relay_addrs(&self) -> Vec<SocketAddr> {
        self.msrp_ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect()
    }

    /// `msrp://127.0.0.1:PORT/SESSION;tcp` for the first listen port.
    pub fn relay_uri(&self, session: &str) -> String {
        format!("msrp://127.0.0.1:{}/{session};tcp", self.msrp_ports[0])
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
        let kamcmd = require_exe("kamcmd");
        let sock = format!("unix:{}", self.dir.join("kamailio_ctl").display());
        let out_path = self
            .dir
            .join(format!("kamcmd-{}.out", msrp_tools::ids::random_alnum(6)));
        let err_path = out_path.with_extension("err");
        let mut child = Command::new(&kamcmd)
            .arg("-s")
            .arg(&sock)
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path).expect("kamcmd out"))
            .stderr(fs::File::create(&err_path).expect("kamcmd err"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", kamcmd.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait kamcmd") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kamcmd {args:?} did not finish within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = fs::read_to_string(&out_path).unwrap_or_default();
        let err = fs::read_to_string(&err_path).unwrap_or_default();
        let _ = fs::remove_file(&out_path);
        let _ = fs::remove_file(&err_path);
        assert!(
            status.success(),
            "kamcmd {args:?} failed ({status}): {err}{out}\nkamailio log tail:\n{}",
            self.log_tail(30)
        );
        out
    }

    /// `(pid, description)` of every Kamailio process, from `core.psx`.
    pub fn processes(&self) -> Vec<(u32, String)> {
        parse_psx(&self.kamcmd(&["core.psx"]))
    }

    /// PIDs of the module's MSRP worker processes.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.processes()
            .into_iter()
            .filter(|(_, d)| d.starts_with("MSRP worker"))
            .map(|(p, _)| p)
            .collect()
    }

    /// Current resident set size of a process in KiB.
    pub fn rss_kib(pid: u32) -> u64 {
        msrp_tools::process::rss_kib(pid).unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
    }

    /// Peak resident set size (VmHWM) of a process in KiB.
    pub fn peak_rss_kib(pid: u32) -> u64 {
        msrp_tools::process::peak_rss_kib(pid).unwrap_or_else(|| panic!("no VmHWM for pid {pid}"))
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = msrp_tools::process::terminate_group(self.pgid);
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
        let _ = msrp_tools::process::kill_group(self.pgid);
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
        if std::thread::panicking() {
            eprintln!(
                "kept {} for inspection; kamailio log tail:\n{}",
                self.dir.display(),
                self.log_tail(40)
            );
        } else if std::env::var_os("MSRP_KEEP_TMP").is_none() {
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
    let _ = writeln!(cfg, "mpath=\"{KAMAILIO_MODULES}\"");
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
    for (name, v) in &opts.modparams {
        let _ = writeln!(cfg, "modparam(\"msrp_relay\", \"{name}\", {})", v.render());
    }
    let _ = writeln!(cfg, "request_route {{ drop; }}");
    let _ = writeln!(cfg, "event_route[msrp:frame-in] {{");
    let _ = writeln!(cfg, "    {}", opts.route);
    let _ = writeln!(cfg, "}}");
    cfg
}

/// An "A" client connected to the relay, with its own URI.
pub struct Client {
    pub peer: Peer,
    pub uri: String,
}

impl Client {
    /// Connects to the relay; the client's URI names its own local address.
    pub fn connect(k: &Kamailio) -> Client {
        let peer = Peer::connect(k.relay_addr())
            .unwrap_or_else(|e| panic!("connect to relay {}: {e}", k.relay_addr()));
        let a = peer.local_addr();
        let uri = format!(
            "msrp://{}:{}/{};tcp",
            a.ip(),
            a.port(),
            msrp_tools::ids::session_id()
        );
        Client { peer, uri }
    }
}

/// Sends a small SEND A -> relay -> B, answers 200 at B, and checks what B
/// and A receive. `b_conn` is B's side of the relay's connection (accepted on
/// first use when `None`). Returns B's connection.
pub fn relay_small_send(
    k: &Kamailio,
    a: &mut Client,
    b: &Endpoint,
    b_uri: &str,
    b_conn: Option<Peer>,
    body: &[u8],
) -> Peer {
    let relay = k.relay_uri("relay");
    let req = Request::send(&[&relay, b_uri], &[&a.uri], body);
    a.peer
        .send_request(&req)
        .unwrap_or_else(|e| panic!("A send: {e}"));
    let mut bp = match b_conn {
        Some(p) => p,
        None => b
            .accept(T)
            .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30))),
    };
    let got = bp
        .read_frame(T)
        .unwrap_or_else(|e| panic!("B read: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(got.method().as_deref(), Some("SEND"), "{}", got.summary());
    assert_ne!(got.tid(), req.tid, "relay must use a new transaction id");
    assert_eq!(got.to_path(), vec![b_uri.to_owned()]);
    assert_eq!(got.from_path(), vec![relay.clone(), a.uri.clone()]);
    assert_eq!(
        got.header("Message-ID").as_deref(),
        req.header("Message-ID")
    );
    assert_eq!(got.body, body);
    assert_eq!(got.flag, EndFlag::Complete);
    bp.send_response(&got, 200, Some("OK"))
        .unwrap_or_else(|e| panic!("B respond: {e}"));
    let resp = a
        .peer
        .read_response(T, &["REPORT"])
        .unwrap_or_else(|e| panic!("A read response: {e}\nlog tail:\n{}", k.log_tail(30)));
    assert_eq!(resp.status_code(), Some(200), "{}", resp.summary());
    assert_eq!(resp.tid(), req.tid);
    assert_eq!(resp.to_path(), vec![a.uri.clone()]);
    bp
}
