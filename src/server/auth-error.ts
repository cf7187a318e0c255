import { FramehubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';

export type AuthErrorCode = 'UNAUTHORIZED' | 'FORBIDDEN';

/**
 * The failing check of a refused token: the `reason` label of `framehub_auth_failures_total`
 * and a field of the log line. Never sent to the client.
 */
export type AuthFailure =
  | 'missing'
  | 'malformed'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'lifetime'
  | 'signature'
  | 'algorithm'
  | 'key'
  | 'claims'
  | 'forbidden'
  /** verify() met an error it does not know: a bug, logged at error level. */
  | 'internal';

/**
 * What a client is told, one text per code. Naming the failing check ("signature", "expired",
 * `"alg" not allowed`) would tell an attacker which part of a forged token passed. "missing
 * token" is kept apart because it depends only on the request itself (no token found in the
 * header, subprotocol or query), and it is the most common integration mistake.
 */
export const AUTH_CLIENT_MESSAGES = {
  UNAUTHORIZED: 'missing or invalid token',
  MISSING: 'missing token',
  FORBIDDEN: 'token does not allow this',
} as const;

/**
 * UNAUTHORIZED (401): no usable token. FORBIDDEN (403): a valid token that does not cover the
 * camera or endpoint. `message` is the client-safe text of the code; `reason` (the failing
 * check) and `detail` (what exactly failed) are for metrics and logs only.
 *
 * @example
 *   throw new AuthError('UNAUTHORIZED', 'expired', `exp ${exp} is ${now - exp} s ago`);
 *   err.message; // 'missing or invalid token'
 */
export class AuthError extends FramehubError {
  declare readonly code: AuthErrorCode;

  constructor(
    code: AuthErrorCode,
    readonly reason: AuthFailure,
    readonly detail = '',
    options?: { cause?: unknown },
  ) {
    super(code, clientMessage(code, reason), code === 'FORBIDDEN' ? 403 : 401);
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

function clientMessage(code: AuthErrorCode, reason: AuthFailure): string {
  if (code === 'FORBIDDEN') return AUTH_CLIENT_MESSAGES.FORBIDDEN;
  return reason === 'missing' ? AUTH_CLIENT_MESSAGES.MISSING : AUTH_CLIENT_MESSAGES.UNAUTHORIZED;
}

/** The failing check of a refused token, for the auth-failure metric and logs (never the client). */
export function authReason(err: unknown): AuthFailure | 'internal' {
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
 * The caller answers the client with `err.message` (the generic text) and nothing else.
 *
 * @example
 *   ctx.auth.verify(token).catch((err) => {
 *     recordAuthFailure(ctx, 'sse', err);
 *     sendError(res, 401, 'UNAUTHORIZED', (err as Error).message);
 *   });
 */
export function recordAuthFailure(
  sink: { metrics: Pick<Metrics, 'authFailures'>; log?: AuthFailureLog },
  transport: string,
  err: unknown,
): void {
  sink.metrics.authFailures.labels(transport, authReason(err)).inc();
  if (sink.log) logAuthFailure(sink.log, transport, err);
}
