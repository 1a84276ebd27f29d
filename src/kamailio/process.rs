//! Process life cycle: mod_init (validate parameters, bind listening sockets
//! so a bad address stops Kamailio at start-up, reserve worker processes) and
//! child_init(PROC_MAIN) (fork the MSRP workers, each running the relay
//! engine forever).

use std::ffi::{c_int, CStr, CString};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use thiserror::Error;

use super::sys;
use msrp_engine::acct::{self, Ended};
use msrp_engine::config::{self, Config};
use msrp_engine::engine::{Engine, Host};
use msrp_engine::script::{self, FrameCtx};
use msrp_engine::transport::tls::{TlsContext, TlsError};
use msrp_engine::transport::Kind;

#[derive(Debug, Error)]
pub enum InitError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {listen}: {err}")]
    Bind {
        listen: config::Listen,
        err: std::io::Error,
    },
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("cannot fork MSRP worker {0}")]
    Fork(usize),
    #[error("configuration not initialised")]
    NoConfig,
}

/// Listening sockets bound in mod_init, inherited by the forked workers.
static LISTENERS: Mutex<Vec<(TcpListener, Kind)>> = Mutex::new(Vec::new());
/// TLS contexts built from the certificate files in mod_init (a broken file
/// stops Kamailio there), used by every worker until `msrp_relay.tls_reload`
/// ([`super::tlsreload`]) has it read the files again.
static TLS: OnceLock<Arc<TlsContext>> = OnceLock::new();
static EVENT_ROUTE: OnceLock<c_int> = OnceLock::new();
/// `event_route[msrp:session-end]` (-1: absent).
static END_ROUTE: OnceLock<c_int> = OnceLock::new();
/// Set by SIGTERM/SIGINT in a worker: its loop stops, its open sessions
/// end (reason shutdown), it exits.
static STOP: AtomicBool = AtomicBool::new(false);

