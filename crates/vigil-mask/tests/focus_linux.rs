//! The AT-SPI focus watcher against real applications on the test desktop: focus moved with
//! xdotool in a GTK3 window and in Chromium must arrive as FocusGained/FocusLost with the field
//! described, once per change.
#![cfg(target_os = "linux")]

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use crossbeam_channel::Receiver;
use vigil_capture::Clock;
use vigil_e2e::TestDesktop;
use vigil_mask::{start_focus_watcher, FieldInfo, FocusWatcher, TriggerEvent, TriggerSource};

const WINDOW_TITLE: &str = "Vigil focus test";

/// A labelled entry (name from its label) and an entry named directly.
const FORM: &str = r#"
import gi
gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk

GLib.set_prgname("vigil-focus-form")
win = Gtk.Window(title="Vigil focus test")
grid = Gtk.Grid(row_spacing=8, column_spacing=8, margin=16)
label = Gtk.Label(label="Card number", xalign=0)
card = Gtk.Entry(width_chars=24)
label.set_mnemonic_widget(card)
name = Gtk.Entry(width_chars=24)
name.get_accessible().set_name("Name")
grid.attach(label, 0, 0, 1, 1)
grid.attach(card, 1, 0, 1, 1)
grid.attach(name, 1, 1, 1, 1)
win.add(grid)
win.connect("destroy", Gtk.main_quit)
win.show_all()
Gtk.main()
"#;

/// A labelled card field that has focus on load, and a password field.
const PAGE: &str = r#"<!doctype html><title>Pay</title>
<label for="cc">Card number</label>
<input id="cc" name="cardnumber" type="tel" autocomplete="cc-number" autofocus><br>
<label for="pin">PIN</label> <input id="pin" name="pin" type="password">
"#;

/// An application under test; stopped (politely first, so it reaps its own children) and
/// reaped however the test ends.
struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serialises the start of watchers: each test points the process environment at its own
/// desktop's session bus, and the watcher reads it once, while starting.
static SESSION_ENV: Mutex<()> = Mutex::new(());

/// Starts accessibility on the desktop and a watcher on it; the first event must be healthy.
fn watch(desk: &mut TestDesktop) -> Result<(FocusWatcher, Receiver<TriggerEvent>, Clock)> {
    desk.start_accessibility()?;
    let clock = Clock::new();
    let (tx, rx) = crossbeam_channel::unbounded();
    let watcher = {
        let _env = SESSION_ENV.lock().unwrap_or_else(|e| e.into_inner());
        let (key, value) = desk
            .env()
            .iter()
            .find(|(k, _)| k == "DBUS_SESSION_BUS_ADDRESS")
            .context("desktop without session bus")?;
        // The watcher finds the session bus the way the agent does, through the environment.
        std::env::set_var(key, value);
        start_focus_watcher(clock, tx, vigil_mask::WatchedFields::default())?
    };
    match rx.recv_timeout(Duration::from_secs(1))? {
        TriggerEvent::Health { healthy: true, .. } => Ok((watcher, rx, clock)),
        other => bail!("expected a healthy watcher first, got {other:?}"),
    }
}

/// The next focus event within `timeout` (health events are checked and skipped).
fn next_focus(rx: &Receiver<TriggerEvent>, timeout: Duration) -> Result<TriggerEvent> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left).context("no focus event in time")? {
            TriggerEvent::Health {
                healthy, detail, ..
            } => ensure!(healthy, "watcher unhealthy: {detail}"),
            event => return Ok(event),
        }
    }
}

/// Waits for the focus to reach the field named `name`; returns its stamp and description.
fn gained(rx: &Receiver<TriggerEvent>, name: &str, timeout: Duration) -> Result<(u64, FieldInfo)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_focus(rx, left)? {
            TriggerEvent::FocusGained {
                at_ns,
                source,
                field,
            } => {
                assert_eq!(source, TriggerSource::Accessibility);
                if field.name.as_deref() == Some(name) {
                    return Ok((at_ns, field));
                }
                println!(
                    "focus on {:?} ({:?}) before {name:?}",
                    field.name, field.role
                );
            }
            TriggerEvent::FocusLost { .. } => {}
            other => bail!("unexpected event {other:?}"),
        }
    }
}

