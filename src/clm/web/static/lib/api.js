// Every call the pages make goes through here: /api/v1 is the one interface.

const KEY = "clm.key";

// How every request authenticates -- the one place to change. A signed-in person: the
// HttpOnly session cookie (scripts never see it) and, for changes, the CSRF token the server
// set in the readable clm_csrf cookie. An operator's pasted key: a bearer header, kept in
// sessionStorage (this tab only), never localStorage.
export function authHeaders(method) {
  const key = sessionStorage.getItem(KEY);
  if (key) return { Authorization: `Bearer ${key}` };
  if (method === "GET" || method === "HEAD") return {};
  const csrf = document.cookie.split("; ").find((c) => c.startsWith("clm_csrf="));
  return csrf ? { "X-CSRF-Token": decodeURIComponent(csrf.slice("clm_csrf=".length)) } : {};
}

export function useKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export function usingKey() {
  return Boolean(sessionStorage.getItem(KEY));
}

// Called when the server stops knowing the caller (a session that expired or was signed out
// elsewhere, a revoked key): the shell goes back to the sign-in form, keeping the page's URL.
let signedOut = null;
export function onSignedOut(listener) {
  signedOut = listener;
}

function failed(message, status, errors = []) {
  return Object.assign(new Error(message), { status, errors });
}

// Said when fetch itself fails: the server is stopped or restarting, or the network is down.
export const UNREACHABLE = "Cannot reach the CLM server: it may be stopped or restarting. Try again in a moment.";

async function request(path, { method = "GET", body } = {}) {
  const headers = authHeaders(method);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw failed(UNREACHABLE, 0);
  }
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    if (response.status === 401 && signedOut) signedOut(answer.message);
    const fallback = response.status >= 500 ? `The server failed (HTTP ${response.status}). Try again in a moment.` : `HTTP ${response.status}`;
    throw failed(answer.message || fallback, response.status, answer.errors || []);
  }
  return response;
}

// JSON from /api/v1: throws an Error with .status and the API's field-level .errors.
export async function api(path, options) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  return response.json();
}

// A file from /api/v1 (e.g. CSV), saved through a link: the auth header cannot ride on <a href>.
export async function download(path, filename) {
  const blob = await (await request(path)).blob();
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}

// Query string from an object, leaving out empty values.
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
