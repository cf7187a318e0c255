import type { ErrorCode } from '../errors.js';

/**
 * WebSocket close codes framehub uses (README "Close codes"). 1xxx are RFC 6455; 4xxx are ours.
 */
export const CloseCode = {
  /** The server is shutting down; reconnect elsewhere or later. */
  GOING_AWAY: 1001,
  /** A client message exceeded the endpoint's payload limit. */
  TOO_BIG: 1009,
  /** A handler failed unexpectedly; counted in framehub_handler_errors_total and logged. */
  INTERNAL_ERROR: 1011,
  /** A connection limit (total, per IP, connect rate) was hit; retry later. */
  TRY_AGAIN_LATER: 1013,
  /** Missing, invalid or expired token, or no `hello` with a token in time when auth is on. */
  UNAUTHORIZED: 4001,
  /** A valid token whose role does not allow the endpoint (a viewer token on `/publish`). */
  FORBIDDEN: 4003,
  /** Held over the hard buffer limit for longer than viewers.slowCloseMs. */
  SLOW_CONSUMER: 4008,
} as const;

export interface ErrorRecord {
  type: 'error';
  code: ErrorCode;
  message: string;
  topic?: string;
}

/** A ping `id` comes back in the pong, so only a short string or a safe integer is echoed. */
export function validPingId(id: unknown): boolean {
  return (
    id === undefined || id === null || (typeof id === 'string' && id.length <= 64) || Number.isSafeInteger(id)
  );
}

export const BAD_PING_ID = '"id" must be a string of at most 64 characters or a safe integer';
