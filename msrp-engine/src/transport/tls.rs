//! TLS contexts of the relay (rustls with the ring provider: it builds with
//! the C compiler alone, where aws-lc needs cmake and nasm).
//!
//! One [`TlsContext`] per process, built in mod_init from the `tls_*`
//! parameters, so a missing or broken certificate file stops Kamailio at
//! start-up with a message naming the file. `msrp_relay.tls_reload` builds
//! one in the RPC process to check the files, then each worker builds its
//! own (`engine/reload.rs`); connections keep the configuration they were
//! made with. It serves `tls:`/`wss:`
//! listeners (the server side) and dials `msrps://` next hops (the client
//! side: the next hop's certificate is verified against `tls_ca_list` and
//! the URI host, and the relay presents its own certificate: mutual TLS
//! between relays, RFC 4976 §9).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;

use crate::config::{Listen, ServerPolicy, TlsSettings, TlsVersion, VerifyClient};

mod sessions;
mod sni;

use sessions::SessionSlots;

/// The CA bundle used for next hops when `tls_ca_list` is not set.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{param} {}: {what}", file.display())]
    File {
        param: &'static str,
        file: PathBuf,
        what: String,
    },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

/// Server and client configurations of this relay.
pub struct TlsContext {
    /// For each listener (by its index in `listen` order) its server
    /// configuration: `None` for `tcp:`/`ws:` or without `tls_certificate`.
    /// Listeners with the same policy share one.
    servers: Vec<Option<Arc<ServerConfig>>>,
    /// For `msrps://` next hops, or why there is none (no CA bundle).
    client: Result<Arc<ClientConfig>, String>,
    sources: TlsSources,
}

/// What a [`TlsContext`] was built from, for the operator
/// (`msrp_relay.tls_reload` answers it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSources {
    /// Each file read, after the parameter that names it (`tls_certificate`,
    /// `tls_private_key`, `tls_ca_list`, `ca_list of tls:IP:PORT`,
    /// `CA bundle`), in the order read.
    pub files: Vec<(String, PathBuf)>,
    /// SHA-256 of the served certificate (the first of `tls_certificate`),
    /// as `openssl x509 -noout -fingerprint -sha256` prints it.
    pub fingerprint: Option<String>,
}

impl TlsSources {
    fn read(&mut self, param: impl Into<String>, file: &Path) {
        self.files.push((param.into(), file.to_path_buf()));
    }
}

/// `AB:CD:...`: SHA-256 of `der` in upper-case hex pairs.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    let hex: Vec<String> = sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    hex.join(":")
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("servers", &self.servers.iter().flatten().count())
            .field("client", &self.client.is_ok())
            .finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(v: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match v {
        TlsVersion::V1_2 => BOTH,
        TlsVersion::V1_3 => TLS13,
    }
}

fn file_err(param: &'static str, file: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        param,
        file: file.to_path_buf(),
        what: what.to_string(),
    }
}

/// A PEM error as an operator reads it (the library prints the marker
/// lines as byte arrays).
fn pem_what(e: rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "a PEM section does not end (no -----END {}----- line)",
            String::from_utf8_lossy(&end_marker).trim()
        ),
        E::IllegalSectionStart { line } => format!(
            "bad PEM section start: {}",
            String::from_utf8_lossy(&line).trim()
        ),
        E::Io(e) => e.to_string(),
        E::NoItemsFound => "no PEM item of the expected kind in the file".to_string(),
        other => other.to_string(),
    }
}

