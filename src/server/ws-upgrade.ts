import type { HttpRequest, HttpResponse, us_socket_context_t } from 'uWebSockets.js';
import type { AuthError } from '../errors.js';
import { CloseCode } from '../wire/protocol.js';
import type { Principal, Role } from './auth.js';
import { requireRole } from './auth-guard.js';
import { extractToken } from './auth-token.js';
import type { ServerContext } from './context.js';
import { remoteIp } from './http-util.js';

/** What the upgrade decided, carried into the socket's user data. */
export interface UpgradeOutcome {
  ip: string;
  /** Raw query string, for endpoint options such as `topics=`. */
  query: string;
  /** Counted against the connection limits; release on close. */
  admitted: boolean;
  /** Came without a token (auth on): counted against `ctx.unauthenticated` until its hello; give back on close. */
  unauthenticated: boolean;
  /** Undefined when no token came and auth is on: the endpoint may still accept a `hello`. */
  principal: Principal | undefined;
  /** Set when the socket must be closed right after opening, with this code and reason. */
  reject: { code: number; reason: string } | undefined;
}

export interface UpgradeOptions {
  /** Metric label for auth failures. */
  transport: string;
  /** The least role the endpoint takes (requireRole; default viewer); a lower one is closed with 4003. */
  role?: Role;
  /** Count the socket against the viewer connection limits. */
  limited: boolean;
  /** Without a token, verify anyway (so auth-on refuses) instead of deferring to a hello. */
  tokenRequired: boolean;
}

/**
 * The common upgrade of `/ws` and `/publish`: copy headers out before any await, admit against
 * the limits, pass the auth gate (requireRole), then upgrade inside cork. Refusals still upgrade
 * and are closed at open with a documented code (1013, 4001, 4003), because a browser WebSocket
 * cannot read an HTTP status; `makeData` turns the outcome into the socket's user data.
 */
export function upgradeWithAuth<T>(
  ctx: ServerContext,
  res: HttpResponse,
  req: HttpRequest,
  context: us_socket_context_t,
  opts: UpgradeOptions,
  makeData: (outcome: UpgradeOutcome) => T,
): void {
  const key = req.getHeader('sec-websocket-key');
  const extensions = req.getHeader('sec-websocket-extensions');
  const query = req.getQuery() ?? '';
  const { token, protocol } = extractToken({
    authorization: req.getHeader('authorization'),
    query,
    protocols: req.getHeader('sec-websocket-protocol'),
  });
  const outcome: UpgradeOutcome = {
    ip: remoteIp(res),
    query,
    admitted: false,
    unauthenticated: false,
    principal: undefined,
    reject: undefined,
  };
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });

  const finish = () => {
    if (aborted) {
      if (outcome.admitted) ctx.limits.release(outcome.ip);
      if (outcome.unauthenticated) ctx.unauthenticated.give(outcome.ip);
      return;
    }
    res.cork(() => res.upgrade(makeData(outcome), key, protocol ?? '', extensions, context));
  };

  // A socket without a token (auth on) may still send one in `hello`. Until then it is not a
  // viewer: it takes a slot of the smaller unauthenticated budget, never a viewer's slot.
  const deferred = !token && ctx.auth.enabled && !opts.tokenRequired;
  if (opts.limited && deferred) {
    if (!ctx.unauthenticated.take(outcome.ip)) {
      ctx.metrics.limitRejections.labels('unauthenticated').inc();
      outcome.reject = {
        code: CloseCode.TRY_AGAIN_LATER,
        reason: 'TOO_MANY_CONNECTIONS: too many sockets without a token; retry in 5s',
      };
    } else outcome.unauthenticated = true;
    finish();
    return;
  }
  if (opts.limited) {
    const admission = ctx.limits.admit(outcome.ip);
    if (!admission.ok) {
      ctx.metrics.limitRejections.labels(admission.limit).inc();
      outcome.reject = {
        code: CloseCode.TRY_AGAIN_LATER,
        reason: `${admission.code}: retry in ${admission.retryAfterSeconds}s`,
      };
      finish();
      return;
    }
    outcome.admitted = true;
  }
  if (deferred) {
    finish();
    return;
  }
  requireRole(ctx, opts.transport, token, opts.role ?? 'viewer')
    .then(
      (principal) => {
        outcome.principal = principal;
        finish();
      },
      (err: AuthError) => {
        const code = err.code === 'FORBIDDEN' ? CloseCode.FORBIDDEN : CloseCode.UNAUTHORIZED;
        outcome.reject = { code, reason: err.message };
        finish();
      },
    )
    .catch((err: unknown) => {
      // The upgrade itself threw (a socket uWS had already closed): nothing is left to answer.
      ctx.metrics.handlerErrors.labels(`${opts.transport}.upgrade`).inc();
      ctx.log.error({ err }, 'upgrade failed after auth');
    });
}
