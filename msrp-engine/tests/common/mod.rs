//! An engine over real loopback sockets in its own thread, with a host
//! whose script relays every frame and an in-memory transaction table.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use msrp_engine::config::{Config, Listen};
use msrp_engine::engine::{Engine, Host};
use msrp_engine::testing::{self, MemTable, NoStats, RelayAll};
use msrp_engine::transport::tls::TlsContext;
use msrp_engine::transport::Kind;
use msrp_tools::peer::Peer;

pub const T: Duration = Duration::from_secs(5);

/// An engine running in its own thread until dropped.
pub struct Relay {
    /// The plain TCP listener's address (the first listener).
    pub addr: SocketAddr,
    /// Every listener, in the order asked for.
    pub listeners: Vec<Listen>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// A relay on one plain TCP listener.
    pub fn start(tune: impl FnOnce(&mut Config)) -> Relay {
        Relay::start_with(&[Kind::Tcp], None, tune)
    }

    /// A relay with a listener per `kinds` entry (the first should be
    /// `Tcp`) and TLS contexts built from `tls` (the settings of `tune`d
    /// configuration are applied first).
    pub fn start_with(
        kinds: &[Kind],
        tls: Option<msrp_engine::config::TlsSettings>,
        tune: impl FnOnce(&mut Config),
    ) -> Relay {
        Relay::start_hosted(kinds, tls, RelayAll, tune)
    }

    /// [`Relay::start_with`] with `host` instead of [`RelayAll`].
    pub fn start_hosted<H: Host + Send + 'static>(
        kinds: &[Kind],
        tls: Option<msrp_engine::config::TlsSettings>,
        host: H,
        tune: impl FnOnce(&mut Config),
    ) -> Relay {
        let ls: Vec<(TcpListener, Kind)> = kinds
            .iter()
            .map(|k| (TcpListener::bind("127.0.0.1:0").expect("bind"), *k))
            .collect();
        let listeners: Vec<Listen> = ls
            .iter()
            .map(|(l, kind)| Listen {
                kind: *kind,
                addr: l.local_addr().expect("addr"),
                tls: Default::default(),
            })
            .collect();
        let mut cfg = testing::config(Vec::new());
        cfg.listen = listeners.clone();
        if let Some(t) = tls {
            cfg.tls = t;
        }
        tune(&mut cfg);
        let ctx = TlsContext::new(&cfg.tls, &cfg.listen).expect("TLS context");
        let cfg: &'static Config = Box::leak(Box::new(cfg));
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let e = Engine::new(
                cfg,
                ls,
                host,
                Box::new(MemTable::default()),
                Box::new(NoStats),
                42,
            )
            .expect("engine");
            let mut e = e.with_tls(Arc::new(ctx));
            e.run_while(|| !s.load(Ordering::Relaxed)).expect("run");
        });
        Relay {
            addr: listeners[0].addr,
            listeners,
            stop,
            thread: Some(thread),
        }
    }

    /// The relay's URI on its plain TCP listener.
    pub fn uri(&self) -> String {
        format!("msrp://{}/relay;tcp", self.addr)
    }

    /// The address of the first listener of `kind`.
    pub fn addr_of(&self, kind: Kind) -> SocketAddr {
        self.listeners
            .iter()
            .find(|l| l.kind == kind)
            .map(|l| l.addr)
            .expect("no such listener")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A plain TCP client of the relay and its URI.
pub fn client(r: &Relay) -> (Peer, String) {
    let p = Peer::connect(r.addr).expect("connect");
    let uri = format!("msrp://{}/a;tcp", p.local_addr());
    (p, uri)
}