fn load_certs(param: &'static str, file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| file_err(param, file, pem_what(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(param, file, pem_what(e)))?;
    if certs.is_empty() {
        return Err(file_err(param, file, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn load_key(param: &'static str, file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(file).map_err(|e| file_err(param, file, pem_what(e)))
}

fn load_roots(param: &'static str, file: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (ok, bad) = roots.add_parsable_certificates(load_certs(param, file)?);
    if ok == 0 {
        return Err(file_err(
            param,
            file,
            format!("no usable CA certificate ({bad} unparsable)"),
        ));
    }
    Ok(roots)
}

impl TlsContext {
    /// Reads the files `s` and the listeners' own TLS options name. Without
    /// `tls_certificate` no listener is served (then `msrps://` next hops
    /// are still dialled if the system CA bundle exists, without a client
    /// certificate).
    pub fn new(s: &TlsSettings, listeners: &[Listen]) -> Result<TlsContext, TlsError> {
        let mut sources = TlsSources::default();
        let identity = match (&s.certificate, &s.private_key) {
            (Some(c), Some(k)) => {
                let chain = load_certs("tls_certificate", c)?;
                sources.read("tls_certificate", c);
                sources.fingerprint = chain.first().map(|leaf| fingerprint(leaf));
                let key = load_key("tls_private_key", k)?;
                sources.read("tls_private_key", k);
                Some((chain, key))
            }
            _ => None,
        };
        let ca = match &s.ca_list {
            Some(f) => {
                let roots = load_roots("tls_ca_list", f)?;
                sources.read("tls_ca_list", f);
                Some(roots)
            }
            None => None,
        };
        let served = match &identity {
            Some((chain, key)) => Some(Arc::new(sni::Resolver {
                default: Arc::new(Self::default_key(s, chain.clone(), key.clone_key())?),
                by_name: sni::load(s, &provider(), &mut sources)?,
            })),
            None => None,
        };
        let servers = Self::servers(s, listeners, served.as_ref(), &mut sources)?;
        let roots = match ca {
            Some(r) => Ok(r),
            None if Path::new(SYSTEM_CA_BUNDLE).exists() => {
                let bundle = Path::new(SYSTEM_CA_BUNDLE);
                let roots = load_roots("CA bundle", bundle).map_err(|e| e.to_string());
                if roots.is_ok() {
                    sources.read("CA bundle", bundle);
                }
                roots
            }
            None => Err(format!(
                "no tls_ca_list and no {SYSTEM_CA_BUNDLE}: next hops' certificates cannot be verified"
            )),
        };
        let client = match roots {
            Ok(r) => Ok(Arc::new(Self::client_config(s, r, identity)?)),
            Err(e) => Err(e),
        };
        Ok(TlsContext {
            servers,
            client,
            sources,
        })
    }

    /// The server configuration of each listener (`None` for `tcp:`/`ws:`
    /// or without a certificate); listeners with the same policy share one.
    fn servers(
        s: &TlsSettings,
        listeners: &[Listen],
        served: Option<&Arc<sni::Resolver>>,
        sources: &mut TlsSources,
    ) -> Result<Vec<Option<Arc<ServerConfig>>>, TlsError> {
        let mut built: Vec<(ServerPolicy<'_>, Arc<ServerConfig>)> = Vec::new();
        let mut servers = Vec::with_capacity(listeners.len());
        for l in listeners {
            let Some(served) = served.filter(|_| l.kind.tls()) else {
                servers.push(None);
                continue;
            };
            let p = s.policy(&l.tls);
            if let Some((_, cfg)) = built.iter().find(|(q, _)| *q == p) {
                servers.push(Some(cfg.clone()));
                continue;
            }
            let param = match l.tls.ca_list {
                Some(_) => "listen ca_list",
                None => "tls_ca_list",
            };
            let roots = match p.ca_list {
                Some(f) if p.verify_client != VerifyClient::Off => {
                    let roots = load_roots(param, f)?;
                    if l.tls.ca_list.is_some() {
                        sources.read(format!("ca_list of {}:{}", l.kind.name(), l.addr), f);
                    }
                    Some(roots)
                }
                _ => None,
            };
            let cfg = Arc::new(Self::server_config(&p, served.clone(), roots)?);
            built.push((p, cfg.clone()));
            servers.push(Some(cfg));
        }
        Ok(servers)
    }

    /// `tls_certificate` with `tls_private_key`, which must be its key.
    fn default_key(
        s: &TlsSettings,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<CertifiedKey, TlsError> {
        let file = s.certificate.as_deref().unwrap_or(Path::new(""));
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
            let what = match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    "not the certificate of tls_private_key (the keys differ)".to_string()
                }
                e => format!("with tls_private_key: {e}"),
            };
            file_err("tls_certificate", file, what)
        })
    }

    fn server_config(
        s: &ServerPolicy<'_>,
        served: Arc<sni::Resolver>,
        ca: Option<RootCertStore>,
    ) -> Result<ServerConfig, TlsError> {
        let p = provider();
        let builder = ServerConfig::builder_with_provider(p.clone())
            .with_protocol_versions(versions(s.min_version))
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let builder = match (s.verify_client, ca) {
            (VerifyClient::Off, _) | (_, None) => builder.with_no_client_auth(),
            (mode, Some(roots)) => {
                let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), p);
                let v = if mode == VerifyClient::Optional {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                let v = v.build().map_err(|e| TlsError::Setup(e.to_string()))?;
                builder.with_client_cert_verifier(v)
            }
        };
        let mut c = builder.with_cert_resolver(served);
        // rustls' default cache pins heap pages after a wave of handshakes
        // (tls/sessions.rs); same policy, storage allocated once
        c.session_storage = Arc::new(SessionSlots::default());
        Ok(c)
    }

    fn client_config(
        s: &TlsSettings,
        roots: RootCertStore,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<ClientConfig, TlsError> {
        let p = provider();
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), p.clone())
            .build()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let builder = ClientConfig::builder_with_provider(p)
            .with_protocol_versions(versions(s.min_version))
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_webpki_verifier(verifier);
        match identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
                let file = s.certificate.clone().unwrap_or_default();
                file_err("tls_certificate", &file, e)
            }),
            None => Ok(builder.with_no_client_auth()),
        }
    }

    /// The files this context was built from and the served certificate's
    /// fingerprint.
    pub fn sources(&self) -> &TlsSources {
        &self.sources
    }

    /// A server-side connection for `tls:`/`wss:` listener `listener`
    /// (its index in `listen` order).
    pub fn accept(&self, listener: usize) -> Result<ServerConnection, String> {
        let cfg = self
            .servers
            .get(listener)
            .and_then(Option::as_ref)
            .ok_or("no tls_certificate: TLS listeners cannot serve")?;
        ServerConnection::new(cfg.clone()).map_err(|e| e.to_string())
    }

    /// A client-side connection to an `msrps://` next hop named `host` (a
    /// DNS name or an IP literal: the certificate must carry it).
    pub fn connect(&self, host: &str) -> Result<ClientConnection, String> {
        let cfg = self.client.as_ref().map_err(Clone::clone)?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
        ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())
    }
}
