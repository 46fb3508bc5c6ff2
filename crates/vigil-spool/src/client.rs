//! The agent's HTTPS client of the vault: TLS by rustls (ring), trusting only the vault's own
//! CA when the agent was enrolled with one (pinned), else the OS's roots.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use uuid::Uuid;
use vigil_proto::api::{EnrollRequest, EnrollResponse};
use vigil_proto::frame::CONTENT_TYPE;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The vault URL is not an `https://` URL.
    #[error("vault URL {0:?} must start with https://")]
    NotHttps(String),
    /// The CA file holds no usable certificate.
    #[error("the vault CA holds no PEM certificate")]
    BadCa,
    /// The TLS stack could not be set up.
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// Why a request to the vault failed. [`RequestError::is_retryable`] tells transient failures
/// (network, overload, server errors) from refusals.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No answer: connection refused or cut, TLS failure, timeout.
    #[error("vault unreachable: {0}")]
    Transport(String),
    /// The vault answered with an error status.
    #[error("vault answered {status}: {code}: {detail}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The vault's error code (`revoked_device`, `chain_broken`, …).
        code: String,
        /// Its explanation.
        detail: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the vault: {0}")]
    BadAnswer(String),
}

impl RequestError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::BadAnswer(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
        }
    }
}

/// A client of one vault.
#[derive(Debug, Clone)]
pub struct VaultClient {
    base: String,
    http: reqwest::Client,
}

/// A segment the vault accepted.
#[derive(Debug, Clone)]
pub struct UploadAnswer {
    /// The signed receipt, as returned.
    pub receipt: Vec<u8>,
    /// The vault already had it (a retried upload).
    pub duplicate: bool,
}

fn describe(e: &reqwest::Error) -> String {
    // reqwest's Display hides the cause (connection refused, TLS); walk the chain.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl VaultClient {
    /// A client for the vault at `base` (`https://host:port`), pinned to `ca_pem` when given.
    pub fn new(base: &str, ca_pem: Option<&[u8]>) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(ClientError::NotHttps(base));
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|_| ClientError::BadCa)?;
                    roots
                        .add(cert)
                        .map_err(|e| ClientError::Tls(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(ClientError::BadCa);
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("vigil-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Tls(describe(&e)))?;
        Ok(Self { base, http })
    }

    /// The vault's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response, RequestError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            error: String,
            #[serde(default)]
            detail: String,
        }
        let body = response.bytes().await.unwrap_or_default();
        let (code, detail) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (e.error, e.detail),
            Err(_) => (
                status.canonical_reason().unwrap_or("error").to_owned(),
                String::new(),
            ),
        };
        Err(RequestError::Status {
            status: status.as_u16(),
            code,
            detail,
        })
    }

    /// `POST /v1/enroll`.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, RequestError> {
        let response = self
            .http
            .post(format!("{}/v1/enroll", self.base))
            .json(request)
            .send()
            .await
            .map_err(|e| RequestError::Transport(describe(&e)))?;
        Self::check(response)
            .await?
            .json()
            .await
            .map_err(|e| RequestError::BadAnswer(describe(&e)))
    }

    /// `PUT /v1/segments/{session}/{sequence}` with a framed body and the device's signature
    /// header (`vigil_proto::upload_auth`); returns the receipt bytes.
    pub async fn upload(
        &self,
        session: Uuid,
        sequence: u64,
        body: Vec<u8>,
        device_signature: &str,
    ) -> Result<UploadAnswer, RequestError> {
        let response = self
            .http
            .put(format!("{}/v1/segments/{session}/{sequence}", self.base))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(
                vigil_proto::upload_auth::UPLOAD_AUTH_HEADER,
                device_signature,
            )
            .body(body)
            .send()
            .await
            .map_err(|e| RequestError::Transport(describe(&e)))?;
        let response = Self::check(response).await?;
        let duplicate = response.status() == StatusCode::OK;
        let receipt = response
            .bytes()
            .await
            .map_err(|e| RequestError::Transport(describe(&e)))?;
        Ok(UploadAnswer {
            receipt: receipt.to_vec(),
            duplicate,
        })
    }

    /// `POST /v1/devices/rekey`: the device's key replaced (signed by the old and the new).
    pub async fn rekey(
        &self,
        request: &vigil_proto::rekey::RekeyRequest,
    ) -> Result<(), RequestError> {
        let response = self
            .http
            .post(format!("{}/v1/devices/rekey", self.base))
            .json(request)
            .send()
            .await
            .map_err(|e| RequestError::Transport(describe(&e)))?;
        Self::check(response).await.map(|_| ())
    }

    /// `POST /v1/heartbeat` with a signed heartbeat envelope.
    pub async fn heartbeat(&self, signed: Vec<u8>) -> Result<(), RequestError> {
        let response = self
            .http
            .post(format!("{}/v1/heartbeat", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(signed)
            .send()
            .await
            .map_err(|e| RequestError::Transport(describe(&e)))?;
        Self::check(response).await.map(|_| ())
    }

    /// `POST /v1/policy/poll` (long poll): the signed policy when the vault has one newer
    /// than the poll's `after`, `None` when the wait ran out with nothing new.
    pub async fn poll_policy(&self, signed: Vec<u8>) -> Result<Option<Vec<u8>>, RequestError> {
        let response = self
            .http
            .post(format!("{}/v1/policy/poll", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(signed)
            .send()
            .await
            .map_err(|e| RequestError::Transport(describe(&e)))?;
        let response = Self::check(response).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| RequestError::Transport(describe(&e)))?;
        Ok(Some(body.to_vec()))
    }
}
