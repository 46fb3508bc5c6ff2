//! Attacks on policy: a supervisor relaxing masking or retention.

use super::*;

/// Issue 13 point 1: a team supervisor may not switch off payment masking, recording or
/// retention for their team (nor set fields the organization locks, nor add a site rule that
/// lets fields through); the refusal is 403 naming the fields, stores nothing and is audited.
/// A compliance officer can make the same change; unlocking is reserved too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_cannot_relax_masking_or_retention() {
    let rig = Rig::start();
    let sup = support::api_token(
        &rig.data,
        "sup",
        &["--role", "supervisor", "--team", "north"],
    );
    let cat = support::api_token(&rig.data, "cat", &["--role", "compliance"]);
    let admin = support::api_token(&rig.data, "ops", &["--role", "admin"]);
    let put = |token: &str, scope: &str, layer: serde_json::Value| {
        let request = rig
            .http
            .put(rig.url(&format!("/v1/policy/{scope}")))
            .bearer_auth(token)
            .json(&serde_json::json!({ "layer": layer, "reason": "probe" }));
        async move {
            let resp = request.send().await.unwrap();
            let status = resp.status();
            (
                status,
                resp.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let point_1 = serde_json::json!({
        "dtmf_masking": false, "focus_masking": false,
        "retention_voice_days": 1, "retention_screen_days": 1,
    });
    let (status, body) = put(&sup, "team:north", point_1.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "policy_locked");
    assert_eq!(
        body["fields"],
        serde_json::json!([
            "dtmf_masking",
            "focus_masking",
            "retention_voice_days",
            "retention_screen_days"
        ])
    );
    let stored = run_ok(&["policy", "history", "--data", &rig.data, "--team", "north"]);
    assert_eq!(stored.lines().count(), 1, "only the header: {stored}");
    let audit = run_ok(&["audit", "--data", &rig.data]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("user:sup\tpolicy.change_refused\tteam:north: dtmf_masking")),
        "{audit}"
    );

    // Voice or screen off, and a site rule that leaves fields unmasked, are refused alike; a
    // tuning change is the supervisor's to make.
    for (layer, field) in [
        (serde_json::json!({"voice": false}), "voice"),
        (serde_json::json!({"screen": false}), "screen"),
        (
            serde_json::json!({"mask_rules": [{"id": "crm", "all": {"url": ["crm.example"]},
                "action": {"screen": "none", "audio": false, "tail_ms": 0}}]}),
            "mask_rules",
        ),
    ] {
        let (status, body) = put(&sup, "team:north", layer).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["fields"], serde_json::json!([field]), "{body}");
    }
    let (status, body) = put(&sup, "team:north", serde_json::json!({"fps": 3})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Compliance may.
    let (status, body) = put(&cat, "team:north", point_1).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The organization locks the frame rate: a team may no longer set it (a value kept from
    // before the lock is no change); only compliance may unlock.
    let (status, body) = put(
        &admin,
        "organization",
        serde_json::json!({"locked": ["fps"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(&sup, "team:north", serde_json::json!({"fps": 4})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["fields"], serde_json::json!(["fps"]));
    let (status, body) = put(&admin, "organization", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["fields"], serde_json::json!(["fps"]));
    let (status, body) = put(&cat, "organization", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
