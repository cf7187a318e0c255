import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, metricValue, pollUntil, type RunningDaemon, startDaemon, testCamera } from './helpers.js';
import { type RunningRedis, startRedis } from './support/redis.js';
import { type Received, WsStallable } from './support/stream-clients.js';

// A hung Redis: the process is stopped (SIGSTOP), so its connections stay open and nothing is
// answered; ioredis never sees a `close`. The node must still call the bus down (a PING that
// times out), keep serving its own camera, and call it up again once Redis answers.
const FPS = 8;
const LOW = 'cam/demo/low';

let redis: RunningRedis;
let node: RunningDaemon;
let viewer: WsStallable;

const readiness = async () => JSON.parse((await get(`${node.url}/readyz`)).text) as { status: string };
const systemKinds = (r: Received[]) =>
  r.filter((x) => x.kind === 'event' && x.topic === 'system').map((x) => x.body?.kind);
const framesOf = (r: Received[]) => r.filter((x) => x.kind === 'frame' && x.topic === LOW);

beforeAll(async () => {
  redis = await startRedis();
  node = await startDaemon({ cameras: [testCamera('demo', FPS)], pool: { threads: 1 } }, [
    '--redis-url',
    redis.url,
    '--node-id',
    'n1',
  ]);
  viewer = new WsStallable(`${node.wsUrl}?topics=${LOW},system`);
}, 30_000);

afterAll(async () => {
  viewer?.close();
  redis?.resume();
  await node?.stop();
  await redis?.stop();
}, 30_000);

describe('a hung Redis (connections open, no replies)', () => {
  it('is reported down within seconds, the camera goes on, and up again once Redis answers', async () => {
    expect(await pollUntil(async () => (await readiness()).status === 'ready', 15_000)).toBe(true);
    await viewer.until('frames', (r) => framesOf(r).length >= 4, 20_000);

    redis.pause();
    const pausedAt = Date.now();
    expect(await pollUntil(async () => (await readiness()).status === 'degraded', 15_000)).toBe(true);
    // One PING timeout (2 s) after the next tick (1 s), with slack for a loaded machine.
    expect(Date.now() - pausedAt).toBeLessThanOrEqual(8000);
    expect(metricValue((await get(`${node.url}/metrics`)).text, 'framehub_bus_up')).toBe(0);
    await viewer.until('bus_down', (r) => systemKinds(r).includes('bus_down'), 10_000);
    // The node's own camera is still served while Redis hangs.
    const count = framesOf(viewer.received).length;
    await viewer.until('frames while Redis hangs', (r) => framesOf(r).length >= count + 2 * FPS, 20_000);

    redis.resume();
    expect(await pollUntil(async () => (await readiness()).status === 'ready', 15_000)).toBe(true);
    expect(metricValue((await get(`${node.url}/metrics`)).text, 'framehub_bus_up')).toBe(1);
    await viewer.until('bus_up', (r) => systemKinds(r).at(-1) === 'bus_up', 10_000);
  }, 90_000);
});
