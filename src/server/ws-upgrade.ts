import type { HttpRequest, HttpResponse, us_socket_context_t } from 'uWebSockets.js';
import { CloseCode } from '../wire/protocol.js';
import type { Principal, Role } from './auth.js';
import {
  anonymousPrincipal,
  type Credentials,
  recordAuthFailure,
  requireRole,
  roleRefusal,
} from './auth-guard.js';
import { extractToken } from './auth-token.js';
import { isRelayed, peerAddress, requestAddress } from './client-address.js';
import type { ServerContext } from './context.js';

/** What the upgrade decided, carried into the socket's user data. */
export interface UpgradeOutcome {
  /** The client's address (the peer, or behind a trusted proxy the one it forwarded; client-address.ts). */
  ip: string;
  /** Raw query string, for endpoint options such as `topics=`. */
  query: string;
  /** Counted against the connection limits; release on close. */
  admitted: boolean;
  /** Came without a token (auth on): counted against `ctx.unauthenticated` until its hello; give back on close. */
  unauthenticated: boolean;
  /** Known at once with auth off; otherwise set when the verdict passes (or by a `hello`). */
  principal: Principal | undefined;
  /** The token's check (auth on, token given), still running: settle it at open (ws-verdict.ts). */
  verdict: Promise<Principal> | undefined;
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
 * The common upgrade of `/ws` and `/publish`: admit against the limits, start the auth gate
 * (requireRole), and upgrade at once, inside uWS's upgrade handler. The token's verdict is
 * settled after the open (ws-verdict.ts), because uWS 3.0.6 may close a socket upgraded after
 * an await: its `res.cork` wrapper can read the HTTP state of a socket that has just become a
 * WebSocket at the same address, and close it, 1006, right after its open (uWebSockets #1929).
 * Refusals still upgrade and are closed at open with a documented code (1013, 4001, 4003),
 * because a browser WebSocket cannot read an HTTP status; `makeData` turns the outcome into
 * the socket's user data.
 */
export function upgradeWithAuth<T>(
  ctx: ServerContext,
  res: HttpResponse,
  req: HttpRequest,
  context: us_socket_context_t,
  opts: UpgradeOptions,
  makeData: (outcome: UpgradeOutcome) => T,
): void {
  const query = req.getQuery() ?? '';
  const { token, protocol } = extractToken({
    authorization: req.getHeader('authorization'),
    query,
    protocols: req.getHeader('sec-websocket-protocol'),
  });
  const credentials: Credentials = { token, relayedBy: isRelayed(req) ? peerAddress(res) : undefined };
  const outcome: UpgradeOutcome = {
    ip: requestAddress(res, req, ctx.proxy),
    query,
    admitted: false,
    unauthenticated: false,
    principal: undefined,
    verdict: undefined,
    reject: undefined,
  };
  // Without a token (auth on) a socket may still send one in `hello`: it is not checked now.
  const deferred = !token && ctx.auth.enabled && !opts.tokenRequired;
  outcome.reject = admit(ctx, opts, outcome, deferred);
  if (!outcome.reject && !deferred) {
    if (!ctx.auth.enabled) {
      // requireRole's decision, made at once: the socket is upgraded before any await.
      const principal = anonymousPrincipal(ctx, credentials);
      const refusal = roleRefusal(principal, opts.role ?? 'viewer');
      if (refusal) {
        recordAuthFailure(ctx, opts.transport, refusal);
        outcome.reject = { code: CloseCode.FORBIDDEN, reason: refusal.message };
      } else outcome.principal = principal;
    } else {
      outcome.verdict = requireRole(ctx, opts.transport, credentials, opts.role ?? 'viewer');
      // Settled at open; this keeps a socket that never opens from leaving an unhandled rejection.
      outcome.verdict.catch(() => {});
    }
  }
  res.upgrade(
    makeData(outcome),
    req.getHeader('sec-websocket-key'),
    protocol ?? '',
    req.getHeader('sec-websocket-extensions'),
    context,
  );
}

/**
 * Takes the socket's slot: the viewer limits, or for a socket whose token may come in `hello`
 * the smaller unauthenticated budget, never a viewer's slot. Returns the close to give at open
 * when the limits are full.
 */
function admit(
  ctx: ServerContext,
  opts: UpgradeOptions,
  outcome: UpgradeOutcome,
  deferred: boolean,
): UpgradeOutcome['reject'] {
  if (!opts.limited) return undefined;
  if (deferred) {
    if (!ctx.unauthenticated.take(outcome.ip)) {
      ctx.metrics.limitRejections.labels('unauthenticated').inc();
      return {
        code: CloseCode.TRY_AGAIN_LATER,
        reason: 'TOO_MANY_CONNECTIONS: too many sockets without a token; retry in 5s',
      };
    }
    outcome.unauthenticated = true;
    return undefined;
  }
  const admission = ctx.limits.admit(outcome.ip);
  if (!admission.ok) {
    ctx.metrics.limitRejections.labels(admission.limit).inc();
    return {
      code: CloseCode.TRY_AGAIN_LATER,
      reason: `${admission.code}: retry in ${admission.retryAfterSeconds}s`,
    };
  }
  outcome.admitted = true;
  return undefined;
}
