// The console in a real browser against a real vault (issue 14): signing in (one-time password,
// password change, authenticator app, code), every page shown and accessible, team scoping.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { join, resolve } from "node:path";
import { launch, open, shot, signIn } from "./browser.mjs";
import { enrollDevice, enrollWithKey, heartbeat, startVault } from "./vault.mjs";

const AXE = readFileSync(resolve(import.meta.dirname, "../node_modules/axe-core/axe.min.js"), "utf8");
const ADMIN_PASSWORD = "correct horse battery staple 42";
const SUP_PASSWORD = "a supervisor's own long passphrase";
const CORA_PASSWORD = "compliance officer passphrase 7";
let v;
let browser;
const secrets = new Map();

before(async () => {
  v = await startVault();
  browser = await launch();
  await enrollDevice(v, "north", "desk-n1");
  await enrollDevice(v, "south", "desk-s1");
  v.run(["user", "add", "sam", "--role", "supervisor", "--team", "north", "--password-stdin"], {
    input: SUP_PASSWORD,
  });
  v.run(["user", "add", "cora", "--role", "compliance", "--password-stdin"], { input: CORA_PASSWORD });
});

after(async () => {
  await browser?.close();
  v?.stop();
});

test("the admin signs in with the one-time password, changes it and adds an authenticator", async () => {
  const page = await open(browser, v);
  await signIn(page, "admin", v.adminPassword, { newPassword: ADMIN_PASSWORD, secrets });
  await page.getByRole("heading", { name: "Live agents" }).waitFor();
  assert.ok(secrets.has("admin"), "the second factor was enrolled");
  // The old password no longer works; the new one with a code does (a fresh tab).
  const again = await open(browser, v);
  await signIn(again, "admin", ADMIN_PASSWORD, { secrets });
  await again.getByRole("heading", { name: "Live agents" }).waitFor();
});

/** Opens each page and checks it: content, a screenshot, no serious axe violation. */
async function checkPages(page, pages) {
  for (const [path, heading] of pages) {
    await page.goto(`${v.base}/#/${path}`);
    await page.getByRole("heading", { level: 1, name: heading }).waitFor();
    if (path === "recordings") await page.getByRole("button", { name: "Search" }).click();
    await page.waitForLoadState("networkidle");
    const { bytes, text } = await shot(page, path);
    assert.ok(text.includes(heading) && text.length > 60, `${path} shows little: ${text}`);
    assert.ok(bytes > 8_000, `${path}.png is ${bytes} bytes: blank?`);
    assert.deepEqual(await axeSerious(page), [], path);
  }
}

async function axeSerious(page) {
  await page.addScriptTag({ content: AXE });
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations
      .filter((x) => x.impact === "serious" || x.impact === "critical")
      .map((x) => `${x.id}: ${x.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
}

test("every page renders, carries a strict CSP and has no serious accessibility violation", async () => {
  const fresh = await open(browser, v, { bypassCSP: true });
  await fresh.getByRole("heading", { name: "Sign in to Vigil" }).waitFor();
  await shot(fresh, "signin");
  assert.deepEqual(await axeSerious(fresh), [], "signin");
  const response = await fresh.request.get(`${v.base}/`);
  assert.match(response.headers()["content-security-policy"], /script-src 'self'/);
  assert.doesNotMatch(response.headers()["content-security-policy"], /unsafe/);

  const admin = await open(browser, v, { bypassCSP: true });
  await signIn(admin, "admin", ADMIN_PASSWORD, { secrets });
  await checkPages(admin, [
    ["agents", "Live agents"],
    ["audit", "Audit log"],
    ["people", "Users and roles"],
    ["devices", "Devices"],
  ]);
  const cora = await open(browser, v, { bypassCSP: true });
  await signIn(cora, "cora", CORA_PASSWORD, { secrets });
  await checkPages(cora, [
    ["recordings", "Recordings"],
    ["holds", "Legal holds"],
  ]);
});

test("a supervisor of north sees north's agents only, and gets 'Not allowed' for the audit log", async () => {
  const page = await open(browser, v);
  await signIn(page, "sam", SUP_PASSWORD, { secrets });
  await page.getByRole("heading", { name: "Live agents" }).waitFor();
  await page.getByText("desk-n1").waitFor();
  assert.equal(await page.getByText("desk-s1").count(), 0, "south's agent is shown");
  assert.equal(await page.getByRole("link", { name: "Audit log" }).count(), 0);
  await page.goto(`${v.base}/#/audit`);
  // No audit permission: the page is not in the supervisor's console at all.
  await page.getByRole("heading", { level: 1, name: "Live agents" }).waitFor();
});

test("every action is reachable from the keyboard", async () => {
  const page = await open(browser, v);
  await signIn(page, "admin", ADMIN_PASSWORD, { secrets });
  await page.getByRole("heading", { name: "Live agents" }).waitFor();
  // Tab through the page (focus starts on the heading, and wraps round): the skip link, each
  // page's link, the filter and sign-out are all reached.
  const reached = [];
  for (let i = 0; i < 30; i += 1) {
    await page.keyboard.press("Tab");
    reached.push(
      await page.evaluate(() => {
        const el = document.activeElement;
        return el?.getAttribute("aria-label") || el?.textContent?.trim() || el?.tagName || "";
      }),
    );
  }
  for (const name of ["Skip to content", "Live agents", "Audit log", "Users and roles", "Devices", "Sign out"]) {
    assert.ok(reached.includes(name), `${name} not reached by Tab: ${reached.join(" | ")}`);
  }
  // Enter on a focused link opens its page.
  await page.getByRole("link", { name: "Audit log" }).focus();
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: "Audit log" }).waitFor();
  await page.getByRole("cell", { name: "audit.read" }).first().waitFor();
});

test("an agent's row follows its state within 2 s (server-sent events)", async () => {
  const desk = await enrollWithKey(v, "north", "desk-live");
  const page = await open(browser, v);
  await signIn(page, "admin", ADMIN_PASSWORD, { secrets });
  const state = page.locator(`[data-device="${desk.id}"]`);
  const timings = [];
  for (const [report, shown] of [
    [{ recording: true }, "recording"],
    [{ recording: true, masked: true }, "masked"],
    [{ recording: true }, "recording"],
    [{ recording: true, paused: true }, "paused"],
    [{ recording: false }, "idle"],
  ]) {
    const sent = Date.now();
    await heartbeat(v, desk, report);
    await state.filter({ hasText: new RegExp(`^${shown}`) }).waitFor({ timeout: 2_000 });
    timings.push(Date.now() - sent);
  }
  console.log(`agents page: heartbeat to row, ms: ${timings.join(", ")}`);
});
