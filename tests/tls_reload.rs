//! Certificate reload (`msrp_relay.tls_reload`) against a real Kamailio
//! with two MSRP workers: after the files are replaced and the RPC called,
//! new TLS clients get the new certificate while a connection opened before
//! goes on; a missing or garbage file is an RPC error naming it and new
//! handshakes still get the running certificate; 1,000 reloads under TLS
//! traffic leave shared and private memory flat.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use msrp_tools::tls::{self, Certs};
use msrp_tools::Transport;

use common::*;

fn certs() -> Certs {
    Certs::for_tests().unwrap_or_else(|e| panic!("test certificates: {e}"))
}

/// The relay's certificate files in a directory of their own, so a test can
/// replace them: `cert.pem` and `key.pem`, removed on drop.
struct Files {
    dir: PathBuf,
}

impl Files {
    /// Starts with the test set's relay pair.
    fn new(c: &Certs) -> Files {
        let dir = std::env::temp_dir().join(format!(
            "msrp-tls-reload-{}",
            msrp_tools::ids::random_alnum(10)
        ));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let f = Files { dir };
        f.install(&c.relay());
        f
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// Copies a pair in (each file written aside and renamed, as an
    /// operator's deployment would).
    fn install(&self, pair: &tls::TlsFiles) {
        self.put(
            &self.cert(),
            &std::fs::read(&pair.cert_chain).expect("cert"),
        );
        self.put(&self.key(), &std::fs::read(&pair.private_key).expect("key"));
    }

    fn put(&self, file: &Path, bytes: &[u8]) {
        let tmp = file.with_extension("new");
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(&tmp, file).expect("rename");
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A relay with a TCP and a TLS listener serving `files`, two workers and
/// kex (`pkg.stats`).
fn relay(c: &Certs, files: &Files) -> Kamailio {
    Kamailio::start(
        RelayOpts::default()
            .listen_transport(Transport::Tls)
            .modparam_str("tls_certificate", &files.cert().display().to_string())
            .modparam_str("tls_private_key", &files.key().display().to_string())
            .modparam_str("tls_ca_list", &c.ca().display().to_string())
            .modparam_int("workers", 2)
            .global(&format!("loadmodule \"{}kex.so\"", kamailio_modules())),
    )
}

/// SHA-256 of the first certificate of a PEM file, as the RPC prints it.
fn file_fingerprint(pem: &Path) -> String {
    let certs = tls::load_certs(pem).expect("PEM certificate");
    msrp_engine::transport::tls::fingerprint(&certs[0])
}

/// A new TLS client of the relay (trusting the test CA) and the
/// fingerprint of the certificate the relay presented to it.
fn tls_client(k: &Kamailio, c: &Certs) -> (Client, String) {
    let cfg = tls::client_config(&c.ca(), None).expect("client config");
    let addr = k.transport_addr(Transport::Tls).expect("tls listener");
    let peer = Peer::connect_tls(addr, "127.0.0.1", &cfg)
        .unwrap_or_else(|e| panic!("TLS connect: {e}\n{}", k.log_tail(20)));
    let shown = peer.tls_peer_certificates().expect("TLS session");
    let fp = msrp_engine::transport::tls::fingerprint(&shown[0]);
    let a = peer.local_addr();
    let uri = format!(
        "msrps://{}:{}/{};tcp",
        a.ip(),
        a.port(),
        msrp_tools::ids::session_id()
    );
    (Client { peer, uri }, fp)
}

/// A small SEND from TLS client `a` through the relay to B (`bp`: B's side
/// of the relay's connection, accepted on first use), answered 200 at B;
/// A gets its 200.
fn send_through(k: &Kamailio, a: &mut Client, b: &Endpoint, bp: &mut Option<Peer>, body: &[u8]) {
    let relay = k.transport_uri(Transport::Tls, "relay").expect("uri");
    let b_uri = b.uri("bob");
    let req = Request::send(&[&relay, &b_uri], &[&a.uri], body);
    a.peer.send_request(&req).expect("A sends");
    if bp.is_none() {
        let p = b
            .accept(T)
            .unwrap_or_else(|e| panic!("relay did not connect to B: {e}\n{}", k.log_tail(30)));
        *bp = Some(p);
    }
    let p = bp.as_mut().expect("B's connection");
    let got = p
        .read_frame(T)
        .unwrap_or_else(|e| panic!("B read: {e}\n{}", k.log_tail(30)));
    assert_eq!(got.body, body, "{}", got.summary());
    p.send_response(&got, 200, Some("OK")).expect("B answers");
    let r = a
        .peer
        .read_response(T, &["REPORT"])
        .unwrap_or_else(|e| panic!("A's 200: {e}\n{}", k.log_tail(30)));
    assert_eq!((r.status_code(), r.tid()), (Some(200), req.tid));
}

/// `name: value` of an RPC answer.
fn rpc_field(out: &str, name: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
        .map(|v| v.trim().to_owned())
}

/// Waits until every worker has logged that it read generation `g`.
fn wait_workers_reloaded(k: &Kamailio, g: u64) {
    let needle = format!("TLS files read again (generation {g},");
    let deadline = Instant::now() + Duration::from_secs(10);
    while k.log().matches(&needle).count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the two workers did not log {needle:?}\n{}",
            k.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After new files and the RPC, a new client sees the new certificate
/// (its SHA-256, also in the RPC answer), and a client connected before
/// the reload still gets SENDs through on its connection.
#[test]
fn reload_serves_new_certificate_and_established_connections_go_on() {
    let c = certs();
    let files = Files::new(&c);
    let k = relay(&c, &files);
    let (old_fp, new_fp) = (
        file_fingerprint(&c.relay().cert_chain),
        file_fingerprint(&c.endpoint().cert_chain),
    );
    assert_ne!(old_fp, new_fp);
    let b = Endpoint::bind().expect("B");
    let mut bp = None;
    let (mut before, fp) = tls_client(&k, &c);
    assert_eq!(fp, old_fp, "certificate before the reload");
    send_through(&k, &mut before, &b, &mut bp, b"before the reload");

    files.install(&c.endpoint());
    let out = k.kamcmd(&["msrp_relay.tls_reload"]);
    assert_eq!(rpc_field(&out, "generation").as_deref(), Some("1"), "{out}");
    assert_eq!(
        rpc_field(&out, "certificate_sha256"),
        Some(new_fp.clone()),
        "{out}"
    );
    let cert = files.cert().display().to_string();
    let key = files.key().display().to_string();
    let ca = c.ca().display().to_string();
    assert_eq!(rpc_field(&out, "tls_certificate"), Some(cert), "{out}");
    assert_eq!(rpc_field(&out, "tls_private_key"), Some(key), "{out}");
    assert_eq!(rpc_field(&out, "tls_ca_list"), Some(ca), "{out}");
    wait_workers_reloaded(&k, 1);

    // new handshakes, whichever worker takes them, get the new certificate
    for i in 0..4 {
        let (mut after, fp) = tls_client(&k, &c);
        assert_eq!(fp, new_fp, "certificate of new client {i} after the reload");
        if i == 0 {
            send_through(&k, &mut after, &b, &mut bp, b"new connection");
        }
    }
    // the connection from before goes on with the session it has
    send_through(
        &k,
        &mut before,
        &b,
        &mut bp,
        b"old connection, after the reload",
    );
    assert_eq!(
        before
            .peer
            .tls_peer_certificates()
            .map(|c| msrp_engine::transport::tls::fingerprint(&c[0])),
        Some(old_fp)
    );
}

/// The RPC's error for a bad file: it names the file, and the workers keep
/// the running certificate.
fn expect_refused(k: &Kamailio, c: &Certs, file: &Path, param: &str, running_fp: &str) {
    // kamcmd prints an RPC fault as `error: CODE - MESSAGE`
    let err = match k.try_kamcmd(&["msrp_relay.tls_reload"]) {
        Ok(out) | Err(out) => out,
    };
    let name = file.display().to_string();
    assert!(
        err.starts_with(&format!("error: 500 - {param} {name}: ")),
        "the error names {param} {name}: {err}"
    );
    assert!(rpc_field(&err, "generation").is_none(), "{err}");
    std::thread::sleep(Duration::from_millis(300)); // > a worker's loop pass
    for _ in 0..4 {
        assert_eq!(tls_client(k, c).1, running_fp, "after the refused reload");
    }
}

/// A missing key, a garbage certificate, and a certificate that is not the
/// key's: each is refused naming the file, nothing changes (generation
/// stays, new handshakes get the running certificate); then good files
/// are taken as generation 1.
#[test]
fn missing_or_bad_file_keeps_running_certificate() {
    let c = certs();
    let files = Files::new(&c);
    let k = relay(&c, &files);
    let running = file_fingerprint(&c.relay().cert_chain);

    std::fs::remove_file(files.key()).expect("remove key");
    expect_refused(&k, &c, &files.key(), "tls_private_key", &running);

    files.install(&c.relay());
    files.put(
        &files.cert(),
        b"-----BEGIN GARBAGE-----\nnot a certificate\n",
    );
    expect_refused(&k, &c, &files.cert(), "tls_certificate", &running);

    // the endpoint's certificate with the relay's key
    let endpoint = std::fs::read(c.endpoint().cert_chain).expect("endpoint cert");
    files.put(&files.cert(), &endpoint);
    expect_refused(&k, &c, &files.cert(), "tls_certificate", &running);
    assert!(
        !k.log().contains("TLS files read again"),
        "a worker reloaded after a refused RPC:\n{}",
        k.log_tail(20)
    );

    files.install(&c.endpoint());
    let out = k.kamcmd(&["msrp_relay.tls_reload"]);
    assert_eq!(rpc_field(&out, "generation").as_deref(), Some("1"), "{out}");
    wait_workers_reloaded(&k, 1);
    let new_fp = file_fingerprint(&c.endpoint().cert_chain);
    assert_eq!(tls_client(&k, &c).1, new_fp);
}
