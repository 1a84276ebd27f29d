//! TLS test helpers: certificate files a test can replace, TLS clients
//! and the fingerprint of the certificate the relay showed them, RPC
//! answer fields.

use std::path::{Path, PathBuf};

use msrp_tools::tls::{self, Certs};
use msrp_tools::Transport;

use super::{Client, Kamailio, Peer};

/// The relay's certificate files in a directory of their own, so a test can
/// replace them: `cert.pem` and `key.pem`, removed on drop.
pub struct Files {
    dir: PathBuf,
}

impl Files {
    /// Starts with the test set's relay pair.
    pub fn new(c: &Certs) -> Files {
        Files::with_suffix(c, "")
    }

    /// [`Files::new`] in a directory whose name ends with `suffix`.
    pub fn with_suffix(c: &Certs, suffix: &str) -> Files {
        let dir = std::env::temp_dir().join(format!(
            "msrp-tls-reload-{}{suffix}",
            msrp_tools::ids::random_alnum(10)
        ));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let f = Files { dir };
        f.install(&c.relay());
        f
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// Copies a pair in (each file written aside and renamed, as an
    /// operator's deployment would).
    pub fn install(&self, pair: &tls::TlsFiles) {
        self.put(
            &self.cert(),
            &std::fs::read(&pair.cert_chain).expect("cert"),
        );
        self.put(&self.key(), &std::fs::read(&pair.private_key).expect("key"));
    }

    pub fn put(&self, file: &Path, bytes: &[u8]) {
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

/// SHA-256 of the first certificate of a PEM file, as the RPC prints it.
pub fn file_fingerprint(pem: &Path) -> String {
    let certs = tls::load_certs(pem).expect("PEM certificate");
    msrp_engine::transport::tls::fingerprint(&certs[0])
}

/// A new TLS client of the relay trusting the test CA, asking for the
/// relay by IP address (no SNI), and the fingerprint of the certificate
/// the relay presented to it.
pub fn tls_client(k: &Kamailio, c: &Certs) -> (Client, String) {
    tls_client_named(k, &c.ca(), "127.0.0.1")
}

/// A new TLS client of the relay trusting `ca`, asking for `name` (SNI
/// when it is a DNS name), and the fingerprint of the certificate the
/// relay presented to it.
pub fn tls_client_named(k: &Kamailio, ca: &Path, name: &str) -> (Client, String) {
    let cfg = tls::client_config(ca, None).expect("client config");
    let addr = k.transport_addr(Transport::Tls).expect("tls listener");
    let peer = Peer::connect_tls(addr, name, &cfg)
        .unwrap_or_else(|e| panic!("TLS connect as {name}: {e}\n{}", k.log_tail(20)));
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

/// `name: value` of an RPC answer.
pub fn rpc_field(out: &str, name: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
        .map(|v| v.trim().to_owned())
}
