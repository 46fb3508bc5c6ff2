//! Every route of the API as every role (and as nobody), on the real server over TLS: the
//! route table (`vigil_vault_core::access::ROUTES`) and the permission table (`Role::permissions`)
//! decide 401 / 403 / allowed, and the server must agree on every cell. A route served but
//! missing from the table fails here (the OpenAPI description, which a unit test keeps equal to
//! the router, must be covered by the table) and is refused by the server (fail closed).

#[allow(dead_code)]
#[path = "support/console.rs"]
mod console;
#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;

use console::{Console, Login, ACCOUNTS, PASSWORD};
use reqwest::{Method, StatusCode};
use vigil_vault_core::access::{route_rule, Access, Role, RouteRule, ROUTES};

/// The request for one route: a concrete path and a body that passes validation where it can.
fn request(
    c: &Console,
    rule: &RouteRule,
    login: Option<&Login>,
    n: usize,
) -> reqwest::RequestBuilder {
    let path = rule
        .path
        .replace("{session}", &c.session.to_string())
        .replace("{sequence}", "1")
        .replace("{link}", "no-such-link")
        .replace("{name}", "agt")
        .replace("{id}", &uuid::Uuid::nil().to_string())
        .replace("{segment}", &uuid::Uuid::nil().to_string());
    let method = Method::from_bytes(rule.method.as_bytes()).unwrap();
    let mut req = c.http.request(method, c.url(&path));
    req = match (rule.method, rule.path) {
        ("POST", "/v1/login") => req.json(&serde_json::json!({
            "name": "admin", "password": c.admin_password
        })),
        ("POST", "/v1/users") => req.json(&serde_json::json!({
            "name": format!("new{n}"), "role": "agent"
        })),
        ("PATCH", "/v1/users/{name}") => req.json(&serde_json::json!({ "teams": ["east"] })),
        ("POST", p) if p.starts_with("/v1/recordings/") => req.json(&serde_json::json!({
            "kind": "voice", "reason": "role table test"
        })),
        ("POST", "/v1/enroll") => req.json(&serde_json::json!({
            "token": "vgt_unknown", "device_public_key": "00", "hostname": "h", "user": "u"
        })),
        ("POST" | "PUT" | "PATCH", _) => req.body(b"not signed".to_vec()),
        _ => req,
    };
    match login {
        Some(l) => c.with(l, req),
        None => req,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_as_every_role() {
    let c = Console::start().await;
    let mut logins: Vec<(Option<Role>, Option<Login>)> = vec![(None, None)];
    logins.push((
        Some(Role::Admin),
        Some(c.login("admin", &c.admin_password).await),
    ));
    for (name, role, _) in ACCOUNTS {
        logins.push((
            Some(role.parse().unwrap()),
            Some(c.login(name, PASSWORD).await),
        ));
    }
    assert_eq!(logins.len(), Role::ALL.len() + 1, "one login per role");

    // Logout ends the session every other call uses: it goes last.
    let mut rules: Vec<&RouteRule> = ROUTES.iter().filter(|r| r.path != "/v1/logout").collect();
    rules.extend(ROUTES.iter().filter(|r| r.path == "/v1/logout"));
    let mut failures = Vec::new();
    let mut n = 0;
    for rule in rules {
        for (role, login) in &logins {
            n += 1;
            let resp = request(&c, rule, login.as_ref(), n).send().await.unwrap();
            let status = resp.status();
            // A live stream's body never ends: its status is the answer.
            let code = if rule.path.ends_with("/events") && status == StatusCode::OK {
                serde_json::Value::Null
            } else {
                resp.json::<serde_json::Value>().await.unwrap_or_default()
            }["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
            // A device-signed route takes no account: it refuses only for the device's own
            // credential (a segment upload without its signature header: 401, by its handler).
            let device_refusal =
                rule.access == Access::DeviceSigned && code == "device_signature_required";
            let refused = refused && !device_refusal;
            let expected = match (rule.access, role) {
                (Access::Public | Access::EnrollToken | Access::DeviceSigned, _) => "allowed",
                (_, None) => "401",
                (access, Some(r)) if access.allows(*r) => "allowed",
                (_, Some(_)) => "403",
            };
            let ok = match expected {
                "allowed" => !refused && status != StatusCode::INTERNAL_SERVER_ERROR,
                "401" => status == StatusCode::UNAUTHORIZED,
                _ => status == StatusCode::FORBIDDEN,
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {}: {status}, expected {expected}",
                    rule.method,
                    rule.path,
                    role.map_or("anonymous", |r| r.as_str())
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every operation the API describes (and so, by the OpenAPI unit test, every route the
    // router serves) has a rule.
    let doc: serde_json::Value = c
        .http
        .get(c.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                route_rule(method, path).is_some(),
                "{method} {path} is served without an access rule"
            );
            described.insert((method.to_uppercase(), path.clone()));
        }
    }
    let declared: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(described, declared);
}

/// Basic authentication keeps working for scripts, with the same permission table: the
/// admin reads gaps and devices, a QA analyst does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authentication_follows_the_same_table() {
    let c = Console::start().await;
    let get = |path: &str, user: &str, password: &str| {
        c.http
            .get(c.url(path))
            .basic_auth(user, Some(password))
            .send()
    };
    for path in ["/v1/gaps", "/v1/devices"] {
        assert_eq!(
            get(path, "admin", &c.admin_password)
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            get(path, "ann", PASSWORD).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }
    let devices: serde_json::Value = get("/v1/devices", "admin", &c.admin_password)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(devices["devices"][0]["team"], "north");
    assert_eq!(
        get("/v1/recordings", "ann", PASSWORD)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
