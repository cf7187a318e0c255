import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { sendError, statusLine } from './http-util.js';

/**
 * Browsers on another origin: the `cors.origins` setting, applied by the routing layer
 * (guardRoutes) to every HTTP route and WebSocket upgrade, so no route writes a CORS header
 * itself. What it does, for a request whose `Origin` is listed:
 * - a preflight (`OPTIONS` with `Access-Control-Request-Method`), on any path, is answered 204
 *   with the methods, request headers and max-age below, before any route runs;
 * - every other answer gets `Access-Control-Allow-Origin: <that origin>` and the response
 *   headers clients read (`Access-Control-Expose-Headers`), written just after its status.
 *
 * And for one that is not listed: a preflight is refused 403 `FORBIDDEN` (the browser fails it
 * either way; the JSON names the setting for whoever reads the network tab); a POST, PATCH or
 * DELETE from a page of another origin is refused 403 too, unless it is the daemon's own
 * origin (see sameOrigin): those are the requests a browser sends without a preflight (a form,
 * a `no-cors` fetch), so a hostile page could otherwise post notices or start jobs on a daemon
 * with auth off. A GET, HEAD or plain OPTIONS is answered without CORS headers, so the browser
 * keeps the response from the page; a plain `<img>` (which sends no Origin) is unaffected.
 *
 * WebSocket upgrades: no Origin (non-browser clients), a listed origin or the daemon's own are
 * upgraded; any other is answered 403 before upgrading, so it costs no socket and no slot.
 *
 * No `Access-Control-Allow-Credentials`: tokens travel in `Authorization` or `?token=`, never
 * in cookies, so a page must hold a token to use one, and `credentials: 'include'` (or
 * `withCredentials`) fails by design.
 */

/** The methods a listed page may use; every route of the API is one of them. */
const ALLOW_METHODS = 'GET, HEAD, POST, PATCH, DELETE, OPTIONS';

/**
 * The request headers a listed page may set. `Authorization` for tokens, `Content-Type` for
 * JSON and uploads, `Last-Event-ID` for an EventSource that reconnects, validators and ranges
 * for snapshots and results, and what tus-js-client sends.
 */
const ALLOW_HEADERS = [
  'Authorization',
  'Content-Type',
  'Last-Event-ID',
  'If-None-Match',
  'If-Modified-Since',
  'Range',
  'Tus-Resumable',
  'Upload-Length',
  'Upload-Offset',
  'Upload-Metadata',
  'Upload-Defer-Length',
].join(', ');

/**
 * The response headers a page may read beyond the CORS-safelisted ones (Content-Type,
 * Content-Length, Cache-Control, Last-Modified, ...): `Retry-After` on 429 and 503, `Location`
 * of a new job or upload, validators and ranges, a snapshot's sequence and time, and tus's.
 */
const EXPOSE_HEADERS = [
  'Retry-After',
  'Location',
  'ETag',
  'Content-Range',
  'Accept-Ranges',
  'X-Seq',
  'X-Timestamp',
  'Tus-Resumable',
  'Tus-Version',
  'Tus-Extension',
  'Tus-Max-Size',
  'Upload-Offset',
  'Upload-Length',
  'Upload-Expires',
  'Upload-Metadata',
].join(', ');

/**
 * How long a browser may reuse a preflight (Chromium caps it at 7200). Ten minutes: after an
 * origin is removed from the list (and the daemon restarted), a page it served can send
 * un-preflighted requests for at most this long.
 */
export const PREFLIGHT_MAX_AGE_SECONDS = 600;

const VARY_ONLY: [string, string][] = [['Vary', 'Origin']];

/** Methods that change nothing (RFC 9110 9.2.1): a page of any origin may send them. */
const SAFE_METHODS = new Set(['get', 'head', 'options']);

/** The message of every refusal; it never echoes the client's Origin. */
const REFUSED = 'this origin is not allowed: add it to cors.origins';

