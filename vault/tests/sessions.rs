//! Accounts, sessions and API tokens on the real server: the session cookie's attributes, CSRF
//! on requests that change something, logout, API tokens made and revoked with the CLI,
//! disabled accounts, login throttling (also for Basic), accounts managed over the API, and the
//! audit log of it all (never a password).

#[allow(dead_code)]
#[path = "support/console.rs"]
mod console;
#[allow(dead_code)]
mod support;

use console::{Console, PASSWORD};
use reqwest::StatusCode;
use support::run_ok;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_csrf_tokens_throttling_and_accounts() {
    let c = Console::start().await;
    let d = c.data_str().to_owned();

    // The cookie is Secure, HttpOnly, SameSite=Strict, Path=/.
    let resp = c
        .http
        .post(c.url("/v1/login"))
        .json(&serde_json::json!({ "name": "admin", "password": c.admin_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let me: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["must_change_password"], false, "the fixture changed it");
    let admin = c.login("admin", &c.admin_password).await;

    // A state-changing request with the cookie needs the CSRF token.
    let new_user = serde_json::json!({ "name": "qa2", "role": "qa_analyst" });
    let no_csrf = c
        .http
        .post(c.url("/v1/users"))
        .header("cookie", format!("__Host-vigil_session={}", admin.cookie))
        .json(&new_user)
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let wrong_csrf = c
        .http
        .post(c.url("/v1/users"))
        .header("cookie", format!("__Host-vigil_session={}", admin.cookie))
        .header("x-csrf-token", "guess")
        .json(&new_user)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_csrf.status(), StatusCode::FORBIDDEN);
    // Reads need none.
    let read = c
        .http
        .get(c.url("/v1/users"))
        .header("cookie", format!("__Host-vigil_session={}", admin.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let created = c
        .with(&admin, c.http.post(c.url("/v1/users")).json(&new_user))
        .send()
        .await
        .unwrap();
    // An analyst hears recordings: the account waits, disabled, for a second admin (issue 13).
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    let created: serde_json::Value = created.json().await.unwrap();
    assert!(
        created["password"].is_null(),
        "the requester is handed no password"
    );
    support::add_user_with_password(&d, "adm2", &["--role", "admin"], PASSWORD);
    let adm2 = c.login("adm2", PASSWORD).await;
    let approve = |request: i64| {
        c.with(
            &adm2,
            c.http.post(c.url(&format!("/v1/grants/{request}/approve"))),
        )
        .send()
    };
    let approved = approve(created["request"].as_i64().unwrap()).await.unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
    // The approver hands over the account's one-time password.
    let approved: serde_json::Value = approved.json().await.unwrap();
    let generated = approved["password"].as_str().unwrap().to_owned();
    // The generated password must be changed; the account changes it itself.
    let qa2 = c.login("qa2", &generated).await;
    let change = |current: &str, new: &str| {
        c.with(
            &qa2,
            c.http
                .post(c.url("/v1/password"))
                .json(&serde_json::json!({ "current": current, "new": new })),
        )
        .send()
    };
    let wrong = change("not it", "a brand new passphrase").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let weak = change(&generated, "short").await.unwrap();
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
    let changed = change(&generated, "a brand new passphrase").await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let relogin = c
        .http
        .post(c.url("/v1/login"))
        .json(&serde_json::json!({ "name": "qa2", "password": "a brand new passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(relogin.status(), StatusCode::OK);
    let relogin: serde_json::Value = relogin.json().await.unwrap();
    assert_eq!(relogin["must_change_password"], false);
    // An admin reset from the CLI: a generated password, to be changed again.
    let reset = run_ok(&["user", "set-password", "--data", &d, "qa2"]);
    let reset_password = reset
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    c.login("qa2", &reset_password).await;

    // Accounts changed over the API: role and teams, disabling; no self-lockout.
    let patch = |name: &str, body: serde_json::Value| {
        c.with(
            &admin,
            c.http
                .patch(c.url(&format!("/v1/users/{name}")))
                .json(&body),
        )
        .send()
    };
    let changed = patch(
        "qa2",
        serde_json::json!({ "role": "supervisor", "teams": ["north", "east"] }),
    )
    .await
    .unwrap();
    assert_eq!(changed.status(), StatusCode::ACCEPTED);
    let request: serde_json::Value = changed.json().await.unwrap();
    let changed = approve(request["request"].as_i64().unwrap()).await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: serde_json::Value = changed.json().await.unwrap();
    assert_eq!(changed["role"], "supervisor");
    assert_eq!(changed["teams"], serde_json::json!(["east", "north"]));
    let own = patch("admin", serde_json::json!({ "disabled": true }))
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::BAD_REQUEST);
    let nobody = patch("nobody", serde_json::json!({ "teams": [] }))
        .await
        .unwrap();
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);
    let unknown_field = patch("qa2", serde_json::json!({ "password": "x" }))
        .await
        .unwrap();
    assert_eq!(unknown_field.status(), StatusCode::BAD_REQUEST);
    let off = patch(
        "qa2",
        serde_json::json!({ "disabled": true, "reason": "moved" }),
    )
    .await
    .unwrap();
    assert_eq!(off.status(), StatusCode::OK);
    let refused = c
        .http
        .post(c.url("/v1/login"))
        .json(&serde_json::json!({ "name": "qa2", "password": reset_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let again = c
        .with(&admin, c.http.post(c.url("/v1/users")).json(&new_user))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let bad_role = c
        .with(
            &admin,
            c.http
                .post(c.url("/v1/users"))
                .json(&serde_json::json!({ "name": "x", "role": "root" })),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad_role.status(), StatusCode::BAD_REQUEST);

    // Logout ends the session.
    let ann = c.login("ann", PASSWORD).await;
    let me = |login: &console::Login| c.with(login, c.http.get(c.url("/v1/me"))).send();
    assert_eq!(me(&ann).await.unwrap().status(), StatusCode::OK);
    let out = c
        .with(&ann, c.http.post(c.url("/v1/logout")))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(me(&ann).await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // API tokens: printed once by the CLI, work as Bearer, stop when revoked.
    let token = run_ok(&[
        "user",
        "token",
        "create",
        "--data",
        &d,
        "ann",
        "--expires-days",
        "7",
    ]);
    let token = token.trim().to_owned();
    assert!(token.starts_with("vat_"));
    let bearer = |t: &str| c.http.get(c.url("/v1/recordings")).bearer_auth(t).send();
    assert_eq!(bearer(&token).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        bearer("vat_forged").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let listed = run_ok(&["user", "token", "list", "--data", &d]);
    assert!(!listed.contains(&token), "token list never shows tokens");
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    run_ok(&["user", "token", "revoke", "--data", &d, &id]);
    assert_eq!(
        bearer(&token).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Role changes and disabling take effect at once.
    let cat = c.login("cat", PASSWORD).await;
    let audit = |l: &console::Login| c.with(l, c.http.get(c.url("/v1/audit"))).send();
    assert_eq!(audit(&cat).await.unwrap().status(), StatusCode::OK);
    run_ok(&["user", "set-role", "--data", &d, "cat", "qa_analyst"]);
    assert_eq!(audit(&cat).await.unwrap().status(), StatusCode::FORBIDDEN);
    run_ok(&["user", "disable", "--data", &d, "cat", "--reason", "left"]);
    assert_eq!(
        audit(&cat).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let refused = c
        .http
        .post(c.url("/v1/login"))
        .json(&serde_json::json!({ "name": "cat", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let list = run_ok(&["user", "list", "--data", &d]);
    assert!(list.contains("cat\tqa_analyst\t-\tdisabled"), "{list}");
    assert!(list.contains("sup\tsupervisor\tnorth\tactive"), "{list}");

    // Throttling: five wrong passwords, then even the right one is refused for 30 minutes,
    // with Retry-After; Basic counts and is refused alike.
    let login = |password: &str| {
        c.http
            .post(c.url("/v1/login"))
            .json(&serde_json::json!({ "name": "sup", "password": password }))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(
            login("wrong password").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = login(PASSWORD).await.unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // PCI DSS 8.3.4: at least 30 minutes.
    assert!((1790..=1800).contains(&retry), "{retry}");
    let basic = c
        .http
        .get(c.url("/v1/recordings"))
        .basic_auth("sup", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::TOO_MANY_REQUESTS);
    // Other accounts are not locked by it.
    c.login("ann", PASSWORD).await;

    // A name with control characters cannot forge lines in the listing.
    let odd = c
        .http
        .post(c.url("/v1/login"))
        .json(&serde_json::json!({ "name": "x\n1\tforged", "password": "p" }))
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), StatusCode::UNAUTHORIZED);

    // The audit log: logins, failures (the name tried, never the password), account changes,
    // API tokens, the enrollment.
    let out = run_ok(&["audit", "--data", &d]);
    for action in [
        "login.success",
        "login.failure",
        "logout",
        "user.create",
        "user.set_role",
        "user.disable",
        "user.change_password",
        "user.set_password",
        "user.set_teams",
        "api_token.create",
        "api_token.revoke",
        "device.enroll",
    ] {
        assert!(
            out.lines().any(|l| l.split('\t').nth(3) == Some(action)),
            "{action} missing:\n{out}"
        );
    }
    assert!(out.contains("login.failure\tsup\tvia session"), "{out}");

    assert!(!out.contains("wrong password") && !out.contains(PASSWORD));
    assert!(out.contains("login.failure\tx?1?forged\t"), "{out}");
    assert!(
        out.lines().skip(1).all(|l| l.split('\t').count() == 8),
        "{out}"
    );
    assert!(!out.contains(&c.admin_password) && !out.contains(&generated));
    assert!(!out.contains("a brand new passphrase") && !out.contains(&reset_password));
    assert!(!out.contains(&token));
}
