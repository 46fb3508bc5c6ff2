//! How the vault reaches PostgreSQL across a network: TLS with the server's certificate and
//! host name verified (libpq's `verify-full`), against a CA file or the platform's roots.
//!
//! The `postgres` client knows `sslmode` `disable`, `prefer` and `require` only, and `require`
//! alone checks nothing. So the mode is decided here: `verify-full` (or `verify-ca`, treated
//! the same: the name is always checked) in the URL, or `[storage] postgres_tls`, connects with
//! rustls and refuses a server without TLS; `disable` connects in the clear. Left unsaid, a
//! server on loopback or a Unix socket is reached in the clear and any other verified, so a
//! database across the network is never read over plain TCP by default. `prefer` and `allow`
//! are refused: they fall back to plaintext when an attacker strips TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::{Host, SslMode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::metadata::StoreError;

/// `[storage] postgres_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgTlsMode {
    /// TLS, the certificate chained to the CA and valid for the host name.
    VerifyFull,
    /// Plain TCP (a database on the same host or a private socket).
    Disable,
}

/// How to reach the database: the mode, and where the CA comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgTls {
    /// The mode; `None`: from the URL's `sslmode`, else by the host (see the module).
    pub mode: Option<PgTlsMode>,
    /// PEM file of the CA certificates to trust; `None`: the platform's roots.
    pub ca_file: Option<PathBuf>,
}

/// A parsed URL and the connector it needs (`None`: in the clear).
pub(super) struct Connection {
    pub(super) config: postgres::Config,
    pub(super) tls: Option<MakeRustlsConnect>,
}

/// Parses `url` and decides the transport under `settings`.
pub(super) fn connection(url: &str, settings: &PgTls) -> Result<Connection, StoreError> {
    let (url, from_url) = take_sslmode(url)?;
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| StoreError::Config(e.to_string()))?;
    let mode = match (settings.mode, from_url) {
        (Some(set), Some(said)) if set != said => {
            return Err(StoreError::Config(format!(
                "postgres_tls = {set:?} contradicts the URL's sslmode ({said:?})"
            )))
        }
        (Some(mode), _) | (None, Some(mode)) => mode,
        (None, None) if all_local(&config) => PgTlsMode::Disable,
        (None, None) => PgTlsMode::VerifyFull,
    };
    match mode {
        PgTlsMode::Disable => {
            config.ssl_mode(SslMode::Disable);
            if !all_local(&config) {
                tracing::warn!(
                    "PostgreSQL is reached without TLS across the network (postgres_tls = disable)"
                );
            }
            Ok(Connection { config, tls: None })
        }
        PgTlsMode::VerifyFull => {
            config.ssl_mode(SslMode::Require);
            let tls = MakeRustlsConnect::new(client_config(settings.ca_file.as_deref())?);
            Ok(Connection {
                config,
                tls: Some(tls),
            })
        }
    }
}

/// Removes `sslmode=…` from a URL's query or a key=value string (the client would refuse
/// `verify-full` or misread `require`) and says what it asked for. A key=value string is split
/// at blanks, so it cannot also quote a value with blanks in it.
fn take_sslmode(url: &str) -> Result<(String, Option<PgTlsMode>), StoreError> {
    if !url.contains("sslmode=") {
        return Ok((url.to_owned(), None));
    }
    let mut mode = None;
    let mut keep = |part: &str| -> Result<bool, StoreError> {
        let Some(value) = part.strip_prefix("sslmode=") else {
            return Ok(true);
        };
        mode = Some(match value {
            "verify-full" | "verify-ca" | "require" => PgTlsMode::VerifyFull,
            "disable" => PgTlsMode::Disable,
            other => {
                return Err(StoreError::Config(format!(
                    "sslmode={other} is not accepted: use verify-full, or disable for a \
                     database on this host"
                )))
            }
        });
        Ok(false)
    };
    let kept = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut params = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            if keep(param)? {
                params.push(param);
            }
        }
        if params.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", params.join("&"))
        }
    } else {
        let mut pairs = Vec::new();
        for pair in url.split_whitespace() {
            if keep(pair)? {
                pairs.push(pair);
            }
        }
        pairs.join(" ")
    };
    Ok((kept, mode))
}

/// Whether every host is a Unix socket or a loopback address.
fn all_local(config: &postgres::Config) -> bool {
    config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }) && !config.get_hosts().is_empty()
        || config.get_hostaddrs().iter().all(|ip| ip.is_loopback())
            && !config.get_hostaddrs().is_empty()
}

/// A rustls client trusting `ca_file`'s certificates only, or the platform's roots.
fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS: {e}")))?;
    let config = match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    StoreError::Config(format!("postgres_ca_file {}: {e}", path.display()))
                })?;
            if certs.is_empty() {
                return Err(StoreError::Config(format!(
                    "postgres_ca_file {} holds no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    StoreError::Config(format!("postgres_ca_file {}: {e}", path.display()))
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| StoreError::Config(format!("TLS: the platform's roots: {e}")))?
                .with_no_client_auth()
        }
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_from_urls_and_key_value_strings() {
        let cases = [
            (
                "postgres://v@db.internal/vigil?sslmode=verify-full",
                "postgres://v@db.internal/vigil",
                Some(PgTlsMode::VerifyFull),
            ),
            (
                "postgres://v@db/x?application_name=a&sslmode=disable&connect_timeout=5",
                "postgres://v@db/x?application_name=a&connect_timeout=5",
                Some(PgTlsMode::Disable),
            ),
            (
                "postgres://v@db/x?sslmode=verify-ca&connect_timeout=5",
                "postgres://v@db/x?connect_timeout=5",
                Some(PgTlsMode::VerifyFull),
            ),
            (
                "host=db user=v sslmode=verify-full dbname=x",
                "host=db user=v dbname=x",
                Some(PgTlsMode::VerifyFull),
            ),
            ("postgres://v@db/x", "postgres://v@db/x", None),
        ];
        for (url, kept, mode) in cases {
            assert_eq!(take_sslmode(url).unwrap(), (kept.to_owned(), mode), "{url}");
        }
        assert!(take_sslmode("postgres://v@db/x?sslmode=prefer").is_err());
        assert!(take_sslmode("host=db sslmode=allow").is_err());
    }

    #[test]
    fn a_database_across_the_network_is_verified_unless_disabled() {
        let plain = |url: &str, mode| {
            connection(
                url,
                &PgTls {
                    mode,
                    ca_file: None,
                },
            )
            .unwrap()
            .tls
            .is_none()
        };
        assert!(plain("postgres://v@127.0.0.1:5432/x", None));
        assert!(plain("host=/run/postgresql user=v", None));
        assert!(!plain("postgres://v@db.internal/x", None));
        assert!(!plain("postgres://v@127.0.0.1/x?sslmode=verify-full", None));
        assert!(plain(
            "postgres://v@db.internal/x",
            Some(PgTlsMode::Disable)
        ));
        assert!(connection(
            "postgres://v@db/x?sslmode=disable",
            &PgTls {
                mode: Some(PgTlsMode::VerifyFull),
                ca_file: None
            }
        )
        .is_err());
    }
}
