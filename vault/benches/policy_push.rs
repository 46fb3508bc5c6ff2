//! `vigil-vault-policy-bench`: how fast a policy change reaches a fleet (issue 5: p99 ≤ 2 s
//! for 1,000 agents; the reference is Calabrio's desktop settings, which may wait for the next
//! daily refresh).
//!
//! Starts the real `vigil-vault serve` (SQLite, loopback HTTPS), enrolls N devices into one
//! team, and runs N simulated agents, each with its own TLS connection, holding the signed
//! long poll a real agent holds (`POST /v1/policy/poll`, signed by its device key). When every
//! poll is waiting, `vigil-vault policy set --team` turns the team's screen off from a shell
//! (a separate process, as IT automation would). Each agent verifies what it receives with the
//! enrolled policy key and its device id, as the agent does, and notes when it has the new
//! version. Prints p50, p99 and max of change-to-applied, and how many agents got it.
//!
//! ```sh
//! cargo bench -p vigil-vault --bench vigil-vault-policy-bench -- [--agents 1000] [--max-p99-ms 2000]
//! ```
//! With `--max-p99-ms`, it exits non-zero when p99 is over (CI runs it that way, in the test
//! profile: `cargo test -p vigil-vault --bench vigil-vault-policy-bench -- --agents 1000 …`).

#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use vigil_proto::api::{PolicyPoll, SignedPolicyPoll, POLICY_POLL_KIND};
use vigil_proto::policy::SignedPolicy;
use vigil_seal::DeviceKey;
use vigil_vault_core::enroll::EnrollResponse;

struct Options {
    agents: usize,
    max_p99_ms: Option<u64>,
}

