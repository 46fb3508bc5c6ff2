// Vigil field focus: what says a field or a text holds card data (content script, run before
// content.js in the same isolated world; the page cannot see it). Pure functions and patterns:
// accessible names (never a field's value), payment words, card-number and expiry shapes.
"use strict";

globalThis.__vigilRecognise ??= (() => {
  const MAX_NAME = 200;

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

  // A superset of the agent's built-in payment rules (it decides; this only picks which
  // fields to report): labels, names, ids, placeholders in English, French, German, Spanish.
  const PAYMENT_WORDS =
    /card|cc-?(num|number|exp|csc|cvv|cvc)|\bpan\b|cvv|cvc|cvn|csc|security.?code|verification|expir|exp.?date|valid.?(thru|until)|kartennummer|karte|carte|cryptogramme|tarjeta|pr(ü|ue)fnummer|sicherheitscode|seguridad|caducidad|vencimiento|ablauf|g(ü|ue)ltig/i;
  const EXPIRY_WORDS = /expir|exp.?date|valid|mm.?\/.?yy|ablauf|g(ü|ue)ltig|caducidad|vencimiento|date d.expiration/i;
  const CSC_WORDS = /cvv|cvc|cvn|csc|security.?code|verification|cryptogramme|pr(ü|ue)fnummer|sicherheitscode|seguridad/i;
  // Payment pages often host card fields in frames of a payment provider.
  const PAYMENT_FRAME_HOSTS =
    /(^|\.)(stripe\.com|stripe\.network|braintreegateway\.com|braintree-api\.com|adyen\.com|adyenpayments\.com|checkout\.com|paypal\.com|squareup\.com|squarecdn\.com|worldpay\.com|cybersource\.com|authorize\.net|globalpay\.com|spreedly\.com|recurly\.com|chargebee\.com|mollie\.com|klarna\.com|payu\.com|paymentus\.com|securepay\.com\.au)$/i;
  const CARD_RUN = /(?:\d[ -]?){12,18}\d/g;
  const EXPIRY_VALUE = /\b(0[1-9]|1[0-2])\s?[/-]\s?(\d{4}|\d{2})\b/g;
  const CSC_VALUE = /\b\d{3,4}\b/g;

  function luhn(digits) {
    let sum = 0;
    for (let i = 0; i < digits.length; i++) {
      let d = digits.charCodeAt(digits.length - 1 - i) - 48;
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    return sum % 10 === 0;
  }

  // A card number: 13-19 digits, one kind of separator at most, Luhn-valid.
  function isCardNumber(run) {
    const digits = run.replace(/[ -]/g, "");
    if (digits.length < 13 || digits.length > 19) return false;
    if (run.includes(" ") && run.includes("-")) return false;
    return luhn(digits);
  }

  return Object.freeze({
    accessibleName,
    isCardNumber,
    CARD_RUN,
    EXPIRY_VALUE,
    CSC_VALUE,
    PAYMENT_WORDS,
    EXPIRY_WORDS,
    CSC_WORDS,
    PAYMENT_FRAME_HOSTS,
  });
})();
