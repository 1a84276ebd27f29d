//! The TLS and WebSocket parameters: their types, parsers and the checks
//! of how they fit together (the files are read by
//! [`crate::transport::tls::TlsContext`] in mod_init).

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, Param};

/// Whether TLS clients are asked for a certificate (`tls_verify_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    #[default]
    Off,
    Optional,
    Required,
}

impl VerifyClient {
    pub fn name(self) -> &'static str {
        match self {
            VerifyClient::Off => "off",
            VerifyClient::Optional => "optional",
            VerifyClient::Required => "required",
        }
    }
}

/// Lowest TLS version (`tls_min_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

impl TlsVersion {
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

/// TLS files and policy; the files are read when the boundary builds the
/// TLS contexts in mod_init ([`crate::transport::tls::TlsContext`]).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub ca_list: Option<PathBuf>,
    pub verify_client: VerifyClient,
    pub min_version: TlsVersion,
    /// Certificates by SNI server name (`tls_sni_cert`).
    pub sni: Vec<SniCert>,
}

/// One `tls_sni_cert`: the certificate served to clients asking for
/// server name `name` (RFC 6066 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCert {
    /// Lower case (DNS names compare without case).
    pub name: String,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// `NAME=CERT_FILE;key=KEY_FILE`.
pub(super) fn sni_cert(s: &str) -> Result<SniCert, ConfigError> {
    let bad = || ConfigError::BadSniCert(s.to_string());
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let (cert, key) = rest.split_once(';').ok_or_else(bad)?;
    let (k, key) = key.split_once('=').ok_or_else(bad)?;
    let (name, cert, key) = (name.trim(), cert.trim(), key.trim());
    if !k.trim().eq_ignore_ascii_case("key") || name.is_empty() || cert.is_empty() || key.is_empty()
    {
        return Err(bad());
    }
    Ok(SniCert {
        name: name.to_ascii_lowercase(),
        certificate: PathBuf::from(cert),
        private_key: PathBuf::from(key),
    })
}

/// A `tls:`/`wss:` listener's own policy (`;verify_client=`, `;ca_list=`,
/// `;min_version=` after its address); what it does not set comes from
/// the global `tls_*` parameters. One relay can so serve browsers on
/// `wss:` without a CertificateRequest (browsers cancel the handshake or
/// show a certificate picker) and require certificates of peer relays on
/// `tls:` (RFC 4976 §9 mutual TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenTls {
    pub verify_client: Option<VerifyClient>,
    pub ca_list: Option<PathBuf>,
    pub min_version: Option<TlsVersion>,
}

impl ListenTls {
    pub fn is_empty(&self) -> bool {
        *self == ListenTls::default()
    }

    /// Sets option `name=value` of listener `listen` (for errors).
    pub(super) fn set(&mut self, listen: &str, name: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |allowed: &'static str| ConfigError::BadListenOption {
            listen: listen.to_string(),
            option: format!("{name}={value}"),
            allowed,
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "verify_client" => {
                self.verify_client =
                    Some(verify_client_value(value).ok_or(bad("off, optional, required"))?)
            }
            "ca_list" if !value.is_empty() => self.ca_list = Some(PathBuf::from(value)),
            "min_version" => {
                self.min_version = Some(tls_version_value(value).ok_or(bad("1.2, 1.3"))?)
            }
            _ => return Err(bad("verify_client=, ca_list=FILE, min_version=")),
        }
        Ok(())
    }
}

impl std::fmt::Display for ListenTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(v) = self.verify_client {
            write!(f, ";verify_client={}", v.name())?;
        }
        if let Some(ca) = &self.ca_list {
            write!(f, ";ca_list={}", ca.display())?;
        }
        if let Some(v) = self.min_version {
            write!(f, ";min_version={}", v.name())?;
        }
        Ok(())
    }
}

/// The TLS server policy of one listener: its own options over the
/// global `tls_*` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPolicy<'a> {
    pub verify_client: VerifyClient,
    pub ca_list: Option<&'a Path>,
    pub min_version: TlsVersion,
}

impl TlsSettings {
    pub fn policy<'a>(&'a self, l: &'a ListenTls) -> ServerPolicy<'a> {
        ServerPolicy {
            verify_client: l.verify_client.unwrap_or(self.verify_client),
            ca_list: l.ca_list.as_deref().or(self.ca_list.as_deref()),
            min_version: l.min_version.unwrap_or(self.min_version),
        }
    }
}

