//! Acceptance (issue 11, point 4): the recorded person holds the control secret and can talk
//! to the native host, and still cannot shorten a payment mask or stretch a pause.
//!
//! An enrolled agent (its vault's organization policy allows pauses, 4 s a day, and API masks
//! of at most 10 s) records a checkout page in Chromium with the extension and AT-SPI. After
//! the card number is typed and focus moved on to the address, the test, with the control
//! secret, forges what the extension would say if the card were gone: a blur, another page, and
//! every field the extension holds reported gone. The accessibility bus still sees the field
//! with its value, so the card stays masked: the status still holds it and OCR of every frame
//! after the forgery never reads it. An API mask without an end ends at the policy's 10 s; a
//! pause beyond the day's budget is refused (403), logged, and reaches the vault's audit log,
//! which also shows the day's paused seconds.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::frames;
use common::pages::{key, pause, pay_server, type_text};
use common::rig::rig;
use common::*;
use vigil_agent::control::{
    AgentState, ControlClient, ControlCommand, ControlEndpoint, ControlRefusal, ExtensionMessage,
    FieldReport,
};
use vigil_mask::FieldPresence;

const CARD: &str = "4000056655665556";

fn forge(client: &ControlClient, message: ExtensionMessage) -> AgentState {
    client
        .send(&ControlCommand::Extension {
            app: Some("chromium".into()),
            message: Box::new(message),
        })
        .unwrap()
}