/** `cors.origins` as the server uses it. */
export interface CorsPolicy {
  /** `["*"]`: every origin. */
  readonly anyOrigin: boolean;
  /** Exact origins, as browsers serialize them (`https://wall.example.com`, `http://127.0.0.1:5173`). */
  readonly origins: ReadonlySet<string>;
}

/**
 * Resolves `cors.origins` (each entry already validated by the config schema). `"*"` is refused
 * with auth off: it would let every web page the daemon's users visit read the cameras (their
 * browser is on the daemon's network) and use the admin API. With auth on, `"*"` lets a page on
 * any origin use a token it holds; tokens are never ambient (no cookies), so it cannot borrow
 * a visitor's.
 *
 * @example
 *   createCorsPolicy(['https://wall.example.com'], true) // { anyOrigin: false, origins: Set(1) }
 *   createCorsPolicy(['*'], false)                        // throws BAD_CONFIG
 */
export function createCorsPolicy(origins: readonly string[], authEnabled: boolean): CorsPolicy {
  const anyOrigin = origins.includes('*');
  if (anyOrigin && !authEnabled) {
    throw new ConfigError(
      'cors.origins: "*" needs auth on: with auth off it would let any web page your users visit ' +
        'read the cameras and use the admin API; list the origins instead',
    );
  }
  return { anyOrigin, origins: new Set(origins.filter((o) => o !== '*')) };
}

function listed(policy: CorsPolicy, origin: string): boolean {
  return policy.anyOrigin || policy.origins.has(origin);
}

/**
 * True when `origin` (`scheme://host[:port]`) names the host and port the request was sent to
 * (its `Host` header): the daemon's own page, such as the camera wall. The scheme is not
 * compared, so a page served over https by a TLS proxy still matches. Behind a proxy this holds
 * only when the proxy passes the client's Host on (nginx: `proxy_set_header Host $http_host`).
 */
export function sameOrigin(origin: string, host: string): boolean {
  const at = origin.indexOf('://');
  return at > 0 && host !== '' && origin.slice(at + 3).toLowerCase() === host.toLowerCase();
}

/** What the gate needs from the daemon. */
export interface CorsGateDeps {
  metrics: Pick<Metrics, 'limitRejections'>;
  log: Pick<Logger, 'debug'>;
}

/**
 * The CORS and Origin rules (see the top of this file), for guardRoutes. Refusals are counted in
 * `framehub_limit_rejections_total{limit="origin"}` and logged at debug.
 */
export class CorsGate {
  private readonly refusedCount: { inc(): void };
  /** `Vary: Origin` on every answer once any origin is listed (see withCors). */
  private readonly varies: boolean;

  constructor(
    private readonly policy: CorsPolicy,
    private readonly deps: CorsGateDeps,
  ) {
    this.refusedCount = deps.metrics.limitRejections.labels('origin');
    this.varies = policy.anyOrigin || policy.origins.size > 0;
  }

  /**
   * For an HTTP route, before it runs (read synchronously: uWS frees the request after the
   * handler returns). Returns the response the route should write to, with the CORS headers
   * added as it writes its status, or undefined when the gate answered: a preflight, or a
   * refused request.
   */
  http(res: HttpResponse, req: HttpRequest): HttpResponse | undefined {
    const origin = req.getHeader('origin');
    const method = req.getMethod();
    if (origin === '') return this.varies ? withCors(res, VARY_ONLY) : res;
    const allowed = listed(this.policy, origin);
    if (method === 'options' && req.getHeader('access-control-request-method') !== '') {
      if (allowed) this.preflight(res, req, origin);
      else this.refuse(res, method, 'preflight from an origin not in cors.origins');
      return undefined;
    }
    if (allowed) return withCors(res, this.headers(origin));
    if (!SAFE_METHODS.has(method) && !sameOrigin(origin, req.getHeader('host'))) {
      this.refuse(res, method, 'request from an origin not in cors.origins');
      return undefined;
    }
    return this.varies ? withCors(res, VARY_ONLY) : res;
  }