/// What the TLS parameters need of each other and of the listeners.
pub(super) fn check_tls(c: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let t = &c.tls;
    if t.certificate.is_some() != t.private_key.is_some() {
        errors.push(ConfigError::TlsKeyPair);
    } else if t.certificate.is_none() {
        if let Some(l) = c.listen.iter().find(|l| l.kind.tls()) {
            errors.push(ConfigError::TlsNeedsCertificate(l.to_string()));
        }
    }
    if !t.sni.is_empty() && t.certificate.is_none() {
        errors.push(ConfigError::SniNeedsCertificate);
    }
    if t.verify_client != VerifyClient::Off && t.ca_list.is_none() {
        errors.push(ConfigError::VerifyNeedsCa(t.verify_client.name()));
    }
    for l in &c.listen {
        if !l.kind.tls() && !l.tls.is_empty() {
            errors.push(ConfigError::TlsOptionsOnPlain(l.to_string()));
            continue;
        }
        let p = t.policy(&l.tls);
        if l.tls.verify_client.is_some()
            && p.verify_client != VerifyClient::Off
            && p.ca_list.is_none()
        {
            errors.push(ConfigError::ListenVerifyNeedsCa(l.to_string()));
        }
    }
    errors
}

/// A file name parameter (the file is read in mod_init).
pub(super) fn file_path(s: &str) -> Result<Option<PathBuf>, ConfigError> {
    Ok(Some(PathBuf::from(s.trim())))
}

fn verify_client_value(s: &str) -> Option<VerifyClient> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "no" | "0" => Some(VerifyClient::Off),
        "optional" => Some(VerifyClient::Optional),
        "required" | "yes" | "1" => Some(VerifyClient::Required),
        _ => None,
    }
}

fn tls_version_value(s: &str) -> Option<TlsVersion> {
    match s.trim().to_ascii_lowercase().trim_start_matches("tlsv") {
        "1.2" => Some(TlsVersion::V1_2),
        "1.3" => Some(TlsVersion::V1_3),
        _ => None,
    }
}

pub(super) fn verify_client(s: &str) -> Result<VerifyClient, ConfigError> {
    verify_client_value(s).ok_or_else(|| ConfigError::BadChoice {
        name: Param::TlsVerifyClient.decl().name,
        value: s.to_string(),
        allowed: "off, optional, required",
    })
}

pub(super) fn tls_version(s: &str) -> Result<TlsVersion, ConfigError> {
    tls_version_value(s).ok_or_else(|| ConfigError::BadChoice {
        name: Param::TlsMinVersion.decl().name,
        value: s.to_string(),
        allowed: "1.2, 1.3",
    })
}

/// `ws_allowed_origins`: an exact `Origin` value (scheme://host[:port]).
pub(super) fn origin(s: &str) -> Result<String, ConfigError> {
    Ok(s.trim().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::super::tests::built;
    use super::super::{ConfigBuilder, ConfigError, Param, ParamValue::Str};

    /// `tls_sni_cert NAME=CERT;key=KEY`: repeatable, the name in lower case;
    /// other forms and SNI certificates without a default are refused.
    #[test]
    fn sni_certificates_parse() {
        let c = built(&[
            (Param::Listen, Str("tls:127.0.0.1:2856")),
            (Param::TlsCertificate, Str("/etc/relay.pem")),
            (Param::TlsPrivateKey, Str("/etc/relay.key")),
            (
                Param::TlsSniCert,
                Str("Chat.Example.com=/etc/chat.pem;key=/etc/chat.key"),
            ),
            (
                Param::TlsSniCert,
                Str(" b.example.com = /b.pem ; KEY = /b.key "),
            ),
        ])
        .expect("valid");
        let got: Vec<_> = c
            .tls
            .sni
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.certificate.to_str(),
                    s.private_key.to_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "chat.example.com",
                    Some("/etc/chat.pem"),
                    Some("/etc/chat.key")
                ),
                ("b.example.com", Some("/b.pem"), Some("/b.key")),
            ]
        );
        for bad in [
            "chat.example.com",
            "a=/a.pem",
            "a=/a.pem;cert=/a.key",
            "=/a.pem;key=/a.key",
            "a=;key=/k",
        ] {
            let e = ConfigBuilder::new()
                .set(Param::TlsSniCert, Str(bad))
                .expect_err(bad);
            assert!(
                matches!(&e, ConfigError::BadSniCert(v) if v == bad),
                "{bad}: {e:?}"
            );
        }
        let e = built(&[(Param::TlsSniCert, Str("a.example=/a.pem;key=/a.key"))])
            .expect_err("no default certificate");
        assert!(
            e.iter()
                .any(|e| matches!(e, ConfigError::SniNeedsCertificate)),
            "{e:?}"
        );
    }
}
