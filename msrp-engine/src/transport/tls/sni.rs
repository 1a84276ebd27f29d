//! Certificates chosen by the server name a TLS client asks for (SNI,
//! RFC 6066 §3; `tls_sni_cert`). Clients without SNI (those dialling an IP
//! address send none) or asking for a name not configured get
//! `tls_certificate`.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni};
use rustls::sign::CertifiedKey;

use super::{file_err, load_certs, load_key, TlsError, TlsSources};
use crate::config::TlsSettings;

/// The served certificate of a listener: by SNI name, else the default.
#[derive(Debug)]
pub(super) struct Resolver {
    pub(super) default: Arc<CertifiedKey>,
    /// `None` without `tls_sni_cert`.
    pub(super) by_name: Option<Arc<ResolvesServerCertUsingSni>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = match (&self.by_name, hello.server_name()) {
            (Some(names), Some(_)) => names.resolve(hello),
            _ => None,
        };
        Some(named.unwrap_or_else(|| self.default.clone()))
    }
}

/// Reads every `tls_sni_cert` pair; a file that cannot be read, a key that
/// is not the certificate's, or a certificate that does not carry its name
/// is an error naming the file.
pub(super) fn load(
    s: &TlsSettings,
    provider: &CryptoProvider,
    sources: &mut TlsSources,
) -> Result<Option<Arc<ResolvesServerCertUsingSni>>, TlsError> {
    if s.sni.is_empty() {
        return Ok(None);
    }
    let mut names = ResolvesServerCertUsingSni::new();
    for sni in &s.sni {
        let param = "tls_sni_cert";
        let chain = load_certs(param, &sni.certificate)?;
        let key = load_key(param, &sni.private_key)?;
        let ck = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
            file_err(
                param,
                &sni.certificate,
                format!("with {}: {e}", sni.private_key.display()),
            )
        })?;
        names.add(&sni.name, ck).map_err(|e| {
            let what = match e {
                rustls::Error::InvalidCertificate(_) => {
                    format!("the certificate does not carry the name {}", sni.name)
                }
                e => format!("not usable for {}: {e}", sni.name),
            };
            file_err(param, &sni.certificate, what)
        })?;
        sources.read(format!("tls_sni_cert {}", sni.name), &sni.certificate);
        sources.read(format!("tls_sni_key {}", sni.name), &sni.private_key);
    }
    Ok(Some(Arc::new(names)))
}
