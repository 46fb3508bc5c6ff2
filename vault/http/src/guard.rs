//! The guard every route passes: it resolves the caller (session cookie with CSRF token, API
//! token, or Basic) and enforces the matched route's access rule
//! ([`vigil_vault_core::access::ROUTES`]) before the handler runs.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use vigil_vault_core::access::{route_rule, Access, AuthMethod, Principal, ROUTES};
use vigil_vault_core::api_auth::{self, AuthError, Credentials, CSRF_HEADER, SESSION_COOKIE};

use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};
use crate::origin::ClientIp;

/// What an account whose password must change may still call with that password (a session or
/// Basic): a one-time password is for changing it, nothing else. API tokens are credentials of
/// their own (and a reset revokes them).
const PASSWORD_CHANGE_ROUTES: [(&str, &str); 3] = [
    ("POST", "/v1/password"),
    ("GET", "/v1/me"),
    ("POST", "/v1/logout"),
];

/// What a session of an account that needs a second factor and has none may call: enroll
/// one, and the password-change routes.
const MFA_ENROLLMENT_ROUTES: [(&str, &str); 5] = [
    ("POST", "/v1/mfa/totp"),
    ("POST", "/v1/mfa/totp/confirm"),
    ("POST", "/v1/password"),
    ("GET", "/v1/me"),
    ("POST", "/v1/logout"),
];

/// Audit action: an authenticated account called a route its role does not allow.
pub const ACTION_ACCESS_DENIED: &str = "access.denied";

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            // No `WWW-Authenticate: Basic`: a browser would offer its password dialog and then
            // send cached Basic credentials with every request, which need no CSRF token.
            AuthError::Missing => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required",
            ),
            AuthError::Invalid => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "invalid credentials",
            ),
            AuthError::Forbidden => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the account's role may not do this",
            ),
            AuthError::Csrf => ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token",
            ),
            AuthError::CodeRequired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "totp_required",
                "a one-time code from the authenticator app is required",
            ),
            AuthError::SecondFactorRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa_required",
                "this account needs a second factor: log in to the console with a one-time \
                 code, or use an API token",
            ),
            AuthError::Throttled(secs) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                format!("too many failed attempts; retry in {secs} s"),
            )
            .with_header(header::RETRY_AFTER, secs.to_string()),
            AuthError::Store(e) => ApiError::internal(&e),
        }
    }
}

/// Enforces the access rule of the matched route: resolves the caller, checks its permission,
/// and hands the [`Principal`] to the handler. A route without a rule is refused (500), so none
/// can be served unguarded.
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
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_access_rule",
            "this route has no access rule",
        )
        .into_response();
    };
    let needed = match rule.access {
        Access::Public | Access::EnrollToken | Access::DeviceSigned => {
            return next.run(request).await
        }
        Access::Authenticated => None,
        a @ (Access::Permission(_) | Access::AnyOf(_)) => Some(a),
    };
    let offered = offered(&request, &method);
    let checked = async {
        let principal = authenticate(&app, offered).await?;
        let by_password = principal.via != AuthMethod::ApiToken;
        if principal.must_change_password
            && by_password
            && !PASSWORD_CHANGE_ROUTES.contains(&(method.as_str(), path.as_str()))
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                "change this account's password first (POST /v1/password)",
            ));
        }
        check_second_factor(&app, &principal, &method, &path).await?;
        if let Some(access) = needed {
            if !access.allows(principal.role) {
                return Err(deny(&app, &principal, access, &method, &path).await);
            }
        }
        Ok(principal)
    };
    match checked.await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Basic is refused to accounts that need a second factor, and their sessions may only enroll
/// one until they have (API tokens, made by IT, are credentials of their own).
async fn check_second_factor(
    app: &AppState,
    principal: &Principal,
    method: &str,
    path: &str,
) -> ApiResult<()> {
    if !crate::routes::session::needs_second_factor(app, principal) {
        return Ok(());
    }
    match principal.via {
        AuthMethod::ApiToken => Ok(()),
        AuthMethod::Basic => Err(AuthError::SecondFactorRequired.into()),
        AuthMethod::Session => {
            if MFA_ENROLLMENT_ROUTES.contains(&(method, path)) {
                return Ok(());
            }
            let vault = app.vault.clone();
            let name = principal.name.clone();
            if blocking(move || vigil_vault_core::mfa::enrolled(&vault, &name)).await?? {
                Ok(())
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "mfa_enrollment_required",
                    "enroll a second factor first (POST /v1/mfa/totp, then /v1/mfa/totp/confirm)",
                ))
            }
        }
    }
}

/// The credentials a request offers, read off it before anything is awaited.
struct Offered {
    cookie: Option<String>,
    csrf: Option<String>,
    authorization: Option<String>,
    unsafe_method: bool,
    addr: Option<std::net::IpAddr>,
}

fn offered(request: &Request, method: &str) -> Offered {
    let headers = request.headers();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Offered {
        cookie: text(header::COOKIE.as_str())
            .and_then(|c| api_auth::cookie_value(&c, SESSION_COOKIE).map(str::to_owned)),
        csrf: text(CSRF_HEADER),
        authorization: text(header::AUTHORIZATION.as_str()),
        unsafe_method: !matches!(method, "GET" | "HEAD" | "OPTIONS"),
        addr: request.extensions().get::<ClientIp>().map(|a| a.0),
    }
}

/// The caller, from the credentials offered.
async fn authenticate(app: &AppState, offered: Offered) -> ApiResult<Principal> {
    let mfa_required = app.vault.config().accounts.mfa_required;
    let vault = app.vault.clone();
    let throttle = app.throttle.clone();
    let resolved = blocking(move || {
        api_auth::authenticate(
            vault.store(),
            &throttle,
            &Credentials {
                session: offered.cookie.as_deref(),
                csrf: offered.csrf.as_deref(),
                authorization: offered.authorization.as_deref(),
                unsafe_method: offered.unsafe_method,
                addr: offered.addr,
                mfa_required,
            },
        )
    })
    .await??;
    resolved.ok_or_else(|| AuthError::Missing.into())
}

/// Refuses a caller whose role lacks the route's permission; attempts beyond one's role are
/// part of the record (`access.denied`).
async fn deny(
    app: &AppState,
    principal: &Principal,
    access: Access,
    method: &str,
    path: &str,
) -> ApiError {
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
    match logged {
        Ok(Ok(_)) => AuthError::Forbidden.into(),
        Ok(Err(e)) => ApiError::internal(&e),
        Err(e) => e,
    }
}

/// Headers every answer carries: HSTS (the API is HTTPS only), and no caching of anything an
/// account reads (search results, the audit log, accounts, policy, media links).
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        header::HeaderValue::from_static("max-age=31536000"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(header::HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(crate::console::CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    response
}
