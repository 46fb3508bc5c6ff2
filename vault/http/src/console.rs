//! The operator API's access guard and its account endpoints: login and logout, who am I,
//! accounts, the audit log, devices.

use std::net::IpAddr;

use age::secrecy::{ExposeSecret, SecretString};
use axum::extract::rejection::JsonRejection;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::server::{blocking, error, internal, task_failed, AppState, ClientAddr};
use vigil_vault_core::access::{route_rule, Access, Principal, Role, ROUTES};
use vigil_vault_core::accounts::{AccountError, NewAccount};
use vigil_vault_core::api_auth::{self, AuthError, Credentials, CSRF_HEADER, SESSION_COOKIE};
use vigil_vault_store::metadata::{Account, AuditQuery, AuditRecord};

/// Audit action: an authenticated account called a route its role does not allow.
pub const ACTION_ACCESS_DENIED: &str = "access.denied";

/// The refusal for an authentication or authorization failure.
pub(crate) fn auth_refusal(e: &AuthError) -> Response {
    match e {
        AuthError::Missing => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"vigil-vault\"")],
            Json(serde_json::json!({
                "error": "unauthorized", "detail": "authentication required"
            })),
        )
            .into_response(),
        AuthError::Invalid => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid credentials".into(),
        ),
        AuthError::Forbidden => error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the account's role may not do this".into(),
        ),
        AuthError::Csrf => error(
            StatusCode::FORBIDDEN,
            "csrf",
            "missing or wrong X-CSRF-Token".into(),
        ),
        AuthError::Throttled(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            Json(serde_json::json!({
                "error": "throttled",
                "detail": format!("too many failed attempts; retry in {secs} s"),
            })),
        )
            .into_response(),
        AuthError::Store(e) => internal(e),
    }
}

fn client_ip(addr: Option<&Extension<ClientAddr>>) -> Option<IpAddr> {
    addr.map(|a| a.0 .0.ip())
}

/// Enforces the access rule of the matched route ([`vigil_vault_core::access::ROUTES`]): resolves the
/// caller, checks its permission, and hands the [`Principal`] to the handler. A route without
/// a rule is refused (500), so none can be served unguarded.
pub(crate) async fn guard(
    State(app): State<AppState>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(path) = matched.map(|m| m.as_str().to_owned()) else {
        return next.run(request).await;
    };
    let method = if request.method() == Method::HEAD {
        "GET".to_owned()
    } else {
        request.method().as_str().to_owned()
    };
    let Some(rule) = route_rule(&method, &path) else {
        if ROUTES.iter().any(|r| r.path == path.as_str()) {
            // Another method of a guarded path: the router answers 405.
            return next.run(request).await;
        }
        tracing::error!(%method, %path, "route without an access rule refused");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_access_rule",
            "this route has no access rule".into(),
        );
    };
    let needed = match rule.access {
        Access::Public | Access::EnrollToken | Access::DeviceSigned => {
            return next.run(request).await
        }
        Access::Authenticated => None,
        a @ (Access::Permission(_) | Access::AnyOf(_)) => Some(a),
    };
    let headers = request.headers();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let cookie = text(header::COOKIE.as_str())
        .and_then(|c| api_auth::cookie_value(&c, SESSION_COOKIE).map(str::to_owned));
    let csrf = text(CSRF_HEADER);
    let authorization = text(header::AUTHORIZATION.as_str());
    let unsafe_method = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
    let addr = request.extensions().get::<ClientAddr>().map(|a| a.0.ip());
    let vault = app.vault.clone();
    let throttle = app.throttle.clone();
    let resolved = blocking(move || {
        api_auth::authenticate(
            vault.store(),
            &throttle,
            &Credentials {
                session: cookie.as_deref(),
                csrf: csrf.as_deref(),
                authorization: authorization.as_deref(),
                unsafe_method,
                addr,
            },
        )
    })
    .await;
    let principal = match resolved {
        Some(Ok(Some(p))) => p,
        Some(Ok(None)) => return auth_refusal(&AuthError::Missing),
        Some(Err(e)) => return auth_refusal(&e),
        None => return task_failed(),
    };
    if let Some(access) = needed {
        if !access.allows(principal.role) {
            let permission = match access {
                Access::Permission(p) => p.as_str().to_owned(),
                Access::AnyOf(ps) => ps
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                _ => String::new(),
            };
            tracing::warn!(user = %principal.name, role = %principal.role, %permission, %path, "refused");
            // Attempts beyond one's role are part of the record (`access.denied`).
            let vault = app.vault.clone();
            let target = format!("{method} {path}");
            let reason = format!("role {} lacks {permission}", principal.role);
            let actor = principal.actor();
            let logged = blocking(move || {
                vigil_vault_core::audit::record(
                    vault.store(),
                    &actor,
                    ACTION_ACCESS_DENIED,
                    Some(target),
                    Some(reason),
                )
            })
            .await;
            return match logged {
                Some(Ok(_)) => auth_refusal(&AuthError::Forbidden),
                Some(Err(e)) => internal(&e),
                None => task_failed(),
            };
        }
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// `POST /v1/login`'s body.
#[derive(serde::Deserialize)]
pub(crate) struct LoginRequest {
    name: String,
    password: String,
}

fn bad_json(rejection: &JsonRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        rejection.body_text(),
    )
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

/// `POST /v1/login`: a session cookie and the CSRF token.
pub(crate) async fn login(
    State(app): State<AppState>,
    addr: Option<Extension<ClientAddr>>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(r) => return bad_json(&r),
    };
    let ip = client_ip(addr.as_ref());
    let vault = app.vault.clone();
    let throttle = app.throttle.clone();
    let result =
        blocking(move || api_auth::login(vault.store(), &throttle, &body.name, &body.password, ip))
            .await;
    match result {
        Some(Ok(session)) => {
            let cookie = format!(
                "{SESSION_COOKIE}={}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                session.cookie.expose_secret(),
                api_auth::SESSION_ABSOLUTE_SECS
            );
            let mut answer = principal_json(&session.principal);
            answer["csrf_token"] = session.csrf.into();
            answer["expires_at"] = session.expires_at.into();
            answer["must_change_password"] = session.must_change_password.into();
            (
                [
                    (header::SET_COOKIE, cookie),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                ],
                Json(answer),
            )
                .into_response()
        }
        Some(Err(e)) => auth_refusal(&e),
        None => task_failed(),
    }
}

