//! Acceptance of issue 4 on real processes: an agent enrolled with a real vault over TLS (CA
//! pinned, device key in gnome-keyring) records, and every segment reaches the vault exactly
//! once, verifies in an offline export, and opens with `age -d` and the exported identity —
//! also when the agent or the vault is killed with SIGKILL, the connection is cut mid-body, or
//! the spool quota is reached.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rig::*;
use common::*;
use vigil_e2e::{TestDesktop, TestVault};

#[test]
fn sixty_seconds_reach_the_vault_verify_offline_and_open_with_the_exported_identity() {
    let rig = rig("", None);
    // The key moved to the keystore: no private key in any file of the spool.
    for file in files_with_suffix(&rig.spool, "") {
        let text = std::fs::read(&file).unwrap();
        assert!(
            !text.windows(11).any(|w| w == b"PRIVATE KEY"),
            "{} holds a private key",
            file.display()
        );
    }
    let lookup = rig
        .desk
        .command("secret-tool")
        .args(["search", "--all", "service", "vigil-agent"])
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&lookup.stdout).to_string()
        + &String::from_utf8_lossy(&lookup.stderr);
    assert!(
        found.contains("device-"),
        "device key not in the keyring: {found}"
    );

    let _tone = rig.play_caller_tone();
    let out = run_ok(&mut rig.agent(&["record", "--for", "60"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("6 sealed segments"), "{stdout}");
    let upload = rig.upload_all();
    assert!(upload.contains("Backlog:     0 segments"), "{upload}");
    // Delivered copies are deleted once their receipt verified.
    assert!(files_with_suffix(&rig.spool.join("sessions"), ".age").is_empty());

    let gaps = rig.gap_lines();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(field(&gaps[0], "stored"), "6", "{gaps:?}");
    assert_eq!(field(&gaps[0], "closed"), "yes", "{gaps:?}");
    assert_eq!(field(&gaps[0], "missing"), "none", "{gaps:?}");

    let export = rig.export_and_verify("export");
    let identity = rig
        .vault
        .export_identity("acceptance: open every blob")
        .unwrap();
    assert!(identity.starts_with("AGE-SECRET-KEY-1"));
    let id_file = rig.desk.dir().join("recording.key");
    std::fs::write(&id_file, format!("{identity}\n")).unwrap();
    let blobs = files_with_suffix(&export, ".age");
    assert_eq!(blobs.len(), 12, "screen and voice of 6 segments");
    for blob in blobs {
        let out = std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&id_file)
            .arg(&blob)
            .output()
            .unwrap();
        assert!(out.status.success(), "age -d {}", blob.display());
        assert_eq!(
            &out.stdout[..4],
            b"\x1a\x45\xdf\xa3",
            "{} is not Matroska",
            blob.display()
        );
    }
    let audit = rig.vault.run(&["audit", "--verify"], true).unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.contains("keys.export_recording_identity"), "{audit}");
}

