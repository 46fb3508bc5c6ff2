//! Recordings for people on the real server: search by agent, team, call, masked and time
//! (supervisors see only their teams); play and download through short-lived links bound to
//! the account, the decrypted media streamed from memory; a QA analyst plays but cannot
//! download; every search, play and download is in the audit log with its reason.

#[allow(dead_code)]
#[path = "support/console.rs"]
mod console;
#[allow(dead_code)]
mod support;

use console::{add_user, Console, Login, MATROSKA_MAGIC, PASSWORD};
use reqwest::StatusCode;

async fn json(resp: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or_default())
}

async fn search(c: &Console, who: &Login, query: &str) -> Vec<i64> {
    let (status, body) = json(
        c.with(who, c.http.get(c.url(&format!("/v1/recordings?{query}"))))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sequence"].as_i64().unwrap())
        .collect()
}

async fn ask(
    c: &Console,
    who: &Login,
    what: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let path = format!("/v1/recordings/{}/1/{what}", c.session);
    json(
        c.with(who, c.http.post(c.url(&path)).json(&body))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_play_compliance_downloads_and_the_log_says_why() {
    let c = Console::start().await;
    add_user(c.data_str(), "sam", "supervisor", &["south"], PASSWORD);
    let ann = c.login("ann", PASSWORD).await;
    let cat = c.login("cat", PASSWORD).await;
    let sup = c.login("sup", PASSWORD).await;
    let sam = c.login("sam", PASSWORD).await;

    // Search.
    assert_eq!(search(&c, &ann, "").await, vec![1, 2]);
    assert_eq!(
        search(&c, &ann, "agent=agent7&team=north").await,
        vec![1, 2]
    );
    assert_eq!(search(&c, &ann, "agent=nobody").await, Vec::<i64>::new());
    assert_eq!(search(&c, &ann, "call_id=call-7").await, vec![1]);
    assert_eq!(search(&c, &ann, "masked=true").await, vec![1]);
    assert_eq!(search(&c, &ann, "masked=false").await, vec![2]);
    // The test segments were recorded under the device's local settings (policy version 0).
    assert_eq!(search(&c, &ann, "policy_version=0").await, vec![1, 2]);
    assert_eq!(
        search(&c, &ann, "policy_version=7").await,
        Vec::<i64>::new()
    );
    // The test segments are recorded at the Unix epoch: #1 0-10 s, #2 10-20 s.
    assert_eq!(
        search(&c, &ann, "from=15&to=1970-01-01T00:00:30Z").await,
        vec![2]
    );
    assert_eq!(search(&c, &sup, "").await, vec![1, 2]);
    assert_eq!(search(&c, &sam, "").await, Vec::<i64>::new(), "other team");
    // One session by its address (the console's recording page): another team's is 403, not
    // an empty page; an unknown one 404; a malformed id 400.
    let open = |who: &Login, session: String| {
        c.with(who, c.http.get(c.url(&format!("/v1/recordings/{session}"))))
            .send()
    };
    for who in [&ann, &sup] {
        let (status, body) = json(open(who, c.session.to_string()).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let seqs: Vec<_> = body["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, vec![1, 2]);
    }
    let (status, body) = json(open(&sam, c.session.to_string()).await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = json(open(&ann, uuid::Uuid::new_v4().to_string()).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = json(open(&ann, "../x".into()).await.unwrap()).await;
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND);
    let (status, _) = json(
        c.with(&ann, c.http.get(c.url("/v1/recordings?masked=maybe")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = json(
        c.with(
            &ann,
            c.http.get(c.url("/v1/recordings?policy_version=latest")),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Play: a reason is required; the link streams Matroska bytes, inline, for its owner only.
    let (status, body) = ask(&c, &ann, "play", serde_json::json!({ "kind": "voice" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "reason_required");
    let forged = "ok\n99\t2026-01-01T00:00:00Z\tuser:cat\trecording.play";
    let (status, body) = ask(
        &c,
        &ann,
        "play",
        serde_json::json!({ "kind": "voice", "reason": forged }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_reason");
    let (status, body) = ask(
        &c,
        &ann,
        "play",
        serde_json::json!({ "kind": "voice", "reason": "QA review ticket 1234" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let link = body["url"].as_str().unwrap().to_owned();
    assert!(link.starts_with("/v1/media/"));
    assert_eq!(body["expires_in"], 60);
    let media = c.with(&ann, c.http.get(c.url(&link))).send().await.unwrap();
    assert_eq!(media.status(), StatusCode::OK);
    assert_eq!(media.headers()["content-type"], "audio/webm");
    assert!(media.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    assert_eq!(media.headers()["cache-control"], "no-store");
    let bytes = media.bytes().await.unwrap();
    assert_eq!(&bytes[..4], &MATROSKA_MAGIC);
    assert!(bytes.ends_with(b" voice 1"));
    // A blob of several chunks streams whole.
    let resp = c
        .with(
            &ann,
            c.http
                .post(c.url(&format!("/v1/recordings/{}/2/play", c.session)))
                .json(&serde_json::json!({ "kind": "screen", "reason": "long one" })),
        )
        .send()
        .await
        .unwrap();
    let url = resp.json::<serde_json::Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let big = c.with(&ann, c.http.get(c.url(&url))).send().await.unwrap();
    assert_eq!(big.status(), StatusCode::OK);
    let big = big.bytes().await.unwrap();
    assert_eq!(&big[..], &console::large_media("screen", 2)[..]);
    assert!(big.len() > 256 * 1024);
    // A second instance on the same store knows the session and serves the link.
    let (status, body) = ask(
        &c,
        &ann,
        "play",
        serde_json::json!({ "kind": "screen", "reason": "second instance" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let other = support::Served::start(&c.data, 1 << 20);
    let elsewhere = c
        .with(
            &ann,
            c.http
                .get(format!("{}{}", other.base, body["url"].as_str().unwrap())),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::OK);
    assert!(elsewhere.bytes().await.unwrap().ends_with(b" screen 1"));
    drop(other);
    // Another account (even one allowed to play) cannot use the link; nobody can guess one.
    let foreign = c.with(&cat, c.http.get(c.url(&link))).send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let anonymous = c.http.get(c.url(&link)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The analyst may not download; compliance may, as an attachment of the screen video.
    let why = serde_json::json!({ "kind": "screen", "reason": "legal request 77" });
    let (status, _) = ask(&c, &ann, "download", why.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = ask(&c, &cat, "download", why).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let media = c
        .with(&cat, c.http.get(c.url(body["url"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), StatusCode::OK);
    assert_eq!(media.headers()["content-type"], "video/x-matroska");
    let disposition = media.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains(".screen.mkv"), "{disposition}");
    assert_eq!(&media.bytes().await.unwrap()[..4], &MATROSKA_MAGIC);

    // Supervisors: their team's recordings only; unknown ones are 404.
    let play = serde_json::json!({ "kind": "voice", "reason": "coaching" });
    assert_eq!(ask(&c, &sup, "play", play.clone()).await.0, StatusCode::OK);
    assert_eq!(
        ask(&c, &sam, "play", play.clone()).await.0,
        StatusCode::NOT_FOUND
    );
    let missing = format!("/v1/recordings/{}/9/play", c.session);
    let resp = c
        .with(&ann, c.http.post(c.url(&missing)).json(&play))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Nothing decrypted is left in the data folder.
    let mut stack = vec![c.data.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.starts_with(&MATROSKA_MAGIC),
                    "{} holds decrypted media",
                    path.display()
                );
            }
        }
    }

    // The audit log, read through the API by compliance: every play and download with its
    // reason, each search with its filter.
    let audit = |q: &str| {
        let req = c.with(&cat, c.http.get(c.url(&format!("/v1/audit?{q}"))));
        async move { json(req.send().await.unwrap()).await }
    };
    let (status, plays) = audit("action=recording.play").await;
    assert_eq!(status, StatusCode::OK);
    let plays = plays["records"].as_array().unwrap().clone();
    let target = format!("{}/1/voice", c.session);
    assert!(
        plays.iter().any(|r| r["actor"] == "user:ann"
            && r["reason"] == "QA review ticket 1234"
            && r["target"] == target.as_str()),
        "{plays:?}"
    );
    assert!(plays
        .iter()
        .any(|r| r["actor"] == "user:sup" && r["reason"] == "coaching"));
    assert_eq!(
        plays.len(),
        4,
        "refused plays are not logged as plays: {plays:?}"
    );
    let (_, downloads) = audit("action=recording.download").await;
    let downloads = downloads["records"].as_array().unwrap().clone();
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    assert_eq!(downloads[0]["actor"], "user:cat");
    assert_eq!(downloads[0]["reason"], "legal request 77");
    assert_eq!(
        downloads[0]["target"],
        format!("{}/1/screen", c.session).as_str()
    );
    let (_, searches) = audit("action=recording.search&actor=user:ann").await;
    let searches = searches["records"].as_array().unwrap().clone();
    assert!(
        searches.iter().any(|r| r["target"] == "call_id=call-7"),
        "{searches:?}"
    );
    assert!(searches
        .iter()
        .any(|r| r["target"] == "agent=agent7 team=north"));
    // The refused download is on record too.
    let (_, denied) = audit("action=access.denied&actor=user:ann").await;
    let denied = denied["records"].as_array().unwrap().clone();
    assert!(
        denied.iter().any(
            |r| r["target"] == "POST /v1/recordings/{session}/{sequence}/download"
                && r["reason"] == "role qa_analyst lacks download"
        ),
        "{denied:?}"
    );
    let (_, sam_search) = audit("action=recording.search&actor=user:sam").await;
    assert_eq!(sam_search["records"][0]["target"], "scope=south");
    // Paging.
    let (_, first) = audit("limit=2").await;
    let next = first["next_after"].as_i64().unwrap();
    let (_, rest) = audit(&format!("after={next}&limit=1")).await;
    assert_eq!(rest["records"][0]["seq"].as_i64().unwrap(), next + 1);
    // The analyst may not read the audit log.
    let resp = c
        .with(&ann, c.http.get(c.url("/v1/audit")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // A deployment upgraded from before search: segments without entries get them back from
    // their stored manifests.
    let db = rusqlite::Connection::open(c.data.join("metadata.sqlite")).unwrap();
    db.execute("DELETE FROM recordings", []).unwrap();
    drop(db);
    assert_eq!(search(&c, &ann, "").await, Vec::<i64>::new());
    let out = support::run_ok(&["reindex", "--data", c.data_str()]);
    assert!(out.contains("indexed 2 segment(s); 0 refused"), "{out}");
    assert_eq!(search(&c, &ann, "masked=true&team=north").await, vec![1]);
    assert_eq!(search(&c, &sup, "call_id=call-7").await, vec![1]);
    let again = support::run_ok(&["reindex", "--data", c.data_str()]);
    assert!(again.contains("indexed 0 segment(s)"), "{again}");
}
