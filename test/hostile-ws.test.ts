import { randomUUID } from 'node:crypto';
import http from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ViewerTopics } from '../src/viewers/viewer-topics.js';
import { get, metricValue, noiseJpeg, type RunningDaemon, startDaemon, Viewer } from './helpers.js';

/**
 * Inputs that once crashed the daemon or grew its memory without bound: record types that
 * name Object.prototype members, oversized `hello.resume` maps, SSE topic names nobody
 * publishes on, and a topic requested both directly and through `auto`.
 */
let daemon: RunningDaemon;
let jpeg: Buffer;

beforeAll(async () => {
  jpeg = await noiseJpeg(64, 48);
  daemon = await startDaemon({
    cameras: [{ id: 'p1', source: 'push', fps: 30 }],
    viewers: { maxConnectionsPerIp: 100_000, connectRatePerIp: 1_000_000, connectBurstPerIp: 100_000 },
  });
});
afterAll(async () => {
  await daemon?.stop();
});

const ping = async (v: Viewer, id: string) => {
  v.send({ type: 'ping', id });
  await v.until((r) => r.some((x) => x.type === 'pong' && x.id === id));
};

describe('/publish record types', () => {
  it('answers UNKNOWN_TYPE to types named after Object.prototype members, and keeps serving', async () => {
    const pub = new Viewer(`${daemon.url.replace('http', 'ws')}/publish`);
    await pub.opened;
    const types = [
      'hasOwnProperty',
      'isPrototypeOf',
      '__defineGetter__',
      'toString',
      'constructor',
      '__proto__',
    ];
    for (const type of types) pub.send({ type, camera: 'p1' });
    await ping(pub, 'after');
    const errors = pub.of('error');
    expect(errors.map((e) => e.code)).toEqual(types.map(() => 'UNKNOWN_TYPE'));
    expect(errors.map((e) => e.message)).toEqual(types.map((t) => `unknown record type "${t}"`));
    expect((await get(`${daemon.url}/healthz`)).status).toBe(200);
    const metrics = (await get(`${daemon.url}/metrics`)).text;
    expect(metricValue(metrics, 'framehub_ws_errors_total{code="UNKNOWN_TYPE"}')).toBeGreaterThanOrEqual(
      types.length,
    );
    expect(metrics).not.toContain('code="undefined"');
    pub.close();
  });
});

