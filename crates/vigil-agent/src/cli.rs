//! The command line: `record`, `devices`, `verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vigil_agent::control::{ControlClient, ControlCommand, ControlEndpoint};
use vigil_agent::enrollment::{enroll, EnrollOptions, Enrollment, KeyStoreChoice};
use vigil_agent::{record, AgentConfig, RecordOptions, MANAGED_CONFIG};
use vigil_capture::ScreenConfig;
use vigil_media::EncoderConfig;

#[derive(Parser)]
#[command(name = "vigil-agent", version, about = "Vigil desktop recorder agent")]
struct Cli {
    /// The user's configuration file, merged under the managed /etc/vigil/agent.toml (whose
    /// settings always win).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record microphone, system audio and screen into sealed segments.
    Record(RecordArgs),
    /// List microphones, outputs and monitors.
    Devices,
    /// Check signatures, hashes and chains of a spool or export; list gaps.
    Verify(VerifyArgs),
    /// Show the running agent's state: recording, masked (why, since when), paused, triggers;
    /// and the delivery backlog (segments, bytes, oldest) and the last upload.
    Status {
        /// Print the control API's JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Spool folder.
        #[arg(long)]
        spool: Option<PathBuf>,
    },
    /// Enroll this device with a vault, using a one-use token from IT.
    Enroll(EnrollArgs),
    /// Deliver the spool's backlog to the vault without recording.
    Upload(UploadArgs),
    /// Replace this device's key (in its keystore and at the vault) without re-enrolling:
    /// for the key's cryptoperiod, or when it may have been exposed.
    Rekey {
        /// Spool folder.
        #[arg(long)]
        spool: Option<PathBuf>,
    },
    /// Pause recording (screen and voice masked) if the configuration allows it; recording
    /// resumes by itself after the configured maximum.
    Pause {
        /// Why (kept in the manifest and the log).
        #[arg(long)]
        reason: String,
        /// How long, in seconds (default and upper bound: the configured maximum).
        #[arg(long = "for", value_name = "SECONDS")]
        seconds: Option<u64>,
    },
    /// End a pause.
    Resume,
    /// The browser extension's native-messaging host (started by the browser, not by people).
    #[command(hide = true)]
    NativeHost {
        /// What the browser passes: the caller's origin (and a window handle on Windows).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        browser_args: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RecordArgs {
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long = "for", value_name = "SECONDS")]
    duration: Option<f64>,
    /// Spool folder.
    #[arg(long)]
    spool: Option<PathBuf>,
    /// age X25519 recipient (age1…); repeat for several. For an agent not enrolled (local
    /// recording) only: an enrolled agent seals to the recipients its vault signs.
    #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
    recipients: Vec<String>,
    /// Microphone device id (see `devices`).
    #[arg(long)]
    microphone: Option<String>,
    /// Output device whose audio is recorded as the caller.
    #[arg(long)]
    system_audio: Option<String>,
    /// A second output whose audio is mixed into the caller's track (softphones that play
    /// calls on a headset; Windows follows its communications device without this).
    #[arg(long)]
    communications_output: Option<String>,
    /// X11 display to record.
    #[arg(long)]
    display: Option<String>,
    /// Screen frames per second.
    #[arg(long)]
    fps: Option<u32>,
    /// Record voice only.
    #[arg(long)]
    no_screen: bool,
    /// Segment length in seconds.
    #[arg(long)]
    segment_seconds: Option<u32>,
}

#[derive(clap::Args)]
struct EnrollArgs {
    /// The vault's URL (https://host:port).
    #[arg(long = "vault", value_name = "URL")]
    vault: String,
    /// The one-use enrollment token (vgt_…).
    #[arg(long)]
    token: String,
    /// The vault's CA certificate (PEM) to pin; without it the OS's roots are trusted.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Where the device key goes: the OS keystore, or a 0600 file for machines without one.
    #[arg(long, value_enum, default_value = "os")]
    key_store: KeyStoreChoice,
    /// Spool folder.
    #[arg(long)]
    spool: Option<PathBuf>,
}

