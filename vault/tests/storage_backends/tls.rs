//! Issue 13 point 11: storage across a network. PostgreSQL that takes TCP clients over TLS
//! only, and S3 behind HTTPS, both with certificates of a private CA the vault is given
//! (`postgres_ca_file`, `s3_ca_file`): the vault works through them, verifies them
//! (`verify-full`: chain and name), and refuses a server it cannot verify instead of falling
//! back to plain text.

use super::*;
use backends::TestCa;
use std::path::PathBuf;
use vigil_vault_store::metadata::{PgTls, PgTlsMode};
use vigil_vault_store::s3_blobs::{S3BlobStore, S3Settings};

#[test]
fn metadata_conformance_postgres_over_tls() {
    metadata_suite(|| Backends::new_tls(Meta::Postgres, Blobs::Local));
}

#[test]
fn blob_conformance_s3_over_https() {
    blob_suite(Backends::new_tls(Meta::Sqlite, Blobs::S3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_postgres_s3_over_tls() {
    ingest_end_to_end(Backends::new_tls(Meta::Postgres, Blobs::S3)).await;
}

fn open_pg(url: &str, mode: Option<PgTlsMode>, ca_file: Option<PathBuf>) -> Result<(), String> {
    let url = url.to_owned();
    off_runtime(move || {
        PostgresStore::open_with(&url, 1, &PgTls { mode, ca_file })
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

/// The database's certificate is checked for its issuer and its name, and a client that
/// would skip TLS gets nothing.
#[test]
fn postgres_refuses_an_unknown_issuer_a_wrong_name_and_plain_text() {
    let ca = TestCa::shared();
    let server = PgServer::shared_tls();
    let url = server.create_database();
    open_pg(&url, None, Some(ca.ca_file.clone())).expect("the right CA and name");

    let stranger = TestCa::new(&["localhost"]);
    let err = open_pg(&url, None, Some(stranger.ca_file.clone())).unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");

    // The certificate names `localhost`; the same server by address is not it.
    let by_address = url.replace("@localhost:", "@127.0.0.1:");
    let err = open_pg(&by_address, None, Some(ca.ca_file.clone())).unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");

    // Plain text is refused by this server, so every success above was over TLS.
    let plain = url.replace("sslmode=verify-full", "sslmode=disable");
    let err = open_pg(&plain, None, None).unwrap_err();
    assert!(err.contains("no encryption"), "{err}");

    // A vault told to verify never settles for less, even on loopback.
    let err = open_pg(
        &plain,
        Some(PgTlsMode::VerifyFull),
        Some(ca.ca_file.clone()),
    )
    .unwrap_err();
    assert!(err.contains("contradicts"), "{err}");
}

/// The S3 endpoint's certificate is checked too: a store given another CA cannot write.
#[test]
fn s3_over_https_refuses_an_unknown_issuer() {
    let backends = Backends::new_tls(Meta::Sqlite, Blobs::S3);
    let dir = tempfile::tempdir().unwrap();
    let trusted = backends.blob_store(dir.path());
    vigil_vault_store::conformance::blobs::stage_commit_get(trusted.as_ref());

    let stranger = TestCa::new(&["localhost"]);
    let endpoint = backends.s3_endpoint_url().unwrap();
    let untrusting = S3BlobStore::new(&S3Settings {
        endpoint: Some(endpoint),
        bucket: "any".into(),
        region: "us-east-1".into(),
        prefix: String::new(),
        access_key_id: backends::S3_KEY_ID.into(),
        secret_access_key: S3_SECRET.into(),
        ca_file: Some(stranger.ca_file.clone()),
    })
    .unwrap();
    let session = Uuid::new_v4();
    let err = off_runtime(move || {
        use vigil_vault_store::blobs::BlobStore;
        untrusting
            .stage(session, &[("x.age".to_owned(), b"sealed bytes".as_slice())])
            .and_then(|staged| untrusting.commit(staged))
            .unwrap_err()
            .to_string()
    });
    assert!(
        err.contains("certificate") || err.contains("error sending request"),
        "{err}"
    );
}
