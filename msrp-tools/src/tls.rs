//! TLS for the test peers: rustls configurations from PEM files, and the
//! test certificates of `scripts/make-certs.sh`.
//!
//! rustls with the ring provider, built explicitly (no process-wide default
//! provider is installed, so nothing here depends on what else the process
//! links). PEM files are read with rustls' own `pki_types::pem` support.
//!
//! - [`client_config`]: trust a CA file, optionally present a client
//!   certificate (an "A" client dialling the relay's `tls:`/`wss:` listener);
//! - [`server_config`]: present a certificate, optionally ask for
//!   ([`ClientAuth::Optional`]) or insist on ([`ClientAuth::Required`]) a
//!   client certificate verified against a CA file (a "B" endpoint the relay
//!   dials as an `msrps://` next hop, checking the relay's client
//!   certificate);
//! - [`Certs`]: the file set of `scripts/make-certs.sh`, made on demand.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

/// What can go wrong building a TLS configuration or the certificates.
#[derive(Debug)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    Pem {
        /// The file.
        path: PathBuf,
        /// What was looked for ("certificates", "private key").
        what: &'static str,
        /// rustls-pki-types' error.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate file without a single certificate.
    NoCertificate(PathBuf),
    /// A CA file whose certificates rustls does not accept as trust anchors.
    BadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration (e.g. key and certificate do not
    /// match, no protocol version left).
    Rustls(rustls::Error),
    /// The client-certificate verifier could not be built.
    Verifier(String),
    /// Not a DNS name or IP address usable as TLS server name.
    ServerName(String),
    /// `scripts/make-certs.sh` could not be run or failed.
    MakeCerts(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem { path, what, source } => {
                write!(f, "reading {what} from {}: {source}", path.display())
            }
            TlsError::NoCertificate(p) => write!(f, "no certificate in {}", p.display()),
            TlsError::BadCa { path, reason } => {
                write!(f, "CA file {}: {reason}", path.display())
            }
            TlsError::Rustls(e) => write!(f, "TLS configuration: {e}"),
            TlsError::Verifier(e) => write!(f, "client certificate verifier: {e}"),
            TlsError::ServerName(n) => write!(f, "{n:?} is not a DNS name or IP address"),
            TlsError::MakeCerts(e) => write!(f, "make-certs.sh: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem { source, .. } => Some(source),
            TlsError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}

/// A certificate chain and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert_chain: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub private_key: PathBuf,
}

impl TlsFiles {
    /// The pair `cert_chain`, `private_key`.
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> TlsFiles {
        TlsFiles {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
        }
    }
}

/// Whether a server asks its clients for a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// Asked for; a client without one is accepted, one with a certificate
    /// that does not verify against the CA file is refused.
    Optional(PathBuf),
    /// Asked for and required, verified against the CA file.
    Required(PathBuf),
}

/// Which TLS versions a configuration offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3.
    #[default]
    All,
    /// TLS 1.2 only (e.g. a client a `tls_min_version "1.3"` relay refuses).
    Only12,
    /// TLS 1.3 only.
    Only13,
}

impl TlsVersions {
    fn list(self) -> &'static [&'static SupportedProtocolVersion] {
        static ALL: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static V12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static V13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersions::All => &ALL,
            TlsVersions::Only12 => &V12,
            TlsVersions::Only13 => &V13,
        }
    }
}

/// The crypto provider every configuration here uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            what: "certificates",
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        path: path.to_owned(),
        what: "private key",
        source,
    })
}

