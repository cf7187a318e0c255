import type { HttpRequest, HttpResponse, TemplatedApp, WebSocketBehavior } from 'uWebSockets.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { sendError } from './http-util.js';

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

export interface FramingGuardDeps {
  metrics: Metrics;
  log: Logger;
}

/**
 * Makes every route and WebSocket upgrade registered on `app` from now on check the request's
 * framing first (see framingProblem), since uWS has no middleware and no setting for it. It
 * replaces the app's registration methods, so install it before any route:
 * `const app = guardFraming(uWS.App(), deps)`. A refusal is 400 `BAD_REQUEST`, then the
 * connection closes, counted as `framehub_limit_rejections_total{limit="http_framing"}`.
 *
 * The answer waits one turn of the event loop, on purpose. uWS parses every request in a read
 * before it flushes any answer, and a close asked for while it parses only happens after: a
 * 400 written at once would still let the bytes behind it (the smuggled request) be routed
 * and answered. Left pending instead, the refused request makes uWS drop the connection itself
 * as soon as another request follows it in the same read (it does not pipeline behind a pending
 * answer), and when nothing follows, the 400 goes out and the connection closes before any
 * later byte is read. The cost: a client that sent more behind an ambiguous request sees the
 * connection close without the 400. Either way nothing after it is parsed as a request.
 *
 * @example
 *   const app = guardFraming(uWS.App(), { metrics, log });
 *   app.post('/api/v1/notices', handler); // handler never sees an ambiguous request
 */
export function guardFraming(app: TemplatedApp, deps: FramingGuardDeps): TemplatedApp {
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

  /**
   * An exception in a route escapes into uWS and ends the process; caught here instead, it is
   * counted (`framehub_handler_errors_total{handler="http"}`), logged, and answered with a
   * generic 500 that never carries the raw message.
   */
  const failed = deps.metrics.handlerErrors.labels('http');
  const answerFailure = (res: HttpResponse, err: unknown) => {
    failed.inc();
    deps.log.error({ err }, 'HTTP handler failed; answered 500');
    try {
      sendError(res, 500, 'INTERNAL', 'internal error', {}, true);
    } catch {
      // Already answered, or the client is gone: nothing left to tell it.
    }
  };
  for (const method of ROUTE_METHODS) {
    const register = app[method].bind(app);
    app[method] = (pattern, handler: Handler) =>
      register(pattern, (res, req) => {
        if (refuses(res, req)) return;
        try {
          const pending = handler(res, req);
          if (pending instanceof Promise) pending.catch((err: unknown) => answerFailure(res, err));
        } catch (err) {
          answerFailure(res, err);
        }
      });
  }
  const registerWs = app.ws.bind(app);
  app.ws = <UserData>(pattern: Parameters<TemplatedApp['ws']>[0], behavior: WebSocketBehavior<UserData>) => {
    const upgrade = behavior.upgrade ?? defaultUpgrade;
    return registerWs(pattern, {
      ...behavior,
      upgrade: (res, req, context) => (refuses(res, req) ? undefined : upgrade(res, req, context)),
    });
  };
  return app;
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

/** The deferred 400 (see guardFraming for why it waits). */
function refuseAfterParsing(res: HttpResponse, problem: string): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  setImmediate(() => {
    if (!aborted) sendError(res, 400, 'BAD_REQUEST', `ambiguous request framing: ${problem}`, {}, true);
  });
}
