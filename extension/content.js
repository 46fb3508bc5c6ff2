// Vigil field focus: content script (every http/https/file page, every frame, document_start).
//
// Reports which form field has focus to the background worker, which relays it to the Vigil
// agent over native messaging. It never reads what is typed: only whether a field is empty.
// Message shapes are the contract with `vigil-agent native-host`; see README.md.
"use strict";

(() => {
  // A page may be injected twice (e.g. an extension reload); listen once.
  if (globalThis.__vigilFieldFocus) return;
  globalThis.__vigilFieldFocus = true;

  const api = globalThis.chrome?.runtime ? globalThis.chrome : globalThis.browser;
  const TOP = window === window.top;
  const MAX_NAME = 200;

  // Reports go out one at a time, in order, each until the background acknowledges it: a
  // report sent while the worker is still starting (browser start, extension update) fails
  // with "Receiving end does not exist" and is sent again, never dropped — a lost focus
  // report would leave a payment field unmasked. The queue is bounded; the oldest go first.
  const RETRY_MS = [100, 200, 400, 800, 1600, 3200];
  const MAX_PENDING = 200;
  let pending = [];
  let sending = false;

  function flush(attempt) {
    if (sending || pending.length === 0) return;
    sending = true;
    const message = pending[0];
    const retry = () => {
      sending = false;
      if (attempt >= RETRY_MS.length) {
        // The extension is gone (updated or removed): nothing will answer again.
        pending = [];
        return;
      }
      setTimeout(() => flush(attempt + 1), RETRY_MS[attempt]);
    };
    try {
      api.runtime.sendMessage(message, (answer) => {
        if (api.runtime.lastError || !answer || !answer.ok) {
          retry();
          return;
        }
        sending = false;
        pending.shift();
        flush(0);
      });
    } catch (_) {
      // The extension was updated or removed under this page: its context is gone.
      pending = [];
      sending = false;
    }
  }

  function send(message) {
    pending.push(message);
    if (pending.length > MAX_PENDING) {
      // Keep the report in flight (first) and the newest: what has focus now matters most.
      pending = [pending[0]].concat(pending.slice(pending.length - MAX_PENDING + 1));
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

  // ---- Accessible name (never a field's value) --------------------------------------------

  const SKIP_TEXT = new Set(["input", "textarea", "select", "option", "script", "style", "template", "noscript"]);

  // The text of a label-like node, leaving out form controls (a wrapping label's textContent
  // would include a textarea's text or a select's options) and editable regions.
  function labelText(node) {
    let out = "";
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        out += child.data;
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        if (SKIP_TEXT.has(child.localName) || child.isContentEditable) continue;
        if (child.getAttribute("aria-hidden") === "true") continue;
        out += " " + labelText(child) + " ";
      }
    }
    return out;
  }

  function clean(text) {
    if (typeof text !== "string") return null;
    const s = text.replace(/\s+/g, " ").trim();
    if (!s) return null;
    return s.length > MAX_NAME ? s.slice(0, MAX_NAME) : s;
  }

  function rootOf(el) {
    const root = el.getRootNode();
    return root && typeof root.getElementById === "function" ? root : document;
  }

  // Order of the contract: aria-label, aria-labelledby, <label for>, wrapping <label>,
  // placeholder (aria-placeholder for editable regions).
  function accessibleName(el) {
    const aria = clean(el.getAttribute("aria-label"));
    if (aria) return aria;

    const labelledby = el.getAttribute("aria-labelledby");
    if (labelledby) {
      const root = rootOf(el);
      const parts = labelledby
        .split(/\s+/)
        .filter(Boolean)
        .map((id) => root.getElementById(id) || document.getElementById(id))
        .filter((n) => n && n !== el)
        .map((n) => clean(n.getAttribute("aria-label")) || clean(labelText(n)))
        .filter(Boolean);
      const joined = clean(parts.join(" "));
      if (joined) return joined;
    }

    if (el.id) {
      const root = rootOf(el);
      let label = null;
      try {
        label = root.querySelector(`label[for="${CSS.escape(el.id)}"]`);
      } catch (_) {
        label = null;
      }
      const text = label ? clean(labelText(label)) : null;
      if (text) return text;
    }

    const wrapping = el.closest("label");
    if (wrapping) {
      const text = clean(labelText(wrapping));
      if (text) return text;
    }

    return clean(el.getAttribute("placeholder")) || clean(el.getAttribute("aria-placeholder"));
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

  // ---- Events ------------------------------------------------------------------------------

  function hasValue(el) {
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
      name: accessibleName(el),
      id: el.id || null,
      html_name: typeof el.name === "string" && el.name ? el.name : null,
      input_type: type,
      autocomplete: autocompleteTokens(el),
      role: el.getAttribute("role") || null,
      rect: screenRect(el),
      password: isInput && type === "password",
      has_value: hasValue(el),
    };
  }

  document.addEventListener(
    "focusin",
    (event) => {
      const el = focusTarget(event);
      if (!el) return;
      ensurePage(event.timeStamp);
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

  // Injected after a field already had focus (Firefox injects content scripts into pages
  // already open or loading when the extension starts, e.g. at browser start or after an
  // update): report that field as focused now.
  if (document.hasFocus()) {
    const el = fieldOf(deepActiveElement());
    if (el) {
      ensurePage();
      send({ type: "focus", at_wall_ms: wallMs(), field: describe(el) });
    }
  }
})();
