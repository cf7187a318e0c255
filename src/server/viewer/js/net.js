// @ts-check
/**
 * URLs, backoff and error explanations. Every URL the page opens is relative to the page
 * itself, never to the site root: behind a proxy that mounts the daemon under a prefix
 * (nginx `location /fh/ { proxy_pass http://framehub/; }`) the page is `/fh/` and its socket
 * is `/fh/ws`, not `/ws`. DOM-free apart from `fetch`.
 */

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15_000;

/**
 * A URL for `path` relative to the page at `base`, with query parameters; `?token=` is added
 * when `token` is set (EventSource cannot send headers).
 *
 * @param {string} path  relative: `sse`, `cams/a/low.mjpeg`, `api/v1/status`
 * @param {string} base  the page's URL (document.baseURI)
 * @param {Record<string, string>} [query]
 * @param {string} [token]
 * @example relativeUrl('sse', 'https://h/fh/?x=1', { topics: 'cam/a/low' }).href // 'https://h/fh/sse?topics=cam%2Fa%2Flow'
 */
export function relativeUrl(path, base, query = {}, token = '') {
  // A leading slash would silently drop a proxy prefix again: refuse it here, in one place.
  if (path.startsWith('/') || /^[a-z]+:/i.test(path)) throw new Error(`not a relative path: ${path}`);
  const u = new URL(path, base);
  for (const [k, v] of Object.entries(query)) if (v !== '') u.searchParams.set(k, v);
  if (token) u.searchParams.set('token', token);
  return u;
}

/** The WebSocket form of a page-relative URL: same host and path prefix, ws: or wss:. */
export function toWsUrl(/** @type {URL} */ url) {
  const u = new URL(url.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/**
 * Browsers cannot set headers on a WebSocket, so the token rides in a subprotocol entry.
 * @param {string} token
 * @returns {string[] | undefined}
 */
export const wsProtocols = (token) => (token ? ['framehub', `framehub.bearer.${token}`] : undefined);

/**
 * Capped exponential backoff with "equal jitter": half fixed, half random, so a wall of tiles
 * cut at the same moment does not reconnect in lockstep.
 * @param {number} attempt  0 for the first retry
 */
export function backoffDelay(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/**
 * The server's reason from a failed response: `HTTP 403 FORBIDDEN: camera not in token`.
 * @param {Response} res
 */
export async function describeHttpError(res) {
  /** @type {unknown} */
  const body = await res.json().catch(() => undefined);
  const err =
    typeof body === 'object' && body !== null && 'error' in body && typeof body.error === 'object'
      ? /** @type {{code?: unknown, message?: unknown}} */ (body.error)
      : undefined;
  const detail = err && typeof err.code === 'string' ? ` ${err.code}: ${String(err.message ?? '')}` : '';
  return `HTTP ${res.status}${detail}`;
}

/**
 * EventSource says nothing about why it failed: ask the same URL once, read the JSON error
 * body, and abort at once if it turns out to be streaming (then the failure was elsewhere).
 * @param {string} url
 * @returns {Promise<string>}  '' when the URL answers 200
 */
export async function explainFailure(url) {
  const ctl = new AbortController();
  try {
    const res = await fetch(url, { signal: ctl.signal, cache: 'no-store' });
    return res.ok ? '' : await describeHttpError(res);
  } catch {
    return 'server unreachable';
  } finally {
    ctl.abort();
  }
}
