import type { HttpRequest } from 'uWebSockets.js';
import { AuthError, type AuthFailure } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Authenticator, Principal, Role } from './auth.js';
import { extractToken } from './auth-token.js';

const RANK: Record<Role, number> = { viewer: 0, publisher: 1, admin: 2 };

/** Each role includes the ones below it: viewer < publisher < admin. */
export const hasRole = (p: Principal, role: Role): boolean => RANK[p.role] >= RANK[role];

/** What the guard needs: ServerContext has it all. */
export interface AuthGuardDeps {
  auth: Authenticator;
  metrics: Pick<Metrics, 'authFailures'>;
  log?: AuthFailureLog;
}

/**
 * The one auth gate of every HTTP route, stream and WebSocket: the token must verify (else
 * AuthError UNAUTHORIZED, 401 / close 4001), then its role must reach `role` (else AuthError
 * FORBIDDEN, 403 / close 4003). Every refusal is counted and logged here, under its transport
 * and failing check, so no caller counts one itself. The rejection is always an AuthError, whose
 * message is the only text the client may get. With auth off every request is the anonymous admin.
 *
 * @example
 *   const principal = await requireRole(ctx, 'status', httpToken(req), 'admin');
 */
export async function requireRole(
  deps: AuthGuardDeps,
  transport: string,
  token: string | undefined,
  role: Role,
): Promise<Principal> {
  try {
    const principal = await deps.auth.verify(token);
    if (!hasRole(principal, role)) {
      throw new AuthError('FORBIDDEN', 'forbidden', `role ${principal.role} is below ${role}`);
    }
    return principal;
  } catch (err) {
    recordAuthFailure(deps, transport, err);
    throw err instanceof AuthError ? err : new AuthError('UNAUTHORIZED', 'internal', '', { cause: err });
  }
}

/**
 * The token of a plain HTTP request (Authorization header, then `?token=`). Read it before any
 * await: uWS frees the request when the handler returns.
 */
export function httpToken(req: HttpRequest): string | undefined {
  return extractToken({ authorization: req.getHeader('authorization'), query: req.getQuery() ?? '' }).token;
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