/// A raw HTTP exchange on loopback.
fn http(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn now_wall_ms() -> f64 {
    wall_now_ns() as f64 / 1e6
}

/// The vault's live view of the (only) agent, once `ok` holds for it (10 s at most).
fn vault_agent_until(
    rig: &common::rig::Rig,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let out = rig.vault.run(&["agents", "--json"], true).unwrap();
        let agents: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if ok(&agents[0]) {
            return Some(agents[0].clone());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    None
}

#[test]
fn forged_reports_cannot_end_a_card_mask_and_manual_masks_are_bounded() {
    let mut rig = rig("[control]\nenabled = true\n", None);
    rig.desk.start_accessibility().unwrap();
    let policy = rig.desk.dir().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"pause_allowed": true, "pause_max_seconds": 10, "pause_daily_budget_seconds": 4,
            "api_mask_max_seconds": 10}"#,
    )
    .unwrap();
    rig.vault
        .run(
            &[
                "policy",
                "set",
                "--org",
                "--file",
                policy.to_str().unwrap(),
                "--reason",
                "bounded manual masks",
            ],
            true,
        )
        .unwrap();
    let _tone = rig.play_caller_tone();
    let server = pay_server(&rig.desk);
    let recording = rig
        .agent(&["record", "--for", "42"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // No browser yet: the vault hears that the extension is not attached.
    let down = vault_agent_until(&rig, |a| {
        a["triggers_down"]
            .to_string()
            .contains("extension: no browser extension attached")
    });
    assert!(
        down.is_some(),
        "the vault never heard the extension is down"
    );
    let url = format!("http://127.0.0.1:{}/form.html", server.port);
    let _browser = vigil_e2e::Chromium::start_windowed(&rig.desk, &url, Path::new(AGENT)).unwrap();
    pause(9_000);
    let desk = &rig.desk;
    type_text(desk, "JANE DOE");
    key(desk, "Tab");
    type_text(desk, CARD);
    key(desk, "Tab");
    type_text(desk, "11/29");
    key(desk, "Tab");
    key(desk, "Tab");
    type_text(desk, "12 HARBOUR ROAD");
    pause(1_500);

    let folder = control_folder(desk);
    let client = ControlClient::discover(&folder).unwrap();
    let before = client.send(&ControlCommand::State).unwrap();
    let held = |state: &AgentState, trigger: &str| {
        state
            .held
            .iter()
            .filter(|h| h.trigger == trigger && h.rule_id == "builtin.card-number")
            .map(|h| h.key.clone())
            .collect::<Vec<_>>()
    };
    let attached = vault_agent_until(&rig, |a| {
        a["triggers_down"].as_array().is_some_and(Vec::is_empty) && a["masked"] == true
    });
    assert!(attached.is_some(), "the vault still shows a trigger down");
    let extension_keys = held(&before, "extension");
    assert!(
        !extension_keys.is_empty() && !held(&before, "accessibility").is_empty(),
        "the card field is not held by both triggers: {:?}",
        before.held
    );

    // The forgery: a blur, another page, and every extension-held field gone.
    let forged_at = wall_now_ns();
    forge(
        &client,
        ExtensionMessage::Blur {
            at_wall_ms: Some(now_wall_ms()),
            has_value: false,
        },
    );
    // Another page and its fields gone, in one batch as the native host sends them.
    client
        .send(&ControlCommand::Extensions {
            app: Some("chromium".into()),
            messages: vec![
                ExtensionMessage::Page {
                    at_wall_ms: Some(now_wall_ms()),
                    url: "https://elsewhere.example/".into(),
                    title: Some("Elsewhere".into()),
                },
                ExtensionMessage::Fields {
                    at_wall_ms: Some(now_wall_ms()),
                    fields: extension_keys
                        .iter()
                        .map(|key| FieldReport {
                            key: key.clone(),
                            presence: FieldPresence::Gone,
                            field: None,
                            since_wall_ms: None,
                        })
                        .collect(),
                },
            ],
        })
        .unwrap();
    // Read back after the engine took the reports (a report's own answer may be the state
    // from before it, when the engine is busy encoding).
    let after = client.send(&ControlCommand::State).unwrap();
    assert!(
        !held(&after, "accessibility").is_empty(),
        "the forged reports ended the accessibility bus's hold: {:?}",
        after.held
    );

    // An API mask that names no end ends at the policy's maximum (10 s).
    let api = client
        .send(&ControlCommand::StartMask {
            reason: "card taken by phone".into(),
            max_seconds: None,
        })
        .unwrap();
    assert_eq!(api.api_masks.len(), 1, "{api:?}");
    // Pauses: 3 s, then what is left of the 4-s budget, then refused.
    let pause_for = |seconds: u64| {
        client.send(&ControlCommand::Pause {
            reason: "break".into(),
            seconds: Some(seconds),
        })
    };
    pause_for(3).unwrap();
    std::thread::sleep(Duration::from_millis(3_300));
    pause_for(3).unwrap();
    std::thread::sleep(Duration::from_millis(1_300));
    // The third, over HTTP as any caller with the secret sends it: 403.
    let port = ControlEndpoint::discover(&folder).unwrap().port;
    let secret = std::fs::read_to_string(folder.join("control.secret")).unwrap();
    let post = |path: &str, body: &str| {
        http(
            port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                secret.trim(),
                body.len()
            ),
        )
    };
    let answer = post("/v1/pause", r#"{"reason":"again","seconds":3}"#);
    assert!(
        answer.starts_with("HTTP/1.1 403") && answer.contains("pause_budget_spent"),
        "a pause beyond the budget was not refused: {answer}"
    );
    // An extension request must carry one message or a batch, not both, not an empty one.
    for body in [
        r#"{"app":null,"messages":[]}"#,
        r#"{"app":null,"message":{"type":"heartbeat"},"messages":[{"type":"heartbeat"}]}"#,
        r#"{"app":null}"#,
    ] {
        let answer = post("/v1/extension", body);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{body} was taken: {answer}"
        );
    }
    assert!(matches!(
        pause_for(3),
        Err(vigil_agent::control::ControlClientError::Refused(
            ControlRefusal::PauseBudgetSpent { budget_seconds: 4 }
        ))
    ));
    std::thread::sleep(Duration::from_millis(6_000));
    let later = client.send(&ControlCommand::State).unwrap();
    assert!(
        later.api_masks.is_empty(),
        "the API mask outlived the policy's maximum: {later:?}"
    );
    let forged_session_end = wall_now_ns();

    let out = recording.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("manual pause refused"),
        "the refusal is not logged: {stderr}"
    );

    // The recording, as the vault holds it: after the forgery, no frame shows the card number.
    rig.upload_all();
    let export = rig.export_and_verify("export");
    let session = session_dir(&export);
    let manifests = manifests(&session);
    let first = &manifests[0];
    let to_session = |wall: u128| wall_to_session(first, wall);
    let forged = to_session(forged_at);
    let identity = rig.desk.dir().join("identity.txt");
    std::fs::write(
        &identity,
        rig.vault
            .export_identity("test: read the recording")
            .unwrap(),
    )
    .unwrap();
    let id = Identity {
        file: identity,
        recipient: String::new(),
    };
    let all = frames::decode_all(&id, &session, &manifests, &rig.desk.dir().join("frames"));
    let after_forgery: Vec<frames::Frame> = frames::distinct(&all)
        .into_iter()
        .filter(|f| f.at_ns > forged && f.at_ns < to_session(forged_session_end))
        .collect();
    assert!(!after_forgery.is_empty(), "no frames after the forgery");
    let texts = frames::ocr_frames(&after_forgery);
    for (frame, text) in after_forgery.iter().zip(&texts) {
        assert!(
            frames::leaked(text, &[CARD]).is_empty(),
            "the card number shows at {} ns after the forgery: {text}",
            frame.at_ns
        );
    }
    // The API mask lasted the policy's 10 s.
    let spans: Vec<&serde_json::Value> = manifests
        .iter()
        .flat_map(|m| m["masked_spans"].as_array().unwrap())
        .filter(|s| s["trigger"] == "api")
        .collect();
    let start = spans
        .iter()
        .map(|s| s["start_ns"].as_u64().unwrap())
        .min()
        .unwrap();
    let end = spans
        .iter()
        .map(|s| s["end_ns"].as_u64().unwrap())
        .max()
        .unwrap();
    let lasted = (end - start) as f64 / 1e9;
    assert!(
        (9.9..=10.1).contains(&lasted),
        "the API mask lasted {lasted} s"
    );

    // The vault: the refusal is in its audit log, the day's paused seconds in its live state.
    let audit = rig.vault.run(&["audit"], true).unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.contains("pause.refused_by_agent"),
        "the refused pause did not reach the vault: {audit}"
    );
    let agents = rig.vault.run(&["agents", "--json"], true).unwrap();
    let agents: serde_json::Value = serde_json::from_slice(&agents.stdout).unwrap();
    let paused = agents[0]["paused_seconds_today"].as_i64().unwrap_or(0);
    assert!((4..=5).contains(&paused), "paused seconds today: {agents}");
}
