//! The deployment's TLS: its own CA (agents pin it) and the server certificate it issues.
//! The server certificate is renewed before it expires (`vigil-vault keys renew-tls`, and by
//! `serve` itself within [`RENEW_BEFORE_DAYS`] of expiry) under the same CA, so agents keep
//! connecting; its expiry is kept beside it (`tls/server.not_after`, RFC 3339).

use std::path::Path;

use age::secrecy::{ExposeSecret, SecretString};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use vigil_files::Access;
use vigil_vault_store::Layout;

use crate::secrets::{KeyBundleError, PrivateKeys, VaultKey};

/// How long a server certificate is valid (under the 398 days browsers accept).
pub const SERVER_CERT_DAYS: i64 = 397;
/// A server certificate is renewed when it has fewer days left than this.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// Audit action: the server certificate was renewed.
pub const ACTION_RENEW_TLS: &str = "keys.renew_tls";

/// Why TLS material could not be made or renewed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A host name is not valid in a certificate.
    #[error("invalid host name {0:?}")]
    BadHost(String),
    /// Certificate generation failed.
    #[error(transparent)]
    Certificate(#[from] rcgen::Error),
    /// The key bundle could not be opened or sealed.
    #[error(transparent)]
    Keys(#[from] KeyBundleError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The metadata store failed (the audit record).
    #[error(transparent)]
    Store(#[from] vigil_vault_store::metadata::StoreError),
}

/// A CA and the first server certificate it issued (PEM).
pub(crate) struct Tls {
    pub ca_pem: String,
    pub ca_key_pem: String,
    pub chain_pem: String,
    pub server_key_pem: String,
    pub not_after: time::OffsetDateTime,
}

/// The CA's parameters: the same at creation and at every issue, so certificates issued later
/// name the CA the agents pin (name and key identifier).
fn ca_params() -> CertificateParams {
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "Vigil vault CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "Vigil");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca
}

/// A new CA (ten years) and its first server certificate for `hosts`.
pub(crate) fn make_tls(hosts: &[String]) -> Result<Tls, TlsError> {
    let now = crate::clock::now();
    let mut ca = ca_params();
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca_pem = ca_cert.pem();
    let (chain_pem, server_key_pem, not_after) = issue_server(hosts, &ca_pem, &ca_key_pem)?;
    Ok(Tls {
        ca_pem,
        ca_key_pem,
        chain_pem,
        server_key_pem,
        not_after,
    })
}

/// A server certificate for `hosts` issued by the CA: the chain (server, then CA), its key,
/// and when it expires.
fn issue_server(
    hosts: &[String],
    ca_pem: &str,
    ca_key_pem: &str,
) -> Result<(String, String, time::OffsetDateTime), TlsError> {
    for host in hosts {
        CertificateParams::new(vec![host.clone()]).map_err(|_| TlsError::BadHost(host.clone()))?;
    }
    let now = crate::clock::now();
    let mut server = CertificateParams::new(hosts.to_vec())?;
    server
        .distinguished_name
        .push(DnType::CommonName, hosts[0].as_str());
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.not_before = now - time::Duration::hours(1);
    server.not_after = now + time::Duration::days(SERVER_CERT_DAYS);
    let server_key = KeyPair::generate()?;
    let issuer = Issuer::new(ca_params(), KeyPair::from_pem(ca_key_pem)?);
    let server_cert = server.signed_by(&server_key, &issuer)?;
    Ok((
        format!("{}{ca_pem}", server_cert.pem()),
        server_key.serialize_pem(),
        server.not_after,
    ))
}

/// Where the server certificate's expiry is kept.
pub(crate) fn expiry_file(layout: &Layout) -> std::path::PathBuf {
    layout.tls().join("server.not_after")
}

/// The recorded expiry of the server certificate (`None` for deployments made before it was
/// recorded).
pub fn server_not_after(layout: &Layout) -> Option<time::OffsetDateTime> {
    let text = std::fs::read_to_string(expiry_file(layout)).ok()?;
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).ok()
}

/// Whether the server certificate is due for renewal (its recorded expiry is near).
pub fn renewal_due(layout: &Layout, now: time::OffsetDateTime) -> bool {
    server_not_after(layout).is_some_and(|at| at - now < time::Duration::days(RENEW_BEFORE_DAYS))
}

/// Issues a new server certificate for the deployment's hosts under its CA, stores the chain
/// and the new key (in the key bundle, sealed with the vault key), and audits it. Agents
/// pinning the CA keep connecting; the running server serves the new certificate from its
/// next start.
pub fn renew_server_certificate(
    data: &Path,
    key: &VaultKey,
    actor: &str,
) -> Result<time::OffsetDateTime, TlsError> {
    let admin = crate::admin::Admin::open(data).map_err(|e| TlsError::Io {
        path: data.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let layout = admin.layout().clone();
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Io { path, source }
    };
    let sealed = std::fs::read(layout.private_keys()).map_err(io(&layout.private_keys()))?;
    let keys = PrivateKeys::open(&sealed, key)?;
    let ca_pem = std::fs::read_to_string(layout.ca_cert()).map_err(io(&layout.ca_cert()))?;
    let (chain, server_key, not_after) = issue_server(
        &admin.config().hosts,
        &ca_pem,
        keys.tls_ca_key.expose_secret(),
    )?;
    let renewed = PrivateKeys {
        tls_server_key: SecretString::from(server_key),
        ..keys
    };
    // The key first: a crash between the two leaves the old certificate with a key that does
    // not match it, which `serve` refuses loudly, never a certificate served with a stale key.
    vigil_files::write_private(&layout.private_keys(), &renewed.seal(key)?)
        .map_err(io(&layout.private_keys()))?;
    vigil_files::replace(&layout.server_cert(), chain.as_bytes(), Access::Public)
        .map_err(io(&layout.server_cert()))?;
    write_expiry(&layout, not_after)?;
    crate::audit::record(
        admin.store(),
        actor,
        ACTION_RENEW_TLS,
        Some(format!(
            "server certificate until {}",
            crate::clock::rfc3339(not_after)
        )),
        None,
    )?;
    Ok(not_after)
}

/// Records the server certificate's expiry.
pub(crate) fn write_expiry(
    layout: &Layout,
    not_after: time::OffsetDateTime,
) -> Result<(), TlsError> {
    let path = expiry_file(layout);
    vigil_files::replace(
        &path,
        format!("{}\n", crate::clock::rfc3339(not_after)).as_bytes(),
        Access::Public,
    )
    .map_err(|source| TlsError::Io {
        path: path.display().to_string(),
        source,
    })
}
