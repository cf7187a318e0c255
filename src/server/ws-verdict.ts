import type { WebSocket } from 'uWebSockets.js';
import type { AuthError } from '../errors.js';
import type { HandlerName } from '../metrics/label-values.js';
import { CloseCode } from '../wire/protocol.js';
import type { Principal } from './auth.js';
import { type GuardDeps, guardSocket } from './guard.js';

/**
 * A socket whose upgrade token is still being checked. Sockets are upgraded at once, inside
 * uWS's upgrade handler, and the token is checked afterwards: uWS 3.0.6 can close a socket
 * upgraded after an await (see ws-upgrade.ts), so no upgrade waits for a verdict.
 */
export interface AwaitingVerdict {
  closed: boolean;
  /** The token's check while it runs; undefined once settled, or when none was needed. */
  verdict: Promise<Principal> | undefined;
  /** What the socket sent before the verdict; made on its first message. */
  held: HeldMessages | undefined;
}

/** Messages a socket may send before its token is verified (usually a few ms): hello, subs, a frame. */
export const HELD_MESSAGES_MAX = 16;
/**
 * All sockets together may hold this much before their verdicts. The check waits on libuv's
 * thread pool (WebCrypto), which busy libvips calls can hold for seconds, and `/publish`
 * sockets (8 MiB messages) have no connection limit: without a total, unverified sockets
 * could park gigabytes.
 */
export const HELD_BYTES_TOTAL = 64 * 1024 * 1024;
let heldBytesTotal = 0;

/** The RATE_LIMITED message for one more message than may wait for the verdict. */
export const HELD_REFUSED = `at most ${HELD_MESSAGES_MAX} messages may wait for the token check; this one was dropped`;

/**
 * Messages that wait for the verdict, in order. uWS reuses a message's memory once its handler
 * returns, so each is copied. At most HELD_MESSAGES_MAX and `maxBytes` in all: a client that
 * floods during the check costs at most about one largest message.
 */
export class HeldMessages {
  private readonly messages: { data: ArrayBuffer; isBinary: boolean }[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Keeps a copy; false, keeping nothing, when that would pass a bound (this socket's or all sockets'). */
  hold(message: ArrayBuffer, isBinary: boolean): boolean {
    const size = message.byteLength;
    if (this.messages.length >= HELD_MESSAGES_MAX || this.bytes + size > this.maxBytes) return false;
    if (heldBytesTotal + size > HELD_BYTES_TOTAL) return false;
    this.messages.push({ data: message.slice(0), isBinary });
    this.bytes += size;
    heldBytesTotal += size;
    return true;
  }

  /** Gives the held bytes back to the total; call once, when the verdict has settled. */
  release(): void {
    heldBytesTotal -= this.bytes;
    this.bytes = 0;
  }

  /** Each held message, oldest first. */
  [Symbol.iterator]() {
    return this.messages[Symbol.iterator]();
  }
}

/**
 * First thing in a message handler: 'now' when no verdict is pending (handle the message),
 * 'held' when it waits for the verdict, 'refused' when it would pass the bound (answer it with
 * RATE_LIMITED; nothing is kept).
 */
export function holdForVerdict<U extends AwaitingVerdict>(
  ws: WebSocket<U>,
  message: ArrayBuffer,
  isBinary: boolean,
  maxBytes: number,
): 'now' | 'held' | 'refused' {
  const data = ws.getUserData();
  if (!data.verdict) return 'now';
  data.held ??= new HeldMessages(maxBytes);
  return data.held.hold(message, isBinary) ? 'held' : 'refused';
}

export interface VerdictHandlers<U> {
  /** The token passed: set the socket up as at an open with a known principal. */
  accept(ws: WebSocket<U>, principal: Principal): void;
  /** The endpoint's message handler, given each held message in order. */
  message(ws: WebSocket<U>, message: ArrayBuffer, isBinary: boolean): void;
}

/**
 * At open, for a socket with a verdict pending: when it comes, accepts the socket and replays
 * its held messages, corked; or closes it with 4001 (or 4003 for a role too low) and the
 * AuthError's client-safe message. requireRole has already counted and logged a refusal.
 */
export function settleVerdict<U extends AwaitingVerdict>(
  deps: GuardDeps,
  handler: HandlerName,
  ws: WebSocket<U>,
  handlers: VerdictHandlers<U>,
): void {
  const data = ws.getUserData();
  const accepted = guardSocket(
    deps,
    handler,
    (socket: WebSocket<U>, principal: Principal, held: HeldMessages | undefined) => {
      handlers.accept(socket, principal);
      for (const m of held ?? []) {
        if (data.closed) return;
        handlers.message(socket, m.data, m.isBinary);
      }
    },
  );
  /** What waited, taken off the socket and given back to the total: the verdict is in. */
  const takeHeld = () => {
    const held = data.held;
    data.held = undefined;
    data.verdict = undefined;
    held?.release();
    return held;
  };
  data.verdict
    ?.then(
      (principal) => {
        const held = takeHeld();
        if (!data.closed) ws.cork(() => accepted(ws, principal, held));
      },
      (err: AuthError) => {
        takeHeld();
        const code = err.code === 'FORBIDDEN' ? CloseCode.FORBIDDEN : CloseCode.UNAUTHORIZED;
        if (!data.closed) ws.cork(() => ws.end(code, err.message.slice(0, 120)));
      },
    )
    // Only reached if uWS itself throws (a socket it already closed): nothing is left to answer.
    .catch((err: unknown) => {
      deps.metrics.handlerErrors.labels(handler).inc();
      deps.log.error({ err, handler }, 'could not settle a socket after its token check');
    });
}
