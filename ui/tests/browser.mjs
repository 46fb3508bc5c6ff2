// Debian's Chromium driven by playwright-core (brief §7): one browser per test file.
import { mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import { totp } from "./vault.mjs";

const ROOT = resolve(import.meta.dirname, "../..");
export const SHOTS = join(ROOT, "target/console-shots");

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
}

/** A new tab on the vault's console (the vault's own CA is not in Chromium's store). */
export async function open(browser, v, { bypassCSP = false } = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, bypassCSP });
  const page = await context.newPage();
  await page.goto(`${v.base}/`);
  return page;
}

const usedStep = new Map();

/**
 * A code for `name` the vault has not seen: each time step is accepted once (replays are
 * refused), and the vault takes the next step too, so a second sign-in within 30 s uses it;
 * a third waits for the clock.
 */
async function freshCode(name, secret) {
  for (;;) {
    const now = Math.floor(Date.now() / 30_000);
    const step = Math.max(now, (usedStep.get(name) ?? -1) + 1);
    if (step <= now + 1) {
      usedStep.set(name, step);
      return totp(secret, step * 30_000 + 1_000);
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/**
 * Signs `name` in through whatever the vault asks: the password, a password change (to
 * `newPassword`), an authenticator app (its secret kept in `secrets`), a code.
 */
export async function signIn(page, name, password, { newPassword, secrets }) {
  await page.getByLabel("Account").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  for (let step = 0; step < 6; step += 1) {
    const next = await Promise.race([
      page.getByRole("navigation", { name: "Console" }).waitFor().then(() => "in"),
      page.getByLabel("New password", { exact: true }).waitFor().then(() => "change"),
      page.getByRole("button", { name: "Set up an authenticator app" }).waitFor().then(() => "enroll"),
      page.getByLabel("Code from your authenticator app").waitFor().then(() => "code"),
      page.getByRole("alert").waitFor().then(() => "error"),
    ]);
    if (next === "in") return;
    if (next === "error") throw new Error(await page.getByRole("alert").innerText());
    if (next === "change") {
      await page.getByLabel("New password", { exact: true }).fill(newPassword);
      await page.getByLabel("New password again").fill(newPassword);
      await page.getByRole("button", { name: "Change password" }).click();
      await page.getByLabel("New password", { exact: true }).waitFor({ state: "detached" });
    } else if (next === "enroll") {
      await page.getByRole("button", { name: "Set up an authenticator app" }).click();
      const secret = (await page.locator("code.secret").innerText()).trim();
      secrets.set(name, secret);
      await page.getByLabel("First code from the app").fill(await freshCode(name, secret));
      await page.getByRole("button", { name: "Confirm" }).click();
    } else {
      await page
        .getByLabel("Code from your authenticator app")
        .fill(await freshCode(name, secrets.get(name)));
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByLabel("Code from your authenticator app").waitFor({ state: "detached" });
    }
  }
  throw new Error("sign-in did not finish");
}

/** A screenshot under target/console-shots, checked for content (a blank page compresses small). */
export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  const text = await page.locator("body").innerText();
  return { path, bytes: statSync(path).size, text };
}