/// A root store holding every certificate of a CA file.
pub fn root_store(ca_file: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_file)? {
        roots.add(cert).map_err(|e| TlsError::BadCa {
            path: ca_file.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// A TLS server name: a DNS name (`localhost`, `relay.test`) or an IP
/// address (`127.0.0.1`, checked against the certificate's IP SANs).
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
}

/// A client configuration trusting `ca_file`, presenting `identity` when
/// given (mutual TLS), TLS 1.2 and 1.3.
pub fn client_config(
    ca_file: &Path,
    identity: Option<&TlsFiles>,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_with(ca_file, identity, TlsVersions::All)
}

/// The first flight of a TLS client of `cfg` to `host` (its ClientHello),
/// for tests of a client that gives up mid-handshake.
pub fn client_hello(cfg: Arc<ClientConfig>, host: &str) -> Result<Vec<u8>, String> {
    let name = server_name(host).map_err(|e| e.to_string())?;
    let mut c = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let mut hello = Vec::new();
    c.write_tls(&mut hello).map_err(|e| e.to_string())?;
    Ok(hello)
}

/// [`client_config`] offering only `versions`.
pub fn client_config_with(
    ca_file: &Path,
    identity: Option<&TlsFiles>,
    versions: TlsVersions,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = root_store(ca_file)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions.list())?
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(load_certs(&id.cert_chain)?, load_key(&id.private_key)?)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A server configuration presenting `identity`, asking for client
/// certificates as `client_auth` says, TLS 1.2 and 1.3.
pub fn server_config(
    identity: &TlsFiles,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(identity, client_auth, TlsVersions::All)
}

/// [`server_config`] offering only `versions`.
pub fn server_config_with(
    identity: &TlsFiles,
    client_auth: ClientAuth,
    versions: TlsVersions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_protocol_versions(versions.list())?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(ca) => {
            let v =
                WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(&ca)?), provider())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
        ClientAuth::Required(ca) => {
            let v =
                WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(&ca)?), provider())
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let config = builder.with_single_cert(
        load_certs(&identity.cert_chain)?,
        load_key(&identity.private_key)?,
    )?;
    Ok(Arc::new(config))
}

