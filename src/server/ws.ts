import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import type { HistoryEntry } from '../hub/history.js';
import { cachedRecord, type Frame, type RecordSink } from '../hub/hub.js';
import { BAD_EPOCH, validEpoch } from '../hub/resume.js';
import { describeInput, isEventTopic } from '../hub/topics.js';
import { cachedFragmentRecord, type VideoItem } from '../hub/video-track.js';
import type { HandlerName, WsErrorCode } from '../metrics/label-values.js';
import type { CloseReason, Framing, ViewerTransport } from '../viewers/transport.js';
import { ViewerGroup } from '../viewers/viewer-group.js';
import { ViewerSession } from '../viewers/viewer-session.js';
import { BAD_PING_ID, CloseCode, type ErrorRecord, validPingId } from '../wire/protocol.js';
import { decodeUntrusted, encode } from '../wire/records.js';
import type { Principal } from './auth.js';
import { requireRole } from './auth-guard.js';
import { checkTopicAccess, checkVideoCodecs, parseCodecs, type ServerContext } from './context.js';
import { guard, guardSocket } from './guard.js';
import { refilled } from './limits.js';
import { upgradeWithAuth } from './ws-upgrade.js';
import { type AwaitingVerdict, HELD_REFUSED, holdForVerdict, settleVerdict } from './ws-verdict.js';

export interface WsOptions {
  maxPayloadBytes: number;
  idleTimeoutSeconds: number;
  /** With auth on, a connection that brought no token must send `hello` with one within this time. */
  authTimeoutMs: number;
  /** How often every viewer's buffered bytes are sampled for slow-viewer handling. */
  sweepIntervalMs: number;
  /** Topics a connection may add or remove per second (token bucket), and the bucket size. */
  subscribeRatePerSecond: number;
  subscribeBurst: number;
}

const TRANSPORT = 'ws';

/** WS records: frames as the worker encoded them, events as the hub did; nothing per viewer. */
const wsFraming: Framing = {
  frame: (frame, cached) => (cached ? cachedRecord(frame) : frame.record),
  event: (entry) => entry.msgpack,
  gap: (record) => encode(record),
  variant: (requested, variant) => encode({ type: 'variant', topic: requested, variant }),
  video: (item, cached) => (cached && item.kind === 'fragment' ? cachedFragmentRecord(item) : item.record),
};

const CLOSES: Record<CloseReason, [code: number, reason: string]> = {
  slow: [CloseCode.SLOW_CONSUMER, 'slow consumer'],
  expired: [CloseCode.UNAUTHORIZED, 'token expired; reconnect or send hello with a new token'],
  shutdown: [CloseCode.GOING_AWAY, 'server shutting down'],
  error: [CloseCode.INTERNAL_ERROR, 'internal error'],
};

/**
 * The WS adapter: a few lines over uWS's socket, one object for every connection. Frames
 * reach a socket through uWS's native publish (`subscribe`), fanned out in C++: a frame costs
 * no JS per viewer.
 */
const wsTransport: ViewerTransport<Ws> = {
  name: TRANSPORT,
  backpressure: 'sampled',
  write: (ws, bytes) => ws.send(bytes, true) === 1,
  bufferedAmount: (ws) => ws.getBufferedAmount(),
  cork: (ws, fn) => {
    ws.cork(fn);
  },
  close: (ws, reason) => {
    const [code, text] = CLOSES[reason];
    ws.end(code, text);
  },
  subscribe: (ws, topic) => {
    ws.subscribe(topic);
  },
  unsubscribe: (ws, topic) => {
    ws.unsubscribe(topic);
  },
};

/**
 * One `/ws` connection's state. uWS copies the own fields of the object given at upgrade onto
 * its socket object, so this is a plain record, and every field is paid for by every
 * connection: what only some need (the subscription bucket, resume positions) is made on use.
 */
