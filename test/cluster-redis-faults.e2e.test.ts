import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, metricValue, pollUntil, type RunningDaemon, startDaemon, testCamera } from './helpers.js';
import { type RunningRedis, startRedis } from './support/redis.js';
import { type Received, WsStallable } from './support/stream-clients.js';

// Redis faults the nodes must notice by themselves (README "Scaling out", "Failure behaviour").
// Node 1 ingests the camera; node 2 is a pure edge whose viewers see it through Redis.
// - Redis drops node 2's subscriber connection for passing `client-output-buffer-limit pubsub`
//   (made tiny here, so one frame passes it): counted, and subscribed again once it fits.
// - Junk on a frame channel (a writer to Redis is trusted like a node, but what it sends is
//   checked): dropped, while the edge's viewer keeps the real frames.
// - A hung Redis: the process is stopped (SIGSTOP), so its connections stay open and nothing is
//   answered; ioredis never sees a `close`. The node must still call the bus down (a PING that
//   times out), keep serving its own camera, and call it up again once Redis answers.
const FPS = 8;
const LOW = 'cam/demo/low';
const HIGH = 'cam/demo/high';

let redis: RunningRedis;
let node: RunningDaemon;
let edge: RunningDaemon;
let viewer: WsStallable;
let edgeViewer: WsStallable;

const readiness = async () => JSON.parse((await get(`${node.url}/readyz`)).text) as { status: string };
const systemKinds = (r: Received[]) =>
  r.filter((x) => x.kind === 'event' && x.topic === 'system').map((x) => x.body?.kind);
const framesOf = (r: Received[], topic = LOW) => r.filter((x) => x.kind === 'frame' && x.topic === topic);
const metric = async (n: RunningDaemon, series: string) =>
  metricValue((await get(`${n.url}/metrics`)).text, series) ?? 0;

beforeAll(async () => {
  redis = await startRedis();
  const config = { cameras: [testCamera('demo', FPS)], pool: { threads: 1 } };
  node = await startDaemon(config, ['--redis-url', redis.url, '--node-id', 'n1']);
  edge = await startDaemon(config, ['--redis-url', redis.url, '--node-id', 'n2', '--ingest=false']);
  viewer = new WsStallable(`${node.wsUrl}?topics=${LOW},system`);
  edgeViewer = new WsStallable(`${edge.wsUrl}?topics=${HIGH}`);
}, 30_000);

afterAll(async () => {
  viewer?.close();
  edgeViewer?.close();
  redis?.resume();
  await Promise.all([node?.stop(), edge?.stop()]);
  await redis?.stop();
}, 30_000);

describe('Redis faults', () => {
  it('Redis drops a subscriber over its output-buffer limit: counted, and subscribed again once it fits', async () => {
    await edgeViewer.until('high frames through Redis', (r) => framesOf(r, HIGH).length >= 4, 20_000);
    const admin = redis.client();
    const limit = (await admin.config('GET', 'client-output-buffer-limit'))[1]!;
    const before = await metric(edge, 'framehub_bus_disconnects_total');
    // Smaller than one `high` frame: Redis closes the subscriber connection at the next one.
    await admin.config('SET', 'client-output-buffer-limit', 'pubsub 2kb 1kb 1');
    expect(
      await pollUntil(async () => (await metric(edge, 'framehub_bus_disconnects_total')) > before, 15_000),
    ).toBe(true);
    expect(redis.output()).toMatch(/for overcoming of output buffer limits/);
    await admin.config('SET', 'client-output-buffer-limit', limit);
    const last = framesOf(edgeViewer.received, HIGH).at(-1)!.seq!;
    await edgeViewer.until(
      'frames through Redis again',
      (r) => framesOf(r, HIGH).filter((f) => f.seq! > last).length >= 4,
      20_000,
    );
  }, 60_000);

  it('junk on a channel (bad header, huge or forged token, undecodable or wrong record) is dropped; the viewer keeps its frames', async () => {
    await edgeViewer.until('high frames', (r) => framesOf(r, HIGH).length >= 2, 20_000);
    const admin = redis.client();
    const channel = `fh:t:${HIGH}`;
    const header = (origin: string) => Buffer.concat([Buffer.from([origin.length]), Buffer.from(origin)]);
    const token = (n: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(n);
      return b;
    };
    const junk = [
      Buffer.from([200]), // says its origin is 200 bytes long, has none
      Buffer.concat([header('n1/forged'), token(2n ** 64n - 1n), Buffer.from('junk')]),
      Buffer.concat([header('n1/forged'), token(1n), Buffer.alloc(64 * 1024, 0xc1)]), // 0xc1: never valid msgpack
      Buffer.concat([header('n1/forged'), token(1n), Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])]), // array of 4 G items
    ];
    const before = framesOf(edgeViewer.received, HIGH).length;
    for (let round = 0; round < 20; round++)
      for (const message of junk) await admin.publish(channel, message);
    // The real frames go on, in order, and nothing the junk carried reached the viewer.
    await edgeViewer.until(
      'frames after the junk',
      (r) => framesOf(r, HIGH).length >= before + 2 * FPS,
      20_000,
    );
    const seqs = framesOf(edgeViewer.received, HIGH).map((f) => f.seq!);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    expect((await get(`${edge.url}/healthz`)).status).toBe(200);
  }, 60_000);

  it('a hung Redis is reported down within seconds, the camera goes on, and up again once it answers', async () => {
    expect(await pollUntil(async () => (await readiness()).status === 'ready', 15_000)).toBe(true);
    await viewer.until('frames', (r) => framesOf(r).length >= 4, 20_000);

    redis.pause();
    const pausedAt = Date.now();
    expect(await pollUntil(async () => (await readiness()).status === 'degraded', 15_000)).toBe(true);
    // Two PING timeouts (2 s each) after the next tick (1 s), with slack for a loaded machine.
    expect(Date.now() - pausedAt).toBeLessThanOrEqual(12_000);
    expect(await metric(node, 'framehub_bus_up')).toBe(0);
    await viewer.until('bus_down', (r) => systemKinds(r).includes('bus_down'), 10_000);
    // The node's own camera is still served while Redis hangs.
    const count = framesOf(viewer.received).length;
    await viewer.until('frames while Redis hangs', (r) => framesOf(r).length >= count + 2 * FPS, 20_000);

    redis.resume();
    expect(await pollUntil(async () => (await readiness()).status === 'ready', 15_000)).toBe(true);
    expect(await metric(node, 'framehub_bus_up')).toBe(1);
    await viewer.until('bus_up', (r) => systemKinds(r).at(-1) === 'bus_up', 10_000);
  }, 90_000);
});