fn options() -> Options {
    let mut o = Options {
        agents: 1000,
        max_p99_ms: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--agents" => o.agents = value().parse().expect("--agents N"),
            "--max-p99-ms" => o.max_p99_ms = Some(value().parse().expect("--max-p99-ms N")),
            // `cargo bench` passes --bench; ignore what is not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One simulated agent: its connection, key and enrollment.
struct SimAgent {
    client: reqwest::Client,
    key: DeviceKey,
    enrolled: EnrollResponse,
}

async fn enroll(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &DeviceKey,
) -> EnrollResponse {
    let resp = client
        .post(format!("{base}/v1/enroll"))
        .json(&serde_json::json!({
            "token": token,
            "device_public_key": B64.encode(key.signing_key().verifying_key().as_bytes()),
            "hostname": "bench",
            "user": "agent",
        }))
        .send()
        .await
        .expect("enroll request");
    assert!(resp.status().is_success(), "enroll: {}", resp.status());
    resp.json().await.expect("enroll answer")
}

/// Polls until a policy newer than `after` arrives and verifies; returns when it did.
async fn wait_for_policy(
    agent: SimAgent,
    base: String,
    after: u64,
    ready: Arc<tokio::sync::Semaphore>,
) -> Instant {
    let policy_key: [u8; 32] = B64
        .decode(&agent.enrolled.policy_public_key)
        .expect("policy key")
        .try_into()
        .expect("32 bytes");
    let policy_key = VerifyingKey::from_bytes(&policy_key).expect("policy key");
    let mut first = true;
    loop {
        let poll = PolicyPoll {
            kind: POLICY_POLL_KIND.into(),
            device_id: agent.enrolled.device_id,
            sent_at: time::OffsetDateTime::now_utc(),
            after,
            wait_seconds: 25,
        };
        let body = SignedPolicyPoll::sign(poll, agent.key.signing_key())
            .expect("a poll signs")
            .as_bytes()
            .to_vec();
        let request = agent
            .client
            .post(format!("{base}/v1/policy/poll"))
            .header("content-type", "application/json")
            .body(body)
            .send();
        if first {
            // Counted as waiting once the request is on its way (the server holds it).
            first = false;
            ready.add_permits(1);
        }
        let resp = request.await.expect("poll");
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            continue;
        }
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        let bytes = resp.bytes().await.expect("policy body");
        let signed = SignedPolicy::verify_for(&bytes, &policy_key, agent.enrolled.device_id)
            .expect("a policy signed by the vault for this device");
        if signed.document.version > after && !signed.document.policy.screen {
            return Instant::now();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap().to_owned();
    support::run_ok(&["init", "--data", &d]);
    // An organization policy exists before the agents connect: they hold version 1.
    let org = tmp.path().join("org.json");
    std::fs::write(&org, r#"{"screen": true}"#).unwrap();
    support::run_ok(&[
        "policy",
        "set",
        "--data",
        &d,
        "--org",
        "--file",
        org.to_str().unwrap(),
    ]);

    let mut child = support::vault(&["serve", "--data", &d, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _served = Serving(child);
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening")
        .to_owned();
    let ca = std::fs::read(data.join("tls/ca.pem")).unwrap();

    // Enrollment tokens from the library (a thousand CLI runs would only measure process starts).
    let admin = vigil_vault_core::admin::Admin::open(&data).expect("data folder");
    let tokens: Vec<String> = (0..o.agents)
        .map(|_| {
            admin
                .create_token(
                    Some("support".into()),
                    time::Duration::hours(1),
                    "bench",
                    None,
                )
                .expect("token")
                .token
        })
        .collect();
    drop(admin);

    let started = Instant::now();
    let latencies = runtime.block_on(async {
        let mut agents = Vec::with_capacity(o.agents);
        for token in &tokens {
            let client = support::pinned_client(&ca);
            let key = DeviceKey::generate();
            let enrolled = enroll(&client, &base, token, &key).await;
            agents.push(SimAgent {
                client,
                key,
                enrolled,
            });
        }
        eprintln!(
            "{} agents enrolled in {:.1} s; connecting their long polls",
            agents.len(),
            started.elapsed().as_secs_f64()
        );
        let ready = Arc::new(tokio::sync::Semaphore::new(0));
        let tasks: Vec<_> = agents
            .into_iter()
            .map(|agent| tokio::spawn(wait_for_policy(agent, base.clone(), 1, ready.clone())))
            .collect();
        let _ = ready
            .acquire_many(u32::try_from(o.agents).unwrap())
            .await
            .expect("semaphore");
        // Let the last requests reach the server and park.
        tokio::time::sleep(Duration::from_secs(3)).await;

        let team = tmp.path().join("team.json");
        std::fs::write(&team, r#"{"screen": false}"#).unwrap();
        let changed_at = Instant::now();
        let out = support::vault(&[
            "policy",
            "set",
            "--data",
            &d,
            "--team",
            "support",
            "--file",
            team.to_str().unwrap(),
            "--reason",
            "bench",
        ])
        .output()
        .expect("policy set");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut latencies = Vec::with_capacity(tasks.len());
        for task in tasks {
            let applied = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("an agent never got the change")
                .expect("agent task");
            latencies.push(applied.saturating_duration_since(changed_at));
        }
        latencies
    });
    let mut sorted = latencies;
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = percentile(&sorted, 0.99);
    println!(
        "policy propagation, {} agents on loopback HTTPS (SQLite vault, debug={})",
        sorted.len(),
        cfg!(debug_assertions)
    );
    println!("| agents with the change | p50 ms | p99 ms | max ms | reference |");
    println!("|---|---|---|---|---|");
    println!(
        "| {}/{} | {:.0} | {:.0} | {:.0} | next daily refresh (Calabrio) |",
        sorted.len(),
        o.agents,
        ms(percentile(&sorted, 0.50)),
        ms(p99),
        ms(*sorted.last().unwrap())
    );
    if let Some(limit) = o.max_p99_ms {
        if ms(p99) > limit as f64 {
            eprintln!("p99 {:.0} ms is over the limit of {limit} ms", ms(p99));
            std::process::exit(1);
        }
    }
}
