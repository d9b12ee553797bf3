// The owner API client: the signed-in token, problem+json errors, pagination, downloads.
// The portal is an owner app like any other: everything it shows comes from /v1/….

const KEY = "vdp-portal-token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || `HTTP ${status}`;
    this.type = problem.type || "";
    this.detail = problem.detail || "";
  }
}

function claimsOf(token) {
  const part = token.split(".")[1];
  if (!part) throw new Error("this is not a JWT (three parts separated by dots)");
  const text = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
  return JSON.parse(text);
}

export const session = {
  token: sessionStorage.getItem(KEY) || "",
  get claims() {
    try { return this.token ? claimsOf(this.token) : null; } catch { return null; }
  },
  get owner() { return this.claims?.sub || ""; },
  get scopes() { return (this.claims?.scope || "").split(" ").filter(Boolean); },
  get expires() { return this.claims?.exp ? new Date(this.claims.exp * 1000) : null; },
  has(scope) { return this.scopes.includes(scope); },
  set(token) {
    claimsOf(token); // refuse what is not a token before asking the service
    this.token = token;
    sessionStorage.setItem(KEY, token);
  },
  clear() {
    this.token = "";
    sessionStorage.removeItem(KEY);
  },
};

function url(path, params = {}) {
  const u = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    for (const v of Array.isArray(value) ? value : [value]) u.searchParams.append(key, v);
  }
  return u;
}

async function problemOf(res) {
  try {
    return await res.json();
  } catch {
    return { title: res.statusText, detail: "" };
  }
}

// The raw Response of a request with the token; an ApiError for any non-2xx answer.
// A 401 also tells the app, which sends the owner back to sign-in with the reason.
export async function request(path, { params, method = "GET", body, signal } = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url(path, params), {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    const error = new ApiError(res.status, await problemOf(res));
    if (res.status === 401) window.dispatchEvent(new CustomEvent("vdp-unauthorized", { detail: error }));
    throw error;
  }
  return res;
}

export async function api(path, options) {
  return (await request(path, options)).json();
}

// Every page of a list that pages with `next_cursor` (at most `limit` pages).
export async function allPages(path, params, key, limit = 50) {
  const items = [];
  let cursor;
  for (let page = 0; page < limit; page += 1) {
    const body = await api(path, { params: { ...params, cursor } });
    items.push(...body[key]);
    cursor = body.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

// A download read as it streams, with progress: onChunk(bytesSoFar, lastChunk).
export async function download(path, params, onChunk, signal) {
  const res = await request(path, { params, signal });
  const reader = res.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    onChunk?.(received, value);
  }
  const type = res.headers.get("Content-Type") || "application/octet-stream";
  return { blob: new Blob(chunks, { type }), headers: res.headers, bytes: received };
}

export function filenameOf(headers, fallback) {
  const match = /filename="([^"]+)"/.exec(headers.get("Content-Disposition") || "");
  return match ? match[1] : fallback;
}

// Offer `blob` as a file: a link the owner can also use again, clicked once for them.
export function saveLink(blob, name, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.textContent = text || `Save ${name} again`;
  a.className = "save-link";
  return a;
}

let cachedConfig;
export async function portalConfig() {
  cachedConfig ||= fetch("/portal/config.json").then((r) => r.json());
  return cachedConfig;
}

let cachedCatalog;
export async function catalog() {
  cachedCatalog ||= api("/v1/catalog").catch((e) => { cachedCatalog = undefined; throw e; });
  return cachedCatalog;
}

export function forgetCaches() {
  cachedCatalog = undefined;
}