interface WsViewer extends AwaitingVerdict {
  ip: string;
  admitted: boolean;
  /** Holds a slot of the unauthenticated budget until its hello brings a valid token. */
  unauthenticated: boolean;
  /** Subscription-change tokens and when they were last refilled (performance.now()); made at the first change. */
  bucket: { tokens: number; at: number } | undefined;
  reject: { code: number; reason: string } | undefined;
  principal: Principal | undefined;
  /** Topics from `/ws?topics=`, subscribed once the viewer is authenticated. */
  pending: string[] | undefined;
  closed: boolean;
  authTimer: NodeJS.Timeout | undefined;
  /** Made at open (a refused socket never gets one). */
  session: ViewerSession<Ws> | undefined;
}

/** A principal's expiry for the session: undefined when it never expires (auth off). */
const expiryOf = (p: Principal) => (Number.isFinite(p.expiresAtMs) ? p.expiresAtMs : undefined);

/** `/ws?topics=a,b`: at most one over the limit, so a too-long list is still refused with TOO_MANY_TOPICS. */
function queryTopics(query: string, maxTopics: number): string[] | undefined {
  if (!query.includes('topics=')) return undefined;
  const topics = new URLSearchParams(query).get('topics')?.split(',').filter(Boolean);
  return topics?.length ? topics.slice(0, maxTopics + 1) : undefined;
}

type Ws = WebSocket<WsViewer>;

/**
 * `hello.resume`: event topic → last seq seen, at most `max` entries. Returns the map, or
 * what is wrong with it. It can arrive before the token is checked, so it is bounded here.
 */
function parseResume(value: unknown, max: number): Map<string, number> | string {
  const wrong = `"resume" must map at most ${max} event topics (vad, job, system) to a seq >= 0`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return wrong;
  const entries = Object.entries(value);
  if (entries.length > max) return wrong;
  const resume = new Map<string, number>();
  for (const [topic, seq] of entries) {
    if (!isEventTopic(topic)) return wrong;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return wrong;
    resume.set(topic, seq);
  }
  return resume;
}

/**
 * The `/ws` endpoint: binary msgpack records both ways. Each connection is a viewer session
 * (viewers/) over a small adapter; healthy viewers get frames through uWS's native publish (one
 * encoded record, fanned out in C++). What to do with a slow viewer, an `auto` topic or a
 * resume is the session's; this file speaks the protocol (hello, sub, unsub, ping).
 */