/// `POST /v1/logout`.
pub(crate) async fn logout(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let vault = app.vault.clone();
    match blocking(move || api_auth::logout(vault.store(), &principal)).await {
        Some(Ok(())) => (
            [(
                header::SET_COOKIE,
                format!("{SESSION_COOKIE}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            )],
            Json(serde_json::json!({ "status": "ok" })),
        )
            .into_response(),
        Some(Err(e)) => auth_refusal(&e),
        None => task_failed(),
    }
}

/// `POST /v1/password`'s body.
#[derive(serde::Deserialize)]
pub(crate) struct PasswordRequest {
    current: String,
    new: String,
}

/// `POST /v1/password`: the caller changes its own password.
pub(crate) async fn change_password(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    addr: Option<Extension<ClientAddr>>,
    body: Result<Json<PasswordRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(r) => return bad_json(&r),
    };
    let ip = client_ip(addr.as_ref());
    let vault = app.vault.clone();
    let throttle = app.throttle.clone();
    let result = blocking(move || {
        api_auth::change_password(
            vault.store(),
            &throttle,
            &principal,
            &body.current,
            &body.new,
            ip,
        )
    })
    .await;
    use api_auth::ChangePasswordError as E;
    match result {
        Some(Ok(())) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Some(Err(E::Auth(e))) => auth_refusal(&e),
        Some(Err(E::Account(e @ (AccountError::Store(_) | AccountError::Hash(_))))) => internal(&e),
        Some(Err(E::Account(e))) => error(StatusCode::BAD_REQUEST, "weak_password", e.to_string()),
        None => task_failed(),
    }
}

/// `GET /v1/me`.
pub(crate) async fn me(Extension(principal): Extension<Principal>) -> Response {
    Json(principal_json(&principal)).into_response()
}

fn account_json(a: &Account) -> serde_json::Value {
    serde_json::json!({
        "name": a.user.name,
        "role": a.user.role,
        "teams": a.teams,
        "disabled": a.disabled_at.is_some(),
    })
}

/// `GET /v1/users`.
pub(crate) async fn list_users(State(app): State<AppState>) -> Response {
    let vault = app.vault.clone();
    match blocking(move || vigil_vault_core::accounts::list_users(vault.store())).await {
        Some(Ok(all)) => Json(serde_json::json!({
            "users": all.iter().map(account_json).collect::<Vec<_>>()
        }))
        .into_response(),
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}

/// `POST /v1/users`'s body.
#[derive(serde::Deserialize)]
pub(crate) struct NewUserRequest {
    name: String,
    role: String,
    #[serde(default)]
    teams: Vec<String>,
    password: Option<String>,
}

/// `POST /v1/users`: creates an account (a password is generated and returned if none is given).
pub(crate) async fn add_user(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewUserRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(r) => return bad_json(&r),
    };
    let role: Role = match body.role.parse() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_role", format!("{e}")),
    };
    let vault = app.vault.clone();
    let new = NewAccount {
        name: body.name,
        role,
        teams: body.teams,
        password: body.password.map(SecretString::from),
    };
    let result = blocking(move || {
        vigil_vault_core::accounts::add_user(vault.store(), new, &principal.actor())
    })
    .await;
    match result {
        Some(Ok(created)) => {
            let mut answer = account_json(&created.account);
            if let Some(p) = &created.generated_password {
                answer["password"] = p.expose_secret().into();
            }
            (StatusCode::CREATED, Json(answer)).into_response()
        }
        Some(Err(AccountError::Exists(name))) => error(
            StatusCode::CONFLICT,
            "exists",
            format!("account {name:?} exists"),
        ),
        Some(Err(e @ (AccountError::Store(_) | AccountError::Hash(_)))) => internal(&e),
        Some(Err(e)) => error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
        None => task_failed(),
    }
}

/// `PATCH /v1/users/{name}`'s body: what to change.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    role: Option<String>,
    teams: Option<Vec<String>>,
    disabled: Option<bool>,
    reason: Option<String>,
}