  /**
   * For a WebSocket upgrade: true when it was refused (answered 403 before upgrading). A
   * browser's WebSocket cannot read the status (it sees a failed handshake, code 1006); its
   * developer tools show the 403.
   */
  refusesUpgrade(res: HttpResponse, req: HttpRequest): boolean {
    const origin = req.getHeader('origin');
    if (origin === '' || listed(this.policy, origin) || sameOrigin(origin, req.getHeader('host')))
      return false;
    this.refuse(res, 'get', 'WebSocket from an origin not in cors.origins');
    return true;
  }

  private headers(origin: string): [string, string][] {
    return [
      ['Access-Control-Allow-Origin', this.policy.anyOrigin ? '*' : origin],
      ['Vary', 'Origin'],
      ['Access-Control-Expose-Headers', EXPOSE_HEADERS],
    ];
  }

  private preflight(res: HttpResponse, req: HttpRequest, origin: string): void {
    // Chromium's private network access: a public page asking a daemon on the LAN. Listing the
    // page's origin is the operator's consent.
    const privateNetwork = req.getHeader('access-control-request-private-network') === 'true';
    res.cork(() => {
      res
        .writeStatus(statusLine(204))
        .writeHeader('Access-Control-Allow-Origin', this.policy.anyOrigin ? '*' : origin)
        .writeHeader('Vary', 'Origin')
        .writeHeader('Access-Control-Allow-Methods', ALLOW_METHODS)
        .writeHeader('Access-Control-Allow-Headers', ALLOW_HEADERS)
        .writeHeader('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_SECONDS));
      if (privateNetwork) res.writeHeader('Access-Control-Allow-Private-Network', 'true');
      // A 204 has no Content-Length (RFC 9110 8.6); end() would write one.
      res.endWithoutBody();
    });
  }

  private refuse(res: HttpResponse, method: string, why: string): void {
    this.refusedCount.inc();
    this.deps.log.debug({ method }, `refused: ${why}`);
    // Closed: a refused POST may still have a body on its way, which nobody will read.
    sendError(res, 403, 'FORBIDDEN', REFUSED, this.varies ? { Vary: 'Origin' } : {}, true);
  }
}

/** The calls that write the status line or the first header: CORS headers go out just before. */
const FIRST_WRITES = new Set<PropertyKey>(['writeHeader', 'write', 'end', 'tryEnd', 'endWithoutBody']);

/**
 * `res` with `headers` written once, just after its status: at `writeStatus`, or before the
 * first header or body write when a route lets uWS write `200 OK` itself. Every route writes
 * through it, so none needs to know about CORS. The cost is one Proxy per request while CORS is
 * in use, and one property trap per later call (a stream's writes included); methods are bound
 * once per response, not per call. Chained calls stay on the proxy.
 *
 * Why `Vary: Origin` goes on answers to requests without an Origin too (when any origin is
 * listed): a browser caches a snapshot or a job result fetched by a plain `<img>` (no CORS
 * headers) and would reuse it for a `crossorigin` request from a listed page, which then fails.
 */
function withCors(res: HttpResponse, headers: readonly [string, string][]): HttpResponse {
  let written = false;
  const writeCors = () => {
    if (written) return;
    written = true;
    for (const [name, value] of headers) res.writeHeader(name, value);
  };
  const bound = new Map<PropertyKey, unknown>();
  const proxy: HttpResponse = new Proxy(res, {
    get(target, key) {
      const known = bound.get(key);
      if (known !== undefined) return known;
      const value: unknown = Reflect.get(target, key);
      if (typeof value !== 'function') return value;
      const call = (args: unknown[]) => {
        const out: unknown = value.apply(target, args);
        return out === target ? proxy : out;
      };
      let fn: (...args: unknown[]) => unknown;
      if (key === 'writeStatus')
        fn = (...args) => {
          const out = call(args);
          writeCors();
          return out;
        };
      else if (FIRST_WRITES.has(key))
        fn = (...args) => {
          writeCors();
          return call(args);
        };
      else fn = (...args) => call(args);
      bound.set(key, fn);
      return fn;
    },
  });
  return proxy;
}
