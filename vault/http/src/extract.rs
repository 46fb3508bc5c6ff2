//! Request input: extractors whose refusals are [`ApiError`]s, so a malformed body or query
//! answers like every other refusal (`400 {"error": "bad_request", "detail": …}`), and the
//! checks of the texts and times people state in requests.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::Json;
use serde::de::DeserializeOwned;
use vigil_vault_core::when::When;

use crate::error::ApiError;

/// A JSON body.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(t)| Self(t))
            .map_err(|r| ApiError::bad_request("bad_request", r.body_text()))
    }
}

/// Query-string parameters.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Self(t))
            .map_err(|r| {
                ApiError::bad_request(
                    "bad_request",
                    format!("bad query parameters: {}", r.body_text()),
                )
            })
    }
}

/// A time in a request body as given (Unix seconds or RFC 3339 text), parsed by [`When`] so
/// that a bad one is refused as `bad_time` rather than as malformed JSON.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum GivenWhen {
    Seconds(i64),
    Text(String),
}

impl GivenWhen {
    /// The time, or a `bad_time` refusal.
    pub(crate) fn when(&self) -> Result<When, ApiError> {
        match self {
            GivenWhen::Seconds(s) => When::from_unix(*s),
            GivenWhen::Text(text) => text.parse(),
        }
        .map_err(|e| ApiError::bad_request("bad_time", e.to_string()))
    }
}

/// A stated text must be one line of at most 1000 bytes (it goes into the audit log).
pub(crate) fn one_line(field: &str, text: Option<&str>) -> Result<(), ApiError> {
    match text {
        Some(t) if t.chars().any(char::is_control) || t.len() > 1000 => Err(ApiError::bad_request(
            format!("bad_{field}"),
            format!("the {field} is one line of at most 1000 bytes"),
        )),
        _ => Ok(()),
    }
}

/// The refusal of a change that states no reason.
pub(crate) fn reason_required(what: &str) -> ApiError {
    ApiError::bad_request("reason_required", format!("state why you {what} (reason)"))
}