/// Runs xdotool on the desktop; bounded, as `search --sync` waits for ever for a window that
/// never comes.
fn xdotool(desk: &TestDesktop, args: &[&str]) -> Result<String> {
    let out = desk
        .command("timeout")
        .args(["30", "xdotool"])
        .args(args)
        .output()?;
    ensure!(out.status.success(), "xdotool {args:?} failed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Milliseconds from `from` to `to` on the session clock (negative if `to` came first).
fn ms(from: u64, to: u64) -> f64 {
    (to as f64 - from as f64) / 1e6
}

fn assert_field(field: &FieldInfo) {
    let role = field.role.as_deref().unwrap_or_default();
    assert!(matches!(role, "entry" | "text"), "role {role:?}");
    let rect = field.rect.expect("field rectangle");
    assert!(
        rect.width > 0 && rect.height > 0,
        "empty rectangle {rect:?}"
    );
    assert!(!field.password);
}

#[test]
fn gtk_focus_changes_arrive_described_and_once() -> Result<()> {
    let mut desk = TestDesktop::start()?;
    let (watcher, rx, clock) = watch(&mut desk)?;

    let script = desk.dir().join("focus_form.py");
    std::fs::write(&script, FORM)?;
    // Debian's interpreter: python3-gi is installed for it, not for other pythons on PATH.
    let window = App(desk
        .command("/usr/bin/python3")
        .arg(&script)
        .stdin(Stdio::null())
        .spawn()
        .context("starting the GTK window (python3-gi, gir1.2-gtk-3.0)")?);
    let id = xdotool(&desk, &["search", "--sync", "--name", WINDOW_TITLE])?;
    let id = id.lines().next().context("no window id")?.to_string();

    let t0 = clock.now_ns();
    xdotool(&desk, &["windowfocus", "--sync", &id])?;
    let (at, card) = gained(&rx, "Card number", Duration::from_secs(5))?;
    println!("window focus -> Card number: {:.1} ms", ms(t0, at));
    println!("card field: {card:?}");
    assert_field(&card);
    assert_eq!(card.app.as_deref(), Some("vigil-focus-form"));
    assert_eq!(card.window_title.as_deref(), Some(WINDOW_TITLE));
    assert_eq!(card.url, None);

    // Tab alternates between the two entries: each change is one FocusLost for the field that
    // had focus, then one FocusGained for the other; GTK's repeated signals must not show.
    let mut latencies = Vec::new();
    for (from, to) in [("Card number", "Name"), ("Name", "Card number")].repeat(3) {
        let t0 = clock.now_ns();
        xdotool(&desk, &["key", "Tab"])?;
        let lost_at = match next_focus(&rx, Duration::from_secs(5))? {
            TriggerEvent::FocusLost { at_ns, .. } => at_ns,
            other => bail!("expected focus to leave {from:?}, got {other:?}"),
        };
        let (at, field) = match next_focus(&rx, Duration::from_secs(5))? {
            TriggerEvent::FocusGained { at_ns, field, .. } => (at_ns, field),
            other => bail!("expected focus on {to:?}, got {other:?}"),
        };
        assert_eq!(field.name.as_deref(), Some(to));
        assert_field(&field);
        latencies.push((ms(t0, lost_at), ms(t0, at)));
    }
    // A repeat of the last signal would arrive within a few milliseconds.
    if let Ok(extra) = rx.recv_timeout(Duration::from_millis(300)) {
        bail!("unexpected event after the last change: {extra:?}");
    }
    for (lost, gained) in &latencies {
        println!(
            "xdotool key Tab -> FocusLost {:.1} ms, FocusGained {:.1} ms",
            lost, gained
        );
    }

    drop(window);
    let stopping = Instant::now();
    watcher.stop();
    println!("watcher stopped in {:?}", stopping.elapsed());
    Ok(())
}

#[test]
fn chromium_page_fields_arrive_with_page_and_html_details() -> Result<()> {
    let mut desk = TestDesktop::start()?;
    let (watcher, rx, clock) = watch(&mut desk)?;
    let page = desk.dir().join("pay.html");
    std::fs::write(&page, PAGE)?;
    // Flags of brief §8: page content is exported only with renderer accessibility forced.
    let browser = App(desk
        .command("chromium")
        .args([
            "--force-renderer-accessibility",
            "--password-store=basic",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!(
            "--user-data-dir={}",
            desk.dir().join("chromium").display()
        ))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chromium")?);

    // The card field takes focus when the page loads.
    let (_, card) = gained(&rx, "Card number", Duration::from_secs(60))?;
    println!("card field: {card:?}");
    assert_eq!(card.role.as_deref(), Some("entry"));
    assert_eq!(card.id.as_deref(), Some("cc"));
    assert_eq!(card.html_name.as_deref(), Some("cardnumber"));
    assert_eq!(card.input_type.as_deref(), Some("tel"));
    assert_eq!(card.url, Some(format!("file://{}", page.display())));
    assert_eq!(card.app.as_deref(), Some("Chromium"));
    assert!(card
        .window_title
        .as_deref()
        .unwrap_or_default()
        .starts_with("Pay"));
    assert!(card.rect.is_some_and(|r| r.width > 0 && r.height > 0));

    let id = xdotool(&desk, &["search", "--sync", "--name", "^Pay"])?;
    let id = id.lines().next().context("no browser window")?.to_string();
    xdotool(&desk, &["windowfocus", "--sync", &id])?;
    let t0 = clock.now_ns();
    xdotool(&desk, &["key", "Tab"])?;
    let (at, pin) = gained(&rx, "PIN", Duration::from_secs(5))?;
    println!("xdotool key Tab -> PIN: {:.1} ms", ms(t0, at));
    assert_eq!(pin.role.as_deref(), Some("password text"));
    assert!(pin.password);
    assert_eq!(pin.input_type.as_deref(), Some("password"));

    drop(browser);
    watcher.stop();
    Ok(())
}
