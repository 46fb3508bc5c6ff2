//! `vigil-vault audit verify` on a real data folder: the chain holds; a row edited behind the
//! database's back (its triggers dropped) or a row deleted makes it exit non-zero naming the
//! record.

#[allow(dead_code)]
mod support;

use support::{run_ok, vault};

fn verify(d: &str) -> (bool, String) {
    let out = vault(&["audit", "verify", "--data", d]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn audit_verify_names_edited_and_deleted_records() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap();
    run_ok(&["init", "--data", d, "--host", "127.0.0.1"]);
    run_ok(&["user", "add", "--data", d, "ann", "--role", "qa_analyst"]);
    run_ok(&[
        "user",
        "add",
        "--data",
        d,
        "sue",
        "--role",
        "supervisor",
        "--team",
        "north",
    ]);
    run_ok(&["user", "set-role", "--data", d, "ann", "compliance"]);
    run_ok(&["token", "create", "--data", d, "--reason", "new desk"]);

    let (ok, stderr) = verify(d);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("audit chain verified: 4 record(s)"),
        "{stderr}"
    );
    // An anchor kept outside the data folder remembers the head.
    let anchor = tmp.path().join("audit.anchor");
    let a = anchor.to_str().unwrap();
    run_ok(&["audit", "verify", "--data", d, "--anchor", a]);
    assert!(std::fs::read_to_string(&anchor).unwrap().starts_with("4 "));
    // The old form still works.
    run_ok(&["audit", "--data", d, "--verify"]);

    let db = rusqlite::Connection::open(data.join("metadata.sqlite")).unwrap();
    let original: String = db
        .query_row("SELECT target FROM audit_log WHERE seq = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; \
         UPDATE audit_log SET target = 'ann role=qa_analyst' WHERE seq = 3;",
    )
    .unwrap();
    let (ok, stderr) = verify(d);
    assert!(!ok);
    assert!(stderr.contains("chain broken at record 3"), "{stderr}");
    assert!(stderr.contains("edited"), "{stderr}");

    // Opening the store put the triggers back: the database refuses edits again.
    assert!(db
        .execute(
            "UPDATE audit_log SET target = ?1 WHERE seq = 3",
            [&original]
        )
        .is_err());
    // Put back (triggers dropped again), the chain holds; delete a row and it breaks at its
    // successor.
    let drop_triggers = "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;";
    db.execute_batch(drop_triggers).unwrap();
    db.execute(
        "UPDATE audit_log SET target = ?1 WHERE seq = 3",
        [&original],
    )
    .unwrap();
    assert!(verify(d).0);
    db.execute_batch(drop_triggers).unwrap();
    db.execute("DELETE FROM audit_log WHERE seq = 2", [])
        .unwrap();
    let (ok, stderr) = verify(d);
    assert!(!ok);
    assert!(stderr.contains("chain broken at record 3"), "{stderr}");
    assert!(stderr.contains("expected position 2"), "{stderr}");

    // Deleting the newest records leaves a valid shorter chain; only the anchor sees it.
    db.execute_batch(drop_triggers).unwrap();
    db.execute_batch("DELETE FROM audit_log WHERE seq >= 2")
        .unwrap();
    assert!(verify(d).0, "a cut log still chains");
    let out = vault(&["audit", "verify", "--data", d, "--anchor", a])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("chain broken at record 4"), "{stderr}");
    assert!(stderr.contains("deleted"), "{stderr}");
    assert!(
        std::fs::read_to_string(&anchor).unwrap().starts_with("4 "),
        "kept"
    );
}
