// Vigil field focus: background (a service worker in Chromium/Edge, an event page in Firefox).
//
// Relays the content scripts' focus/blur/page reports to the Vigil agent over native
// messaging (host "com.vigil.agent"), says hello on every connection and sends a heartbeat
// every 2 s while connected. While the host is unreachable, reports are queued (bounded) and
// the connection is retried with exponential backoff.
//
// Worker lifetime (see README.md): Chromium 105+ keeps an extension service worker running
// while it has an open native-messaging port (crbug.com/1189678), so the heartbeat interval
// runs as long as the host is connected. While disconnected the worker may be stopped after
// ~30 s idle, losing its backoff timer: the "vigil-reconnect" alarm (every 30 s, the shortest
// period Chromium allows) and every content-script report start it again, and starting
// connects at once.
"use strict";

const api = globalThis.chrome?.runtime ? globalThis.chrome : globalThis.browser;

const HOST = "com.vigil.agent";
const VERSION = api.runtime.getManifest().version;
const HEARTBEAT_MS = 2000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 60000;
// A port that has neither failed nor been answered within this time is taken as connected
// (connectNative reports "host not found" only through onDisconnect, a moment later).
const SETTLE_MS = 1500;
const MAX_QUEUE = 1000;
const RELAYED = new Set(["focus", "blur", "page", "fields", "leaving", "settled"]);
// In the manifest's order: content.js takes its patterns from recognise.js.
const CONTENT_SCRIPTS = ["recognise.js", "content.js"];

let port = null;
let confirmed = false;
let queue = []; // reports waiting for a connection
let unconfirmed = []; // reports handed to a port that has not yet proved alive
let heartbeatTimer = null;
let settleTimer = null;
let reconnectTimer = null;
let backoffMs = BACKOFF_MIN_MS;
let agentRecording = false; // what the host last said

function enqueue(messages) {
  queue = queue.concat(messages);
  if (queue.length > MAX_QUEUE) queue = queue.slice(queue.length - MAX_QUEUE);
}

// Sends on the open port; `report` messages are kept for a resend until the port is confirmed.
function post(message, report) {
  if (!port) {
    if (report) enqueue([message]);
    return;
  }
  try {
    port.postMessage(message);
    if (report && !confirmed) unconfirmed.push(message);
  } catch (e) {
    if (report) enqueue([message]);
    dropPort(port, String(e && e.message ? e.message : e));
  }
}

function confirm(p) {
  if (p !== port || confirmed) return;
  confirmed = true;
  unconfirmed = [];
  backoffMs = BACKOFF_MIN_MS;
}

function connect() {
  if (port || reconnectTimer) return;
  let p;
  try {
    p = api.runtime.connectNative(HOST);
  } catch (e) {
    scheduleReconnect(String(e && e.message ? e.message : e));
    return;
  }
  port = p;
  confirmed = false;
  unconfirmed = [];
  p.onMessage.addListener((message) => {
    confirm(p);
    // The host answers {"type":"state","recording":…}: an agent that has just started
    // recording knows nothing of what the tabs show, so every tab reports again.
    const recording = Boolean(message && message.recording === true);
    if (recording && !agentRecording) resyncAll();
    agentRecording = recording;
  });
  p.onDisconnect.addListener(() => {
    const error = api.runtime.lastError?.message || p.error?.message || "host disconnected";
    dropPort(p, error);
  });
  post({ type: "hello", version: VERSION }, false);
  const pending = queue;
  queue = [];
  for (const m of pending) post(m, true);
  heartbeatTimer = setInterval(() => post({ type: "heartbeat" }, false), HEARTBEAT_MS);
  settleTimer = setTimeout(() => confirm(p), SETTLE_MS);
  // Tabs whose page loaded before the extension have no content script: add it.
  attachAll();
}

// Every tab's every frame reports its page, focus and fields again.
function resyncAll() {
  forEachTab((tabId) => api.tabs.sendMessage(tabId, { type: "resync" }));
}

// Puts the content script into every open tab and frame. A page opened at browser start can
// load before the extension does, and then has no content script at all until it navigates
// (seen in CI: the first page's reports never came); `scripting.executeScript` adds it, the
// script reports what the page shows at once, and its guard makes a second injection a no-op.
function attachAll() {
  if (!api.scripting) return;
  // Pages the extension may not run in (the browser's own pages) refuse: nothing to do.
  forEachTab((tabId) =>
    api.scripting.executeScript({ target: { tabId, allFrames: true }, files: CONTENT_SCRIPTS }),
  );
}

// Calls `action(tabId)` for every open tab; a tab that refuses (no content script, a page of
// the browser's own) is passed over, whether it throws or its promise rejects.
function forEachTab(action) {
  if (!api.tabs) return;
  api.tabs.query({}, (tabs) => {
    void api.runtime.lastError;
    for (const tab of tabs || []) {
      if (typeof tab.id !== "number" || tab.id < 0) continue;
      try {
        const done = action(tab.id);
        if (done && typeof done.catch === "function") done.catch(() => {});
      } catch (_) {
        // Not a page of ours.
      }
    }
  });
}

