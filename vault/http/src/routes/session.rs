//! Signing in and out: `POST /v1/login`, `POST /v1/logout`, `POST /v1/password`, `GET /v1/me`.

use age::secrecy::ExposeSecret;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use vigil_vault_core::access::Principal;
use vigil_vault_core::api_auth::{self, ChangePasswordError, SESSION_COOKIE};

use crate::app::{AppState, ClientAddr};
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::ApiJson;

/// `POST /v1/login`'s body.
#[derive(serde::Deserialize)]
pub(crate) struct LoginRequest {
    name: String,
    password: String,
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

fn client_ip(addr: Option<&Extension<ClientAddr>>) -> Option<std::net::IpAddr> {
    addr.map(|a| a.0 .0.ip())
}

/// `POST /v1/login`: a session cookie and the CSRF token.
pub(crate) async fn login(
    State(app): State<AppState>,
    addr: Option<Extension<ClientAddr>>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult {
    let ip = client_ip(addr.as_ref());
    let vault = app.vault.clone();
    let throttle = app.throttle.clone();
    let session =
        blocking(move || api_auth::login(vault.store(), &throttle, &body.name, &body.password, ip))
            .await??;
    let cookie = format!(
        "{SESSION_COOKIE}={}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        session.cookie.expose_secret(),
        api_auth::SESSION_ABSOLUTE_SECS
    );
    let mut answer = principal_json(&session.principal);
    answer["csrf_token"] = session.csrf.into();
    answer["expires_at"] = session.expires_at.into();
    answer["must_change_password"] = session.must_change_password.into();
    Ok((
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(answer),
    )
        .into_response())
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
    addr: Option<Extension<ClientAddr>>,
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
