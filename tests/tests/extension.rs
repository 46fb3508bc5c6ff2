//! The browser extension (`extension/`) in a real Chromium on the test desktop, talking to a
//! fake native-messaging host that logs every message it receives: it must say hello, report
//! the page, the focused card field (with its autocomplete tokens and a screen rectangle), the
//! blur, the next field, and heartbeats, and never a field's value.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;
use vigil_e2e::chromium::{extension_dir, Chromium, EXTENSION_ID};
use vigil_e2e::TestDesktop;

/// A native-messaging host that appends its arguments, then every message (the 4-byte
/// little-endian length stripped) as one line to the file named by `LOG`.
const FAKE_HOST: &str = r#"#!/usr/bin/python3
import json, struct, sys
log = open(LOG, "ab", buffering=0)
log.write(("ARGS " + json.dumps(sys.argv[1:]) + "\n").encode())
stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
answered = False
while True:
    header = stdin.read(4)
    if len(header) < 4:
        break
    body = stdin.read(struct.unpack("<I", header)[0])
    log.write(body + b"\n")
    if not answered:
        # The extension must take (and ignore) what the host says.
        reply = json.dumps({"type": "state", "masking": False}).encode()
        stdout.write(struct.pack("<I", len(reply)) + reply)
        stdout.flush()
        answered = True
"#;

const PAGE: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>Vigil extension test</title></head>
<body>
<form>
  <label for="cc">Card number</label>
  <input id="cc" name="cardnumber" type="tel" autocomplete="CC-Number" value="4111111111111111" autofocus>
  <input id="pin" type="password" aria-label="PIN">
</form>
<script>
  setTimeout(() => {
    const pin = document.getElementById("pin");
    pin.focus();
    pin.value = "9876";
    pin.blur();
  }, 1000);
</script>
</body>
</html>
"#;

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

struct Log {
    args: Option<Vec<String>>,
    messages: Vec<Value>,
    raw: String,
}

fn read_log(path: &Path) -> Result<Log> {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let mut log = Log {
        args: None,
        messages: Vec::new(),
        raw: raw.clone(),
    };
    for line in raw.lines() {
        if let Some(args) = line.strip_prefix("ARGS ") {
            log.args = Some(serde_json::from_str(args)?);
        } else if !line.is_empty() {
            log.messages.push(
                serde_json::from_str(line)
                    .with_context(|| format!("the host got a message that is not JSON: {line}"))?,
            );
        }
    }
    Ok(log)
}

/// Every string inside a message (keys and values).
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(strings(v)))
            .collect(),
        _ => Vec::new(),
    }
}

fn of_type<'a>(log: &'a Log, kind: &str) -> Vec<&'a Value> {
    log.messages.iter().filter(|m| m["type"] == kind).collect()
}

/// Everything the test waits for has arrived.
fn complete(log: &Log) -> bool {
    let focus = of_type(log, "focus");
    !of_type(log, "hello").is_empty()
        && !of_type(log, "page").is_empty()
        && focus.len() >= 2
        && of_type(log, "blur").len() >= 2
        && !of_type(log, "heartbeat").is_empty()
}

fn check_rect(field: &Value) -> Result<()> {
    let rect = &field["rect"];
    let get = |k: &str| {
        rect[k]
            .as_i64()
            .with_context(|| format!("rect.{k} is not an integer in {field}"))
    };
    let (x, y, w, h) = (get("x")?, get("y")?, get("width")?, get("height")?);
    ensure!(
        x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 1920 && y + h <= 1080,
        "implausible screen rect {rect} for a field on a 1920x1080 screen"
    );
    Ok(())
}

