import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import type { HistoryEntry } from '../hub/history.js';
import { cachedRecord, type Frame, type RecordSink } from '../hub/hub.js';
import { describeInput, parseTopic } from '../hub/topics.js';
import { SlowState, ViewerTopics } from '../hub/viewer-state.js';
import { BAD_PING_ID, CloseCode, type ErrorCode, type ErrorRecord, validPingId } from '../wire/protocol.js';
import { decodeUntrusted, encode } from '../wire/records.js';
import { type Principal, recordAuthFailure } from './auth.js';
import { checkTopicAccess, type ServerContext } from './context.js';
import { guard, guardSocket } from './guard.js';
import { countVariant } from './http-util.js';
import { refilled } from './limits.js';
import { upgradeWithAuth } from './ws-upgrade.js';

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

interface WsViewer {
  ip: string;
  admitted: boolean;
  /** Holds a slot of the unauthenticated budget until its hello brings a valid token. */
  unauthenticated: boolean;
  /** Subscription-change tokens left, and when they were last refilled (performance.now()). */
  subTokens: number;
  subRefilledAt: number;
  reject: { code: number; reason: string } | undefined;
  principal: Principal | undefined;
  /** Topics from `/ws?topics=`, subscribed once the viewer is authenticated. */
  pending: string[];
  topics: ViewerTopics;
  slow: SlowState;
  /** Event resume positions from `hello`: topic → last seq seen. */
  resume: Map<string, number>;
  closed: boolean;
  authTimer: NodeJS.Timeout | undefined;
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
    const kind = parseTopic(topic)?.kind;
    if (kind === undefined || kind === 'frame' || kind === 'auto') return wrong;
    if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0) return wrong;
    resume.set(topic, seq);
  }
  return resume;
}
const TRANSPORT = 'ws';

/**
 * The `/ws` endpoint: binary msgpack records both ways. Healthy viewers get frames through
 * uWS's native publish (one encoded record, fanned out in C++). A viewer whose buffer passes
 * the soft limit is taken out of its frame topics, so it costs nothing while it lags, and is
 * put back with the newest frame once it drains: the latest frame wins. Events stay
 * subscribed, so they are never dropped while the viewer is connected.
 */
