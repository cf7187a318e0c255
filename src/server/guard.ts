import type { WebSocket } from 'uWebSockets.js';
import type { Logger } from '../log.js';
import type { HandlerName } from '../metrics/label-values.js';
import type { Metrics } from '../metrics/metrics.js';
import { CloseCode } from '../wire/protocol.js';

export interface GuardDeps {
  log: Logger;
  metrics: Metrics;
}

/**
 * Wraps a uWS callback so that an exception in it is caught, counted under
 * `framehub_handler_errors_total{handler}`, logged, and answered by `onError`, instead of
 * escaping into uWS, where it would end the process. `onError` must not throw either; if it
 * does, that is swallowed after being logged (the connection is usually gone by then).
 *
 * @example
 *   message: guard(deps, 'ws.message', onMessage, (_err, ws) => ws.end(1011, 'internal error')),
 */
export function guard<A extends unknown[]>(
  deps: GuardDeps,
  handler: HandlerName,
  fn: (...args: A) => void,
  onError?: (err: unknown, ...args: A) => void,
): (...args: A) => void {
  const counter = deps.metrics.handlerErrors.labels(handler);
  return (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      counter.inc();
      deps.log.error({ err, handler }, 'handler failed; answered with an error');
      try {
        onError?.(err, ...args);
      } catch (answerErr) {
        deps.log.warn({ err: answerErr, handler }, 'could not answer a failed handler');
      }
    }
  };
}

/** guard() for a WebSocket callback: a failure closes the socket with 1011, unless it is already closed. */
export function guardSocket<U extends { closed: boolean }, A extends unknown[]>(
  deps: GuardDeps,
  handler: HandlerName,
  fn: (ws: WebSocket<U>, ...rest: A) => void,
): (ws: WebSocket<U>, ...rest: A) => void {
  return guard(deps, handler, fn, (_err: unknown, ws: WebSocket<U>, ..._rest: A) => {
    if (!ws.getUserData().closed) ws.end(CloseCode.INTERNAL_ERROR, 'internal error');
  });
}
