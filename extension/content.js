// Vigil field focus: content script (every http/https/file page, every frame, document_start).
//
// Reports which form field has focus to the background worker, which relays it to the Vigil
// agent over native messaging. It never reads what is typed: only whether a field is empty.
// Message shapes are the contract with `vigil-agent native-host`; see README.md.
"use strict";

(() => {
  // Injected twice (the background injects into every open tab whenever its host connects,
  // because a page opened at browser start can load before the extension does): listen once.
  if (globalThis.__vigilFieldFocus) return;
  globalThis.__vigilFieldFocus = true;

  const api = globalThis.chrome?.runtime ? globalThis.chrome : globalThis.browser;
  // What names and patterns say a field or a text holds card data (recognise.js, run first).
  const recognise = globalThis.__vigilRecognise;
  const TOP = window === window.top;

  // Reports go out in order, each batch until the background acknowledges it: a report sent
  // while the worker is still starting (browser start, extension update) fails with
  // "Receiving end does not exist" and is sent again, never dropped — a lost focus report
  // would leave a payment field unmasked. What waits goes in one batch, one acknowledgement
  // for all: while a page loads, each answer waits for its busy main thread, and reports
  // sent one round trip each fell tens of milliseconds behind. The queue is bounded; the
  // oldest go first.
  const RETRY_MS = [100, 200, 400, 800, 1600, 3200];
  const INFLIGHT_MS = 3000;
  const MAX_PENDING = 200;
  const MAX_BATCH = 50;
  let pending = [];
  let sending = false;
  let inFlight = 0; // how many of `pending`, from the first, the batch in flight carries

  let retryTimer = null;

  function flush(attempt) {
    if (sending || pending.length === 0) return;
    // A page prerendered from the address bar may not message the extension until it is
    // shown; its reports wait and go at activation (prerenderingchange), not after backoff.
    if (document.prerendering) return;
    sending = true;
    const batch = pending.slice(0, MAX_BATCH);
    inFlight = batch.length;
    const message = batch.length === 1 ? batch[0] : { type: "batch", messages: batch };
    let answered = false;
    // An answer that never comes (a worker stopped mid-message) must not stall every later
    // report: after 3 s the message counts as failed and goes again.
    const inflight = setTimeout(() => {
      if (!answered) {
        answered = true;
        retry();
      }
    }, INFLIGHT_MS);
    const retry = () => {
      sending = false;
      if (!api.runtime || !api.runtime.id) {
        // The extension is gone (updated or removed): nothing will answer again.
        pending = [];
        return;
      }
      // A worker that starts slowly (browser start under load) is waited for, never given
      // up on: a dropped report would leave a field unmasked.
      retryTimer = setTimeout(() => {
        retryTimer = null;
        flush(attempt + 1);
      }, RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]);
    };
    try {
      api.runtime.sendMessage(message, (answer) => {
        const failed = api.runtime.lastError || !answer || !answer.ok;
        if (answered) return;
        answered = true;
        clearTimeout(inflight);
        if (failed) {
          retry();
          return;
        }
        sending = false;
        pending.splice(0, inFlight);
        inFlight = 0;
        flush(0);
      });
    } catch (_) {
      // The extension was updated or removed under this page: its context is gone.
      answered = true;
      clearTimeout(inflight);
      pending = [];
      sending = false;
    }
  }

  // Send what waits now, without waiting out a backoff (the page was just shown).
  function kick() {
    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    flush(0);
  }
  // Before when nothing of this page was on screen (wall ms; null: unknown), so that a first
  // sighting is dated no earlier: the first rendering update of a page loaded here (one
  // paints after its animation-frame callbacks, and this one was asked for at document_start,
  // before any), or the activation of a page prerendered from the address bar (rendered
  // while hidden). Unknown for a script injected into a page already loaded.
  let notShownBefore = null;
  if (TOP && document.readyState === "loading" && !document.prerendering && typeof requestAnimationFrame === "function") {
    requestAnimationFrame(() => {
      notShownBefore = wallMs();
    });
  }
  // The earliest a change made at `t` (wall ms) can have been on screen.
  function shownNoEarlierThan(t) {
    return notShownBefore !== null && t < notShownBefore ? notShownBefore : t;
  }
  document.addEventListener("prerenderingchange", (event) => {
    if (TOP) {
      const nav = performance.getEntriesByType?.("navigation")?.[0];
      const activated = nav && nav.activationStart > 0 ? wallMs(nav.activationStart) : wallMs(event.timeStamp);
      notShownBefore = Math.max(notShownBefore ?? 0, activated);
      // Sightings made while prerendered wait here: date them to the activation.
      for (const message of pending) {
        if (message.type !== "fields") continue;
        for (const entry of message.fields) {
          if (typeof entry.since_wall_ms === "number") entry.since_wall_ms = shownNoEarlierThan(entry.since_wall_ms);
        }
      }
    }
    kick();
  });
  document.addEventListener("visibilitychange", kick);
  window.addEventListener("pageshow", kick);

  // A fields report waiting behind one in flight is merged into the next rather than queued:
  // each is a whole picture, so only the newest positions matter, while descriptions, first
  // sightings and "gone" entries of the older one are kept.
  function mergeFields(older, newer) {
    const byKey = new Map(older.fields.map((f) => [f.key, f]));
    for (const f of newer.fields) {
      const old = byKey.get(f.key);
      const merged = { ...f };
      if (old && old.field && !f.field) merged.field = old.field;
      if (old && old.since_wall_ms !== undefined && f.since_wall_ms === undefined) merged.since_wall_ms = old.since_wall_ms;
      byKey.set(f.key, merged);
    }
    return { type: "fields", at_wall_ms: newer.at_wall_ms, fields: [...byKey.values()], doc: newer.doc };
  }

  function send(message) {
    // The top frame names its document, so that the worker can tell a new page in the tab
    // (and report the old page's fields gone, whose own last words a navigation may cut).
    if (TOP) message.doc = FRAME_ID;
    const waiting = pending.length > Math.max(1, inFlight) ? pending[pending.length - 1] : null;
    if (message.type === "fields" && waiting && waiting.type === "fields") {
      pending[pending.length - 1] = mergeFields(waiting, message);
      flush(0);
      return;
    }
    pending.push(message);
    if (pending.length > MAX_PENDING) {
      // Keep the reports in flight (first) and the newest: what has focus now matters most.
      const kept = Math.max(1, inFlight);
      pending = pending.slice(0, kept).concat(pending.slice(pending.length - MAX_PENDING + kept));
    }
    flush(0);
  }

  // Wall-clock milliseconds of an event: performance.timeOrigin + event.timeStamp (a
  // DOMHighResTimeStamp relative to this document's time origin). The page clock is monotonic
  // and stops while the machine sleeps, so in a page that has been open across a suspend it
  // falls behind the wall clock; that skew (measured now against Date.now()) is added back
  // when it is larger than Date.now()'s coarse resolution.
  function wallMs(timeStamp) {
    const now = performance.now();
    const t = typeof timeStamp === "number" && timeStamp > 0 && timeStamp <= now ? timeStamp : now;
    const skew = Date.now() - (performance.timeOrigin + now);
    return performance.timeOrigin + t + (Math.abs(skew) > 50 ? skew : 0);
  }

  // ---- Which elements are fields -------------------------------------------------------

  function isField(el) {
    if (!(el instanceof Element)) return false;
    const tag = el.localName;
    if (tag === "input" || tag === "textarea" || tag === "select") return true;
    return el.isContentEditable === true;
  }

  // The element that really has focus: focus events are retargeted to the host of an open
  // shadow root, composedPath() still starts at the inner element. Closed shadow roots stay
  // hidden (their host is reported if it is a field itself).
  function focusTarget(event) {
    const path = typeof event.composedPath === "function" ? event.composedPath() : [];
    const inner = fieldOf(path.length > 0 ? path[0] : event.target);
    return inner || (isField(event.target) ? event.target : null);
  }

  function fieldOf(first) {
    if (isField(first)) {
      // Inside a contenteditable region, report the editing host, not a child element.
      if (!["input", "textarea", "select"].includes(first.localName)) {
        let host = first;
        while (host.parentElement && host.parentElement.isContentEditable) host = host.parentElement;
        return host;
      }
      return first;
    }
    return null;
  }

  // The focused element, through open shadow roots.
  function deepActiveElement() {
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    return el;
  }

  // ---- Screen rectangle ----------------------------------------------------------------------

  // Chromium's preset zoom levels; page zoom is estimated from outerWidth / innerWidth.
  const ZOOMS = [0.25, 1 / 3, 0.5, 2 / 3, 0.75, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5];

  function pageZoom(top) {
    const ratio = top.innerWidth > 0 ? top.outerWidth / top.innerWidth : 1;
    let best = 1;
    for (const z of ZOOMS) if (Math.abs(z - ratio) < Math.abs(best - ratio)) best = z;
    // A ratio far from every preset means side borders or a custom zoom: assume 100 %.
    return Math.abs(best - ratio) / best < 0.03 ? best : 1;
  }

  // Offset (CSS px) of this frame's viewport in the top viewport, or null when an ancestor
  // frame is cross-origin (its frameElement cannot be read).
  function frameOffset() {
    let x = 0;
    let y = 0;
    let w = window;
    try {
      while (w !== w.top) {
        const frame = w.frameElement;
        if (!frame) return null;
        const r = frame.getBoundingClientRect();
        const style = w.parent.getComputedStyle(frame);
        x += r.left + frame.clientLeft + (parseFloat(style.paddingLeft) || 0);
        y += r.top + frame.clientTop + (parseFloat(style.paddingTop) || 0);
        w = w.parent;
      }
    } catch (_) {
      return null;
    }
    return { x, y, top: w };
  }

  // Screen pixels, as the recorder sees them. Approximation (see README.md): the window's side
  // and bottom borders are taken as 0 (true for kiosk and maximised Chromium windows); the top
  // browser chrome is outerHeight - innerHeight; window.screenX/screenY and outer sizes are in
  // device-independent pixels, page coordinates in CSS pixels.
  function screenRect(el) {
    const off = frameOffset();
    if (!off) return null;
    const top = off.top;
    const r = el.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const zoom = pageZoom(top);
    const dsf = dpr / zoom; // device pixels per DIP
    const chromeTop = Math.max(0, top.outerHeight - top.innerHeight * zoom); // DIP
    const x = top.screenX * dsf + (off.x + r.left) * dpr;
    const y = (top.screenY + chromeTop) * dsf + (off.y + r.top) * dpr;
    const x1 = x + r.width * dpr;
    const y1 = y + r.height * dpr;
    return {
      x: Math.round(x),
      y: Math.round(y),
      width: Math.max(0, Math.round(x1) - Math.round(x)),
      height: Math.max(0, Math.round(y1) - Math.round(y)),
    };
  }

  // ---- Page reports (top frame) ----------------------------------------------------------------

  let pageSent = false;

  function page(timeStamp) {
    pageSent = true;
    send({ type: "page", at_wall_ms: wallMs(timeStamp), url: location.href, title: document.title });
  }

  function ensurePage(timeStamp) {
    if (TOP && !pageSent) page(timeStamp);
  }

  // ---- Where card data is on screen (brief §5: masked for as long as it can be seen) --------
  //
  // Card data stays readable after focus leaves its field, so each frame follows the fields
  // that may hold it (payment-like, or focused before, and holding a value) and card numbers
  // shown as text (Luhn-valid, and expiry dates or security codes beside card labels). Child
  // frames hand their rectangles to their parent with postMessage; each parent moves them by
  // the frame element's position and clips them to it, up to the top frame, which maps them
  // to the screen and reports them: at once when something moves, shows, hides or empties,
  // and every 100 ms while anything is shown (the agent masks the whole screen when a
  // position is older than a frame interval). Never text: keys, rectangles, descriptions.

  const FIELD_TICK_MS = 100;
  // A child frame's report older than this is dropped: its fields go stale in the agent.
  const CHILD_STALE_MS = 400;
  const MSG = "__vigil_fields_v1";
  const FRAME_ID = Math.random().toString(36).slice(2, 10);
  const focusedBefore = new WeakSet();
  const keys = new WeakMap();
  let nextKey = 0;

  function keyOf(node) {
    let key = keys.get(node);
    if (!key) {
      key = `${FRAME_ID}/${++nextKey}`;
      keys.set(node, key);
    }
    return key;
  }

  // (A function: the title is known only once the frame's document has parsed.)
  const inPaymentFrame = () =>
    !TOP && (recognise.PAYMENT_FRAME_HOSTS.test(location.hostname) || /card|payment|secure.?field|hosted.?field/i.test(document.title || ""));

  function descriptorText(el) {
    return [
      el.getAttribute("autocomplete"),
      el.getAttribute("name"),
      el.id,
      el.getAttribute("placeholder"),
      el.getAttribute("aria-label"),
      el.getAttribute("data-fieldtype"),
      el.getAttribute("data-elements-stable-field-name"),
      recognise.accessibleName(el),
    ]
      .filter(Boolean)
      .join(" ");
  }

  // The autocomplete tokens a payment field would have had, for fields the page did not
  // label (hosted fields in payment frames, card-shaped placeholders): sent in `autocomplete`
  // only when the page gave none, so the agent's rules recognise them.
  function inferredTokens(el) {
    const text = descriptorText(el);
    const placeholder = el.getAttribute("placeholder") || "";
    if (/^[\d\s•*x-]{12,}$/i.test(placeholder.trim()) || /card.?num|cc.?num|kartennummer|num(e|é)ro de carte|n(u|ú)mero de tarjeta/i.test(text)) return ["cc-number"];
    if (recognise.CSC_WORDS.test(text)) return ["cc-csc"];
    if (recognise.EXPIRY_WORDS.test(text) || /^\s*mm\s*\/\s*(yy|aa|jj)/i.test(placeholder)) return ["cc-exp"];
    if (inPaymentFrame()) return ["cc-number"];
    return [];
  }

  function isPaymentLike(el) {
    if (el.localName === "input" && el.type === "password") return true;
    if (autocompleteTokens(el).some((t) => t.startsWith("cc-"))) return true;
    return inPaymentFrame() || recognise.PAYMENT_WORDS.test(descriptorText(el)) || inferredTokens(el).length > 0;
  }

  function isCandidate(el) {
    return hasValue(el) && (focusedBefore.has(el) || isPaymentLike(el));
  }

  // ---- Card numbers shown as text ----

  const SKIP_SCAN = new Set(["script", "style", "noscript", "template", "textarea", "input", "select", "option"]);
  // The text around a node that says what its digits are (its element and the one before).
  function labelContext(node) {
    const parent = node.parentElement;
    if (!parent) return "";
    const prev = parent.previousElementSibling;
    const parts = [parent.textContent || ""];
    if (prev) parts.push(prev.textContent || "");
    const row = parent.closest("tr, li, dl, p, div");
    if (row && row !== parent) parts.push((row.textContent || "").slice(0, 200));
    return parts.join(" ").slice(0, 400);
  }

  // Matches by text node: {key, range}. A scan runs in an animation frame, before the
  // browser paints the nodes it looks at, so a card number is reported no later than it is
  // first shown; the report is stamped with the first mutation it covers (no earlier than the
  // page was first on screen).
  let textMatches = new Map(); // text node -> [{key, range}]
  let dirty = new Set(); // roots to scan (null: the whole document)
  let dirtySince = null; // wall ms of the first unscanned change
  let scanFrame = null;
  // Scans follow changes in the next animation frame (a card number shown by a script is
  // masked as soon as it is painted), but take at most a tenth of the page's main thread over
  // time: scanning earns credit at a tenth of the time that passes, up to 20 ms of scanning at
  // once (a page loading in a few bursts is scanned at each), and a scan that overdraws it
  // makes the next wait until it is repaid, at most 100 ms. A page that changes text in every
  // frame and is slow to scan is scanned less often.
  const SCAN_SHARE = 10;
  const SCAN_BURST_MS = 20;
  const SCAN_EVERY_MAX_MS = 100;
  let scanCredit = SCAN_BURST_MS; // ms of scanning allowed now
  let creditAt = performance.now();
  function creditNow() {
    const now = performance.now();
    scanCredit = Math.min(SCAN_BURST_MS, scanCredit + (now - creditAt) / SCAN_SHARE);
    creditAt = now;
    return scanCredit;
  }
  const MAX_SCAN_NODES = 20000;

  function scanNode(node) {
    const matches = [];
    const add = (start, end) => {
      const range = document.createRange();
      range.setStart(node, start);
      range.setEnd(node, end);
      matches.push({ key: `${keyOf(node)}#${matches.length}`, range });
    };
    for (const m of node.data.matchAll(recognise.CARD_RUN)) {
      if (recognise.isCardNumber(m[0])) add(m.index, m.index + m[0].length);
    }
    const maybeDate = /\d{1,2}\s?[/-]\s?\d{2}/.test(node.data);
    const maybeCode = /\b\d{3,4}\b/.test(node.data);
    const context = maybeDate || maybeCode ? labelContext(node) : "";
    if (maybeDate && recognise.EXPIRY_WORDS.test(context)) {
      for (const m of node.data.matchAll(recognise.EXPIRY_VALUE)) add(m.index, m.index + m[0].length);
    }
    if (maybeCode && recognise.CSC_WORDS.test(context)) {
      for (const m of node.data.matchAll(recognise.CSC_VALUE)) add(m.index, m.index + m[0].length);
    }
    if (matches.length > 0) textMatches.set(node, matches);
    else textMatches.delete(node);
  }

  function scanRoot(root, budget) {
    if (root.nodeType === Node.TEXT_NODE) {
      const parent = root.parentElement;
      if (parent && !SKIP_SCAN.has(parent.localName)) scanNode(root);
      return budget - 1;
    }
    if (root.nodeType !== Node.ELEMENT_NODE && root.nodeType !== Node.DOCUMENT_NODE) return budget;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
      acceptNode(node) {
        const parent = node.parentElement;
        if (!parent || SKIP_SCAN.has(parent.localName)) return NodeFilter.FILTER_REJECT;
        return /\d/.test(node.data) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP;
      },
    });
    for (let node = walker.nextNode(); node && budget > 0; node = walker.nextNode()) {
      scanNode(node);
      budget--;
    }
    return budget;
  }

  function scanText() {
    scanFrame = null;
    const started = performance.now();
    try {
      scanChanged();
    } finally {
      creditNow();
      scanCredit -= performance.now() - started;
    }
    const since = dirtySince;
    dirtySince = null;
    fields.now(since);
    settle();
  }

  function scanChanged() {
    const roots = dirty;
    dirty = new Set();
    let budget = MAX_SCAN_NODES;
    if (roots.has(null)) {
      textMatches = new Map();
      budget = scanRoot(document, budget);
    } else {
      for (const root of roots) if (root.isConnected) budget = scanRoot(root, budget);
    }
    for (const node of [...textMatches.keys()]) if (!node.isConnected) textMatches.delete(node);
  }

  // The top frame says once per showing (load, back/forward restore, tab to the front) that
  // its first report went out: the agent masks the whole screen from a page change until then.
  let settled = false;
  function settle() {
    if (!TOP || settled || document.visibilityState !== "visible") return;
    settled = true;
    send({ type: "settled", at_wall_ms: wallMs() });
  }

  function leave(timeStamp) {
    if (!TOP) return;
    settled = false;
    send({ type: "leaving", at_wall_ms: wallMs(timeStamp) });
  }

  // Something may have changed text under `root` (null: anywhere).
  function queueScan(root = null) {
    dirty.add(root);
    if (dirtySince === null) dirtySince = wallMs();
    if (scanFrame !== null) return;
    const wait = Math.min(SCAN_EVERY_MAX_MS, Math.max(0, -creditNow() * SCAN_SHARE));
    const inFrame = () => {
      scanFrame = typeof requestAnimationFrame === "function" && document.visibilityState === "visible"
        ? requestAnimationFrame(scanText)
        : setTimeout(scanText, 0);
    };
    if (wait === 0) inFrame();
    else scanFrame = setTimeout(inFrame, wait);
  }

  function allTextMatches() {
    const out = [];
    for (const matches of textMatches.values()) out.push(...matches);
    return out;
  }

  // ---- Rectangles in this frame's viewport (CSS px), clipped to it ----

  function clip(r, box) {
    const left = Math.max(r.left, box.left);
    const top = Math.max(r.top, box.top);
    const right = Math.min(r.right, box.right);
    const bottom = Math.min(r.bottom, box.bottom);
    return right > left && bottom > top ? { left, top, right, bottom } : null;
  }

  function viewportBox() {
    return { left: 0, top: 0, right: window.innerWidth, bottom: window.innerHeight };
  }

  function elementShown(el) {
    if (!el.isConnected) return false;
    if (typeof el.checkVisibility === "function" && !el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return false;
    return el.getClientRects().length > 0;
  }

  // This frame's own items: {key, shown, rect (viewport CSS px or null), field}.
  function ownItems() {
    const items = [];
    const box = viewportBox();
    const pageShown = document.visibilityState === "visible";
    const candidates = document.querySelectorAll("input, textarea, [contenteditable='true'], [contenteditable='']");
    for (const el of candidates) {
      if (!isCandidate(el)) continue;
      const r = elementShown(el) ? clip(el.getBoundingClientRect(), box) : null;
      items.push({ key: keyOf(el), shown: pageShown && r !== null, rect: r, field: describeForReport(el) });
    }
    for (const { key, range } of allTextMatches()) {
      if (!range.startContainer.isConnected) continue;
      const parent = range.startContainer.parentElement;
      const r = parent && elementShown(parent) ? clip(range.getBoundingClientRect(), box) : null;
      items.push({ key, shown: pageShown && r !== null, rect: r, field: textField() });
    }
    return items;
  }

  function describeForReport(el) {
    const field = describe(el);
    field.rect = null; // the report's own rectangle is the one that counts
    return field;
  }

  function textField() {
    return { url: location.href, window_title: document.title, role: "card number text", name: "card data shown as text" };
  }

  // ---- Child frames ----

  const children = new Map(); // child window -> {at, items}

  function frameElementOf(source) {
    for (const frame of document.querySelectorAll("iframe, frame")) {
      if (frame.contentWindow === source) return frame;
    }
    return null;
  }

  // A child's items in this frame's viewport: moved by the frame's content box, clipped to it.
  function fromChild(frame, items) {
    const r = frame.getBoundingClientRect();
    const style = getComputedStyle(frame);
    const dx = r.left + frame.clientLeft + (parseFloat(style.paddingLeft) || 0);
    const dy = r.top + frame.clientTop + (parseFloat(style.paddingTop) || 0);
    const content = {
      left: dx,
      top: dy,
      right: dx + frame.clientWidth - (parseFloat(style.paddingLeft) || 0) - (parseFloat(style.paddingRight) || 0),
      bottom: dy + frame.clientHeight - (parseFloat(style.paddingTop) || 0) - (parseFloat(style.paddingBottom) || 0),
    };
    const box = clip(content, viewportBox());
    const frameShown = elementShown(frame);
    return items.map((item) => {
      if (!item.rect) return { ...item, shown: item.shown && frameShown };
      const moved = { left: item.rect.left + dx, top: item.rect.top + dy, right: item.rect.right + dx, bottom: item.rect.bottom + dy };
      const r = box ? clip(moved, box) : null;
      return { ...item, shown: item.shown && frameShown && r !== null, rect: r };
    });
  }

  window.addEventListener("message", (event) => {
    const data = event.data;
    if (!data || data[MSG] !== true || !Array.isArray(data.items) || !event.source) return;
    const frame = frameElementOf(event.source);
    if (!frame) return;
    const since = typeof data.since === "number" ? data.since : null;
    children.set(event.source, { at: performance.now(), frame, items: data.items, since });
    fields.soon();
  });

  // The earliest change a child frame reported that this frame has not passed on yet.
  function childSince() {
    let since = null;
    for (const child of children.values()) {
      if (child.since !== null && (since === null || child.since < since)) since = child.since;
      child.since = null;
    }
    return since;
  }

  function allItems() {
    const items = ownItems();
    const now = performance.now();
    for (const [source, child] of children) {
      if (!child.frame.isConnected) {
        children.delete(source);
        continue;
      }
      const moved = fromChild(child.frame, child.items);
      // A child frame that stopped reporting (busy, hung) has not said its fields went: they
      // count as shown somewhere unknown (the agent masks the whole screen), never as gone.
      const stale = now - child.at > CHILD_STALE_MS;
      items.push(...(stale ? moved.map((item) => ({ ...item, shown: true, rect: null })) : moved));
    }
    return items;
  }

  // ---- Reports ----

  // Screen pixels of a rectangle in the top viewport (see README.md for the approximation).
  function toScreen(r) {
    const dpr = window.devicePixelRatio || 1;
    const zoom = pageZoom(window);
    const dsf = dpr / zoom;
    const chromeTop = Math.max(0, window.outerHeight - window.innerHeight * zoom);
    const x = window.screenX * dsf + r.left * dpr;
    const y = (window.screenY + chromeTop) * dsf + r.top * dpr;
    const x1 = window.screenX * dsf + r.right * dpr;
    const y1 = (window.screenY + chromeTop) * dsf + r.bottom * dpr;
    return { x: Math.floor(x), y: Math.floor(y), width: Math.max(0, Math.ceil(x1) - Math.floor(x)), height: Math.max(0, Math.ceil(y1) - Math.floor(y)) };
  }

  const fields = (() => {
    let last = new Map(); // key -> JSON of the presence last sent
    let described = new Set(); // keys whose description went out
    let timer = null;
    let queued = false;
    const loadedAt = performance.timeOrigin;

    function report(items, since) {
      const at = wallMs();
      const out = [];
      const seen = new Set();
      let anyShown = false;
      for (const item of items) {
        if (seen.has(item.key)) continue;
        seen.add(item.key);
        const presence = item.shown ? { state: "shown", rect: item.rect ? toScreen(item.rect) : null } : { state: "hidden" };
        anyShown ||= item.shown;
        const entry = { key: item.key, presence };
        if (!described.has(item.key)) {
          entry.field = item.field;
          // First seen: since the change that showed it when known (a text scan runs before
          // the paint), else up to 400 ms back (a reload restores form values before this
          // script can look; the agent clamps this to its delay line), not before the page nor its
          // first rendering update.
          entry.since_wall_ms = since !== null ? Math.min(shownNoEarlierThan(since), at) : Math.max(loadedAt, notShownBefore ?? 0, at - 400);
          described.add(item.key);
        }
        const json = JSON.stringify(presence);
        if (item.shown || last.get(item.key) !== json || entry.field) out.push(entry);
        last.set(item.key, json);
      }
      for (const key of [...last.keys()]) {
        if (!seen.has(key)) {
          out.push({ key, presence: { state: "gone" } });
          last.delete(key);
          described.delete(key);
        }
      }
      if (out.length > 0) send({ type: "fields", at_wall_ms: at, fields: out });
      return anyShown;
    }

    let pendingSince = null;

    function tick() {
      timer = null;
      queued = false;
      let anyShown = false;
      const since = [pendingSince, childSince()].filter((t) => t !== null).reduce((a, b) => Math.min(a, b), Infinity);
      pendingSince = null;
      const first = since === Infinity ? null : since;
      try {
        const items = allItems();
        if (TOP) {
          anyShown = report(items, first);
        } else if (window.parent && window.parent !== window) {
          // Rectangles in this frame's viewport; the parent moves and clips them.
          const plain = items.map(({ key, shown, rect, field }) => ({ key, shown, rect, field }));
          window.parent.postMessage({ [MSG]: true, items: plain, since: first }, "*");
          anyShown = items.length > 0;
        }
      } catch (_) {
        // A page that breaks the DOM APIs must not stop the reports: the next tick retries.
        anyShown = true;
      }
      if (anyShown || (!TOP && children.size > 0) || (TOP && children.size > 0)) schedule(FIELD_TICK_MS);
    }

    function schedule(ms) {
      if (timer === null) timer = setTimeout(tick, ms);
    }

    return {
      // A scan just found what the next paint shows: report now, first sightings since
      // `since` (wall ms).
      now(since) {
        if (since !== null && (pendingSince === null || since < pendingSince)) pendingSince = since;
        if (timer !== null) clearTimeout(timer);
        timer = null;
        tick();
      },
      // Something changed: report within a frame.
      soon() {
        if (queued) return;
        queued = true;
        if (timer !== null) clearTimeout(timer);
        timer = null;
        schedule(0);
      },
      // Everything again (the host reconnected): describe every field anew.
      resend() {
        last = new Map();
        described = new Set();
        this.soon();
      },
      // The page is going: every field it reported is gone.
      gone() {
        if (!TOP) {
          try {
            window.parent.postMessage({ [MSG]: true, items: [] }, "*");
          } catch (_) {
            // Detached.
          }
          return;
        }
        const out = [...last.keys()].map((key) => ({ key, presence: { state: "gone" } }));
        last = new Map();
        described = new Set();
        if (out.length > 0) send({ type: "fields", at_wall_ms: wallMs(), fields: out });
      },
    };
  })();

  // What moves or changes a field or its text: scrolling anywhere, resizing, zoom, typing,
  // layout (ResizeObserver on the root), DOM changes (text scan), visibility, page lifecycle.
  for (const type of ["scroll", "resize", "input", "change", "focusout", "transitionend", "animationend"]) {
    window.addEventListener(type, () => fields.soon(), { capture: true, passive: true });
  }
  document.addEventListener("visibilitychange", (event) => {
    if (document.visibilityState === "visible") {
      // Shown again: report now, then settle.
      fields.now(null);
      settle();
    } else {
      leave(event.timeStamp);
      fields.soon();
    }
  });
  window.addEventListener("pagehide", (event) => {
    leave(event.timeStamp);
    fields.gone();
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      // Restored from the back/forward cache: painted already; report at once.
      fields.resend();
      fields.now(null);
      settle();
    }
    queueScan();
  });
  if (typeof ResizeObserver === "function") {
    const observeRoot = () => {
      if (document.documentElement) new ResizeObserver(() => fields.soon()).observe(document.documentElement);
    };
    observeRoot();
  }
  const observer = new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "characterData") queueScan(r.target);
      else if (r.type === "childList") r.addedNodes.forEach((n) => queueScan(n));
    }
    fields.soon();
  });
  // The document itself: at document_start its element may not exist yet, and the parser's
  // insertions are what a scan must see before the first paint.
  observer.observe(document, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ["style", "class", "hidden", "value"] });
  document.addEventListener("DOMContentLoaded", () => {
    queueScan();
    fields.soon();
  });
  window.addEventListener("load", () => {
    queueScan();
    fields.soon();
  });
  // Chromium restores form values after load without an input event: look again shortly.
  for (const ms of [0, 50, 150, 300, 600, 1200]) setTimeout(() => fields.soon(), ms);
  // Window moves have no event: while nothing is shown, a slow look keeps restored or
  // autofilled values from going unnoticed.
  setInterval(() => fields.soon(), 1000);

  // ---- Events ------------------------------------------------------------------------------

  // Inputs whose value nobody types: a radio button labelled "Credit card" holds "on", not
  // card data (seen on Bootstrap's checkout example: holding it after focus left it masked the
  // whole screen for good, since no report follows such a field).
  const NOT_TYPED = new Set(["hidden", "checkbox", "radio", "submit", "button", "image", "file", "reset", "range", "color"]);

  function hasValue(el) {
    if (el.localName === "input" && NOT_TYPED.has(el.type)) return false;
    if (typeof el.value === "string") return el.value.length > 0;
    if (el.isContentEditable) return (el.textContent || "").length > 0;
    return false;
  }

  function autocompleteTokens(el) {
    const attr = el.getAttribute("autocomplete");
    return attr ? attr.toLowerCase().split(/\s+/).filter(Boolean) : [];
  }

  function describe(el) {
    const isInput = el.localName === "input";
    const type = typeof el.type === "string" && el.type ? el.type : null;
    return {
      url: location.href,
      window_title: document.title,
      name: recognise.accessibleName(el),
      id: el.id || null,
      html_name: typeof el.name === "string" && el.name ? el.name : null,
      input_type: type,
      autocomplete: autocompleteTokens(el).length > 0 ? autocompleteTokens(el) : inferredTokens(el),
      role: el.getAttribute("role") || null,
      rect: screenRect(el),
      password: isInput && type === "password",
      has_value: hasValue(el),
      key: keyOf(el),
    };
  }

  document.addEventListener(
    "focusin",
    (event) => {
      const el = focusTarget(event);
      if (!el) return;
      ensurePage(event.timeStamp);
      focusedBefore.add(el);
      send({ type: "focus", at_wall_ms: wallMs(event.timeStamp), field: describe(el) });
    },
    true,
  );

  document.addEventListener(
    "focusout",
    (event) => {
      const el = focusTarget(event);
      if (!el) return;
      send({ type: "blur", at_wall_ms: wallMs(event.timeStamp), has_value: hasValue(el) });
      // Where the field is from now on decides its mask: report at once.
      fields.soon();
    },
    true,
  );

  // ---- Page loads (top frame) ----------------------------------------------------------------

  // Once per load: at DOMContentLoaded, when the title is known, or before the first focus
  // report if a field gets focus earlier (autofocus may run before DOMContentLoaded), so that
  // the host always has the page before its fields. Again when the page comes back from the
  // back/forward cache (a pageshow that is not part of a load).
  // Only a page on screen is reported: the agent ends the mask kept for a card number still
  // shown on the previous page when another page is shown, and a page loading in a background
  // tab does not hide that one. A tab that comes to the front is reported again.
  if (TOP) {
    const visible = () => document.visibilityState === "visible";
    if (document.readyState === "loading") {
      document.addEventListener(
        "DOMContentLoaded",
        (e) => {
          if (visible()) ensurePage(e.timeStamp);
        },
        { once: true },
      );
    } else if (visible()) {
      ensurePage();
    }
    window.addEventListener("pageshow", (e) => {
      if (e.persisted && visible()) page(e.timeStamp);
    });
    document.addEventListener("visibilitychange", (e) => {
      if (visible()) page(e.timeStamp);
    });
  }

  // Injected after a field already had focus (a page opened before the extension loaded, or
  // already open when its host reconnected): report the page and that field as focused now.
  function resync() {
    // The agent masks from the host's (re)connection until a page settles again.
    settled = false;
    if (TOP && document.visibilityState === "visible") page();
    if (document.hasFocus()) {
      const el = fieldOf(deepActiveElement());
      if (el) {
        ensurePage();
        focusedBefore.add(el);
        send({ type: "focus", at_wall_ms: wallMs(), field: describe(el) });
      }
    }
    queueScan();
    fields.resend();
  }
  // The background asks again when an agent starts behind its host (it knows nothing yet).
  api.runtime.onMessage.addListener((message) => {
    if (message && message.type === "resync") resync();
  });
  // Injected into a page that had already loaded (by the background, into tabs opened
  // before the extension was ready): report what it shows now.
  if (document.readyState !== "loading") resync();
})();
