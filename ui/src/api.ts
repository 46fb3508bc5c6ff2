// The console speaks only the documented /v1 API, with the session cookie (HttpOnly, set by
// POST /v1/login) and the CSRF token it returned, sent back on every request that changes
// something. The token lives in sessionStorage: gone with the tab, and the strict
// Content-Security-Policy keeps other scripts out.

const CSRF_KEY = "vigil.csrf";

/** A refusal of the API: its HTTP status and stable error code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(detail || code || `HTTP ${status}`);
  }
}

export function setCsrf(token: string | null): void {
  if (token) sessionStorage.setItem(CSRF_KEY, token);
  else sessionStorage.removeItem(CSRF_KEY);
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  const csrf = sessionStorage.getItem(CSRF_KEY);
  if (csrf) headers["x-csrf-token"] = csrf;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? safeJson(text) : {};
  if (!response.ok) {
    throw new ApiError(response.status, String(json.error ?? ""), String(json.detail ?? text));
  }
  return json as T;
}

function safeJson(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { detail: text };
  }
}

export const get = <T>(path: string) => call<T>("GET", path);
export const post = <T>(path: string, body: unknown = {}) => call<T>("POST", path, body);
export const put = <T>(path: string, body: unknown) => call<T>("PUT", path, body);
export const patch = <T>(path: string, body: unknown) => call<T>("PATCH", path, body);

/** A query string of the non-empty values. */
export function query(values: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) {
    if (v !== undefined && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The signed-in account, as `GET /v1/me` and `POST /v1/login` describe it. */
export interface Me {
  name: string;
  role: string;
  teams: string[];
  permissions: string[];
  via: string;
}

export interface Login extends Me {
  csrf_token: string;
  must_change_password: boolean;
  mfa_enrollment_required: boolean;
}

export const can = (me: Me, permission: string) => me.permissions.includes(permission);