#[derive(clap::Args)]
struct UploadArgs {
    /// Spool folder.
    #[arg(long)]
    spool: Option<PathBuf>,
    /// Give up after this many seconds (default: until the backlog is delivered).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Queue segments the vault refused before (after IT fixed the cause) again.
    #[arg(long)]
    retry_rejected: bool,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Spool or export folder.
    dir: PathBuf,
    /// age identity file (AGE-SECRET-KEY-1…) to open segments with.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// With --identity: write each segment as one playable .mkv into this folder.
    #[arg(long, requires = "identity")]
    open_to: Option<PathBuf>,
}

pub fn run() -> anyhow::Result<ExitCode> {
    // Browsers start a native-messaging host with the caller's origin (Chromium, Edge) or the
    // host manifest's path (Firefox) as the first argument, and cannot add a subcommand: the
    // agent binary itself can then be the host, without a wrapper script.
    let first = std::env::args().nth(1).unwrap_or_default();
    if first.starts_with("chrome-extension://") || first.ends_with(".json") {
        vigil_agent::native_host::run_native_host()?;
        return Ok(ExitCode::SUCCESS);
    }
    let cli = Cli::parse();
    let config = AgentConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Record(args) => cmd_record(args, config),
        Command::Devices => cmd_devices(config),
        Command::Verify(args) => cmd_verify(args),
        Command::Status { json, spool } => cmd_status(json, spool, &config),
        Command::Enroll(args) => cmd_enroll(args, &config),
        Command::Upload(args) => cmd_upload(args, &config),
        Command::Rekey { spool } => {
            let done = vigil_agent::rekey::rekey(&spool_of(spool, &config))?;
            println!(
                "Device {}: key {} replaced by {}",
                done.device_id, done.old_key_id, done.new_key_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause { reason, seconds } => {
            cmd_control(ControlCommand::Pause { reason, seconds }, false)
        }
        Command::Resume => cmd_control(ControlCommand::Resume, false),
        Command::NativeHost { .. } => {
            vigil_agent::native_host::run_native_host()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Sends a command to this user's running agent and prints the state it applied.
fn cmd_control(command: ControlCommand, json: bool) -> anyhow::Result<ExitCode> {
    let folder = ControlEndpoint::folder()?;
    let client = ControlClient::discover(&folder)?;
    let state = client.send(&command)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&state)?);
    } else {
        print!("{}", state.describe());
    }
    Ok(ExitCode::SUCCESS)
}

/// The vault policy key IT pinned, from managed settings only (a user's file cannot set it).
fn pinned_policy_key(config: &AgentConfig) -> Option<String> {
    config
        .vault
        .policy_public_key
        .clone()
        .filter(|_| config.is_managed("vault.policy_public_key"))
}

fn spool_of(arg: Option<PathBuf>, config: &AgentConfig) -> PathBuf {
    arg.or(config.spool.clone()).unwrap_or_else(default_spool)
}

fn cmd_enroll(args: EnrollArgs, config: &AgentConfig) -> anyhow::Result<ExitCode> {
    let spool = spool_of(args.spool, config);
    vigil_spool::Spool::open(&spool)?;
    let enrollment = enroll(&EnrollOptions {
        spool: spool.clone(),
        vault_url: args.vault,
        token: args.token,
        ca_file: args.ca,
        key_store: args.key_store,
        pinned_policy_key: pinned_policy_key(config),
    })?;
    println!("Enrolled as device {}", enrollment.device_id);
    println!("Vault:      {}", enrollment.vault_url);
    println!("Recipients: {}", enrollment.recipients.join(", "));
    println!(
        "Device key: {}",
        match &enrollment.key {
            vigil_agent::keystore::KeyLocation::OsKeystore { account } => format!(
                "OS keystore ({}/{account})",
                vigil_agent::keystore::KEYSTORE_SERVICE
            ),
            vigil_agent::keystore::KeyLocation::File { path } => path.display().to_string(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_upload(args: UploadArgs, config: &AgentConfig) -> anyhow::Result<ExitCode> {
    let spool_dir = spool_of(args.spool, config);
    let enrollment = Enrollment::load(&spool_dir)?
        .context("this device is not enrolled: run `vigil-agent enroll` first")?;
    let spool = vigil_spool::Spool::open(&spool_dir)?;
    spool.reconcile()?;
    if args.retry_rejected {
        spool.outbox().requeue_rejected()?;
    }
    let key = enrollment.device_key()?;
    let (masked_today, paused_today) = vigil_agent::todays_usage(&spool.config_dir());
    let trusted = enrollment.trusted_policy_key(pinned_policy_key(config).as_deref())?;
    let receipt_key = vigil_agent::policy_sync::kept_receipt_key(
        &spool.config_dir(),
        &trusted,
        &vigil_agent::keystore::PolicyFloor::of(&enrollment.key),
        enrollment.device_id,
        enrollment.receipt_key()?,
    );
    let delivery = vigil_spool::uploader::Delivery {
        client: enrollment.client()?,
        receipt_key: vigil_spool::uploader::ReceiptKey::new(receipt_key),
        device_id: enrollment.device_id,
        device_key: key.signing_key().clone(),
        // Not recording: the heartbeat says so, with the policy version kept in the spool.
        report: std::sync::Arc::new(std::sync::Mutex::new(vigil_proto::api::AgentReport {
            agent_version: env!("CARGO_PKG_VERSION").into(),
            policy_version: vigil_agent::policy_sync::PolicyState::load(&spool.config_dir())
                .version,
            // The day's totals stay what the last recording reported.
            masked_seconds_today: masked_today,
            paused_seconds_today: paused_today,
            ..Default::default()
        })),
    };
    let uploader =
        vigil_spool::uploader::Uploader::start(spool.clone(), delivery, config.upload.uploader());
    let deadline = args
        .timeout
        .map(|s| std::time::Instant::now() + Duration::from_secs(s));
    let backlog = loop {
        let backlog = spool.outbox().backlog()?;
        if backlog.segments == backlog.rejected
            || deadline.is_some_and(|d| std::time::Instant::now() >= d)
        {
            break backlog;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    uploader.stop(Duration::from_secs(2));
    print!("{}", describe_backlog(&backlog));
    Ok(if backlog.segments == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn describe_backlog(b: &vigil_spool::BacklogSummary) -> String {
    let mut out = format!(
        "Backlog:     {} segments, {} bytes waiting for the vault\n",
        b.segments, b.bytes
    );
    if let Some(oldest) = b.oldest_ms {
        out += &format!("Oldest:      {}\n", format_ms(oldest));
    }
    if b.rejected > 0 {
        out += &format!(
            "ALARM:       {} segments refused by the vault (kept in the spool; \
             `vigil-agent upload --retry-rejected` after fixing the cause)\n",
            b.rejected
        );
    }
    out += &format!(
        "Last upload: {}\n",
        b.last_upload_ms
            .map(format_ms)
            .unwrap_or_else(|| "never".into())
    );
    out
}

/// The running agent's state (if any) and the spool's delivery backlog.
fn cmd_status(
    json: bool,
    spool: Option<PathBuf>,
    config: &AgentConfig,
) -> anyhow::Result<ExitCode> {
    let spool_dir = spool_of(spool, config);
    let backlog = if spool_dir.join("outbox.sqlite").exists() {
        Some(vigil_spool::Spool::open(&spool_dir)?.outbox().backlog()?)
    } else {
        None
    };
    let policy = vigil_agent::policy_sync::PolicyState::load(&spool_dir.join("config"));
    let agent = ControlEndpoint::folder()
        .map_err(anyhow::Error::from)
        .and_then(|folder| Ok(ControlClient::discover(&folder)?))
        .and_then(|client| Ok(client.send(&ControlCommand::State)?));
    if json {
        // The running agent's state as before, with the delivery backlog beside it.
        let mut value = match &agent {
            Ok(state) => serde_json::to_value(state)?,
            Err(_) => serde_json::json!({}),
        };
        if let Some(object) = value.as_object_mut() {
            object.insert("running".into(), agent.is_ok().into());
            object.insert("policy".into(), serde_json::to_value(&policy)?);
            object.insert(
                "backlog".into(),
                backlog.as_ref().map_or(serde_json::Value::Null, |b| {
                    serde_json::json!({
                        "segments": b.segments,
                        "bytes": b.bytes,
                        "oldest_ms": b.oldest_ms,
                        "rejected": b.rejected,
                        "last_upload_ms": b.last_upload_ms,
                    })
                }),
            );
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        match &agent {
            Ok(state) => print!("{}", state.describe()),
            Err(e) => println!("Agent:       not running ({e})"),
        }
        if let Some(b) = &backlog {
            print!("{}", describe_backlog(b));
        }
        match policy.version {
            0 => println!("Policy:      none from the vault (local configuration)"),
            v => println!(
                "Policy:      version {v} (received {})",
                policy.received_at.as_deref().unwrap_or("?")
            ),
        }
        for refusal in &policy.refusals {
            println!("ALARM:       policy refused: {refusal}");
        }
    }
    Ok(if agent.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn default_spool() -> PathBuf {
    if let Ok(dir) = std::env::var("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("vigil/spool");
    }
    if let Ok(dir) = std::env::var("LOCALAPPDATA") {
        return PathBuf::from(dir).join("Vigil\\spool");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".local/share/vigil/spool")
}

/// A flag is refused where managed settings set its key: a user's flag never replaces them.
fn unmanaged<T>(
    config: &AgentConfig,
    key: &str,
    flag: &str,
    value: Option<T>,
) -> anyhow::Result<Option<T>> {
    if value.is_some() && config.is_managed(key) {
        anyhow::bail!("{flag} is not allowed here: managed settings ({MANAGED_CONFIG}) set {key}");
    }
    Ok(value)
}

fn cmd_record(args: RecordArgs, config: AgentConfig) -> anyhow::Result<ExitCode> {
    let flagged = (!args.recipients.is_empty()).then_some(args.recipients);
    let recipients = unmanaged(&config, "recipients", "--recipient", flagged)?
        .unwrap_or_else(|| config.recipients.clone());
    let fps = unmanaged(&config, "capture.fps", "--fps", args.fps)?.unwrap_or(config.capture.fps);
    let no_screen = unmanaged(
        &config,
        "capture.screen",
        "--no-screen",
        args.no_screen.then_some(()),
    )?
    .is_some();
    let display = unmanaged(&config, "capture.display", "--display", args.display)?;
    let microphone = unmanaged(
        &config,
        "capture.microphone",
        "--microphone",
        args.microphone,
    )?;
    let system_audio = unmanaged(
        &config,
        "capture.system_audio",
        "--system-audio",
        args.system_audio,
    )?;
    let communications_output = unmanaged(
        &config,
        "capture.communications_output",
        "--communications-output",
        args.communications_output,
    )?;
    let segment_seconds = unmanaged(
        &config,
        "recording.segment_seconds",
        "--segment-seconds",
        args.segment_seconds,
    )?;
    let rec = &config.recording;
    let options = RecordOptions {
        spool: spool_of(args.spool, &config),
        recipients,
        upload: config.upload.uploader(),
        quota_bytes: config.upload.spool_quota_bytes,
        drain_on_stop: Duration::from_secs(config.upload.drain_on_stop_seconds),
        duration: args.duration.map(Duration::from_secs_f64),
        segment: Duration::from_secs(segment_seconds.unwrap_or(rec.segment_seconds) as u64),
        delay: Duration::from_millis(rec.delay_ms as u64),
        screen: (!no_screen && config.capture.screen).then(|| ScreenConfig {
            fps,
            draw_pointer: true,
            display: display.or(config.capture.display.clone()),
        }),
        voice: true,
        microphone: microphone.or(config.capture.microphone.clone()),
        system_audio: system_audio.or(config.capture.system_audio.clone()),
        communications_output: communications_output
            .or(config.capture.communications_output.clone()),
        encoder: EncoderConfig {
            preset: rec.preset.clone(),
            crf: rec.crf,
            max_fps: fps,
            audio_bitrate: rec.audio_bitrate,
            threads: rec.encoder_threads,
            x264_params: rec.x264_params.clone(),
            max_height: 0,
            crop: None,
        },
        dtmf_masking: config.masking.dtmf,
        mask_rules: config.masking.rules.clone(),
        pause_allowed: config.pause.allowed,
        pause_max: Duration::from_secs(config.pause.max_seconds),
        pause_daily_budget: Duration::from_secs(config.pause.daily_budget_seconds),
        api_mask_max: Duration::from_secs(config.masking.api_mask_max_seconds),
        control_port: config.control.enabled.then_some(config.control.port),
        pinned_policy_key: pinned_policy_key(&config),
        focus_masking: config.masking.focus,
    };
    let stop = Arc::new(AtomicBool::new(false));
    ctrlc::set_handler({
        let stop = stop.clone();
        move || stop.store(true, std::sync::atomic::Ordering::SeqCst)
    })
    .context("installing the Ctrl-C handler")?;
    let summary = record(options, stop)?;
    let dir = summary.session_dir.display();
    println!(
        "Recorded {:.1} s: {} sealed segments ({} bytes) in {dir}",
        summary.recorded.as_secs_f64(),
        summary.segments,
        summary.bytes
    );
    println!("Verify:  vigil-agent verify {dir}");
    println!("Open:    age -d -i IDENTITY {dir}/000001.screen.age > screen.mkv   (voice: 000001.voice.age)");
    println!("   or:   vigil-agent verify {dir} --identity IDENTITY --open-to OUT_DIR");
    Ok(ExitCode::SUCCESS)
}

fn cmd_devices(config: AgentConfig) -> anyhow::Result<ExitCode> {
    let screen = ScreenConfig {
        fps: config.capture.fps,
        draw_pointer: true,
        display: config.capture.display,
    };
    let list = vigil_capture::list_devices(&screen)?;
    let mark = |d: bool| if d { " (default)" } else { "" };
    println!("Microphones:");
    for (id, name, default) in &list.microphones {
        println!("  {id}  {name}{}", mark(*default));
    }
    println!("Outputs (recorded as system audio):");
    for (id, name, default) in &list.outputs {
        println!("  {id}  {name}{}", mark(*default));
    }
    println!("Monitors:");
    for m in &list.monitors {
        println!(
            "  {}  {}x{}+{}+{}{}",
            m.name,
            m.width,
            m.height,
            m.x,
            m.y,
            if m.primary { " (primary)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let report = vigil_seal::verify_tree(&args.dir)
        .with_context(|| format!("reading {}", args.dir.display()))?;
    if report.sessions.is_empty() && report.unattributed.is_empty() {
        anyhow::bail!("no segment manifests under {}", args.dir.display());
    }
    for (session, s) in &report.sessions {
        let state = if s.closed {
            "closed"
        } else {
            "open or interrupted"
        };
        println!(
            "session {session}: {} segments verified, last #{} ({state})",
            s.segments, s.last_sequence
        );
    }
    for p in report.problems() {
        println!("FAIL {p}");
    }
    if let (Some(identity), Some(out)) = (&args.identity, &args.open_to) {
        open_segments(&args.dir, identity, out)?;
    }
    if report.is_clean() {
        println!("OK: all signatures, hashes and chains verify; no gaps");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}

/// Decrypts each segment's blobs in memory and writes one playable Matroska file per segment.
fn open_segments(dir: &Path, identity: &Path, out: &Path) -> anyhow::Result<()> {
    let identity = std::fs::read_to_string(identity)
        .with_context(|| format!("reading {}", identity.display()))?;
    std::fs::create_dir_all(out)?;
    let mut manifests = Vec::new();
    collect(dir, &mut manifests)?;
    manifests.sort();
    for path in manifests {
        let bytes = std::fs::read(&path)?;
        let Ok(signed) = vigil_proto::SignedManifest::verify(&bytes, None) else {
            continue;
        };
        let m = &signed.document;
        let folder = path.parent().unwrap_or(dir);
        let mut parts = Vec::new();
        for blob in &m.blobs {
            let sealed = std::fs::read(folder.join(&blob.file))?;
            parts.push(
                vigil_seal::open_blob(&identity, &sealed)
                    .with_context(|| format!("opening {}", blob.file))?,
            );
        }
        let joined = vigil_media::join_tracks(parts)?;
        let target = out.join(format!("{}-{:06}.mkv", m.session_id, m.sequence));
        std::fs::write(&target, joined)?;
        println!("opened {}", target.display());
    }
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.to_string_lossy().ends_with(".manifest.json") {
            out.push(path);
        }
    }
    Ok(())
}
