import type {
  HttpRequest,
  HttpResponse,
  RecognizedString,
  TemplatedApp,
  WebSocketBehavior,
} from 'uWebSockets.js';
import { isClientError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { CorsGate } from './cors.js';
import { answerError, sendError } from './http-util.js';

/**
 * Why a request's body boundary is ambiguous, or undefined when it is not. uWebSockets.js 3.0.6
 * (uWS v20) takes the first of two `Content-Length` headers and reads any `Transfer-Encoding`
 * value as chunked, so a proxy in front that reads the same bytes differently would see one
 * request where uWS sees two (request smuggling). Refused here:
 * - more than one `Content-Length`, even equal ones: no client sends two, and refusing is
 *   simpler than proving every proxy in front merges them the same way;
 * - a `Content-Length` that is not 1 to 15 digits (uWS already refuses most of these itself);
 * - more than one `Transfer-Encoding`, or one that is not `chunked` (case-insensitive, as
 *   transfer-coding names are): `gzip, chunked`, `identity`, `xchunked`;
 * - `Transfer-Encoding` together with `Content-Length` (uWS already refuses this itself).
 * Header names come lowercased from uWS. Messages never echo the client's values.
 *
 * @example
 *   framingProblem(req) // 'more than one Content-Length header'
 */
export function framingProblem(req: HttpRequest): string | undefined {
  let lengths = 0;
  let encodings = 0;
  let length = '';
  let encoding = '';
  req.forEach((key, value) => {
    if (key === 'content-length') {
      lengths++;
      length = value;
    } else if (key === 'transfer-encoding') {
      encodings++;
      encoding = value;
    }
  });
  if (lengths > 1) return 'more than one Content-Length header';
  if (encodings > 1) return 'more than one Transfer-Encoding header';
  if (lengths && encodings) return 'both Content-Length and Transfer-Encoding';
  if (lengths && !/^[0-9]{1,15}$/.test(length)) return 'Content-Length is not a decimal number';
  if (encodings && encoding.toLowerCase() !== 'chunked') return 'Transfer-Encoding other than chunked';
  return undefined;
}

type Handler = (res: HttpResponse, req: HttpRequest) => void | Promise<void>;

const ROUTE_METHODS = [
  'get',
  'post',
  'put',
  'del',
  'patch',
  'options',
  'head',
  'connect',
  'trace',
  'any',
] as const;

export interface RouteGuardDeps {
  metrics: Metrics;
  log: Logger;
  /** `cors.origins`: CORS headers, preflights and the Origin checks (see cors.ts). */
  cors?: CorsGate;
}

/**
 * The shared routing layer. uWS has no middleware, so this replaces the app's registration
 * methods, and every route and WebSocket upgrade registered on `app` from then on:
 * - checks the request's framing first (see framingProblem). A refusal is 400 `BAD_REQUEST`,
 *   then the connection closes, counted as `framehub_limit_rejections_total{limit="http_framing"}`;
 * - has what it throws answered by answerError: a FramehubError with its own status and code,
 *   anything else counted, logged and answered 500 `INTERNAL`. An exception that escaped into
 *   uWS would end the process;
 * - answers HEAD wherever it answers GET (uWS itself routes HEAD only to `head` and `any`
 *   routes), with the same status and headers and no body: see headResponse;
 * - with `cors`, answers preflights, adds the CORS headers to what routes write, and refuses
 *   requests and upgrades from origins not allowed, before the route runs (see CorsGate).
 * Install it before any route: `const app = guardRoutes(uWS.App(), deps)`.
 *
 * The framing answer waits one turn of the event loop, on purpose. uWS parses every request in
 * a read before it flushes any answer, and a close asked for while it parses only happens
 * after: a 400 written at once would still let the bytes behind it (the smuggled request) be
 * routed and answered. Left pending instead, the refused request makes uWS drop the connection
 * itself as soon as another request follows it in the same read (it does not pipeline behind a
 * pending answer), and when nothing follows, the 400 goes out and the connection closes before
 * any later byte is read. The cost: a client that sent more behind an ambiguous request sees
 * the connection close without the 400. Either way nothing after it is parsed as a request.
 *
 * @example
 *   const app = guardRoutes(uWS.App(), { metrics, log });
 *   app.get('/healthz', handler); // HEAD /healthz works too; a throw in handler is answered
 */
export function guardRoutes(app: TemplatedApp, deps: RouteGuardDeps): TemplatedApp {
  const refused = deps.metrics.limitRejections.labels('http_framing');
  /** True when the request was refused (and is being answered): the handler must not run. */
  const refuses = (res: HttpResponse, req: HttpRequest): boolean => {
    const problem = framingProblem(req);
    if (problem === undefined) return false;
    refused.inc();
    deps.log.debug({ problem, url: req.getUrl().slice(0, 200) }, 'request refused: ambiguous framing');
    refuseAfterParsing(res, problem);
    return true;
  };

  // What a route threw is answered while the request is still in hand: the connection stays
  // open unless a body may follow or the failure is unexpected. From a rejected promise the
  // request is gone, so that answer always closes.
  const run = (handler: Handler, raw: HttpResponse, req: HttpRequest) => {
    if (refuses(raw, req)) return;
    let res = raw;
    try {
      const wrapped = deps.cors ? deps.cors.http(raw, req) : raw;
      if (!wrapped) return;
      res = wrapped;
      const pending = handler(res, req);
      if (pending instanceof Promise) {
        pending.catch((err: unknown) => answerError(deps, res, err, { closeConnection: true }));
      }
    } catch (err) {
      answerError(deps, res, err, { closeConnection: !isClientError(err) || mayHaveBody(req) });
    }
  };

  for (const method of ROUTE_METHODS) {
    const register = app[method].bind(app);
    app[method] = (pattern, handler: Handler) => {
      if (method === 'get') app.head(pattern, handler);
      return register(pattern, (res, req) =>
        run(
          handler,
          method === 'head' || (method === 'any' && req.getMethod() === 'head') ? headResponse(res) : res,
          req,
        ),
      );
    };
  }
  const registerWs = app.ws.bind(app);
  app.ws = <UserData>(pattern: Parameters<TemplatedApp['ws']>[0], behavior: WebSocketBehavior<UserData>) => {
    const upgrade = behavior.upgrade ?? defaultUpgrade;
    return registerWs(pattern, {
      ...behavior,
      upgrade: (res, req, context) =>
        refuses(res, req) || deps.cors?.refusesUpgrade(res, req) ? undefined : upgrade(res, req, context),
    });
  };
  return app;
}

/** Read only on the error path, while the request is still valid. */
function mayHaveBody(req: HttpRequest): boolean {
  return req.getHeader('content-length') !== '' || req.getHeader('transfer-encoding') !== '';
}

/**
 * What a GET handler writes to when the request was HEAD (RFC 9110 9.3.2): the same status and
 * headers, and no body. `end(body)` sends `Content-Length` (the GET body's length) and no body;
 * `write()` (an SSE or MJPEG stream) is dropped, and a stream ends with `endWithoutBody()` once
 * its headers are out (see openViewerRequest), so no viewer is ever registered for a HEAD.
 *
 * Two limits of uWS 20 (uWebSockets.js 3.0.6) shape this. `endWithoutBody(length)` leaves the
 * response pending (fixed upstream in uWebSockets c8da12b, May 2025), which ends the process
 * when a handler returns; so the length is written as a plain header and the response ended
 * with `endWithoutBody()`. And that call cannot also close the connection, so an answer that
 * must close (a framing refusal, an unexpected error) goes out with `Content-Length: 0`.
 */
function headResponse(res: HttpResponse): HttpResponse {
  let streamed = false;
  const finish = (length: number, closeConnection?: boolean): HttpResponse => {
    if (closeConnection) res.endWithoutBody(0, true);
    else {
      if (!streamed) res.writeHeader('Content-Length', String(length));
      res.endWithoutBody();
    }
    return head;
  };
  const overrides: Partial<HttpResponse> = {
    end: (body?: RecognizedString, closeConnection?: boolean) => finish(byteLength(body), closeConnection),
    tryEnd: (_chunk: RecognizedString, totalSize: number) => {
      finish(totalSize);
      return [true, true];
    },
    write: () => {
      streamed = true;
      return true;
    },
  };
  const head: HttpResponse = new Proxy(res, {
    get(target, key) {
      const own = overrides[key as keyof HttpResponse];
      if (own) return own;
      const value: unknown = Reflect.get(target, key);
      if (typeof value !== 'function') return value;
      // Chained calls (`res.writeStatus(..).end(..)`) must stay on the proxy.
      return (...args: unknown[]) => {
        const out: unknown = value.apply(target, args);
        return out === target ? head : out;
      };
    },
  });
  return head;
}

function byteLength(body: RecognizedString | undefined): number {
  if (body === undefined) return 0;
  return typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
}

/** What uWS does for a behaviour without `upgrade`: accept with empty user data. */
function defaultUpgrade(
  res: HttpResponse,
  req: HttpRequest,
  context: Parameters<HttpResponse['upgrade']>[4],
): void {
  res.upgrade(
    {},
    req.getHeader('sec-websocket-key'),
    req.getHeader('sec-websocket-protocol'),
    req.getHeader('sec-websocket-extensions'),
    context,
  );
}

/** The deferred 400 (see guardRoutes for why it waits). */
function refuseAfterParsing(res: HttpResponse, problem: string): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  setImmediate(() => {
    if (!aborted) sendError(res, 400, 'BAD_REQUEST', `ambiguous request framing: ${problem}`, {}, true);
  });
}
