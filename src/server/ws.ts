import type { TemplatedApp, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import type { Hub, RecordSink } from '../hub/hub.js';
import type { Metrics } from '../metrics/metrics.js';
import { decode, encode } from '../pool/records.js';
import { CloseCode, type ErrorCode, type ErrorRecord } from './protocol.js';

export interface WsOptions {
  maxPayloadBytes: number;
  maxBackpressureBytes: number;
  idleTimeoutSeconds: number;
  /** Upper bound on topics one connection may hold. */
  maxTopicsPerConnection: number;
}

export interface ViewerData {
  topics: Set<string>;
  /** Topics requested in the URL (`/ws?topics=a,b`), subscribed on open. */
  initialTopics: string[];
}

const TRANSPORT = 'ws';

/**
 * The `/ws` endpoint: binary msgpack records both ways. Frames fan out through uWS's native
 * publish, so one encoded record is written to every subscriber by C++ without a JS loop.
 */
export function createWsEndpoint(app: TemplatedApp, hub: Hub, metrics: Metrics, opts: WsOptions) {
  const sockets = new Set<WebSocket<ViewerData>>();
  const connections = metrics.connections.labels(TRANSPORT);
  const framesSent = metrics.framesSent.labels(TRANSPORT);
  const bytesSent = metrics.bytesSent.labels(TRANSPORT);
  const slowDrops = metrics.framesDropped.labels('slow');

  const sendError = (ws: WebSocket<ViewerData>, code: ErrorCode, message: string, topic?: string) => {
    metrics.wsErrors.labels(code).inc();
    const record: ErrorRecord = topic
      ? { type: 'error', code, message, topic }
      : { type: 'error', code, message };
    ws.send(encode(record), true);
  };

  const subscribe = (ws: WebSocket<ViewerData>, topics: unknown[]) => {
    for (const name of topics) {
      const check = hub.check(name);
      if (!check.ok) {
        sendError(ws, check.code, check.message, typeof name === 'string' ? name.slice(0, 100) : undefined);
        continue;
      }
      const topic = name as string;
      if (ws.getUserData().topics.has(topic)) continue;
      if (ws.getUserData().topics.size >= opts.maxTopicsPerConnection) {
        sendError(ws, 'BAD_MESSAGE', `at most ${opts.maxTopicsPerConnection} topics per connection`, topic);
        continue;
      }
      ws.getUserData().topics.add(topic);
      ws.subscribe(topic);
      // The first frame at once: a new viewer should not wait for the next camera frame.
      const latest = hub.latest(topic);
      if (latest) ws.send(latest.record, true);
    }
  };

  const unsubscribe = (ws: WebSocket<ViewerData>, topics: unknown[]) => {
    for (const name of topics) {
      if (typeof name !== 'string' || !ws.getUserData().topics.delete(name)) continue;
      ws.unsubscribe(name);
    }
  };

  const onMessage = (ws: WebSocket<ViewerData>, message: ArrayBuffer, isBinary: boolean) => {
    if (message.byteLength > opts.maxPayloadBytes) {
      metrics.wsErrors.labels('TOO_BIG').inc();
      return ws.end(CloseCode.TOO_BIG, `message over ${opts.maxPayloadBytes} bytes`);
    }
    if (!isBinary) return sendError(ws, 'BAD_MESSAGE', 'send binary msgpack records, not text');
    let msg: unknown;
    try {
      msg = decode(new Uint8Array(message));
    } catch (err) {
      return sendError(ws, 'BAD_MESSAGE', `malformed msgpack: ${(err as Error).message}`);
    }
    if (typeof msg !== 'object' || msg === null || typeof (msg as { type?: unknown }).type !== 'string') {
      return sendError(ws, 'BAD_MESSAGE', 'a record must be a map with a string "type"');
    }
    const record = msg as { type: string; topics?: unknown; id?: unknown };
    switch (record.type) {
      case 'sub':
      case 'unsub': {
        if (!Array.isArray(record.topics) || record.topics.length > opts.maxTopicsPerConnection) {
          return sendError(
            ws,
            'BAD_MESSAGE',
            `"topics" must be an array of at most ${opts.maxTopicsPerConnection} strings`,
          );
        }
        return record.type === 'sub' ? subscribe(ws, record.topics) : unsubscribe(ws, record.topics);
      }
      case 'ping':
        ws.send(encode({ type: 'pong', id: record.id ?? null, ts: Date.now() }), true);
        return;
      default:
        return sendError(ws, 'UNKNOWN_TYPE', `unknown record type "${record.type.slice(0, 50)}"`);
    }
  };

  const behavior: WebSocketBehavior<ViewerData> = {
    // uWS drops a connection without a close frame (1006) past maxPayloadLength. Letting it
    // through up to twice our limit lets us close politely with 1009 in that band, while the
    // truly huge is still cut off by uWS before it is buffered.
    maxPayloadLength: opts.maxPayloadBytes * 2,
    maxBackpressure: opts.maxBackpressureBytes,
    idleTimeout: opts.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const initialTopics = (req.getQuery('topics') ?? '').split(',').filter(Boolean);
      res.upgrade<ViewerData>(
        { topics: new Set(), initialTopics },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      sockets.add(ws);
      connections.inc();
      subscribe(ws, ws.getUserData().initialTopics);
    },
    message: onMessage,
    // uWS skipped this viewer in a publish because its buffer was over maxBackpressure.
    dropped: () => slowDrops.inc(),
    close: (ws) => {
      sockets.delete(ws);
      connections.dec();
    },
  };
  app.ws<ViewerData>('/ws', behavior);

  const sink: RecordSink = {
    publish(topic, record) {
      const n = app.numSubscribers(topic);
      if (n === 0) return;
      app.publish(topic, record, true);
      framesSent.inc(n);
      bytesSent.inc(n * record.byteLength);
    },
  };

  return {
    sink,
    /** Closes every viewer with 1001 so clients know to reconnect elsewhere. */
    closeAll(): void {
      for (const ws of [...sockets]) ws.end(CloseCode.GOING_AWAY, 'server shutting down');
    },
  };
}
