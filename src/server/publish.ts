import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import type { CameraConfig } from '../config/schema.js';
import { describeInput } from '../hub/topics.js';
import type { FrameIngest } from '../ingest/frame-ingest.js';
import type { WsErrorCode } from '../metrics/label-values.js';
import { BAD_PING_ID, CloseCode, validPingId } from '../wire/protocol.js';
import { decodeUntrusted, encode } from '../wire/records.js';
import { canView, type Principal } from './auth.js';
import type { ServerContext } from './context.js';
import { guard, guardSocket } from './guard.js';
import { type UpgradeOutcome, upgradeWithAuth } from './ws-upgrade.js';
import { type AwaitingVerdict, HELD_REFUSED, holdForVerdict, settleVerdict } from './ws-verdict.js';

export interface PublishOptions {
  maxPayloadBytes: number;
  idleTimeoutSeconds: number;
}

/** Handles a publisher record kind other than frame (audio, added by the VAD). */
export type PublishHandler = (
  cam: CameraConfig,
  record: Record<string, unknown>,
) => { ok: true } | { ok: false; code: WsErrorCode; message: string };

interface Publisher extends AwaitingVerdict {
  principal: Principal | undefined;
  reject: UpgradeOutcome['reject'];
  closed: boolean;
  /** Closes the socket when its token expires (publishers are few: one timer each). */
  expiry: NodeJS.Timeout | undefined;
}

/**
 * `/publish`: WebSocket for sources that push media (bench feeders, edge devices).
 * Separate from `/ws` so viewers keep a small message limit while publishers may send
 * whole frames. With auth on, the token (role publisher or admin) must come with the upgrade.
 */
/** A publisher's `ts`, if it can be a capture time in ms: 2^32 (1970-02-19) up to 2^53, rounded. */
function plausibleCaptureTime(ts: unknown): number | undefined {
  if (typeof ts !== 'number' || !(ts >= 2 ** 32 && ts <= Number.MAX_SAFE_INTEGER)) return undefined;
  return Math.round(ts);
}

export function registerPublisher(
  app: TemplatedApp,
  ctx: ServerContext,
  opts: PublishOptions,
  cameras: ReadonlyMap<string, CameraConfig>,
  ingest: FrameIngest,
  handlers: ReadonlyMap<string, PublishHandler> = new Map(),
): void {
  const errors = ctx.metrics.wsErrors;
  const sendError = (ws: WebSocket<Publisher>, code: WsErrorCode, message: string) => {
    errors.labels(code).inc();
    ws.send(encode({ type: 'error', code, message }), true);
  };

  const onRecord = (ws: WebSocket<Publisher>, rec: Record<string, unknown>) => {
    if (typeof rec.type !== 'string') return sendError(ws, 'BAD_MESSAGE', 'a record needs a string "type"');
    if (rec.type === 'ping') {
      if (!validPingId(rec.id)) return sendError(ws, 'BAD_MESSAGE', BAD_PING_ID);
      return void ws.send(encode({ type: 'pong', id: rec.id ?? null, ts: Date.now() }), true);
    }
    const cam = typeof rec.camera === 'string' ? cameras.get(rec.camera) : undefined;
    if (!cam) return sendError(ws, 'UNKNOWN_TOPIC', `no camera ${describeInput(rec.camera, 64)}`);
    // The role was checked at the upgrade (requireRole); each record names its camera.
    if (!canView(ws.getUserData().principal!, cam.id)) {
      return sendError(ws, 'FORBIDDEN', `token may not publish to "${cam.id}"`);
    }
    if (rec.type === 'frame') {
      if (cam.source !== 'push')
        return sendError(ws, 'NOT_PUSH_CAMERA', `camera "${cam.id}" is not a push camera`);
      const data = rec.data;
      if (!(data instanceof Uint8Array)) return sendError(ws, 'BAD_MESSAGE', '"data" must be JPEG bytes');
      if (data.byteLength < 4 || data[0] !== 0xff || data[1] !== 0xd8) {
        const refusal = ingest.refuseNonJpeg(data);
        return sendError(ws, refusal.code, refusal.message);
      }
      // ts goes out as a uint64 (README "Wire protocol"): a capture time in ms since the epoch,
      // rounded. Anything else (negative, tiny, beyond 2^53, not a number) becomes the arrival time.
      const ts = plausibleCaptureTime(rec.ts) ?? Date.now();
      const verdict = ingest.submit(cam, data, ts);
      if (!verdict.ok) sendError(ws, verdict.code, verdict.message);
      return;
    }
    // A Map, not an object: a type such as "hasOwnProperty" must not find Object.prototype.
    const handler = handlers.get(rec.type);
    if (!handler) return sendError(ws, 'UNKNOWN_TYPE', `unknown record type ${describeInput(rec.type, 50)}`);
    const result = handler(cam, rec);
    if (!result.ok) sendError(ws, result.code, result.message);
  };

  /** A publisher whose token is known: closed when the token expires. */
  const accept = (ws: WebSocket<Publisher>, principal: Principal) => {
    const p = ws.getUserData();
    p.principal = principal;
    const left = principal.expiresAtMs - Date.now();
    if (!Number.isFinite(left)) return;
    // Timers cap at 2^31-1 ms (24.8 days): a socket whose token lives longer is closed then, and reconnects.
    p.expiry = setTimeout(
      () => {
        if (p.closed) return;
        ctx.metrics.authFailures.labels('publish', 'expired').inc();
        ws.end(CloseCode.UNAUTHORIZED, 'token expired');
      },
      Math.min(Math.max(0, left), 2 ** 31 - 1),
    );
  };

  const message = guardSocket(
    ctx,
    'publish.message',
    (ws: WebSocket<Publisher>, data: ArrayBuffer, isBinary: boolean) => {
      const held = holdForVerdict(ws, data, isBinary, opts.maxPayloadBytes);
      if (held === 'refused') return sendError(ws, 'RATE_LIMITED', HELD_REFUSED);
      if (held === 'held') return;
      let rec: unknown;
      try {
        if (!isBinary) throw new Error('send binary msgpack records, not text');
        rec = decodeUntrusted(new Uint8Array(data));
      } catch (err) {
        return sendError(ws, 'BAD_MESSAGE', (err as Error).message.slice(0, 120));
      }
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
        return sendError(ws, 'BAD_MESSAGE', 'a record must be a map with a string "type"');
      }
      onRecord(ws, rec as Record<string, unknown>);
    },
  );

  app.ws<Publisher>('/publish', {
    maxPayloadLength: opts.maxPayloadBytes,
    idleTimeout: opts.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    maxBackpressure: 1024 * 1024,
    upgrade: guard(
      ctx,
      'publish.upgrade',
      (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) =>
        upgradeWithAuth(
          ctx,
          res,
          req,
          context,
          { transport: 'publish', role: 'publisher', limited: false, tokenRequired: true },
          (o) => ({
            principal: o.principal,
            verdict: o.verdict,
            held: undefined,
            reject: o.reject,
            closed: false,
            expiry: undefined,
          }),
        ),
    ),
    open: guardSocket(ctx, 'publish.open', (ws) => {
      const p = ws.getUserData();
      if (p.reject) return ws.end(p.reject.code, p.reject.reason);
      if (p.principal) return accept(ws, p.principal);
      settleVerdict(ctx, 'publish.verdict', ws, { accept, message });
    }),
    close: (ws) => {
      const p = ws.getUserData();
      p.closed = true;
      clearTimeout(p.expiry);
    },
    message,
  });
}