#[test]
fn sigkill_of_agent_and_vault_loses_at_most_the_segment_being_recorded() {
    let mut rig = rig("[recording]\nsegment_seconds = 4\n", None);
    let _tone = rig.play_caller_tone();

    // The vault dies while segments stream in, and comes back 8 s later.
    let mut recording = rig
        .agent(&["record", "--for", "24"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(10));
    rig.vault.kill();
    std::thread::sleep(Duration::from_secs(8));
    rig.vault.serve().unwrap();
    assert!(wait_with_deadline(&mut recording, Duration::from_secs(90)).success());

    // The agent dies mid-recording: the segment being recorded is lost, nothing else.
    let mut recording = rig
        .agent(&["record", "--for", "60"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(15));
    let _ = recording.kill();
    let _ = recording.wait();

    // The agent dies while uploading a backlog (paced to 100 kB/s so uploads are in flight).
    rig.vault.kill();
    let mut recording = rig
        .agent(&["record", "--for", "12"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_with_deadline(&mut recording, Duration::from_secs(60)).success());
    rig.vault.serve().unwrap();
    let mut slow = std::process::Command::new(AGENT);
    slow.envs(rig.desk.env().iter().map(|(k, v)| (k, v)));
    let paced = rig.desk.dir().join("paced.toml");
    std::fs::write(
        &paced,
        "[upload]\nmax_bytes_per_second = 100000\nheartbeat_seconds = 1\n",
    )
    .unwrap();
    let mut uploading = slow
        .arg("--config")
        .arg(&paced)
        .args(["upload", "--spool"])
        .arg(&rig.spool)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = uploading.kill();
    let _ = uploading.wait();

    let upload = rig.upload_all();
    assert!(upload.contains("Backlog:     0 segments"), "{upload}");
    let gaps = rig.gap_lines();
    assert_eq!(gaps.len(), 3, "{gaps:?}");
    let mut total = 0;
    for line in &gaps {
        // Nothing sealed is missing; the killed session simply ends at its last sealed segment.
        assert_eq!(field(line, "missing"), "none", "{gaps:?}");
        assert_eq!(field(line, "in_transit"), "none", "{gaps:?}");
        total += field(line, "stored").parse::<u32>().unwrap();
    }
    let closed = gaps.iter().filter(|l| field(l, "closed") == "yes").count();
    assert_eq!(closed, 2, "the killed session is not closed: {gaps:?}");
    // 24 s + ~15 s + 12 s of 4-s segments.
    assert!(
        (12..=15).contains(&total),
        "{total} segments stored: {gaps:?}"
    );
    rig.export_and_verify_allowing_open_session("export");
}

impl Rig {
    /// Like `export_and_verify`, but a session cut by a killed agent has no closing segment.
    fn export_and_verify_allowing_open_session(&self, name: &str) {
        let out = self.desk.dir().join(name);
        self.vault
            .run(
                &[
                    "export",
                    "--out",
                    out.to_str().unwrap(),
                    "--reason",
                    "chaos test",
                ],
                true,
            )
            .unwrap();
        let verify = self
            .vault
            .run_any(&["verify", out.to_str().unwrap(), "--allow-gaps"], false)
            .unwrap();
        assert!(
            verify.status.success(),
            "offline verify failed:\n{}\n{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

/// A loopback TCP proxy that cuts the first `cuts` connections carrying more than `after`
/// bytes towards the vault in the middle of their body.
fn cutting_proxy(target: u16, cuts: usize, after: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut_count = Arc::new(AtomicUsize::new(0));
    let counter = cut_count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                let back = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
                let mut sent = 0usize;
                let mut buf = [0u8; 8192];
                loop {
                    let n = match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if sent + n > after && counter.load(Ordering::SeqCst) < cuts {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = s_write.write_all(&buf[..after.saturating_sub(sent)]);
                        let _ = s_write.shutdown(std::net::Shutdown::Both);
                        let _ = c_read.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
                let _ = back.join();
            });
        }
    });
    (port, cut_count)
}

#[test]
fn connections_cut_mid_body_and_a_full_quota_lose_nothing() {
    // The agent knows the vault only through a proxy that cuts the first 4 large uploads.
    let rig = {
        // The vault must be served before the proxy knows its port: start it through `rig`,
        // then enroll through a proxy in front of it.
        let mut desk = TestDesktop::start().unwrap();
        desk.start_keyring().unwrap();
        let mut vault = TestVault::init(&desk.dir().join("vault")).unwrap();
        vault.serve().unwrap();
        let (proxy_port, cuts) = cutting_proxy(vault.port().unwrap(), 4, 8_000);
        let spool = desk.dir().join("spool");
        let config = desk.dir().join("agent.toml");
        // A few segments of 4 s fill this quota.
        std::fs::write(
            &config,
            "[control]\nenabled = false\n[recording]\nsegment_seconds = 4\n\
             [upload]\nheartbeat_seconds = 1\nmax_retry_seconds = 2\nspool_quota_bytes = 100000\n",
        )
        .unwrap();
        let token = vault.token().unwrap();
        run_ok(
            agent(&desk)
                .arg("--config")
                .arg(&config)
                .args([
                    "enroll",
                    "--vault",
                    &format!("https://127.0.0.1:{proxy_port}"),
                    "--token",
                    &token,
                    "--ca",
                ])
                .arg(vault.ca_file())
                .arg("--spool")
                .arg(&spool),
        );
        let rig = Rig {
            desk,
            vault,
            spool,
            config,
        };
        (rig, cuts)
    };
    let (rig, cuts) = rig;
    let _tone = rig.play_caller_tone();
    // Uploads through the cutting proxy: the first large bodies are cut mid-way and retried.
    run_ok(&mut rig.agent(&["record", "--for", "16"]));
    let upload = rig.upload_all();
    assert!(upload.contains("Backlog:     0 segments"), "{upload}");
    assert_eq!(
        cuts.load(Ordering::SeqCst),
        4,
        "the proxy cut 4 uploads mid-body"
    );

    // Quota: with the vault down, capture stops when the spool is full, and says so.
    let mut rig = rig;
    rig.vault.kill();
    let out = rig.agent(&["record", "--for", "60"]).output().unwrap();
    assert!(!out.status.success(), "recording must stop at the quota");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spool quota reached"), "{stderr}");
    let status = rig.agent(&["status"]).output().unwrap();
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status_text.contains("waiting for the vault"),
        "{status_text}"
    );
    rig.vault.serve().unwrap();
    let upload = rig.upload_all();
    assert!(upload.contains("Backlog:     0 segments"), "{upload}");

    let gaps = rig.gap_lines();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    for line in &gaps {
        assert_eq!(field(line, "missing"), "none", "{gaps:?}");
        assert_eq!(field(line, "lost"), "none", "{gaps:?}");
    }
    rig.export_and_verify_allowing_open_session("export");
}

#[test]
fn five_minutes_without_the_vault_then_everything_arrives() {
    let mut rig = rig("[recording]\nsegment_seconds = 4\n", None);
    let _tone = rig.play_caller_tone();
    rig.vault.kill();
    let down_since = Instant::now();
    run_ok(&mut rig.agent(&["record", "--for", "12"]));
    // The uploader keeps trying, with backoff, for as long as the vault is away.
    let mut uploading = rig
        .agent(&["upload"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while down_since.elapsed() < Duration::from_secs(300) {
        assert!(
            uploading.try_wait().unwrap().is_none(),
            "the uploader gave up while the vault was down"
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    rig.vault.serve().unwrap();
    let status = wait_with_deadline(&mut uploading, Duration::from_secs(90));
    let mut stdout = String::new();
    uploading
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("Backlog:     0 segments"), "{stdout}");
    let gaps = rig.gap_lines();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(field(&gaps[0], "stored"), "3", "{gaps:?}");
    assert_eq!(field(&gaps[0], "missing"), "none", "{gaps:?}");
    assert_eq!(field(&gaps[0], "closed"), "yes", "{gaps:?}");
}

#[test]
fn the_bandwidth_cap_holds_and_a_revoked_device_keeps_its_segments() {
    // (appended to the rig's [upload] section)
    let mut rig = rig(
        "max_bytes_per_second = 20000\n[recording]\nsegment_seconds = 4\n",
        None,
    );
    let _tone = rig.play_caller_tone();
    rig.vault.kill();
    run_ok(&mut rig.agent(&["record", "--for", "12"]));
    let status = rig.agent(&["status", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let bytes = json["backlog"]["bytes"].as_u64().unwrap();
    assert!(bytes > 30_000, "backlog of {bytes} bytes");
    rig.vault.serve().unwrap();
    let started = Instant::now();
    rig.upload_all();
    let took = started.elapsed().as_secs_f64();
    let floor = bytes as f64 / 20_000.0 * 0.8;
    assert!(took >= floor, "{bytes} bytes took {took:.1} s at 20 kB/s");

    // Revocation: the vault refuses the device's segments; the agent keeps them and says so.
    let devices = rig.vault.run(&["device", "list"], true).unwrap();
    let devices = String::from_utf8_lossy(&devices.stdout);
    let id = devices
        .split_whitespace()
        .find(|w| uuid::Uuid::parse_str(w).is_ok())
        .unwrap_or_else(|| panic!("no device id in {devices}"))
        .to_owned();
    rig.vault
        .run(
            &["device", "revoke", &id, "--reason", "laptop stolen"],
            true,
        )
        .unwrap();
    run_ok(&mut rig.agent(&["record", "--for", "4"]));
    let out = rig.agent(&["upload", "--timeout", "20"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "segments stay in the spool");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refused by the vault"), "{text}");
    assert!(!files_with_suffix(&rig.spool.join("sessions"), ".age").is_empty());
}