// Fields each tab's top frame reported as shown or hidden: when the tab closes without its
// page saying so (a page's last message may be lost at unload), they are reported gone.
const tabFields = new Map(); // tabId -> Set(key)

function trackFields(tabId, message) {
  if (typeof tabId !== "number" || !Array.isArray(message.fields)) return;
  let keys = tabFields.get(tabId);
  if (!keys) {
    keys = new Set();
    tabFields.set(tabId, keys);
  }
  for (const f of message.fields) {
    if (!f || typeof f.key !== "string") continue;
    if (f.presence && f.presence.state === "gone") keys.delete(f.key);
    else keys.add(f.key);
  }
  if (keys.size === 0) tabFields.delete(tabId);
}

// The top frame's document each tab shows: when another one speaks (a navigation, a page
// restored from the back/forward cache), the fields the old one reported are gone. A page
// going into that cache cannot always send its own "gone" (its timers and ports freeze).
const tabDocs = new Map(); // tabId -> document id

function trackDocument(tabId, doc) {
  if (typeof tabId !== "number" || typeof doc !== "string") return;
  const old = tabDocs.get(tabId);
  tabDocs.set(tabId, doc);
  if (old === undefined || old === doc) return;
  const keys = tabFields.get(tabId);
  tabFields.delete(tabId);
  console.info(`vigil: tab ${tabId} shows another page; ${keys ? keys.size : 0} fields gone`);
  if (!keys || keys.size === 0) return;
  const fields = [...keys].map((key) => ({ key, presence: { state: "gone" } }));
  post({ type: "fields", at_wall_ms: Date.now(), fields }, true);
}

if (api.tabs && api.tabs.onRemoved) {
  api.tabs.onRemoved.addListener((tabId) => {
    const keys = tabFields.get(tabId);
    tabFields.delete(tabId);
    tabDocs.delete(tabId);
    if (!keys || keys.size === 0) return;
    const fields = [...keys].map((key) => ({ key, presence: { state: "gone" } }));
    post({ type: "fields", at_wall_ms: Date.now(), fields }, true);
    connect();
  });
}

function dropPort(p, error) {
  if (p !== port) return;
  port = null;
  agentRecording = false;
  clearInterval(heartbeatTimer);
  clearTimeout(settleTimer);
  heartbeatTimer = settleTimer = null;
  // Reports sent to a host that never came up go out again on the next connection.
  const resend = unconfirmed;
  unconfirmed = [];
  confirmed = false;
  queue = resend.concat(queue).slice(-MAX_QUEUE);
  try {
    p.disconnect();
  } catch (_) {
    // Already closed.
  }
  scheduleReconnect(error);
}

function scheduleReconnect(error) {
  if (reconnectTimer) return;
  const delay = backoffMs + Math.floor(Math.random() * 250);
  console.warn(`vigil: native host ${HOST} unavailable (${error}); retrying in ${delay} ms`);
  backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
  reconnectTimer = setTimeout(() => {
    reconnectTimer = null;
    connect();
  }, delay);
}

// Listeners are registered synchronously at the top level, as an MV3 worker must.
api.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (sender.id !== api.runtime.id || !message) return;
  // A content script sends what has waited together, in order.
  const batch = message.type === "batch" && Array.isArray(message.messages) ? message.messages : [message];
  const reports = batch.filter((m) => m && RELAYED.has(m.type));
  if (reports.length === 0) return;
  for (const report of reports) {
    if (sender.tab && sender.frameId === 0) trackDocument(sender.tab.id, report.doc);
    if (report.type === "fields" && sender.tab) trackFields(sender.tab.id, report);
    post(report, true);
  }
  connect();
  // The acknowledgement the content script waits for before its next report.
  sendResponse({ ok: true });
});

// The browser knows of a navigation before the new page paints, and independently of the old
// page, which may be frozen into the back/forward cache before its own "leaving" goes out:
// the screen is masked from here until the next page has reported (or a few seconds pass).
function leaving(details) {
  if (!details || details.frameId !== 0) return;
  post({ type: "leaving", at_wall_ms: details.timeStamp || Date.now() }, true);
  connect();
}
if (api.webNavigation) {
  api.webNavigation.onBeforeNavigate.addListener(leaving);
  api.webNavigation.onCommitted.addListener(leaving);
}
if (api.tabs && api.tabs.onActivated) {
  api.tabs.onActivated.addListener(() => {
    post({ type: "leaving", at_wall_ms: Date.now() }, true);
    connect();
  });
}

api.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === "vigil-reconnect") connect();
});
api.alarms.get("vigil-reconnect", (existing) => {
  if (!existing) api.alarms.create("vigil-reconnect", { periodInMinutes: 0.5 });
});

api.runtime.onStartup.addListener(connect);
api.runtime.onInstalled.addListener(connect);
connect();
