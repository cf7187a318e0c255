import uWS from 'uWebSockets.js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hub } from '../src/hub/hub.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { createAuthenticator } from '../src/server/auth.js';
import type { ServerContext } from '../src/server/context.js';
import { HttpStreams } from '../src/server/http-stream.js';
import { lastEventId } from '../src/server/last-event-id.js';
import { ConnectionBudget, ConnectionLimits } from '../src/server/limits.js';
import { registerSse } from '../src/server/sse.js';
import { createWsEndpoint } from '../src/server/ws.js';
import { encode } from '../src/wire/records.js';
import { type SseEvent, SseReader, Viewer } from './helpers.js';

/**
 * Resume on a node that does not number a topic (framehub issue 13), over the real WS and SSE
 * endpoints on 127.0.0.1. The hub is a cluster node's (`clustered`), and the camera's VAD
 * events reach it as the Redis bus delivers them, with their owner's seq
 * (`Hub.publishRemoteEvent`). A client that saw seq 30 elsewhere resumes here, where nothing
 * of the topic was ever received; the owner is at 56. Before the fix it was handed 57 as if it
 * followed 30.
 */

const VAD = 'cam/c1/vad';
let hub: Hub;
let port: number;
let listen: uWS.us_listen_socket;
let closeAll: () => void;

beforeAll(async () => {
  const metrics = createMetrics();
  hub = new Hub(new Set(['c1']), metrics);
  hub.clustered = true;
  const many = {
    maxConnections: 100,
    maxConnectionsPerIp: 100,
    connectRatePerIp: 100,
    connectBurstPerIp: 100,
  };
  const ctx: ServerContext = {
    hub,
    metrics,
    log: pino({ level: 'silent' }),
    auth: await createAuthenticator(undefined),
    limits: new ConnectionLimits(many),
    slow: {
      softBytes: 256 * 1024,
      videoSoftBytes: 1024 * 1024,
      hardBytes: 4 * 1024 * 1024,
      slowCloseMs: 10_000,
    },
    adaptive: { downAfterMs: 2000, upAfterMs: 15_000 },
    maxTopicsPerConnection: 8,
    sseHeartbeatMs: 15_000,
    unauthenticated: new ConnectionBudget(100, 100),
  };
  const app = uWS.App();
  const ws = createWsEndpoint(app, ctx, {
    maxPayloadBytes: 64 * 1024,
    idleTimeoutSeconds: 60,
    authTimeoutMs: 10_000,
    sweepIntervalMs: 100,
    subscribeRatePerSecond: 100,
    subscribeBurst: 100,
  });
  const streams = new HttpStreams(ctx);
  hub.addSink(ws.sink);
  hub.addSink(streams);
  registerSse(app, ctx, streams);
  closeAll = () => {
    ws.closeAll();
    streams.closeAll();
  };
  listen = await new Promise((resolve, reject) =>
    app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('cannot listen')))),
  );
  port = uWS.us_socket_local_port(listen);
});

afterAll(() => {
  closeAll();
  uWS.us_listen_socket_close(listen);
});

/** The next VAD event of the topic's owner, as the bus hands it over. */
function remote(seq: number): void {
  const body = { type: 'vad', topic: VAD, seq, ts: Date.now(), speaking: seq % 2 === 0 };
  hub.publishRemoteEvent(VAD, seq, encode(body), body);
}

const data = (e: SseEvent) => JSON.parse(e.data) as Record<string, unknown>;

describe('resume here of a topic another node numbers', () => {
  it('WS hello.resume: a gap (after 30, first 57), then seq 57; a client that saw 56 gets 57 alone', async () => {
    const behind = new Viewer(`ws://127.0.0.1:${port}/ws?topics=${VAD}`);
    const current = new Viewer(`ws://127.0.0.1:${port}/ws?topics=${VAD}`);
    try {
      await Promise.all([behind.opened, current.opened]);
      behind.send({ type: 'hello', resume: { [VAD]: 30 } });
      current.send({ type: 'hello', resume: { [VAD]: 56 } });
      await Promise.all([behind, current].map((v) => v.until((r) => r.some((x) => x.type === 'hello'))));
      remote(57);
      remote(58);
      await Promise.all([behind, current].map((v) => v.until((r) => r.some((x) => x.seq === 58))));
      const seen = (v: Viewer) => v.records.filter((x) => x.type !== 'hello');
      expect(seen(behind)).toMatchObject([
        { type: 'gap', topic: VAD, epoch: hub.epoch, reason: 'evicted', after: 30, first: 57 },
        { type: 'vad', seq: 57 },
        { type: 'vad', seq: 58 },
      ]);
      expect(seen(behind)).toHaveLength(3);
      expect(seen(current)).toMatchObject([
        { type: 'vad', seq: 57 },
        { type: 'vad', seq: 58 },
      ]);
      expect(seen(current)).toHaveLength(2);
    } finally {
      behind.close();
      current.close();
    }
  });

  it('SSE Last-Event-ID: the same gap before the first event, which carries its id', async () => {
    // The WS viewers left and the bus stopped receiving the topic (RedisBus.tick): history
    // here ends at 58 while the owner goes on. This client saw 60 elsewhere; the owner is at 89.
    hub.interruptTopic(VAD);
    const sse = new SseReader(`http://127.0.0.1:${port}/sse?topics=${VAD}`, {
      'Last-Event-ID': lastEventId(VAD, 60, hub.epoch),
    });
    try {
      expect((await sse.response).status).toBe(200);
      remote(90);
      await sse.until(() => sse.of('vad').length >= 1);
      expect(sse.events.map((e) => e.event)).toEqual(['gap', 'vad']);
      expect(data(sse.events[0]!)).toEqual({
        type: 'gap',
        topic: VAD,
        epoch: hub.epoch,
        reason: 'evicted',
        after: 60,
        first: 90,
      });
      expect(sse.events[1]!.id).toBe(lastEventId(VAD, 90, hub.epoch));
    } finally {
      sse.close();
    }
  });
});
