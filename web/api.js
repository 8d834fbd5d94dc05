// The REST API as the console uses it: the bearer token (kept in sessionStorage only), JSON
// requests, the `Link: rel="next"` cursor, and every failure turned into a sentence a person
// can act on. The token is never put in a URL or written to the console.

const TOKEN_KEY = 'ticketd.token';
const API = '/api/v1';

export function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function saveToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The claims of a JWT, unverified (the server verifies); null when it is not a JWT. */
export function claimsOf(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** A failed request, with a message in plain words. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function seconds(n) {
  return n === 1 ? '1 second' : `${n} seconds`;
}

/** Turns a failed response into an ApiError whose message says what happened and what to do. */
async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const said = body && typeof body.message === 'string' ? body.message : '';
  const status = response.status;
  switch (status) {
    case 400: {
      const fields = Array.isArray(body?.errors) ? body.errors.map((e) => e.message).filter(Boolean) : [];
      return new ApiError(status, 'BAD_REQUEST', fields.length ? `Please check your input: ${fields.join('; ')}.` : 'Please check your input.');
    }
    case 401:
      return new ApiError(status, 'UNAUTHORIZED', `Your sign-in was not accepted (${said || 'invalid token'}). Please sign in again.`);
    case 403:
      return new ApiError(status, 'FORBIDDEN', `You are not allowed to do that${said ? `: ${said}` : '.'}`);
    case 404:
      return new ApiError(status, 'NOT_FOUND', said === 'No such route' ? 'This server does not offer that.' : `Not found: ${said || 'it may have been removed'}.`);
    case 409:
      return new ApiError(status, 'CONFLICT', `That cannot be done now: ${said || 'the ticket changed'}.`);
    case 429: {
      const wait = Number.parseInt(response.headers.get('Retry-After') || '', 10);
      const after = Number.isFinite(wait) && wait >= 0 ? Math.max(wait, 1) : null;
      const text = after === null
        ? 'You are going too fast. Please wait a moment and try again.'
        : `You are going too fast. Please wait ${seconds(after)} and try again.`;
      return new ApiError(status, 'RATELIMIT', text, after);
    }
    case 503:
      return new ApiError(status, 'SERVICE_UNAVAILABLE', 'The server is busy right now. Please try again in a moment.');
    default:
      if (status >= 500) {
        const id = body?.request_id ? ` (reference ${body.request_id})` : '';
        return new ApiError(status, body?.error || 'ERROR', `The server had a problem${id}. Please try again.`);
      }
      return new ApiError(status, body?.error || 'ERROR', said || `The request failed (${status}).`);
  }
}

/** The `rel="next"` target of a Link header, or null. */
export function nextLink(response) {
  const header = response.headers.get('Link');
  if (!header) return null;
  for (const part of header.split(',')) {
    const match = part.match(/<([^>]+)>\s*;\s*rel="?next"?/);
    if (match) return match[1];
  }
  return null;
}

/**
 * Sends a request; `path` is under /api/v1 unless it starts with /api/. Resolves to
 * `{data, next}` (next: the following page's URL), rejects with an ApiError.
 */
export async function request(method, path, { body, token = savedToken() } = {}) {
  const url = path.startsWith('/api/') ? path : `${API}${path}`;
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'Cannot reach the server. Check your connection and try again.');
  }
  if (!response.ok) throw await failure(response);
  const data = response.status === 204 ? null : await response.json();
  return { data, next: nextLink(response) };
}

export const get = (path, options) => request('GET', path, options);
export const post = (path, body, options) => request('POST', path, { ...options, body });
export const patch = (path, body, options) => request('PATCH', path, { ...options, body });
export const del = (path, options) => request('DELETE', path, options);

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
