// The REST client. The caller's token lives in this module's memory only: never in storage, a
// cookie or the URL, so closing or reloading the page forgets it.

let token = null;
let unauthorized = () => {};

export const signedIn = () => token !== null;
export const bearer = () => token;

/** Holds `t` (null forgets it). */
export function setToken(t) {
  token = t;
}

/** What to do when the API answers 401 (the token expired or was revoked). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/** An API error: the problem document's fields (RFC 9457), or what could be said without one. */
export class Problem extends Error {
  constructor(status, body) {
    const b = body && typeof body === 'object' ? body : {};
    const detail = typeof b.detail === 'string' && b.detail ? b.detail : '';
    const title = typeof b.title === 'string' && b.title ? b.title : status ? `HTTP ${status}` : 'Network error';
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail || title;
    this.kind = typeof b.type === 'string' ? b.type.replace(/^.*\/problems\//, '') : '';
    this.errors = Array.isArray(b.errors) ? b.errors.filter((e) => e && typeof e.field === 'string') : [];
  }
}

async function problemOf(resp) {
  let body = null;
  try {
    const type = resp.headers.get('content-type') || '';
    if (type.includes('json')) body = await resp.json();
  } catch {
    body = null;
  }
  return new Problem(resp.status, body);
}

/**
 * Calls the API. `query` entries that are empty are left out; `raw` returns the Response (for a
 * streamed body); `quiet` keeps a 401 from signing the user out (the sign-in form's own check).
 */
export async function request(method, path, { body, query, signal, raw = false, quiet = false } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  const headers = { Accept: raw ? 'text/plain, application/problem+json' : 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new Problem(0, { title: 'Network error', detail: 'The API could not be reached. Check your connection and try again.' });
  }
  if (!resp.ok) {
    const p = await problemOf(resp);
    if (resp.status === 401 && !quiet) unauthorized(p);
    throw p;
  }
  if (raw) return resp;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

/** `/api/v1/namespaces/{ns}/...` with each part escaped. */
export function nsPath(ns, ...parts) {
  return ['/api/v1/namespaces', ns, ...parts].map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join('/');
}