describe('/ws hello.resume', () => {
  it('refuses more entries than maxTopicsPerConnection (64), frame topics and bad seqs, with BAD_MESSAGE', async () => {
    const v = new Viewer(daemon.wsUrl);
    await v.opened;
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`job/j${i}`, 0]));
    v.send({ type: 'hello', resume: many });
    v.send({ type: 'hello', resume: { 'cam/p1/low': 0 } });
    v.send({ type: 'hello', resume: { 'not a topic': 0 } });
    v.send({ type: 'hello', resume: { system: -1 } });
    v.send({ type: 'hello', resume: ['system'] });
    await ping(v, 'after');
    const errors = v.of('error');
    expect(errors).toHaveLength(5);
    for (const e of errors) {
      expect(e.code).toBe('BAD_MESSAGE');
      expect(e.message).toMatch(/"resume" must map at most 64 event topics/);
    }
    v.close();
  });

  it('still replays from a valid resume of 64 entries', async () => {
    const notice = await get(`${daemon.url}/api/v1/notices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'before resume' }),
    });
    expect(notice.status).toBe(202);
    const resume = Object.fromEntries([
      ['system', 0],
      ...Array.from({ length: 63 }, (_, i) => [`job/j${i}`, 0]),
    ]);
    const v = new Viewer(`${daemon.wsUrl}?topics=system`);
    await v.opened;
    v.send({ type: 'hello', resume });
    await v.until((r) => r.some((x) => x.type === 'system' && x.message === 'before resume'));
    expect(v.of('error')).toEqual([]);
    v.close();
  });
});

/** Opens an SSE stream, waits for its headers, and drops it. */
function openAndDropSse(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
  });
}

describe('SSE topics nobody publishes on', () => {
  it('forgets them when their last viewer leaves: 10,000 streams x 64 fresh job topics leave no trace in the heap', async () => {
    const heap = async () =>
      metricValue((await get(`${daemon.url}/metrics`)).text, 'framehub_nodejs_heap_size_used_bytes')!;
    const before = await heap();
    const statuses: number[] = [];
    for (let batch = 0; batch < 200; batch++) {
      const opened = Array.from({ length: 50 }, () => {
        const topics = Array.from({ length: 64 }, () => `job/${randomUUID()}`).join(',');
        return openAndDropSse(`${daemon.url}/sse?topics=${topics}`);
      });
      statuses.push(...(await Promise.all(opened)));
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(10_000);
    // The daemon sees each disconnect; wait until all are gone.
    for (let i = 0; i < 50; i++) {
      const m = (await get(`${daemon.url}/metrics`)).text;
      if (metricValue(m, 'framehub_connections{transport="sse"}') === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const grown = (await heap()) - before;
    console.log(`SSE topic churn: heap +${(grown / 2 ** 20).toFixed(1)} MiB`);
    // Kept, 640,000 topic entries take about 200 MiB; uncollected garbage stays well under half that.
    expect(grown).toBeLessThan(100 * 2 ** 20);
  }, 60_000);
});

describe('a topic requested both directly and through auto', () => {
  it('keeps receiving cam/p1/medium after unsubscribing cam/p1/auto', async () => {
    const pub = new Viewer(`${daemon.url.replace('http', 'ws')}/publish`);
    await pub.opened;
    const feed = setInterval(() => pub.send({ type: 'frame', camera: 'p1', ts: Date.now(), data: jpeg }), 50);
    try {
      const v = new Viewer(daemon.wsUrl);
      await v.opened;
      v.send({ type: 'sub', topics: ['cam/p1/medium', 'cam/p1/auto'] });
      await v.until((r) => r.some((x) => x.type === 'variant' && x.topic === 'cam/p1/auto'));
      await v.until((r) => r.some((x) => x.type === 'frame' && x.topic === 'cam/p1/medium'));

      v.send({ type: 'unsub', topics: ['cam/p1/auto'] });
      await ping(v, 'unsubscribed');
      const seen = v.of('frame').length;
      await v.until((r) => r.filter((x) => x.type === 'frame').length >= seen + 5);
      expect(v.of('frame').every((f) => f.topic === 'cam/p1/medium')).toBe(true);
      v.close();
    } finally {
      clearInterval(feed);
      pub.close();
    }
  });

  it('ViewerTopics attaches a concrete topic once and detaches it after its last request (property)', () => {
    const names = [
      'cam/a/auto',
      'cam/a/low',
      'cam/a/medium',
      'cam/a/high',
      'cam/b/auto',
      'cam/b/medium',
      'system',
    ];
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), name: fc.constantFrom(...names) }),
      fc.record({ kind: fc.constant('remove' as const), name: fc.constantFrom(...names) }),
      fc.record({
        kind: fc.constant('adapt' as const),
        slow: fc.boolean(),
        dt: fc.integer({ min: 0, max: 3000 }),
      }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const topics = new ViewerTopics({ downAfterMs: 1000, upAfterMs: 2000 });
        const attached = new Set<string>();
        let now = 0;
        for (const o of ops) {
          if (o.kind === 'add') {
            const { concrete, attach } = topics.add(o.name, now);
            expect(attach).toBe(!attached.has(concrete));
            attached.add(concrete);
          } else if (o.kind === 'remove') {
            const gone = topics.remove(o.name);
            if (gone) attached.delete(gone);
          } else {
            now += o.dt;
            for (const sw of topics.adapt(o.slow, now)) {
              if (sw.detach) expect(attached.delete(sw.detach)).toBe(true);
              if (sw.attach) {
                expect(attached.has(sw.attach)).toBe(false);
                attached.add(sw.attach);
              }
            }
          }
          // What was attached is exactly what the requested topics need, each once.
          const needed = new Set(topics.requested().map(([, concrete]) => concrete));
          expect([...attached].sort()).toEqual([...needed].sort());
          expect(topics.concrete().sort()).toEqual([...needed].sort());
        }
      }),
      { numRuns: 300 },
    );
  });
});
