//! Chromium on the test desktop with Vigil's browser extension (`extension/` at the repository
//! root) loaded unpacked, and a native-messaging host registered for it in the profile.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::TestDesktop;

/// The native-messaging host name the extension connects to.
pub const NATIVE_HOST_NAME: &str = "com.vigil.agent";

/// The extension's ID, fixed by the `key` in its manifest (see `extension/README.md`).
pub const EXTENSION_ID: &str = "cgbpkoageompnjmhbmpegliffidhmhjf";

/// The extension's folder (`<repo>/extension`).
pub fn extension_dir() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../extension");
    dir.canonicalize()
        .with_context(|| format!("the extension folder {} is missing", dir.display()))
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}

/// Starts Chromium (brief §8 flags, kiosk 1920x1080 at 0,0) on `url` with the extension loaded
/// and `com.vigil.agent` registered in a fresh profile under `desk.dir()`. The host manifest
/// points at a wrapper script that runs `host_program native-host <browser's arguments>` with
/// the desk's environment, as the packaged `/usr/bin/vigil-agent-native-host` runs
/// `vigil-agent native-host`. Chromium's output goes to `<profile>.log` in `desk.dir()`.
///
/// Debian's Chromium 156 honours `--load-extension` as it is (the Google Chrome builds since
/// 137 ignore it; Chromium builds do not). The caller stops the browser, e.g. with
/// [`stop_chromium`].
pub fn start_chromium_with_extension(
    desk: &TestDesktop,
    url: &str,
    host_program: &Path,
) -> Result<Child> {
    start_chromium_with(desk, url, host_program, &KIOSK_FLAGS)
}

/// [`start_chromium_with_extension`] in an ordinary window (tab strip, address bar) of
/// 1920x1080 at 0,0, for tests that use the browser's own controls.
pub fn start_windowed_chromium_with_extension(
    desk: &TestDesktop,
    url: &str,
    host_program: &Path,
) -> Result<Child> {
    start_chromium_with(
        desk,
        url,
        host_program,
        &KIOSK_FLAGS[..KIOSK_FLAGS.len() - 1],
    )
}

fn start_chromium_with(
    desk: &TestDesktop,
    url: &str,
    host_program: &Path,
    flags: &[&str],
) -> Result<Child> {
    let host_program = host_program
        .canonicalize()
        .with_context(|| format!("the host program {} is missing", host_program.display()))?;
    let extension = extension_dir()?;

    let (profile, n) = (0u32..)
        .map(|n| (desk.dir().join(format!("chromium-ext-{n}")), n))
        .find(|(p, _)| !p.exists())
        .context("no free profile name")?;
    let hosts = profile.join("NativeMessagingHosts");
    std::fs::create_dir_all(&hosts)?;

    // The wrapper: browsers start a host with arguments of their own and no room for more.
    let wrapper = desk.dir().join(format!("vigil-agent-native-host-{n}"));
    let mut script = String::from("#!/bin/sh\n");
    for (k, v) in desk.env() {
        script.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    script.push_str(&format!(
        "exec {} native-host \"$@\"\n",
        shell_quote(&host_program.display().to_string())
    ));
    std::fs::write(&wrapper, script)?;
    make_executable(&wrapper)?;

    let manifest = format!(
        "{{\n  \"name\": \"{NATIVE_HOST_NAME}\",\n  \"description\": \"Vigil agent (test)\",\n  \
         \"path\": {path},\n  \"type\": \"stdio\",\n  \
         \"allowed_origins\": [\"chrome-extension://{EXTENSION_ID}/\"]\n}}\n",
        path = json_string(&wrapper.display().to_string()),
    );
    std::fs::write(hosts.join(format!("{NATIVE_HOST_NAME}.json")), manifest)?;

    let log = std::fs::File::create(desk.dir().join(format!("chromium-ext-{n}.log")))?;
    desk.command("chromium")
        .args(flags)
        .args([
            "--force-renderer-accessibility",
            // Console lines of pages and of the extension's worker land in the log.
            "--enable-logging=stderr",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--load-extension={}", extension.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting chromium (is it installed? run scripts/install-deps.sh)")
}

/// Chromium on the test desktop: no sandbox (root), no GPU (Xvfb), nothing that talks to the
/// network or steals focus (first-run, keyring dialogs), one full-screen window at 0,0.
pub const KIOSK_FLAGS: [&str; 10] = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--password-store=basic",
    "--window-position=0,0",
    "--window-size=1920,1080",
    "--kiosk",
];

/// Stops a browser started by [`start_chromium_with_extension`]: SIGTERM (Chromium closes its
/// native hosts' pipes and exits), then SIGKILL after 5 s; always reaps it.
pub fn stop_chromium(child: &mut Child) {
    crate::desktop::stop_gracefully(child, Duration::from_secs(5));
}

/// A browser that is stopped on drop (also when a test fails).
pub struct Chromium(pub Child);

impl Chromium {
    /// [`start_chromium_with_extension`], stopped on drop.
    pub fn start(desk: &TestDesktop, url: &str, host_program: &Path) -> Result<Self> {
        Ok(Self(start_chromium_with_extension(
            desk,
            url,
            host_program,
        )?))
    }

    /// [`start_windowed_chromium_with_extension`], stopped on drop.
    pub fn start_windowed(desk: &TestDesktop, url: &str, host_program: &Path) -> Result<Self> {
        Ok(Self(start_windowed_chromium_with_extension(
            desk,
            url,
            host_program,
        )?))
    }

    /// Fails if the browser has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.0.try_wait()? {
            bail!("chromium exited early: {status}");
        }
        Ok(())
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        stop_chromium(&mut self.0);
    }
}
