//! Signing in and out: `POST /v1/login`, `POST /v1/logout`, `POST /v1/password`, `GET /v1/me`,
//! and the second factor: `POST /v1/mfa/totp`, `POST /v1/mfa/totp/confirm`.

use age::secrecy::ExposeSecret;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use vigil_vault_core::access::Principal;
use vigil_vault_core::api_auth::{
    self, AuthError, ChangePasswordError, SecondFactor, SESSION_COOKIE,
};
use vigil_vault_core::mfa::{self, MfaError};

use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::origin::ClientIp;

/// `POST /v1/login`'s body.
#[derive(serde::Deserialize)]
pub(crate) struct LoginRequest {
    name: String,
    password: String,
    /// The one-time code, for accounts with a second factor.
    #[serde(default)]
    totp: Option<String>,
}

/// `POST /v1/mfa/totp/confirm`'s body.
#[derive(serde::Deserialize)]
pub(crate) struct CodeRequest {
    code: String,
}

impl From<MfaError> for ApiError {
    fn from(e: MfaError) -> Self {
        use axum::http::StatusCode;
        match e {
            MfaError::AlreadyEnrolled => {
                ApiError::new(StatusCode::CONFLICT, "mfa_enrolled", e.to_string())
            }
            MfaError::NotEnrolled => ApiError::bad_request("mfa_not_enrolled", e.to_string()),
            MfaError::CodeRequired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "totp_required", e.to_string())
            }
            MfaError::BadCode => ApiError::bad_request("bad_totp", e.to_string()),
            MfaError::NoAccount(_) => ApiError::not_found(e.to_string()),
            _ => ApiError::internal(&e),
        }
    }
}

fn now_secs() -> u64 {
    u64::try_from(vigil_vault_core::clock::now().unix_timestamp()).unwrap_or(0)
}

/// Whether `principal` must show a confirmed second factor under this vault's settings.
pub(crate) fn needs_second_factor(app: &AppState, principal: &Principal) -> bool {
    app.vault.config().accounts.mfa_required && mfa::required_for(principal.role)
}

/// `POST /v1/password`'s body.
#[derive(serde::Deserialize)]
pub(crate) struct PasswordRequest {
    current: String,
    new: String,
}

fn principal_json(p: &Principal) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "role": p.role.as_str(),
        "teams": p.teams,
        "permissions": p.role.permissions().iter().map(|x| x.as_str()).collect::<Vec<_>>(),
        "via": p.via.as_str(),
    })
}

fn client_ip(addr: Option<&Extension<ClientIp>>) -> Option<std::net::IpAddr> {
    addr.map(|a| a.0 .0)
}

/// `POST /v1/login`: a session cookie and the CSRF token.
pub(crate) async fn login(
    State(app): State<AppState>,
    addr: Option<Extension<ClientIp>>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult {
    let ip = client_ip(addr.as_ref());
    let vault = app.vault.clone();
    let throttle = app.throttle.clone();
    let required = app.vault.config().accounts.mfa_required;
    let session = blocking(move || {
        // An account with a confirmed factor logs in with a code; one without can only enroll
        // (the guard keeps the session to that).
        let second = |p: &Principal| {
            if !(required && mfa::required_for(p.role)) {
                return Ok(SecondFactor::Passed);
            }
            let enrolled = mfa::enrolled(&vault, &p.name).map_err(internal)?;
            if !enrolled {
                return Ok(SecondFactor::Passed);
            }
            match mfa::check(&vault, &p.name, body.totp.as_deref(), now_secs()) {
                Ok(()) => Ok(SecondFactor::Passed),
                Err(MfaError::CodeRequired) => Err(AuthError::CodeRequired),
                Err(MfaError::BadCode) => Ok(SecondFactor::Failed),
                Err(e) => Err(internal(e)),
            }
        };
        api_auth::login(
            vault.store(),
            &throttle,
            &body.name,
            &body.password,
            ip,
            second,
        )
    })
    .await??;
    let enrolling = if needs_second_factor(&app, &session.principal) {
        let (vault, name) = (app.vault.clone(), session.principal.name.clone());
        !blocking(move || mfa::enrolled(&vault, &name)).await??
    } else {
        false
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        session.cookie.expose_secret(),
        api_auth::SESSION_ABSOLUTE_SECS
    );
    let mut answer = principal_json(&session.principal);
    answer["csrf_token"] = session.csrf.into();
    answer["expires_at"] = session.expires_at.into();
    answer["must_change_password"] = session.must_change_password.into();
    answer["mfa_enrollment_required"] = enrolling.into();
    Ok((
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(answer),
    )
        .into_response())
}

fn internal(e: MfaError) -> AuthError {
    AuthError::Store(vigil_vault_store::metadata::StoreError::Corrupt(
        e.to_string(),
    ))
}

/// `POST /v1/mfa/totp`: a new second factor for the caller (shown once: the secret and its
/// `otpauth://` URL), to confirm with a first code.
pub(crate) async fn begin_totp(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    let vault = app.vault.clone();
    let factor = blocking(move || mfa::begin(&vault, &principal.name)).await??;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "secret": factor.secret_base32,
            "otpauth_url": factor.otpauth_url,
        })),
    )
        .into_response())
}

/// `POST /v1/mfa/totp/confirm`: the first code from the app confirms the factor.
pub(crate) async fn confirm_totp(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CodeRequest>,
) -> ApiResult {
    let vault = app.vault.clone();
    blocking(move || {
        let keep = principal.session_sha256.as_deref();
        mfa::confirm(&vault, &principal.name, &body.code, now_secs(), keep)
    })
    .await??;
    Ok(Json(serde_json::json!({ "status": "ok" })).into_response())
}

/// `POST /v1/logout`.
pub(crate) async fn logout(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    let vault = app.vault.clone();
    blocking(move || api_auth::logout(vault.store(), &principal)).await??;
    Ok((
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Json(serde_json::json!({ "status": "ok" })),
    )
        .into_response())
}

/// `POST /v1/password`: the caller changes its own password.
pub(crate) async fn change_password(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    addr: Option<Extension<ClientIp>>,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> ApiResult {
    let ip = client_ip(addr.as_ref());
    let vault = app.vault.clone();
    let throttle = app.throttle.clone();
    blocking(move || {
        api_auth::change_password(
            vault.store(),
            &throttle,
            &principal,
            &body.current,
            &body.new,
            ip,
        )
    })
    .await?
    .map_err(|e| match e {
        ChangePasswordError::Auth(e) => ApiError::from(e),
        ChangePasswordError::Account(e) => ApiError::from(e),
    })?;
    Ok(Json(serde_json::json!({ "status": "ok" })).into_response())
}

/// `GET /v1/me`.
pub(crate) async fn me(Extension(principal): Extension<Principal>) -> Response {
    Json(principal_json(&principal)).into_response()
}