export function createWsEndpoint(app: TemplatedApp, ctx: ServerContext, opts: WsOptions) {
  const { hub, metrics } = ctx;
  const group = new ViewerGroup(ctx, wsTransport, {
    sweepIntervalMs: opts.sweepIntervalMs,
    nativeSubscribers: (topic) => app.numSubscribers(topic),
  });

  const send = (ws: Ws, record: unknown) => ws.send(encode(record), true);
  const sendError = (ws: Ws, code: WsErrorCode, message: string, topic?: string) => {
    metrics.wsErrors.labels(code).inc();
    const record: ErrorRecord = topic
      ? { type: 'error', code, message, topic }
      : { type: 'error', code, message };
    send(ws, record);
  };

  /**
   * Every topic added or removed costs one token of the connection's bucket. Each `sub` of a
   * frame topic sends the cached frame at once, so without this a loop of small sub/unsub
   * requests pulls whole frames as fast as the server can send them.
   */
  const subscribeAllowed = (ws: Ws, topics: number): boolean => {
    const v = ws.getUserData();
    // A request as large as the topic limit must always be possible, whatever the burst.
    const cost = Math.min(topics, opts.subscribeBurst);
    const now = performance.now();
    v.bucket ??= { tokens: opts.subscribeBurst, at: now };
    const bucket = v.bucket;
    bucket.tokens = refilled(
      bucket.tokens,
      now - bucket.at,
      opts.subscribeRatePerSecond,
      opts.subscribeBurst,
    );
    bucket.at = now;
    if (bucket.tokens < cost) {
      metrics.limitRejections.labels('subscribe_rate').inc();
      sendError(
        ws,
        'RATE_LIMITED',
        `subscription changes are limited to ${opts.subscribeRatePerSecond} topics/s (burst ${opts.subscribeBurst})`,
      );
      return false;
    }
    bucket.tokens -= cost;
    return true;
  };

  const subscribe = (ws: Ws, names: unknown[], codecs?: readonly string[]) => {
    const v = ws.getUserData();
    const principal = v.principal;
    if (!principal) return sendError(ws, 'UNAUTHORIZED', 'send hello with a token first');
    const now = Date.now();
    for (const name of names) {
      const checked = checkTopicAccess(ctx, principal, name);
      const access = checked.ok ? checkVideoCodecs(ctx, name as string, codecs) : checked;
      if (!access.ok) {
        sendError(ws, access.code, access.message, typeof name === 'string' ? name.slice(0, 100) : undefined);
        continue;
      }
      const added = v.session!.add(name as string, now);
      if (typeof added === 'object') sendError(ws, added.code, added.message, name as string);
    }
  };

  const unsubscribe = (ws: Ws, names: unknown[]) => {
    for (const name of names) if (typeof name === 'string') ws.getUserData().session!.remove(name);
  };

  /** Logs and counts a failure outside uWS's own callbacks (a promise continuation), then closes. */
  const failed = (err: unknown, ws: Ws, handler: HandlerName) => {
    metrics.handlerErrors.labels(handler).inc();
    ctx.log.error({ err, handler }, 'handler failed; closing the connection');
    if (!ws.getUserData().closed) ws.end(CloseCode.INTERNAL_ERROR, 'internal error');
  };

  /**
   * A socket authenticated by `hello` leaves the unauthenticated budget and joins the viewer
   * limits; if those are full it is closed with 1013, as at the upgrade.
   */
  const becomeViewer = (ws: Ws): boolean => {
    const v = ws.getUserData();
    if (!v.unauthenticated) return true;
    v.unauthenticated = false;
    ctx.unauthenticated.give(v.ip);
    const admission = ctx.limits.admit(v.ip);
    if (!admission.ok) {
      metrics.limitRejections.labels(admission.limit).inc();
      ws.end(CloseCode.TRY_AGAIN_LATER, `${admission.code}: retry in ${admission.retryAfterSeconds}s`);
      return false;
    }
    v.admitted = true;
    return true;
  };

  const subscribePending = (ws: Ws) => {
    const v = ws.getUserData();
    const pending = v.pending;
    v.pending = undefined;
    if (pending?.length) subscribe(ws, pending);
  };

  const onHello = (ws: Ws, record: { token?: unknown; resume?: unknown; epoch?: unknown }) => {
    const v = ws.getUserData();
    if (record.token !== undefined && typeof record.token !== 'string') {
      return sendError(ws, 'BAD_MESSAGE', '"token" must be a string');
    }
    if (record.epoch !== undefined && !validEpoch(record.epoch)) {
      return sendError(ws, 'BAD_MESSAGE', BAD_EPOCH);
    }
    if (record.resume !== undefined) {
      const after = parseResume(record.resume, ctx.maxTopicsPerConnection);
      if (typeof after === 'string') return sendError(ws, 'BAD_MESSAGE', after);
      // A valid resume replays history for each of its topics: charged like subscriptions.
      if (!subscribeAllowed(ws, Math.max(1, after.size))) return;
      v.session!.setResume({ after, epoch: record.epoch as string | undefined });
    }
    const welcome = () => {
      const p = v.principal!;
      const session = v.session!;
      session.expiresAtMs = expiryOf(p);
      send(ws, {
        type: 'hello',
        sub: p.sub,
        role: p.role,
        cams: p.cams === '*' ? ['*'] : [...p.cams],
        epoch: hub.epoch,
      });
      // Topics already subscribed replay what they missed now; later ones replay on subscribe.
      session.replaySubscribed();
      subscribePending(ws);
    };
    // With auth off a token changes nothing: the principal decided at the upgrade (the anonymous
    // admin, or the viewer a proxy relayed; see anonymousPrincipal) stands.
    if (typeof record.token !== 'string' || !ctx.auth.enabled) {
      if (!v.principal) return sendError(ws, 'UNAUTHORIZED', 'hello needs a token');
      if (v.principal.expiresAtMs <= Date.now()) return ws.end(CloseCode.UNAUTHORIZED, 'token expired');
      return welcome();
    }
    // Auth is on here, where a proxy in the path changes nothing: relayedBy plays no part.
    requireRole(ctx, TRANSPORT, { token: record.token, relayedBy: undefined }, 'viewer')
      .then(
        (principal) => {
          if (v.closed) return;
          clearTimeout(v.authTimer);
          if (!becomeViewer(ws)) return;
          v.principal = principal;
          ws.cork(welcome);
        },
        (err: { message: string }) => {
          // requireRole has counted and logged it; its message is the client-safe text.
          if (!v.closed) ws.cork(() => ws.end(CloseCode.UNAUTHORIZED, err.message.slice(0, 120)));
        },
      )
      .catch((err: unknown) => failed(err, ws, 'ws.hello'));
  };

  const onMessage = (ws: Ws, message: ArrayBuffer, isBinary: boolean) => {
    if (message.byteLength > opts.maxPayloadBytes) {
      metrics.wsErrors.labels('TOO_BIG').inc();
      return ws.end(CloseCode.TOO_BIG, `message over ${opts.maxPayloadBytes} bytes`);
    }
    const held = holdForVerdict(ws, message, isBinary, opts.maxPayloadBytes);
    if (held === 'refused') return sendError(ws, 'RATE_LIMITED', HELD_REFUSED);
    if (held === 'held') return;
    if (!isBinary) return sendError(ws, 'BAD_MESSAGE', 'send binary msgpack records, not text');
    let msg: unknown;
    try {
      msg = decodeUntrusted(new Uint8Array(message));
    } catch (err) {
      return sendError(ws, 'BAD_MESSAGE', `malformed msgpack: ${(err as Error).message.slice(0, 120)}`);
    }
    if (typeof msg !== 'object' || msg === null || typeof (msg as { type?: unknown }).type !== 'string') {
      return sendError(ws, 'BAD_MESSAGE', 'a record must be a map with a string "type"');
    }
    const record = msg as {
      type: string;
      topics?: unknown;
      codecs?: unknown;
      id?: unknown;
      token?: unknown;
      resume?: unknown;
    };
    switch (record.type) {
      case 'hello':
        return onHello(ws, record);
      case 'sub':
      case 'unsub': {
        if (!Array.isArray(record.topics))
          return sendError(ws, 'BAD_MESSAGE', '"topics" must be an array of strings');
        const tooMany = group.tooManyTopics(record.topics.length);
        if (tooMany) return sendError(ws, tooMany.code, tooMany.message);
        const codecs = parseCodecs(record.codecs);
        if (typeof codecs === 'string') return sendError(ws, 'BAD_MESSAGE', codecs);
        if (!subscribeAllowed(ws, Math.max(1, record.topics.length))) return;
        return record.type === 'sub' ? subscribe(ws, record.topics, codecs) : unsubscribe(ws, record.topics);
      }
      case 'ping':
        if (!validPingId(record.id)) return sendError(ws, 'BAD_MESSAGE', BAD_PING_ID);
        send(ws, { type: 'pong', id: record.id ?? null, ts: Date.now() });
        return;
      default:
        return sendError(ws, 'UNKNOWN_TYPE', `unknown record type ${describeInput(record.type, 50)}`);
    }
  };

  /** A viewer whose token is known (at the upgrade, or by its verdict): subscribe its `?topics=`. */
  const accept = (ws: Ws, principal: Principal) => {
    ws.getUserData().session!.expiresAtMs = expiryOf(principal);
    ws.getUserData().principal = principal;
    subscribePending(ws);
  };
  const guardedMessage = guardSocket(ctx, 'ws.message', onMessage);

  app.ws<WsViewer>('/ws', {
    // uWS drops a connection without a close frame (1006) past maxPayloadLength. Letting it
    // through up to twice our limit lets us close politely with 1009 in that band, while the
    // truly huge is still cut off by uWS before it is buffered.
    maxPayloadLength: opts.maxPayloadBytes * 2,
    // Our hard limit is enforced by the sweep (with a grace period); uWS's own cap sits above
    // it and closes rather than silently dropping an event.
    maxBackpressure: ctx.slow.hardBytes * 2,
    closeOnBackpressureLimit: 1,
    idleTimeout: opts.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    upgrade: guard(ctx, 'ws.upgrade', (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) =>
      upgradeWithAuth(
        ctx,
        res,
        req,
        context,
        { transport: TRANSPORT, limited: true, tokenRequired: false },
        (o): WsViewer => ({
          ip: o.ip,
          admitted: o.admitted,
          unauthenticated: o.unauthenticated,
          bucket: undefined,
          reject: o.reject,
          principal: o.principal,
          verdict: o.verdict,
          held: undefined,
          pending: queryTopics(o.query, ctx.maxTopicsPerConnection),
          closed: false,
          authTimer: undefined,
          session: undefined,
        }),
      ),
    ),
    open: guardSocket(ctx, 'ws.open', (ws) => {
      const v = ws.getUserData();
      if (v.reject) return ws.end(v.reject.code, v.reject.reason);
      const session = new ViewerSession(group, ws, wsFraming);
      v.session = session;
      session.open();
      if (v.principal) return accept(ws, v.principal);
      if (v.verdict) return settleVerdict(ctx, 'ws.verdict', ws, { accept, message: guardedMessage });
      v.authTimer = setTimeout(() => {
        if (v.closed) return;
        metrics.authFailures.labels(TRANSPORT, 'timeout').inc();
        ws.end(CloseCode.UNAUTHORIZED, 'no hello with a token in time');
      }, opts.authTimeoutMs);
    }),
    message: guardedMessage,
    drain: guardSocket(ctx, 'ws.drain', (ws) => ws.getUserData().session?.sweep(Date.now(), undefined)),
    close: guard(ctx, 'ws.close', (ws: Ws) => {
      const v = ws.getUserData();
      v.closed = true;
      v.session?.close();
      clearTimeout(v.authTimer);
      if (v.admitted) ctx.limits.release(v.ip);
      if (v.unauthenticated) ctx.unauthenticated.give(v.ip);
    }),
  });

  const sink: RecordSink = {
    publishFrame(frame: Frame) {
      group.countSlowDrops(frame.topic);
      const n = app.numSubscribers(frame.topic);
      if (n === 0) return;
      app.publish(frame.topic, frame.record, true);
      group.metrics.sent(n, n * frame.record.byteLength);
    },
    publishEvent(event: HistoryEntry) {
      // Viewers that held a resume position on the topic: their gap, if owed, then subscribed.
      group.beforeEvent(event);
      app.publish(event.topic, event.msgpack, true);
    },
    restartTopic: (topic: string) => group.restartTopic(topic),
    publishVideo(item: VideoItem) {
      // A keyframe first subscribes the viewers waiting for one, so they receive it natively.
      group.beforeVideo(item);
      const n = app.numSubscribers(item.topic);
      if (n === 0) return;
      app.publish(item.topic, item.record, true);
      group.metrics.sent(n, n * item.record.byteLength);
    },
  };

  return {
    sink,
    /** Viewers receiving `topic`, slow ones included (drives which variants workers make). */
    subscribers: (topic: string) => group.subscribers(topic),
    /** Per-viewer counts for the status API (not a hot path). */
    census: () => group.census(),
    /** Closes every viewer with 1001 so clients know to reconnect elsewhere. */
    closeAll: () => group.closeAll(),
  };
}
