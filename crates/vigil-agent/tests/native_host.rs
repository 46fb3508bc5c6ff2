//! The agent binary as the browser starts it for native messaging: no subcommand, the caller's
//! origin (Chromium) or the host manifest's path (Firefox) as the first argument. Without a
//! running agent it still answers each message (not recording) and ends when the browser
//! closes its input.

use std::io::Write;
use std::process::{Command, Stdio};

const AGENT: &str = env!("CARGO_BIN_EXE_vigil-agent");

fn frame(json: &str) -> Vec<u8> {
    let mut out = (json.len() as u32).to_ne_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out
}

#[test]
fn the_binary_speaks_native_messaging_when_a_browser_starts_it() {
    let runtime = tempfile::tempdir().unwrap();
    for first_arg in [
        "chrome-extension://cgbpkoageompnjmhbmpegliffidhmhjf/",
        "/usr/lib/mozilla/native-messaging-hosts/com.vigil.agent.json",
    ] {
        let mut child = Command::new(AGENT)
            .arg(first_arg)
            .env("XDG_RUNTIME_DIR", runtime.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(&frame(r#"{"type":"hello","version":"1.0"}"#))
            .unwrap();
        input.write_all(&frame(r#"{"type":"heartbeat"}"#)).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut replies = Vec::new();
        let mut rest = out.stdout.as_slice();
        while rest.len() >= 4 {
            let n = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let reply: serde_json::Value = serde_json::from_slice(&rest[4..4 + n]).unwrap();
            replies.push(reply);
            rest = &rest[4 + n..];
        }
        assert_eq!(replies.len(), 2, "one answer per message ({first_arg})");
        assert_eq!(replies[0]["type"], "state");
        assert_eq!(replies[0]["recording"], false);
    }
}