/// The files `scripts/make-certs.sh` makes in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// `scripts/make-certs.sh` of this source tree.
    pub fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("scripts")
            .join("make-certs.sh")
    }

    /// Runs `scripts/make-certs.sh DIR` (which keeps an existing set, and
    /// waits for another run on the same directory) and returns the set.
    pub fn make(dir: &Path) -> Result<Certs, TlsError> {
        Certs::run_script(dir, &[])?;
        Certs::open(dir)
    }

    /// `scripts/make-certs.sh --force DIR`: a new set in any case.
    pub fn make_new(dir: &Path) -> Result<Certs, TlsError> {
        Certs::run_script(dir, &["--force"])?;
        Certs::open(dir)
    }

    /// `scripts/make-certs.sh --node NAME SAN DIR`: the set of one relay
    /// node in `DIR/NAME`, made on first use: its own `relay.pem` /
    /// `relay.key` with subjectAltName `san` (e.g. `IP:127.0.0.2`), signed
    /// by this set's CA, and `ca.pem`. Its [`Certs::relay`] is the node's
    /// pair, [`Certs::relay_modparams`] its TLS modparams.
    pub fn node(&self, name: &str, san: &str) -> Result<Certs, TlsError> {
        Certs::run_script(&self.dir, &["--node", name, san])?;
        Certs::open(&self.dir.join(name))
    }

    fn run_script(dir: &Path, args: &[&str]) -> Result<(), TlsError> {
        let script = Certs::script();
        let out = Command::new("bash")
            .arg(&script)
            .args(args)
            .arg(dir)
            .output()
            .map_err(|e| TlsError::MakeCerts(format!("cannot run {}: {e}", script.display())))?;
        if !out.status.success() {
            return Err(TlsError::MakeCerts(format!(
                "{} {} failed ({}): {}{}",
                script.display(),
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        Ok(())
    }

    /// An existing set (its `ca.pem` must exist).
    pub fn open(dir: &Path) -> Result<Certs, TlsError> {
        let certs = Certs {
            dir: dir.to_owned(),
        };
        if !certs.ca().is_file() {
            return Err(TlsError::MakeCerts(format!(
                "{} has no ca.pem (run scripts/make-certs.sh {0} or `make certs`)",
                dir.display()
            )));
        }
        Ok(certs)
    }

    /// The set shared by the tests of this tree: `test-certs` in the cargo
    /// target directory (`$CARGO_TARGET_DIR` or `target/`), made on first
    /// use.
    pub fn for_tests() -> Result<Certs, TlsError> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("target")
            });
        Certs::make(&target.join("test-certs"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The test CA (`ca.pem`): trusted by everything here.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// The unrelated second CA (`other-ca.pem`).
    pub fn other_ca(&self) -> PathBuf {
        self.file("other-ca.pem")
    }

    /// The relay's certificate and key (`relay.pem`, `relay.key`): SAN
    /// 127.0.0.1, localhost, relay.test; server and client.
    pub fn relay(&self) -> TlsFiles {
        TlsFiles::new(self.file("relay.pem"), self.file("relay.key"))
    }

    /// A test endpoint's (`endpoint.pem`, `endpoint.key`): SAN 127.0.0.1,
    /// localhost, endpoint.test; server and client.
    pub fn endpoint(&self) -> TlsFiles {
        TlsFiles::new(self.file("endpoint.pem"), self.file("endpoint.key"))
    }

    /// A client-only certificate (`client.pem`, `client.key`).
    pub fn client(&self) -> TlsFiles {
        TlsFiles::new(self.file("client.pem"), self.file("client.key"))
    }

    /// Signed by the other CA (`other.pem`, `other.key`): SAN 127.0.0.1,
    /// localhost; server and client.
    pub fn other(&self) -> TlsFiles {
        TlsFiles::new(self.file("other.pem"), self.file("other.key"))
    }

    /// The relay's TLS modparams for this set: `tls_certificate`,
    /// `tls_private_key`, `tls_ca_list` (names and values).
    pub fn relay_modparams(&self) -> Vec<(&'static str, String)> {
        let relay = self.relay();
        vec![
            ("tls_certificate", relay.cert_chain.display().to_string()),
            ("tls_private_key", relay.private_key.display().to_string()),
            ("tls_ca_list", self.ca().display().to_string()),
        ]
    }
}

/// Whether an I/O error carries a rustls error (TLS alert, bad
/// certificate, ...), and which.
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs() -> Certs {
        Certs::for_tests().unwrap()
    }

    #[test]
    fn configs_from_the_test_certificates() {
        let c = certs();
        client_config(&c.ca(), None).unwrap();
        client_config(&c.ca(), Some(&c.client())).unwrap();
        client_config_with(&c.ca(), Some(&c.relay()), TlsVersions::Only12).unwrap();
        server_config(&c.relay(), ClientAuth::None).unwrap();
        server_config(&c.endpoint(), ClientAuth::Required(c.ca())).unwrap();
        server_config_with(
            &c.other(),
            ClientAuth::Optional(c.other_ca()),
            TlsVersions::Only13,
        )
        .unwrap();
        // a node's set: its own pair, signed by the same CA
        let n = c
            .node("node-unit", "IP:127.0.0.9, DNS:node-unit.test")
            .unwrap();
        assert_eq!(n.dir(), c.dir().join("node-unit"));
        assert_eq!(
            std::fs::read(n.ca()).unwrap(),
            std::fs::read(c.ca()).unwrap()
        );
        assert_ne!(
            std::fs::read(n.relay().cert_chain).unwrap(),
            std::fs::read(c.relay().cert_chain).unwrap()
        );
        server_config(&n.relay(), ClientAuth::Required(n.ca())).unwrap();
        client_config(&n.ca(), Some(&n.relay())).unwrap();
        let params = c.relay_modparams();
        assert_eq!(params[0].0, "tls_certificate");
        assert!(params[0].1.ends_with("relay.pem"));
        assert!(params[2].1.ends_with("ca.pem"));
    }

    #[test]
    fn bad_files_are_reported() {
        let c = certs();
        // a key that does not belong to the certificate
        let mismatched = TlsFiles::new(c.relay().cert_chain, c.endpoint().private_key);
        let err = server_config(&mismatched, ClientAuth::None).unwrap_err();
        assert!(matches!(err, TlsError::Rustls(_)), "{err}");
        // a key file given as certificate file
        let err = client_config(&c.relay().private_key, None).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate(_)), "{err}");
        let err = load_key(&c.ca()).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        let err = load_certs(Path::new("/nonexistent/x.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.pem"), "{err}");
        assert!(matches!(
            server_name("not a name"),
            Err(TlsError::ServerName(_))
        ));
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("relay.test").is_ok());
        assert!(Certs::open(Path::new("/nonexistent")).is_err());
    }
}
