// The one place that speaks HTTP. Every call goes through request() so that
// the CSRF header, JSON handling, error shape and "401 means sign in again"
// are the same for every screen.

let csrfToken = null;
let sessionLost = () => {};
let lastActivity = Date.now();

export function setCsrfToken(token) { csrfToken = token; }
export function onSessionLost(fn) { sessionLost = fn; }
// When the page last heard from the server; the idle timer in app.js uses it.
export function lastRequestAt() { return lastActivity; }

// Every failure, HTTP or network, becomes one of these, with the API's
// error_code and description, so the page can always show both.
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const b = body && typeof body === 'object' ? body : {};
    super(b.description || `The server answered HTTP ${status}.`);
    this.status = status;
    this.code = b.error_code || (status ? `http_${status}` : 'network_error');
    this.body = b;
    this.retryAfter = retryAfter;
  }
}

// method, path, optional JSON body. Resolves to the parsed JSON answer
// (or null for an empty one); rejects with an ApiError.
// opts.signin: a 401 here is a wrong password, not a lost session.
export async function request(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { error_code: 'network_error',
      description: `Could not reach the server (${e.message}).` });
  }
  lastActivity = Date.now();
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch {
      data = { error_code: 'invalid_response',
        description: `The server answered HTTP ${res.status} with something that is not JSON.` };
    }
  }
  if (res.ok) return data;
  const err = new ApiError(res.status, data, res.headers.get('Retry-After'));
  if (res.status === 401 && !opts.signin) sessionLost(err);
  throw err;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);
export const put = (path, body) => request('PUT', path, body);
export const del = (path) => request('DELETE', path);

// A 409 not_all_nodes_updated is not a failure: the change is stored and
// the nodes that did not confirm apply it when they can.
export function isStoredButUnconfirmed(err) {
  return err instanceof ApiError && err.status === 409 &&
    err.code === 'not_all_nodes_updated';
}
