import type { HistoryEntry } from '../hub/history.js';
import type { Frame } from '../hub/hub.js';
import type { GapRecord } from '../hub/resume.js';
import type { VideoItem } from '../hub/video-track.js';
import type { Backpressure } from './slow-state.js';

/** A viewer transport's name, as it appears in the `transport` label of every viewer metric. */
export type TransportName = 'ws' | 'sse' | 'mjpeg';

/**
 * Why the core ends a viewer; each transport maps it to its own close (WS: 4008, 4001, 1001,
 * 1011; HTTP: abort the response for `slow` and `error`, end it cleanly otherwise).
 */
export type CloseReason = 'slow' | 'expired' | 'shutdown' | 'error';

/**
 * What a `ViewerSession` needs from its connection, `C` (a uWS WebSocket, an HTTP response
 * with its state). One adapter object per transport, shared by all its connections, so a
 * connection costs no adapter of its own: it knows how to write bytes, how far behind a
 * connection is, and how to close one. Everything else (topics, `auto`, slow and hard
 * limits, expiry, counters) is the session's.
 *
 * @example
 *   const wsTransport: ViewerTransport<WebSocket<WsViewer>> = {
 *     name: 'ws', backpressure: 'sampled',
 *     write: (ws, bytes) => ws.send(bytes, true) === 1,
 *     bufferedAmount: (ws) => ws.getBufferedAmount(),
 *     cork: (ws, fn) => void ws.cork(fn),
 *     close: (ws, reason) => ws.end(...CLOSES[reason]),
 *     subscribe: (ws, topic) => void ws.subscribe(topic),
 *     unsubscribe: (ws, topic) => void ws.unsubscribe(topic),
 *   };
 */
export interface ViewerTransport<C> {
  readonly name: TransportName;
  /** How the transport reports that a viewer is behind (see SlowState). */
  readonly backpressure: Backpressure;
  /**
   * Writes bytes now. Returns false when the transport had to buffer them (an HTTP response
   * that uWS could not flush); a `signalled` transport's viewer turns slow on that.
   */
  write(conn: C, bytes: Uint8Array): boolean;
  /** Bytes held for this viewer and not yet sent (WS: uWS's count; HTTP: written since it blocked). */
  bufferedAmount(conn: C): number;
  /** Runs `fn`, batching its writes into one syscall (uWS cork). */
  cork(conn: C, fn: () => void): void;
  /** Ends the connection the transport's way for `reason`. The session has already forgotten it. */
  close(conn: C, reason: CloseReason): void;
  /**
   * Native pub/sub: the transport's own publish delivers `topic` to this connection (uWS
   * `ws.subscribe`, fanned out in C++). Without these, the session's group fans out in JS.
   */
  subscribe?(conn: C, topic: string): void;
  unsubscribe?(conn: C, topic: string): void;
}

/**
 * How a transport turns hub records into bytes. Every result is cached on the record it came
 * from (a frame's `encodings`; for an event, a WeakMap keyed by its history entry), so a
 * record is framed once per transport, never once per viewer or per replay. `undefined`: the
 * transport has no such message (MJPEG carries only frames).
 */
export interface Framing {
  /** `cached`: sent from the hub's cache (a new subscriber, or back from slow), not live. */
  frame(frame: Frame, cached: boolean): Uint8Array;
  event(entry: HistoryEntry): Uint8Array | undefined;
  gap(record: GapRecord): Uint8Array | undefined;
  variant(requested: string, variant: string): Uint8Array | undefined;
  /** A live video init or fragment; `cached`: from the GOP cache, not live. */
  video(item: VideoItem, cached: boolean): Uint8Array | undefined;
}
