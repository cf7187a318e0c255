/**
 * WebSocket close codes framehub uses (README "Close codes"). 1xxx are RFC 6455; 4xxx are ours.
 */
export const CloseCode = {
  /** The server is shutting down; reconnect elsewhere or later. */
  GOING_AWAY: 1001,
  /** Violated a policy (rate, connection or topic limits). */
  POLICY: 1008,
  /** A client message exceeded ws.maxPayloadBytes (uWS closes the socket itself). */
  TOO_BIG: 1009,
} as const;

/** Stable codes carried by `{type:'error', code, message}` records and HTTP error bodies. */
export type ErrorCode =
  | 'BAD_MESSAGE'
  | 'UNKNOWN_TYPE'
  | 'BAD_TOPIC'
  | 'UNKNOWN_TOPIC'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'NOT_READY'
  | 'INTERNAL';

export interface ErrorRecord {
  type: 'error';
  code: ErrorCode;
  message: string;
  topic?: string;
}