export function createWsEndpoint(app: TemplatedApp, ctx: ServerContext, opts: WsOptions) {
  const { hub, metrics } = ctx;
  const sockets = new Set<Ws>();
  /** Concrete frame topic → viewers subscribed to it but currently skipped as slow. */
  const slowPerTopic = new Map<string, number>();
  const connections = metrics.connections.labels(TRANSPORT);
  const framesSent = metrics.framesSent.labels(TRANSPORT);
  const bytesSent = metrics.bytesSent.labels(TRANSPORT);
  const slowDrops = metrics.framesDropped.labels('slow');
  const slowViewers = metrics.slowViewers.labels(TRANSPORT);

  const send = (ws: Ws, record: unknown) => ws.send(encode(record), true);
  const sendError = (ws: Ws, code: ErrorCode, message: string, topic?: string) => {
    metrics.wsErrors.labels(code).inc();
    const record: ErrorRecord = topic
      ? { type: 'error', code, message, topic }
      : { type: 'error', code, message };
    send(ws, record);
  };
  const addSlow = (topic: string, delta: number) =>
    slowPerTopic.set(topic, (slowPerTopic.get(topic) ?? 0) + delta);
  const isFrameTopic = (topic: string) => parseTopic(topic)?.kind === 'frame';

  /** Starts receiving a concrete topic: natively if healthy, counted as skipped if slow. */
  const attach = (ws: Ws, topic: string) => {
    const v = ws.getUserData();
    if (isFrameTopic(topic)) {
      if (v.slow.slow) {
        addSlow(topic, 1);
        return;
      }
      ws.subscribe(topic);
      const latest = hub.latest(topic);
      if (latest) ws.send(cachedRecord(latest), true);
      return;
    }
    ws.subscribe(topic);
    const after = v.resume.get(topic);
    if (after !== undefined) for (const e of hub.history.after(topic, after)) ws.send(e.msgpack, true);
  };

  const detach = (ws: Ws, topic: string) => {
    if (isFrameTopic(topic) && ws.getUserData().slow.slow) addSlow(topic, -1);
    else ws.unsubscribe(topic);
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
    v.subTokens = refilled(
      v.subTokens,
      now - v.subRefilledAt,
      opts.subscribeRatePerSecond,
      opts.subscribeBurst,
    );
    v.subRefilledAt = now;
    if (v.subTokens < cost) {
      metrics.limitRejections.labels('subscribe_rate').inc();
      sendError(
        ws,
        'RATE_LIMITED',
        `subscription changes are limited to ${opts.subscribeRatePerSecond} topics/s (burst ${opts.subscribeBurst})`,
      );
      return false;
    }
    v.subTokens -= cost;
    return true;
  };

  const subscribe = (ws: Ws, names: unknown[]) => {
    const v = ws.getUserData();
    const principal = v.principal;
    if (!principal) return sendError(ws, 'UNAUTHORIZED', 'send hello with a token first');
    for (const name of names) {
      const access = checkTopicAccess(ctx, principal, name);
      const shown = typeof name === 'string' ? name.slice(0, 100) : undefined;
      if (!access.ok) {
        sendError(ws, access.code, access.message, shown);
        continue;
      }
      const requested = name as string;
      if (v.topics.has(requested)) continue;
      if (v.topics.size >= ctx.maxTopicsPerConnection) {
        metrics.limitRejections.labels('topics_per_connection').inc();
        sendError(
          ws,
          'TOO_MANY_TOPICS',
          `at most ${ctx.maxTopicsPerConnection} topics per connection`,
          requested,
        );
        continue;
      }
      const { concrete, attach: isNew } = v.topics.add(requested, Date.now());
      if (concrete !== requested)
        send(ws, { type: 'variant', topic: requested, variant: concrete.split('/')[2] });
      if (isNew) attach(ws, concrete);
    }
  };

  const unsubscribe = (ws: Ws, names: unknown[]) => {
    for (const name of names) {
      if (typeof name !== 'string') continue;
      const concrete = ws.getUserData().topics.remove(name);
      if (concrete) detach(ws, concrete);
    }
  };

  /** Samples one viewer's buffer: slow/recover/close, then adaptive variant switches. */
  const sweepOne = (ws: Ws, now: number) => {
    const v = ws.getUserData();
    if (v.principal && v.principal.expiresAtMs <= now) {
      // Tokens are checked at connect; an open connection must not outlive its token.
      metrics.authFailures.labels(TRANSPORT, 'expired').inc();
      ws.end(CloseCode.UNAUTHORIZED, 'token expired; reconnect or send hello with a new token');
      return;
    }
    const change = v.slow.observe(ws.getBufferedAmount(), now);
    if (change === 'close') {
      metrics.slowDisconnects.labels(TRANSPORT).inc();
      ws.end(CloseCode.SLOW_CONSUMER, 'slow consumer');
      return;
    }
    if (change === 'slow') {
      slowViewers.inc();
      for (const t of v.topics.frameTopics()) {
        ws.unsubscribe(t);
        addSlow(t, 1);
      }
    } else if (change === 'recovered') {
      slowViewers.dec();
      for (const t of v.topics.frameTopics()) {
        addSlow(t, -1);
        attach(ws, t);
      }
    }
    for (const sw of v.topics.adapt(v.slow.slow, now)) {
      metrics.variantSwitches.labels(TRANSPORT).inc();
      if (sw.detach) detach(ws, sw.detach);
      send(ws, { type: 'variant', topic: sw.requested, variant: sw.variant });
      if (sw.attach) attach(ws, sw.attach);
    }
  };

  const sweepGuarded = guardSocket(ctx, 'ws.sweep', sweepOne);
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const ws of sockets) ws.cork(() => sweepGuarded(ws, now));
  }, opts.sweepIntervalMs);
  sweep.unref();

  /** Logs and counts a failure outside uWS's own callbacks (a promise continuation), then closes. */
  const failed = (err: unknown, ws: Ws, handler: string) => {
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

  const onHello = (ws: Ws, record: { token?: unknown; resume?: unknown }) => {
    const v = ws.getUserData();
    if (record.token !== undefined && typeof record.token !== 'string') {
      return sendError(ws, 'BAD_MESSAGE', '"token" must be a string');
    }
    if (record.resume !== undefined) {
      const resume = parseResume(record.resume, ctx.maxTopicsPerConnection);
      if (typeof resume === 'string') return sendError(ws, 'BAD_MESSAGE', resume);
      // A valid resume replays history for each of its topics: charged like subscriptions.
      if (!subscribeAllowed(ws, Math.max(1, resume.size))) return;
      // Replaces, never adds to, earlier positions: the map stays within the topic limit.
      v.resume = resume;
    }
    const welcome = () => {
      const p = v.principal!;
      send(ws, { type: 'hello', sub: p.sub, role: p.role, cams: p.cams === '*' ? ['*'] : [...p.cams] });
      // Topics already subscribed replay what they missed now; later ones replay on subscribe.
      for (const [, concrete] of v.topics.requested()) {
        const after = v.resume.get(concrete);
        if (after !== undefined && !isFrameTopic(concrete)) {
          for (const e of hub.history.after(concrete, after)) ws.send(e.msgpack, true);
        }
      }
      const pending = v.pending.splice(0);
      if (pending.length) subscribe(ws, pending);
    };
    if (typeof record.token !== 'string') {
      if (!v.principal) return sendError(ws, 'UNAUTHORIZED', 'hello needs a token');
      if (v.principal.expiresAtMs <= Date.now()) return ws.end(CloseCode.UNAUTHORIZED, 'token expired');
      return welcome();
    }
    ctx.auth
      .verify(record.token)
      .then(
        (principal) => {
          if (v.closed) return;
          clearTimeout(v.authTimer);
          if (!becomeViewer(ws)) return;
          v.principal = principal;
          ws.cork(welcome);
        },
        (err: { code?: string; message: string }) => {
          if (v.closed) return;
          recordAuthFailure(ctx, TRANSPORT, err);
          ws.cork(() => ws.end(CloseCode.UNAUTHORIZED, err.message.slice(0, 120)));
        },
      )
      .catch((err: unknown) => failed(err, ws, 'ws.hello'));
  };

  const onMessage = (ws: Ws, message: ArrayBuffer, isBinary: boolean) => {
    if (message.byteLength > opts.maxPayloadBytes) {
      metrics.wsErrors.labels('TOO_BIG').inc();
      return ws.end(CloseCode.TOO_BIG, `message over ${opts.maxPayloadBytes} bytes`);
    }
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
    const record = msg as { type: string; topics?: unknown; id?: unknown; token?: unknown; resume?: unknown };
    switch (record.type) {
      case 'hello':
        return onHello(ws, record);
      case 'sub':
      case 'unsub':
        if (!Array.isArray(record.topics))
          return sendError(ws, 'BAD_MESSAGE', '"topics" must be an array of strings');
        if (record.topics.length > ctx.maxTopicsPerConnection) {
          metrics.limitRejections.labels('topics_per_connection').inc();
          return sendError(
            ws,
            'TOO_MANY_TOPICS',
            `at most ${ctx.maxTopicsPerConnection} topics per connection`,
          );
        }
        if (!subscribeAllowed(ws, Math.max(1, record.topics.length))) return;
        return record.type === 'sub' ? subscribe(ws, record.topics) : unsubscribe(ws, record.topics);
      case 'ping':
        if (!validPingId(record.id)) return sendError(ws, 'BAD_MESSAGE', BAD_PING_ID);
        send(ws, { type: 'pong', id: record.id ?? null, ts: Date.now() });
        return;
      default:
        return sendError(ws, 'UNKNOWN_TYPE', `unknown record type ${describeInput(record.type, 50)}`);
    }
  };

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
        (o) => ({
          ip: o.ip,
          admitted: o.admitted,
          unauthenticated: o.unauthenticated,
          subTokens: opts.subscribeBurst,
          subRefilledAt: performance.now(),
          reject: o.reject,
          principal: o.principal,
          pending: (new URLSearchParams(o.query).get('topics')?.split(',').filter(Boolean) ?? []).slice(
            0,
            ctx.maxTopicsPerConnection + 1,
          ),
          topics: new ViewerTopics(ctx.adaptive),
          slow: new SlowState(ctx.slow),
          resume: new Map(),
          closed: false,
          authTimer: undefined,
        }),
      ),
    ),
    open: guardSocket(ctx, 'ws.open', (ws) => {
      const v = ws.getUserData();
      if (v.reject) return ws.end(v.reject.code, v.reject.reason);
      sockets.add(ws);
      connections.inc();
      if (v.principal) {
        const pending = v.pending.splice(0);
        if (pending.length) subscribe(ws, pending);
      } else {
        v.authTimer = setTimeout(() => {
          if (v.closed) return;
          metrics.authFailures.labels(TRANSPORT, 'timeout').inc();
          ws.end(CloseCode.UNAUTHORIZED, 'no hello with a token in time');
        }, opts.authTimeoutMs);
      }
    }),
    message: guardSocket(ctx, 'ws.message', onMessage),
    drain: guardSocket(ctx, 'ws.drain', (ws) => sweepOne(ws, Date.now())),
    close: guard(ctx, 'ws.close', (ws: Ws) => {
      const v = ws.getUserData();
      v.closed = true;
      clearTimeout(v.authTimer);
      if (v.admitted) ctx.limits.release(v.ip);
      if (v.unauthenticated) ctx.unauthenticated.give(v.ip);
      if (!sockets.delete(ws)) return;
      connections.dec();
      if (v.slow.slow) {
        slowViewers.dec();
        for (const t of v.topics.frameTopics()) addSlow(t, -1);
      }
    }),
  });

  const sink: RecordSink = {
    publishFrame(frame: Frame) {
      const skipped = slowPerTopic.get(frame.topic);
      if (skipped) slowDrops.inc(skipped);
      const n = app.numSubscribers(frame.topic);
      if (n === 0) return;
      app.publish(frame.topic, frame.record, true);
      framesSent.inc(n);
      bytesSent.inc(n * frame.record.byteLength);
    },
    publishEvent(event: HistoryEntry) {
      app.publish(event.topic, event.msgpack, true);
    },
  };

  return {
    sink,
    /** Viewers receiving `topic`, slow ones included (drives which variants workers make). */
    subscribers: (topic: string) => app.numSubscribers(topic) + (slowPerTopic.get(topic) ?? 0),
    /** Per-viewer counts for the status API (not a hot path). */
    census() {
      const byVariant: Record<string, number> = {};
      let slow = 0;
      for (const ws of sockets) {
        const v = ws.getUserData();
        if (v.slow.slow) slow++;
        for (const [requested] of v.topics.requested()) countVariant(byVariant, requested);
      }
      return { total: sockets.size, slow, byVariant };
    },
    /** Closes every viewer with 1001 so clients know to reconnect elsewhere. */
    closeAll(): void {
      clearInterval(sweep);
      for (const ws of [...sockets]) ws.end(CloseCode.GOING_AWAY, 'server shutting down');
    },
  };
}
