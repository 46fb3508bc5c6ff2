// A real vault for the console's browser tests: `vigil-vault init` and `serve` from the
// workspace's build (target/debug, or VIGIL_VAULT_BIN), on a free loopback port over TLS.
import { spawn, spawnSync } from "node:child_process";
import { createHash, createHmac, generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
export const VAULT_BIN = process.env.VIGIL_VAULT_BIN ?? join(ROOT, "target/debug/vigil-vault");
const VAULT_KEY = "console tests' vault key, long enough";

/** Runs a `vigil-vault` command; its stdout. */
export function vault(args, { input, data } = {}) {
  const full = data ? [...args.slice(0, 2), "--data", data, ...args.slice(2)] : args;
  const out = spawnSync(VAULT_BIN, full, {
    input,
    encoding: "utf8",
    env: { ...process.env, VIGIL_VAULT_KEY: VAULT_KEY, RUST_LOG: "warn" },
  });
  if (out.status !== 0) throw new Error(`vigil-vault ${full.join(" ")}: ${out.stderr}`);
  return out.stdout;
}

/** A deployment: initialised, served; `stop()` ends it and removes its folder. */
export async function startVault() {
  const dir = mkdtempSync(join(tmpdir(), "vigil-console-"));
  const data = join(dir, "vault");
  const init = vault(["init", "--data", data, "--host", "127.0.0.1"]);
  const adminPassword = /one-time password: (\S+)/.exec(init)[1];
  const child = spawn(VAULT_BIN, ["serve", "--data", data, "--listen", "127.0.0.1:0"], {
    env: { ...process.env, VIGIL_VAULT_KEY: VAULT_KEY, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const base = await new Promise((ok, fail) => {
    let text = "";
    child.stdout.on("data", (chunk) => {
      text += chunk;
      const m = /listening on (https:\/\/\S+)/.exec(text);
      if (m) ok(m[1]);
    });
    child.on("exit", (code) => fail(new Error(`serve exited (${code})`)));
  });
  return {
    base,
    data,
    adminPassword,
    run: (args, opts = {}) => vault(args, { ...opts, data }),
    stop: () => {
      child.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret at `when` (ms). */
export function totp(secretBase32, when = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secretBase32.replace(/=+$/, "").toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(when / 1000 / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, "0");
}

/** Enrolls a new device for `team` over the API (a real Ed25519 key); its id and key. */
export async function enrollDevice(v, team, hostname) {
  const device = await enrollWithKey(v, team, hostname);
  return device.id;
}

/** Enrolls a device; `{id, privateKey, publicKey}` (its heartbeats can be signed). */
export async function enrollWithKey(v, team, hostname) {
  const token = v.run(["token", "create", "--team", team]).trim();
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const answer = await call(v, "POST", "/v1/enroll", {
    token,
    device_public_key: raw.toString("hex"),
    hostname,
    user: `agent-${hostname}`,
  });
  if (answer.status !== 200) throw new Error(`enroll: ${answer.status} ${answer.text}`);
  return { id: JSON.parse(answer.text).device_id, privateKey, publicKey: raw };
}

/**
 * A signed heartbeat from `device`, as an agent sends it (`vigil_proto::api::Heartbeat`):
 * `state` says recording, screen, masked, paused.
 */
export async function heartbeat(v, device, state) {
  const doc = JSON.stringify({
    kind: "vigil.heartbeat",
    device_id: device.id,
    sent_at: new Date().toISOString(),
    sessions: [],
    backlog: { segments: 0, bytes: 0, oldest: null },
    agent: {
      agent_version: "console-test",
      policy_version: 0,
      recording: state.recording ?? true,
      screen: state.screen ?? true,
      masked: state.masked ?? false,
      paused: state.paused ?? false,
    },
  });
  const sig = sign(null, Buffer.from(doc), device.privateKey).toString("base64");
  const body = `{"heartbeat":${doc},"signature":${JSON.stringify({
    alg: "ed25519",
    public_key: device.publicKey.toString("base64"),
    sig,
  })}}`;
  const answer = await callRaw(v, "POST", "/v1/heartbeat", body);
  if (answer.status !== 200) throw new Error(`heartbeat: ${answer.status} ${answer.text}`);
}

/** An HTTPS request to the vault with a JSON body (or none): `{status, text}`. */
export function call(v, method, path, body) {
  return callRaw(v, method, path, body ? JSON.stringify(body) : undefined);
}

/** An HTTPS request to the vault, its CA pinned, with `text` as the body. */
export function callRaw(v, method, path, text) {
  const ca = readFileSync(join(v.data, "tls/ca.pem"));
  return new Promise((ok, fail) => {
    const req = request(
      `${v.base}${path}`,
      { method, ca, headers: text ? { "content-type": "application/json" } : {} },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => ok({ status: res.statusCode, headers: res.headers, text }));
      },
    );
    req.on("error", fail);
    req.end(text);
  });
}

export const sha = (s) => createHash("sha256").update(s).digest("hex");
