//! The TLS and WebSocket parameters: their types, parsers and the checks
//! of how they fit together (the files are read by
//! [`crate::transport::tls::TlsContext`] in mod_init).

use std::path::PathBuf;

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

/// TLS files and policy; the files are read when the boundary builds the
/// TLS contexts in mod_init ([`crate::transport::tls::TlsContext`]).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub ca_list: Option<PathBuf>,
    pub verify_client: VerifyClient,
    pub min_version: TlsVersion,
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
    if t.verify_client != VerifyClient::Off && t.ca_list.is_none() {
        errors.push(ConfigError::VerifyNeedsCa(t.verify_client.name()));
    }
    errors
}

/// A file name parameter (the file is read in mod_init).
pub(super) fn file_path(s: &str) -> Result<Option<PathBuf>, ConfigError> {
    Ok(Some(PathBuf::from(s.trim())))
}

pub(super) fn verify_client(s: &str) -> Result<VerifyClient, ConfigError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "no" | "0" => Ok(VerifyClient::Off),
        "optional" => Ok(VerifyClient::Optional),
        "required" | "yes" | "1" => Ok(VerifyClient::Required),
        _ => Err(ConfigError::BadChoice {
            name: Param::TlsVerifyClient.decl().name,
            value: s.to_string(),
            allowed: "off, optional, required",
        }),
    }
}

pub(super) fn tls_version(s: &str) -> Result<TlsVersion, ConfigError> {
    match s.trim().to_ascii_lowercase().trim_start_matches("tlsv") {
        "1.2" => Ok(TlsVersion::V1_2),
        "1.3" => Ok(TlsVersion::V1_3),
        _ => Err(ConfigError::BadChoice {
            name: Param::TlsMinVersion.decl().name,
            value: s.to_string(),
            allowed: "1.2, 1.3",
        }),
    }
}

/// `ws_allowed_origins`: an exact `Origin` value (scheme://host[:port]).
pub(super) fn origin(s: &str) -> Result<String, ConfigError> {
    Ok(s.trim().trim_end_matches('/').to_string())
}