pub fn mod_init() -> Result<(), InitError> {
    super::guard::install_panic_hook();
    let cfg = config::freeze().map_err(|errs| {
        InitError::Config(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let tls = TlsContext::new(&cfg.tls, &cfg.listen)?;
    let _ = TLS.set(Arc::new(tls));
    let mut ls = LISTENERS.lock();
    for listen in &cfg.listen {
        let l = msrp_engine::net::listen(listen.addr, cfg).map_err(|err| InitError::Bind {
            listen: listen.clone(),
            err,
        })?;
        log::info!("listening for MSRP on {listen}");
        ls.push((l, listen.kind));
    }
    super::stats::register().map_err(InitError::Config)?;
    // Every connection of every worker can be listed and found by the
    // others, and as many AUTH sessions (issue 19 item 3: 100k sessions);
    // records take shm only as they are used (see shm::ShmList).
    let listed = cfg.max_connections.saturating_mul(cfg.workers);
    super::cmapshm::init(listed).map_err(InitError::Config)?;
    super::connlist::init(listed).map_err(InitError::Config)?;
    super::tlsreload::init().map_err(InitError::Config)?;
    super::txtable::init(cfg.max_transactions, cfg.workers)
        .map_err(|e| InitError::Config(e.to_string()))?;
    let rt = {
        // SAFETY: route tables are complete once modules are initialised; the
        // name is NUL-terminated.
        unsafe { sys::msrp_shim_event_route_lookup(c"msrp:frame-in".as_ptr()) }
    };
    if rt < 0 && cfg.event_callback.is_none() {
        log::warn!("event_route[msrp:frame-in] is missing or empty: frames will be dropped");
    }
    let _ = EVENT_ROUTE.set(rt);
    // SAFETY: as above.
    let end = unsafe { sys::msrp_shim_event_route_lookup(c"msrp:session-end".as_ptr()) };
    let _ = END_ROUTE.set(end);
    // the links between workers (requests for a session another worker
    // holds go over them), inherited by the forked workers
    super::rings::init(cfg.workers).map_err(InitError::Config)?;
    // what each worker holds, so new connections go to the least loaded
    super::loads::init(cfg.workers).map_err(InitError::Config)?;
    let n = cfg.workers as c_int;
    // SAFETY: called from mod_init in the main process, as the core requires.
    unsafe {
        sys::register_procs(n);
        sys::cfg_register_child(n);
    }
    log::info!(
        "msrp_relay ready: {} listener(s), {} worker(s), max chunk size {}",
        cfg.listen.len(),
        cfg.workers,
        cfg.max_chunk_size
    );
    Ok(())
}

pub fn child_init(rank: c_int) -> Result<(), InitError> {
    if rank != sys::PROC_MAIN as c_int {
        return Ok(());
    }
    let cfg = config::get().ok_or(InitError::NoConfig)?;
    for i in 0..cfg.workers {
        // fork_process keeps the description pointer: leak it.
        let desc = CString::new(format!("MSRP worker {i}"))
            .unwrap_or_default()
            .into_raw();
        // SAFETY: called from child_init(PROC_MAIN) in the main process; the
        // rank PROC_XWORKER makes the core run every module's child_init in
        // the child, so functions of other modules work in the event route.
        let pid = unsafe { sys::fork_process(sys::PROC_XWORKER as c_int, desc, 1) };
        if pid < 0 {
            return Err(InitError::Fork(i));
        }
        if pid == 0 {
            worker_main(i, cfg);
        }
    }
    Ok(())
}

/// Body of a worker process: never returns.
fn worker_main(index: usize, cfg: &'static Config) -> ! {
    // SAFETY: a freshly forked child registered with cfg_register_child.
    if unsafe { sys::cfg_child_init() } != 0 {
        log::error!("MSRP worker {index}: cfg_child_init failed");
        std::process::exit(-1);
    }
    // SAFETY: pkg memory of this process, before any frame is handled.
    unsafe { sys::msrp_shim_pkg_reserve() };
    // every listener, in `listen` order: the engine finds a listener's TLS
    // policy by its index
    let listeners: Vec<(TcpListener, Kind)> = match LISTENERS
        .lock()
        .iter()
        .map(|(l, k)| l.try_clone().map(|l| (l, *k)))
        .collect()
    {
        Ok(ls) => ls,
        Err(e) => {
            log::error!("MSRP worker {index}: cannot use the listening sockets: {e}");
            std::process::exit(-1);
        }
    };
    let route = EVENT_ROUTE.get().copied().unwrap_or(-1);
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let callback = cfg
        .event_callback
        .as_ref()
        .map(|c| CString::new(c.as_str()).unwrap_or_default());
    let host = KamailioHost {
        route,
        end_route: END_ROUTE.get().copied().unwrap_or(-1),
        callback,
        worker: index,
    };
    catch_stop_signals(index);
    msrp_engine::cmap::with(|m| {
        m.set_mirror(Box::new(super::cmapshm::ShmMirror {
            worker: index.min(255) as u8,
        }))
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let table = Box::new(super::txtable::ShmTxTable::for_worker(index));
        let stats = Box::new(super::stats::Counters {
            worker: index.min(255) as u8,
        });
        match Engine::new(cfg, listeners, host, table, stats, seed) {
            Ok(e) => {
                let e = match TLS.get() {
                    Some(tls) => e.with_tls(tls.clone()),
                    None => e,
                };
                let mut e = e
                    .with_spare_recv(super::sockio::recv_append)
                    .with_links(index, super::rings::links(index)?)?;
                log::info!("MSRP worker {index} started (pid {})", std::process::id());
                e.run_while(|| !STOP.load(Ordering::Relaxed))?;
                e.shutdown();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }));
    match r {
        Ok(Ok(())) => {
            // stopped by SIGTERM/SIGINT, sessions ended: leave as the core's
            // children do, without the main process's exit handlers (exit()
            // would run those of every library it loaded, in a child)
            // SAFETY: _exit ends the process at once; nothing of ours needs
            // flushing (logs are written as they are made).
            unsafe { libc::_exit(0) }
        }
        Ok(Err(e)) => log::error!("MSRP worker {index} stopped: {e}"),
        Err(_) => log::error!("MSRP worker {index} stopped after an internal error (panic)"),
    }
    std::process::exit(-1)
}

/// SIGTERM / SIGINT (Kamailio stopping) set [`STOP`] in this worker
/// instead of the core's handler, which `_exit`s at once: the loop ends
/// within one pass (100 ms) and the open sessions get their session-end
/// route; Kamailio's main process waits for its children.
fn catch_stop_signals(index: usize) {
    extern "C" fn on_stop(_: c_int) {
        // (async-signal-safe: one atomic store)
        STOP.store(true, Ordering::Relaxed);
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: installs a handler that only stores to an atomic; the
        // sigaction struct is fully initialised (zeroed, empty mask).
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop as extern "C" fn(c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            log::warn!(
                "MSRP worker {index}: cannot catch signal {sig}: its sessions will end without \
                 event_route[msrp:session-end] when Kamailio stops"
            );
        }
    }
}

/// Runs the cfg script for frames, inside a worker process.
struct KamailioHost {
    route: c_int,
    /// `event_route[msrp:session-end]`, or -1.
    end_route: c_int,
    /// KEMI function name (modparam event_callback), if set.
    callback: Option<CString>,
    /// This worker's index.
    worker: usize,
}

impl KamailioHost {
    /// Runs event route `route` (or the KEMI callback for `event`) over a
    /// SIP message faked from `head` (a generic one when empty), received
    /// from `src` on `dst`.
    fn run_event(
        &self,
        route: c_int,
        event: &CStr,
        head: &[u8],
        src: std::net::SocketAddr,
        dst: Option<std::net::SocketAddr>,
        conid: i64,
    ) {
        let src = sockaddr(src);
        let dst = dst.map(sockaddr);
        let dst_ptr = dst.as_ref().map_or(std::ptr::null(), |d| {
            (d as *const libc::sockaddr_storage).cast()
        });
        let len = c_int::try_from(head.len()).unwrap_or(0);
        // SAFETY: head/src/dst outlive the call; the shim copies the head
        // into its own buffer and parses it as a SIP message (a null dst is
        // left unset).
        let msg = unsafe {
            sys::msrp_shim_fake_msg(
                head.as_ptr().cast(),
                len,
                (&src as *const libc::sockaddr_storage).cast(),
                dst_ptr,
                conid as c_int,
            )
        };
        if msg.is_null() {
            log::error!(
                "cannot build a SIP message for {}: out of memory?",
                event.to_string_lossy()
            );
            return;
        }
        // SAFETY: msg is valid until freed below; the route index was
        // looked up in mod_init; the names are NUL-terminated. Script
        // functions called inside are guarded.
        unsafe {
            match &self.callback {
                Some(cb) => {
                    let len = cb.as_bytes().len() as c_int;
                    if sys::msrp_shim_run_kemi_event(cb.as_ptr(), len, event.as_ptr(), msg) < 0 {
                        log::error!("error running the KEMI event callback");
                    }
                }
                None => {
                    sys::msrp_shim_run_event_route(route, msg);
                }
            }
            sys::msrp_shim_free_msg(msg);
        }
    }
}

impl Host for KamailioHost {
    fn run_route(&mut self, ctx: FrameCtx) -> FrameCtx {
        if self.route < 0 && self.callback.is_none() {
            return ctx;
        }
        let head = ctx.head.raw.clone();
        let (src, dst, conid) = (ctx.peer, ctx.local, ctx.conid);
        let (ctx, ()) = script::with_current(ctx, || {
            self.run_event(self.route, c"msrp:frame-in", &head, src, Some(dst), conid)
        });
        ctx
    }

    fn session_end(&mut self, e: Ended) {
        if self.end_route < 0 && self.callback.is_none() {
            return;
        }
        let (src, conid) = (e.addr, e.conid);
        acct::with_ended(e, || {
            self.run_event(self.end_route, c"msrp:session-end", b"", src, None, conid)
        });
    }

    fn tick(&mut self) {
        // SAFETY: worker process initialised with cfg_child_init.
        unsafe { sys::msrp_shim_cfg_update() }
    }

    fn tls_generation(&self) -> u64 {
        super::tlsreload::generation()
    }

    fn publish_load(&mut self, connections: u64) {
        super::loads::publish(self.worker, connections)
    }

    fn least_load(&self) -> Option<(usize, u64)> {
        super::loads::least()
    }

    fn wake_worker(&mut self, w: usize) {
        super::txtable::wake(w)
    }

    fn release_memory(&mut self) {
        // Freed connections leave free chunks all over glibc's arenas;
        // malloc_trim(0) returns every free page (not only the top) to the
        // kernel, once the thread's cache let go of its chunks.
        #[cfg(target_env = "gnu")]
        super::heap::give_back();
        // and the shared listings' pages this worker touched (issue 19)
        super::cmapshm::release_pages();
        super::connlist::release_pages();
    }
}

/// A socket address as a C `sockaddr_storage`.
fn sockaddr(a: std::net::SocketAddr) -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match a {
        std::net::SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
        }
        std::net::SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
        }
    }
    ss
}
