//! The one error type of the API: every refusal and failure is `{"error": code, "detail": text}`
//! with its status (and, where the protocol wants one, a header such as `Retry-After`).

use std::borrow::Cow;
use std::fmt::Display;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use vigil_vault_store::metadata::StoreError;

/// A refusal or failure, as the client will see it.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: String,
    headers: Vec<(HeaderName, String)>,
    /// Fields beside `error` and `detail` (the segment and hold of a `held` refusal).
    fields: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    /// A refusal with its status, stable code and human-readable detail.
    pub(crate) fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            detail: detail.into(),
            headers: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// 400.
    pub(crate) fn bad_request(
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 404.
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 500, logged with its cause; the client learns nothing of it.
    pub(crate) fn internal(cause: &dyn Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// Adds a header to the answer.
    pub(crate) fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a field to the JSON answer.
    pub(crate) fn with_field(mut self, name: &'static str, value: impl serde::Serialize) -> Self {
        self.fields
            .push((name, serde_json::to_value(value).unwrap_or_default()));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code, "detail": self.detail });
        for (name, value) in self.fields {
            body[name] = value;
        }
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// A store failure is never the client's fault.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(&e)
    }
}

/// Gap reports fail only when the store does.
impl From<vigil_vault_core::gaps::GapsError> for ApiError {
    fn from(e: vigil_vault_core::gaps::GapsError) -> Self {
        Self::internal(&e)
    }
}

/// What a handler answers.
pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

/// Runs blocking work (SQLite, files, signatures) off the async workers; a panic in it is an
/// internal error.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let origin = crate::origin::current();
    tokio::task::spawn_blocking(move || vigil_vault_core::audit::with_origin(origin, f))
        .await
        .map_err(|e| ApiError::internal(&format!("request task failed: {e}")))
}
