//! Certificate reload in the engine, without Kamailio: a new host TLS
//! generation makes the worker read the files again; when they cannot be
//! read at its turn (changed again after the RPC checked them) it keeps
//! serving the previous certificate, and takes good files at the next
//! generation.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use msrp_engine::config::TlsSettings;
use msrp_engine::engine::Host;
use msrp_engine::script::FrameCtx;
use msrp_engine::transport::tls::fingerprint;
use msrp_engine::transport::Kind;
use msrp_tools::peer::Peer;
use msrp_tools::tls::{self, Certs, TlsFiles};

/// Relays every frame; its TLS generation is the test's counter.
struct Generations(Arc<AtomicU64>);

impl Host for Generations {
    fn run_route(&mut self, mut ctx: FrameCtx) -> FrameCtx {
        ctx.relay();
        ctx
    }

    fn tick(&mut self) {}

    fn tls_generation(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn install(dir: &Path, pair: &TlsFiles) {
    std::fs::copy(&pair.cert_chain, dir.join("cert.pem")).expect("cert");
    std::fs::copy(&pair.private_key, dir.join("key.pem")).expect("key");
}

/// The fingerprint of the certificate a new TLS client is shown.
fn shown(addr: std::net::SocketAddr, ca: &Path) -> String {
    let cfg = tls::client_config(ca, None).expect("client config");
    let p = Peer::connect_tls(addr, "127.0.0.1", &cfg).expect("TLS connect");
    fingerprint(&p.tls_peer_certificates().expect("session")[0])
}

fn fp_of(pair: &TlsFiles) -> String {
    fingerprint(&tls::load_certs(&pair.cert_chain).expect("cert")[0])
}

/// Waits until new clients are shown `want` (the engine looks at the
/// generation once per loop pass).
fn wait_shown(addr: std::net::SocketAddr, ca: &Path, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while shown(addr, ca) != want {
        assert!(Instant::now() < deadline, "still not {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn worker_reloads_on_new_generation_and_keeps_old_on_failure() {
    let c = Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"));
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "msrp-engine-reload-{}",
        msrp_tools::ids::random_alnum(10)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    install(&dir, &c.relay());
    let settings = TlsSettings {
        certificate: Some(dir.join("cert.pem")),
        private_key: Some(dir.join("key.pem")),
        ca_list: Some(c.ca()),
        ..TlsSettings::default()
    };
    let generation = Arc::new(AtomicU64::new(0));
    let host = Generations(generation.clone());
    let r = Relay::start_hosted(&[Kind::Tcp, Kind::Tls], Some(settings), host, |_| {});
    let addr = r.addr_of(Kind::Tls);
    let ca = c.ca();
    assert_eq!(shown(addr, &ca), fp_of(&c.relay()));

    // new files, same generation: nothing is read
    install(&dir, &c.endpoint());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        shown(addr, &ca),
        fp_of(&c.relay()),
        "read without a new generation"
    );
    generation.store(1, Ordering::Relaxed);
    wait_shown(addr, &ca, &fp_of(&c.endpoint()));

    // the files break before the worker's turn: it keeps what it serves
    std::fs::remove_file(dir.join("key.pem")).expect("remove key");
    install(&dir, &c.relay());
    std::fs::write(dir.join("key.pem"), b"garbage").expect("garbage key");
    generation.store(2, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        assert_eq!(
            shown(addr, &ca),
            fp_of(&c.endpoint()),
            "after a failed reload"
        );
    }

    // good files at the next generation are taken
    install(&dir, &c.relay());
    generation.store(3, Ordering::Relaxed);
    wait_shown(addr, &ca, &fp_of(&c.relay()));
    drop(r);
    let _ = std::fs::remove_dir_all(&dir);
}