#[test]
fn extension_reports_page_focus_and_blur_to_the_native_host() -> Result<()> {
    let desk = TestDesktop::start()?;
    let log_path = desk.dir().join("native-messages.log");
    let host = desk.dir().join("fake-native-host");
    std::fs::write(
        &host,
        FAKE_HOST.replacen("LOG", &format!("{:?}", log_path.display().to_string()), 1),
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755))?;
    }
    let page = desk.dir().join("pay.html");
    std::fs::write(&page, PAGE)?;
    let url = format!("file://{}", page.display());

    let started = wall_ms();
    let mut browser = Chromium::start(&desk, &url, &host)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let log = loop {
        let log = read_log(&log_path)?;
        if complete(&log) {
            break log;
        }
        if Instant::now() > deadline {
            let chromium_log =
                std::fs::read_to_string(desk.dir().join("chromium-ext-0.log")).unwrap_or_default();
            let tail: Vec<&str> = chromium_log.lines().rev().take(40).collect();
            bail!(
                "the host did not get hello, page, 2 focus, 2 blur and a heartbeat within 15 s; \
                 it got:\n{}\nchromium log (last lines, newest first):\n{}",
                log.raw,
                tail.join("\n")
            );
        }
        browser.check_running()?;
        std::thread::sleep(Duration::from_millis(100));
    };
    let now = wall_ms();
    println!("{}", log.raw);

    // The wrapper adds the subcommand; Chromium passes the caller's origin, which is the
    // extension ID the README gives.
    let origin = format!("chrome-extension://{EXTENSION_ID}/");
    assert_eq!(
        log.args.as_deref(),
        Some(&["native-host".to_string(), origin][..])
    );
    let readme = std::fs::read_to_string(extension_dir()?.join("README.md"))?;
    assert!(readme.contains(EXTENSION_ID), "README.md lacks the ID");

    // hello first, with the manifest's version.
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(
        extension_dir()?.join("manifest.json"),
    )?)?;
    assert_eq!(log.messages[0]["type"], "hello");
    assert_eq!(log.messages[0]["version"], manifest["version"]);

    // A page report before the page's first focus report. The page is reported again when its
    // tab becomes visible (a window that maps after the page loaded does so too, which a
    // loaded machine shows): every report names this page, this document.
    let pages = of_type(&log, "page");
    assert!(!pages.is_empty());
    let position = |kind: &str| log.messages.iter().position(|m| m["type"] == kind);
    assert!(position("page") < position("focus"));
    for page_msg in &pages {
        assert_eq!(page_msg["url"], url.as_str());
        assert_eq!(page_msg["title"], "Vigil extension test");
        assert_eq!(page_msg["doc"], pages[0]["doc"]);
    }

    let in_run = |m: &Value| {
        let at = m["at_wall_ms"].as_f64().unwrap_or(0.0);
        at >= started - 1000.0 && at <= now + 1000.0
    };
    // Focus and blur reports, in order: card gets focus, loses it, PIN gets it, loses it.
    let events: Vec<&Value> = log
        .messages
        .iter()
        .filter(|m| m["type"] == "focus" || m["type"] == "blur")
        .collect();
    let kinds: Vec<&str> = events.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[..4], ["focus", "blur", "focus", "blur"]);
    for m in events.iter().chain(pages.iter()) {
        assert!(
            in_run(m),
            "at_wall_ms is not the wall clock of this run: {m}"
        );
    }
    assert!(events
        .windows(2)
        .all(|w| { w[0]["at_wall_ms"].as_f64().unwrap() <= w[1]["at_wall_ms"].as_f64().unwrap() }));

    let card = &events[0]["field"];
    assert_eq!(card["url"], url.as_str());
    assert_eq!(card["window_title"], "Vigil extension test");
    assert_eq!(card["name"], "Card number");
    assert_eq!(card["id"], "cc");
    assert_eq!(card["html_name"], "cardnumber");
    assert_eq!(card["input_type"], "tel");
    assert_eq!(card["autocomplete"], serde_json::json!(["cc-number"]));
    assert_eq!(card["password"], false);
    assert_eq!(card["has_value"], true);
    check_rect(card)?;
    assert_eq!(events[1]["has_value"], true);

    let pin = &events[2]["field"];
    assert_eq!(pin["name"], "PIN");
    assert_eq!(pin["id"], "pin");
    assert_eq!(pin["input_type"], "password");
    assert_eq!(pin["password"], true);
    assert_eq!(pin["has_value"], false);
    assert_eq!(pin["autocomplete"], serde_json::json!([]));
    check_rect(pin)?;
    // The same row of the form: the PIN field is right of the card field.
    let (cx, px) = (card["rect"]["x"].as_i64(), pin["rect"]["x"].as_i64());
    assert!(
        px > cx,
        "PIN rect {} is not right of card rect {}",
        pin["rect"],
        card["rect"]
    );
    assert_eq!(events[3]["has_value"], true);

    // Values never leave the page: no text the host got holds them (numbers are stamps and
    // pixels, and the page server's port is in URLs: any four digits can occur there).
    let texts = log
        .messages
        .iter()
        .flat_map(strings)
        .filter(|t| !t.contains("127.0.0.1"))
        .collect::<Vec<_>>();
    for value in ["4111", "9876"] {
        assert!(
            !texts.iter().any(|t| t.contains(value)),
            "a field value reached the host: {texts:?}"
        );
    }
    Ok(())
}
