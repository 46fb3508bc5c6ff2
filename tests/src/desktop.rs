//! The test desktop itself: Xvfb, D-Bus, PulseAudio, and the processes it starts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

/// A running test desktop.
pub struct TestDesktop {
    root: tempfile::TempDir,
    children: Vec<(String, Child)>,
    env: Vec<(String, String)>,
    display: String,
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not come up within {timeout:?}")
}

static NEXT_DISPLAY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn free_display() -> Result<u32> {
    // A per-process start spreads parallel test binaries over different numbers; the counter
    // keeps parallel tests of one binary apart.
    let offset = NEXT_DISPLAY.fetch_add(7, std::sync::atomic::Ordering::SeqCst);
    let start = 100 + (std::process::id() * 13 + offset) % 800;
    (start..start + 400)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .context("no free X display number")
}

impl TestDesktop {
    /// Starts Xvfb, D-Bus and PulseAudio, and waits until each answers.
    pub fn start() -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("vigil-desktop-")
            .tempdir()?;
        let mut desk = Self {
            root,
            children: Vec::new(),
            env: Vec::new(),
            display: String::new(),
        };
        desk.start_x()?;
        desk.start_dbus()?;
        desk.start_pulse()?;
        Ok(desk)
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<()> {
        let log = std::fs::File::create(self.root.path().join(format!("{name}.log")))?;
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn().with_context(|| {
            format!("starting {name} (is it installed? run scripts/install-deps.sh)")
        })?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    fn start_x(&mut self) -> Result<()> {
        let n = free_display()?;
        self.display = format!(":{n}");
        let mut cmd = Command::new("Xvfb");
        cmd.args([
            &self.display,
            "-screen",
            "0",
            "1920x1080x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ]);
        self.spawn("xvfb", cmd)?;
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        wait_for("Xvfb", Duration::from_secs(10), || socket.exists())?;
        // Another server may have taken the number between the check and the start.
        std::thread::sleep(Duration::from_millis(200));
        if let Some((_, child)) = self.children.last_mut() {
            if child.try_wait()?.is_some() {
                self.children.pop();
                return self.start_x();
            }
        }
        self.env.push(("DISPLAY".into(), self.display.clone()));
        // Paint a desktop so that frames are not all black.
        let _ = self
            .command("xsetroot")
            .args(["-solid", "#3a6ea5"])
            .status();
        Ok(())
    }

    fn start_dbus(&mut self) -> Result<()> {
        let socket = self.root.path().join("dbus.sock");
        let address = format!("unix:path={}", socket.display());
        let mut cmd = Command::new("dbus-daemon");
        cmd.args([
            "--session",
            "--nofork",
            "--nopidfile",
            &format!("--address={address}"),
        ]);
        self.spawn("dbus", cmd)?;
        wait_for("dbus-daemon", Duration::from_secs(10), || socket.exists())?;
        // Set explicitly: libdbus would otherwise auto-launch a bus because DISPLAY is set.
        self.env.push(("DBUS_SESSION_BUS_ADDRESS".into(), address));
        Ok(())
    }

    fn start_pulse(&mut self) -> Result<()> {
        let runtime = self.root.path().join("runtime");
        std::fs::create_dir_all(runtime.join("pulse"))?;
        set_private(&runtime)?;
        let socket = runtime.join("pulse/native");
        let script = self.root.path().join("default.pa");
        std::fs::write(
            &script,
            format!(
                "load-module module-native-protocol-unix auth-anonymous=1 socket={sock}\n\
                 load-module module-null-sink sink_name=caller sink_properties=device.description=Caller\n\
                 load-module module-null-sink sink_name=micfeed sink_properties=device.description=MicFeed\n\
                 load-module module-remap-source master=micfeed.monitor source_name=mic source_properties=device.description=Microphone\n\
                 set-default-sink caller\n\
                 set-default-source mic\n",
                sock = socket.display()
            ),
        )?;
        self.env
            .push(("XDG_RUNTIME_DIR".into(), runtime.display().to_string()));
        self.env
            .push(("PULSE_SERVER".into(), format!("unix:{}", socket.display())));
        self.env
            .push(("HOME".into(), self.root.path().display().to_string()));
        let mut cmd = Command::new("pulseaudio");
        cmd.args(["-n", "-F"]).arg(&script).args([
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--log-target=stderr",
        ]);
        self.spawn("pulseaudio", cmd)?;
        wait_for("PulseAudio", Duration::from_secs(15), || {
            self.command("pactl")
                .arg("info")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Starts gnome-keyring's Secret Service on this desktop's session bus (brief §8), unlocked
    /// with a throw-away password, and waits until `org.freedesktop.secrets` answers.
    pub fn start_keyring(&mut self) -> Result<()> {
        let data = self.root.path().join("keyring-data");
        std::fs::create_dir_all(&data)?;
        self.env
            .push(("XDG_DATA_HOME".into(), data.display().to_string()));
        let log = std::fs::File::create(self.root.path().join("keyring.log"))?;
        let mut child = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting gnome-keyring-daemon (run scripts/install-deps.sh)")?;
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().context("keyring stdin")?;
            stdin.write_all(b"vigil-test-keyring")?;
        }
        self.children.push(("gnome-keyring".into(), child));
        wait_for("gnome-keyring", Duration::from_secs(15), || {
            self.command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
        })
    }

    /// Starts the AT-SPI accessibility bus on this desktop's session bus
    /// (`at-spi-bus-launcher --launch-immediately`, brief §8) and waits until `org.a11y.Bus`
    /// answers. Applications started afterwards export their accessibility tree to it.
    pub fn start_accessibility(&mut self) -> Result<()> {
        // The launcher leaves its bus daemon, and the registry daemon that bus activates, to
        // whoever reaps orphans, and PID 1 does not here: a small subreaper runs the launcher,
        // adopts them, and stops and reaps them all when the desktop stops it.
        const REAPER: &str = r#"
import ctypes, os, signal, subprocess, sys, time

def children():
    me, found = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                    found.append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    return found

def stop(signum, frame):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in children():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                if not os.waitpid(-1, os.WNOHANG)[0]:
                    time.sleep(0.02)
            except ChildProcessError:
                sys.exit(0)
    sys.exit(0)

ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
signal.signal(signal.SIGTERM, stop)
subprocess.Popen(sys.argv[1:])
while True:
    try:
        os.waitpid(-1, 0)  # also reaps adopted orphans as they end
    except ChildProcessError:
        signal.pause()
"#;
        let script = self.root.path().join("a11y-reaper.py");
        std::fs::write(&script, REAPER)?;
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(&script)
            .args(["/usr/libexec/at-spi-bus-launcher", "--launch-immediately"])
            // Its settings lookup would make the session bus activate dconf-service, which
            // PID 1 would be left to reap.
            .env("GSETTINGS_BACKEND", "memory");
        self.spawn("at-spi-bus", cmd)?;
        // Wait for the name's owner rather than calling org.a11y.Bus: such a call would make
        // the session bus activate a second launcher.
        wait_for("AT-SPI bus launcher", Duration::from_secs(10), || {
            self.command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.a11y.Bus",
                ])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
        })?;
        run_output(self.command("dbus-send").args([
            "--session",
            "--print-reply",
            "--dest=org.a11y.Bus",
            "/org/a11y/bus",
            "org.a11y.Bus.GetAddress",
        ]))
        .context("the AT-SPI bus launcher does not answer")?;
        Ok(())
    }

    /// The environment a client of this desktop needs (DISPLAY, D-Bus, PulseAudio).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The X display name (`:N`).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// A scratch folder that lives as long as the desktop.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// A command that runs against this desktop.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs `pactl` with arguments and returns its output.
    pub fn pactl(&self, args: &[&str]) -> Result<String> {
        run_output(self.command("pactl").args(args))
    }

    /// Writes a sine tone WAV (48 kHz mono) and returns its path.
    pub fn tone_wav(&self, name: &str, hz: u32, seconds: u32) -> Result<PathBuf> {
        let path = self.root.path().join(format!("{name}.wav"));
        run_output(
            Command::new("sox")
                .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
                .arg(&path)
                .args([
                    "synth",
                    &seconds.to_string(),
                    "sine",
                    &hz.to_string(),
                    "vol",
                    "0.5",
                ]),
        )?;
        Ok(path)
    }

    /// Speaks `text` into a WAV (espeak-ng), repeated to last at least `seconds`.
    pub fn speech_wav(&self, name: &str, text: &str, seconds: u32) -> Result<PathBuf> {
        let once = self.root.path().join(format!("{name}-once.wav"));
        run_output(
            Command::new("espeak-ng")
                .args(["-s", "160", "-w"])
                .arg(&once)
                .arg(text),
        )?;
        let len: f64 = run_output(Command::new("soxi").arg("-D").arg(&once))?
            .trim()
            .parse()?;
        let repeats = (seconds as f64 / len).ceil().max(1.0) as u32;
        let path = self.root.path().join(format!("{name}.wav"));
        run_output(
            Command::new("sox")
                .arg(&once)
                .args(["-r", "48000"])
                .arg(&path)
                .args(["repeat", &repeats.to_string()]),
        )?;
        Ok(path)
    }

    /// Writes the DTMF tones of `digits` (120 ms tone, 120 ms pause each, sox) into a WAV.
    pub fn dtmf_wav(&self, name: &str, digits: &str) -> Result<PathBuf> {
        const ROWS: [u32; 4] = [697, 770, 852, 941];
        const COLS: [u32; 4] = [1209, 1336, 1477, 1633];
        const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
        let mut parts = Vec::new();
        for (i, digit) in digits.chars().enumerate() {
            let (row, col) = KEYS
                .iter()
                .enumerate()
                .find_map(|(r, keys)| keys.find(digit).map(|c| (r, c)))
                .with_context(|| format!("{digit:?} is not a DTMF key"))?;
            let tone = self.root.path().join(format!("{name}-{i}-tone.wav"));
            let pause = self.root.path().join(format!("{name}-{i}-pause.wav"));
            run_output(
                Command::new("sox")
                    .args(["-n", "-r", "48000", "-b", "16", "-c", "1"])
                    .arg(&tone)
                    .args([
                        "synth",
                        "0.12",
                        "sine",
                        &ROWS[row].to_string(),
                        "sine",
                        &COLS[col].to_string(),
                        "remix",
                        "-",
                        "vol",
                        "0.4",
                    ]),
            )?;
            run_output(
                Command::new("sox")
                    .args(["-n", "-r", "48000", "-b", "16", "-c", "1"])
                    .arg(&pause)
                    .args(["trim", "0", "0.12"]),
            )?;
            parts.push(tone);
            parts.push(pause);
        }
        let path = self.root.path().join(format!("{name}.wav"));
        run_output(Command::new("sox").args(&parts).arg(&path))?;
        Ok(path)
    }

    /// Plays a file into a sink (`caller` for the remote party, `micfeed` for the microphone)
    /// until the returned guard is dropped.
    pub fn play(&self, sink: &str, wav: &Path) -> Result<Player> {
        let child = self
            .command("paplay")
            .args(["-d", sink])
            .arg(wav)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting paplay")?;
        Ok(Player(Some(child)))
    }

    /// Changes the screen size with RandR, as a user changing the resolution would (the mode is
    /// added to Xvfb's output first; up to the 1920x1080 the display started with).
    pub fn set_resolution(&self, width: u32, height: u32) -> Result<()> {
        let name = format!("{width}x{height}");
        let modes = run_output(self.command("xrandr").arg("--query"))?;
        let output = modes
            .lines()
            .find_map(|l| l.split_once(" connected").map(|(o, _)| o.to_string()))
            .context("no connected RandR output")?;
        if !modes
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name.as_str()))
        {
            let (htotal, vtotal) = (width + 160, height + 30);
            let clock = format!("{:.2}", (htotal * vtotal) as f64 * 60.0 / 1e6);
            let timings = [
                clock,
                width.to_string(),
                (width + 48).to_string(),
                (width + 80).to_string(),
                htotal.to_string(),
                height.to_string(),
                (height + 3).to_string(),
                (height + 8).to_string(),
                vtotal.to_string(),
            ];
            run_output(
                self.command("xrandr")
                    .arg("--newmode")
                    .arg(&name)
                    .args(&timings),
            )?;
            run_output(self.command("xrandr").args(["--addmode", &output, &name]))?;
        }
        run_output(
            self.command("xrandr")
                .args(["--output", &output, "--mode", &name]),
        )?;
        Ok(())
    }
}

/// A playing sound; stops on drop.
pub struct Player(Option<Child>);

impl Drop for Player {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run_output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(unix)]
fn set_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_private(_dir: &Path) -> Result<()> {
    Ok(())
}

fn stop_child(child: &mut Child) {
    stop_gracefully(child, Duration::from_secs(3));
}

/// Politely first (SIGTERM lets Xvfb remove its lock, Chromium close its native hosts' pipes),
/// then by force after `grace`; always reaps.
pub(crate) fn stop_gracefully(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for TestDesktop {
    fn drop(&mut self) {
        while let Some((_, mut child)) = self.children.pop() {
            stop_child(&mut child);
        }
    }
}
