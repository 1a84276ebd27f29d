//! The resolver thread of a worker: a hickory-dns resolver on a
//! single-threaded tokio runtime. Names come in over a channel, answers go
//! back over another and the event loop is woken with a `mio::Waker`.
//!
//! The thread never calls Kamailio (no logging either: the worker is a
//! Kamailio child and its logger is not thread-safe); everything worth a
//! log line is in the answer, which the event loop logs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::cache::Found;
use super::LookupError;

/// What the resolver is told by the `dns_*` modparams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The name server to ask instead of `/etc/resolv.conf`'s.
    pub server: Option<SocketAddr>,
    /// Longest a lookup may take, all servers and attempts included.
    pub timeout: Duration,
}

/// The event loop's end of the resolver thread.
pub struct ResolverThread {
    names: UnboundedSender<String>,
    answers: mpsc::Receiver<(String, Found)>,
}

impl ResolverThread {
    /// Starts the thread; `waker` wakes the event loop for each answer.
    pub fn spawn(settings: Settings, waker: mio::Waker) -> std::io::Result<ResolverThread> {
        let (names, rx) = unbounded_channel();
        let (tx, answers) = mpsc::channel();
        let waker = Arc::new(waker);
        std::thread::Builder::new()
            .name("msrp-dns".into())
            .spawn(move || run(settings, rx, tx, waker))?;
        Ok(ResolverThread { names, answers })
    }

    /// Asks for `name`; false when the thread is gone.
    pub fn lookup(&self, name: String) -> bool {
        self.names.send(name).is_ok()
    }

    /// The answers that arrived (taken).
    pub fn answers(&self) -> Vec<(String, Found)> {
        self.answers.try_iter().collect()
    }
}

fn run(
    settings: Settings,
    mut names: UnboundedReceiver<String>,
    out: mpsc::Sender<(String, Found)>,
    waker: Arc<mio::Waker>,
) {
    let answer = move |name: String, found: Found| {
        if out.send((name, found)).is_ok() {
            let _ = waker.wake();
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let why = LookupError::Runtime(Arc::new(e));
            while let Some(name) = names.blocking_recv() {
                answer(name, Found::Failed(why.clone(), None));
            }
            return;
        }
    };
    rt.block_on(async move {
        let resolver = Arc::new(build(&settings));
        while let Some(name) = names.recv().await {
            let (r, answer) = (resolver.clone(), answer.clone());
            tokio::spawn(async move {
                let found = lookup(&r, &name, settings.timeout).await;
                answer(name, found);
            });
        }
    });
}

/// The resolver an operator expects: `/etc/resolv.conf` (servers, search
/// list, ndots, timeout, attempts; without one the server on 127.0.0.1,
/// as glibc does) and `/etc/hosts`; `dns_server` replaces the servers only;
/// no attempt outlives `dns_timeout`.
fn build(s: &Settings) -> TokioResolver {
    let (system, mut opts) = match hickory_resolver::system_conf::read_system_conf() {
        Ok(c) => c,
        // like glibc without a resolv.conf: the local server (resolv.conf(5))
        Err(_) => (
            ResolverConfig::from_parts(
                None,
                Vec::new(),
                NameServerConfigGroup::from_ips_clear(&[Ipv4Addr::LOCALHOST.into()], 53, true),
            ),
            ResolverOpts::default(),
        ),
    };
    let config = match s.server {
        Some(a) => ResolverConfig::from_parts(
            system.domain().cloned(),
            system.search().to_vec(),
            NameServerConfigGroup::from_ips_clear(&[a.ip()], a.port(), true),
        ),
        None => system,
    };
    opts.use_hosts_file = ResolveHosts::Always;
    opts.timeout = opts.timeout.min(s.timeout);
    TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        .with_options(opts)
        .build()
}

async fn lookup(r: &TokioResolver, name: &str, timeout: Duration) -> Found {
    match tokio::time::timeout(timeout, r.lookup_ip(name)).await {
        Err(_) => Found::Failed(
            LookupError::TimedOut {
                name: name.to_string(),
                secs: timeout.as_secs(),
            },
            None,
        ),
        Ok(Ok(ips)) => Found::Addrs(ips.iter().collect(), ips.valid_until()),
        Ok(Err(e)) => failed(name, &e),
    }
}

/// A failure as the operator reads it, with the zone's negative TTL.
fn failed(name: &str, e: &ResolveError) -> Found {
    use hickory_resolver::proto::ProtoErrorKind;
    let ttl = e.proto().and_then(|p| match p.kind() {
        ProtoErrorKind::NoRecordsFound { negative_ttl, .. } => {
            negative_ttl.map(|t| Duration::from_secs(u64::from(t)))
        }
        _ => None,
    });
    let name = name.to_string();
    let why = if e.is_nx_domain() {
        LookupError::NoSuchDomain { name }
    } else if e.is_no_records_found() {
        LookupError::NoRecords { name }
    } else {
        LookupError::Resolver {
            name,
            error: e.clone(),
        }
    };
    Found::Failed(why, ttl)
}