/// `PATCH /v1/users/{name}`: changes an account's role, teams, or disabled state. Each change
/// is audited. An account cannot disable itself or drop its own `users` permission.
pub(crate) async fn change_user(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: Result<Json<UserChange>, JsonRejection>,
) -> Response {
    let Json(change) = match body {
        Ok(b) => b,
        Err(r) => return bad_json(&r),
    };
    let role = match change.role.as_deref().map(str::parse::<Role>).transpose() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_role", e.to_string()),
    };
    if name == principal.name
        && (change.disabled == Some(true)
            || role.is_some_and(|r| !r.can(vigil_vault_core::access::Permission::Users)))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "self_lockout",
            "an account cannot disable itself or remove its own users permission".into(),
        );
    }
    let vault = app.vault.clone();
    let actor = principal.actor();
    let result = blocking(move || {
        let store = vault.store();
        if let Some(role) = role {
            vigil_vault_core::accounts::set_role(store, &name, role, &actor)?;
        }
        if let Some(teams) = &change.teams {
            vigil_vault_core::accounts::set_teams(store, &name, teams, &actor)?;
        }
        if let Some(disabled) = change.disabled {
            vigil_vault_core::accounts::set_disabled(
                store,
                &name,
                disabled,
                &actor,
                change.reason.as_deref(),
            )?;
        }
        store.account(&name)?.ok_or(AccountError::NotFound(name))
    })
    .await;
    match result {
        Some(Ok(account)) => Json(account_json(&account)).into_response(),
        Some(Err(AccountError::NotFound(name))) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no account {name:?}"),
        ),
        Some(Err(e @ (AccountError::Store(_) | AccountError::Hash(_)))) => internal(&e),
        Some(Err(e)) => error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
        None => task_failed(),
    }
}

/// `GET /v1/audit`'s filters.
#[derive(serde::Deserialize)]
pub(crate) struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

/// The JSON of an audit record.
pub(crate) fn audit_json(r: &AuditRecord) -> serde_json::Value {
    let at = time::OffsetDateTime::from_unix_timestamp(r.draft.at)
        .map(vigil_vault_core::clock::rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        "seq": r.seq,
        "at": at,
        "actor": r.draft.actor,
        "action": r.draft.action,
        "target": r.draft.target,
        "reason": r.draft.reason,
        "prev_sha256": r.prev_sha256,
        "sha256": r.sha256,
    })
}

/// `GET /v1/audit`: records matching the filters, oldest first; page with `after`.
pub(crate) async fn audit(
    State(app): State<AppState>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "bad query parameters".into(),
        );
    };
    let (from, to) =
        match vigil_vault_core::when::TimeRange::parse(p.from.as_deref(), p.to.as_deref()) {
            Ok(range) => range.unix(),
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_time", e.to_string()),
        };
    let query = AuditQuery {
        actor: p.actor,
        action: p.action,
        target: p.target,
        from,
        to,
        after: p.after.unwrap_or(0),
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let vault = app.vault.clone();
    match blocking(move || vault.store().audit_query(&query)).await {
        Some(Ok(records)) => Json(serde_json::json!({
            "records": records.iter().map(audit_json).collect::<Vec<_>>(),
            "next_after": records.last().map(|r| r.seq),
        }))
        .into_response(),
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}

/// `GET /v1/devices` (a team-scoped caller sees its teams' devices only).
pub(crate) async fn devices(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let vault = app.vault.clone();
    match blocking(move || vault.store().devices()).await {
        Some(Ok(all)) => {
            let devices: Vec<_> = all
                .iter()
                .filter(|d| principal.sees_team(d.team.as_deref()))
                .map(|d| {
                    serde_json::json!({
                        "id": d.id,
                        "key_id": d.key_id,
                        "hostname": d.hostname,
                        "user": d.user,
                        "team": d.team,
                        "enrolled_at": d.enrolled_at,
                        "revoked_at": d.revoked_at,
                    })
                })
                .collect();
            Json(serde_json::json!({ "devices": devices })).into_response()
        }
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}
