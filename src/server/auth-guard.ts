import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { AuthError, type AuthFailure } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { ANONYMOUS, type Authenticator, type Principal, type Role } from './auth.js';
import { extractToken } from './auth-token.js';
import { isRelayed, type ProxyTrust, peerAddress } from './client-address.js';

const RANK: Record<Role, number> = { viewer: 0, publisher: 1, admin: 2 };

/** Each role includes the ones below it: viewer < publisher < admin. */
export const hasRole = (p: Principal, role: Role): boolean => RANK[p.role] >= RANK[role];

/** What the guard needs: ServerContext has it all. */
export interface AuthGuardDeps {
  auth: Authenticator;
  metrics: Pick<Metrics, 'authFailures'>;
  log?: AuthFailureLog;
  /** `trustProxy` and `authOffTrustsProxy`; undefined vouches for no proxy. */
  proxy?: Pick<ProxyTrust, 'vouchesFor'>;
}

/**
 * What a request shows the gate, read synchronously from uWS (httpCredentials, or the
 * upgrade's own reading): its token, and whether it came through a proxy.
 */
export interface Credentials {
  token: string | undefined;
  /**
   * The peer's address when the request carried `X-Forwarded-For`, `Forwarded` or `Via` (a
   * proxy relayed it); undefined otherwise. It matters only with auth off (anonymousPrincipal).
   */
  relayedBy: string | undefined;
}

/**
 * Who a request is with auth off, where a relayed request may come from anywhere. A daemon
 * on 127.0.0.1 behind nginx on the same host would otherwise make every outside client the
 * anonymous admin. A request that names a proxy is the anonymous viewer (it may watch, and
 * no more), unless the operator opted in (`authOffTrustsProxy`) and its peer is in
 * `trustProxy`. Every anonymous principal is decided here: requireRole, and the WebSocket
 * upgrade (which cannot wait for a promise), both ask this function.
 */
export function anonymousPrincipal(deps: Pick<AuthGuardDeps, 'proxy'>, credentials: Credentials): Principal {
  const { relayedBy } = credentials;
  if (relayedBy === undefined || deps.proxy?.vouchesFor(relayedBy)) return ANONYMOUS;
  return RELAYED_ANONYMOUS;
}

/** The anonymous principal of a relayed request the operator did not vouch for: a viewer of every camera. */
export const RELAYED_ANONYMOUS: Principal = Object.freeze({ ...ANONYMOUS, role: 'viewer' });

/**
 * The refusal of a principal whose role is below `role`, or undefined when it may pass: reason
 * `proxied_anonymous` for the relayed anonymous viewer (auth off behind a proxy), `forbidden`
 * for a token's role.
 */
export function roleRefusal(principal: Principal, role: Role): AuthError | undefined {
  if (hasRole(principal, role)) return undefined;
  const reason = principal === RELAYED_ANONYMOUS ? 'proxied_anonymous' : 'forbidden';
  const detail =
    reason === 'proxied_anonymous'
      ? `auth is off and the request came through a proxy not vouched for (trustProxy, authOffTrustsProxy); ${role} refused`
      : `role ${principal.role} is below ${role}`;
  return new AuthError('FORBIDDEN', reason, detail);
}

/**
 * The one auth gate of every HTTP route, stream and WebSocket: the token must verify (else
 * AuthError UNAUTHORIZED, 401 / close 4001), then its role must reach `role` (else AuthError
 * FORBIDDEN, 403 / close 4003). Every refusal is counted and logged here, under its transport
 * and failing check, so no caller counts one itself. The rejection is always an AuthError, whose
 * message is the only text the client may get. With auth off every request is anonymous
 * (anonymousPrincipal): the admin, or only a viewer when a proxy relayed it.
 *
 * @example
 *   const principal = await requireRole(ctx, 'status', httpCredentials(res, req), 'admin');
 */
export async function requireRole(
  deps: AuthGuardDeps,
  transport: string,
  credentials: Credentials,
  role: Role,
): Promise<Principal> {
  try {
    const principal = deps.auth.enabled
      ? await deps.auth.verify(credentials.token)
      : anonymousPrincipal(deps, credentials);
    const refusal = roleRefusal(principal, role);
    if (refusal) throw refusal;
    return principal;
  } catch (err) {
    recordAuthFailure(deps, transport, err);
    throw err instanceof AuthError ? err : new AuthError('UNAUTHORIZED', 'internal', '', { cause: err });
  }
}

/**
 * The credentials of a plain HTTP request: its token (Authorization header, then `?token=`)
 * and whether a proxy relayed it. Read them before any await: uWS frees the request when the
 * handler returns.
 */
export function httpCredentials(res: HttpResponse, req: HttpRequest): Credentials {
  return {
    token: extractToken({ authorization: req.getHeader('authorization'), query: req.getQuery() ?? '' }).token,
    relayedBy: isRelayed(req) ? peerAddress(res) : undefined,
  };
}

/** The failing check of a refused token, for the auth-failure metric and logs (never the client). */
export function authReason(err: unknown): AuthFailure {
  return err instanceof AuthError ? err.reason : 'internal';
}

export type AuthFailureLog = Pick<Logger, 'debug' | 'info' | 'error'>;

/**
 * One log line per refused token, with the detail the client does not get. A missing token is
 * logged at debug (every anonymous probe has one), an unknown error at error, the rest at info.
 * The token itself is never logged: a refused token may still be a valid credential elsewhere.
 */
export function logAuthFailure(log: AuthFailureLog, transport: string, err: unknown): void {
  if (!(err instanceof AuthError)) {
    log.error({ transport, reason: 'internal', err }, 'auth check failed unexpectedly');
    return;
  }
  const fields = { transport, code: err.code, reason: err.reason, detail: err.detail };
  if (err.reason === 'internal') log.error({ ...fields, err: err.cause }, 'auth check failed unexpectedly');
  else if (err.reason === 'missing') log.debug(fields, 'auth refused');
  else log.info(fields, 'auth refused');
}

/**
 * Everything a refused token leaves behind on the server: the metric
 * `framehub_auth_failures_total{transport, reason}` and, when a logger is given, the log line.
 * requireRole calls it; it is exported for the tests and for refusals after the gate (a token
 * that expires on an open connection).
 */
export function recordAuthFailure(
  sink: { metrics: Pick<Metrics, 'authFailures'>; log?: AuthFailureLog },
  transport: string,
  err: unknown,
): void {
  sink.metrics.authFailures.labels(transport, authReason(err)).inc();
  if (sink.log) logAuthFailure(sink.log, transport, err);
}
