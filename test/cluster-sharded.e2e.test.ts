import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, metricValue, pollUntil, type RunningDaemon, startDaemon, testCamera } from './helpers.js';
import {
  clusterOf as cluster,
  commandCalls,
  type RunningRedisCluster,
  startRedisCluster,
} from './support/redis.js';
import { type Received, WsStallable } from './support/stream-clients.js';

// Two framehub nodes on a Redis Cluster of 3 masters (README "Scaling out", "Redis Cluster").
// - `sharded`: frames cross by SPUBLISH/SSUBSCRIBE, so a frame message is handled by the one
//   shard that owns its channel's slot, and never by plain PUBLISH (which a Redis Cluster
//   broadcasts to every node).
// - `plain`: the same cluster with SPUBLISH renamed away (as on a server without sharded
//   pub/sub): framehub finds out and falls back to PUBLISH/SUBSCRIBE.
// Node 1 starts first and takes the camera's lease (a Lua script over hash-tagged keys: in a
// cluster it would fail CROSSSLOT otherwise); node 2 takes it over when node 1 is killed.
const LEASE_MS = 3000;
const FPS = 8;
const LOW = 'cam/demo/low';
const HIGH = 'cam/demo/high';
const config = { cameras: [testCamera('demo', FPS)], pool: { threads: 1 }, cluster: { leaseMs: LEASE_MS } };

let redis: RunningRedisCluster;
let nodes: RunningDaemon[] = [];
let viewers: WsStallable[] = [];
/** Node 2's viewer of `low`, through Redis until node 2 takes the camera over. */
let lowViewer: WsStallable;

const start = (id: string) =>
  startDaemon(config, ['--redis-url', redis.url, '--redis-cluster=true', '--node-id', id]);
const framesOf = (r: Received[], topic = LOW) => r.filter((x) => x.kind === 'frame' && x.topic === topic);

/** Calls of each pub/sub command on each master (`INFO commandstats`). */
async function pubsubCalls(): Promise<Map<number, { spublish: number; publish: number }>> {
  const calls = new Map<number, { spublish: number; publish: number }>();
  for (const port of redis.ports) {
    const c = await commandCalls(redis.node(port));
    calls.set(port, { spublish: c.spublish ?? 0, publish: c.publish ?? 0 });
  }
  return calls;
}

/** Whether `/readyz` of `node` says `status` within 15 s. */
const readiness = (node: RunningDaemon, status: 'ready' | 'degraded') =>
  pollUntil(async () => JSON.parse((await get(`${node.url}/readyz`)).text).status === status, 15_000);

function expectIncreasing(records: Received[]): void {
  const seqs = records.map((r) => r.seq!);
  for (let i = 1; i < seqs.length; i++)
    if (seqs[i]! <= seqs[i - 1]!) throw new Error(`seq ${seqs[i]} after ${seqs[i - 1]}: ${seqs.join(',')}`);
}

describe.each(['sharded', 'plain'] as const)('two nodes on a Redis Cluster (%s pub/sub)', (mode) => {
  beforeAll(async () => {
    nodes = [];
    viewers = [];
    redis = await startRedisCluster(3, { sharded: mode === 'sharded' });
    nodes.push(await start('n1'));
    expect(
      await pollUntil(async () => (await cluster(nodes[0]!))?.ingesting.includes('demo') === true, 20_000),
      'node 1 ingests the camera',
    ).toBe(true);
    nodes.push(await start('n2'));
  }, 60_000);

  afterAll(async () => {
    for (const v of viewers) v.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await redis?.stop();
  }, 60_000);

  it(`uses ${mode} pub/sub, and sees both nodes whichever shard holds their heartbeat`, async () => {
    expect(await pollUntil(async () => (await cluster(nodes[1]!))?.nodes.length === 2, 10_000)).toBe(true);
    for (const node of nodes) {
      const c = (await cluster(node))!;
      expect(c.busUp).toBe(true);
      expect(c.pubsub).toBe(mode);
      expect(c.nodes.map((n) => n.id)).toEqual(['n1', 'n2']);
      expect(c.nodes.find((n) => n.id === 'n1')!.cameras).toEqual(['demo']);
    }
    expect((await cluster(nodes[1]!))!.ingesting).toEqual([]);
  }, 30_000);

  it('publishes nothing while no other node watches', async () => {
    const before = await pubsubCalls();
    // Two seconds of frames (16), with node 1's own viewer only.
    const local = new WsStallable(`${nodes[0]!.wsUrl}?topics=${LOW}`);
    viewers.push(local);
    await local.until('16 frames on node 1', (r) => framesOf(r).length >= 2 * FPS, 20_000);
    local.close();
    const after = await pubsubCalls();
    for (const port of redis.ports) {
      expect(after.get(port)!.spublish - before.get(port)!.spublish, `spublish on ${port}`).toBe(0);
      expect(after.get(port)!.publish - before.get(port)!.publish, `publish on ${port}`).toBe(0);
    }
  }, 30_000);

  it('a viewer on node 2 gets node 1 frames: one message per frame (sharded: on the channel shard only)', async () => {
    const v = new WsStallable(`${nodes[1]!.wsUrl}?topics=${LOW}`);
    viewers.push(v);
    lowViewer = v;
    await v.until('frames from node 1', (r) => framesOf(r).length >= 4, 20_000);
    const shard = await redis.ownerOf(`fh:t:${LOW}`);
    if (mode === 'sharded') {
      const channels = (await redis.node(shard).call('PUBSUB', 'SHARDCHANNELS', 'fh:t:*')) as string[];
      expect(channels).toContain(`fh:t:${LOW}`);
    }

    const before = await pubsubCalls();
    const first = framesOf(v.received).at(-1)!.seq!;
    await v.until('4 s of frames', (r) => framesOf(r).at(-1)!.seq! >= first + 4 * FPS, 20_000);
    const last = framesOf(v.received).at(-1)!.seq!;
    const after = await pubsubCalls();
    const frames = last - first;
    const delta = (port: number, command: 'spublish' | 'publish') =>
      after.get(port)![command] - before.get(port)![command];
    if (mode === 'sharded') {
      // Every frame made in the window, once (window edges ± 2); the other shards carry none.
      expect(Math.abs(delta(shard, 'spublish') - frames)).toBeLessThanOrEqual(2);
      for (const port of redis.ports.filter((p) => p !== shard)) expect(delta(port, 'spublish')).toBe(0);
      for (const port of redis.ports) expect(after.get(port)!.publish, `publish on ${port}`).toBe(0);
    } else {
      // PUBLISH runs on whichever node the client picked (and is broadcast from there).
      const published = redis.ports.reduce((sum, p) => sum + delta(p, 'publish'), 0);
      expect(Math.abs(published - frames)).toBeLessThanOrEqual(2);
      for (const port of redis.ports) expect(after.get(port)!.spublish).toBe(0);
    }
    expectIncreasing(framesOf(v.received));
    const m2 = (await get(`${nodes[1]!.url}/metrics`)).text;
    expect(metricValue(m2, 'framehub_bus_messages_total{direction="in"}')).toBeGreaterThanOrEqual(frames);
  }, 60_000);

  it('a subscriber connection Redis drops (output-buffer limit) is counted, and frames come back', async () => {
    // `high` frames pass Redis's 16 KB static reply buffer, so the limit is checked on each.
    const v = new WsStallable(`${nodes[1]!.wsUrl}?topics=${HIGH}`);
    viewers.push(v);
    await v.until('high frames', (r) => framesOf(r, HIGH).length >= 2, 20_000);
    const masters = redis.ports.map((p) => redis.node(p));
    const limit = (await masters[0]!.config('GET', 'client-output-buffer-limit'))[1]!;
    const disconnects = async () =>
      metricValue((await get(`${nodes[1]!.url}/metrics`)).text, 'framehub_bus_disconnects_total') ?? 0;
    const before = await disconnects();
    // Below one frame, on every master (plain pub/sub's subscriber may be on any): the server
    // holding node 2's subscriber connection closes it at the next frame.
    const setLimit = (value: string) =>
      Promise.all(masters.map((m) => m.config('SET', 'client-output-buffer-limit', value)));
    await setLimit('pubsub 1kb 1kb 1');
    try {
      expect(await pollUntil(async () => (await disconnects()) > before, 15_000)).toBe(true);
    } finally {
      await setLimit(limit);
    }
    const last = framesOf(v.received, HIGH).at(-1)!.seq!;
    await v.until('frames again', (r) => framesOf(r, HIGH).filter((f) => f.seq! > last).length >= 2, 20_000);
    v.close();
  }, 60_000);

  it('one master that stops answering calls the bus down on every node; up again once it answers', async () => {
    const port = redis.ports[0]!;
    redis.pause(port);
    try {
      for (const node of nodes) expect(await readiness(node, 'degraded')).toBe(true);
    } finally {
      redis.resume(port);
    }
    for (const node of nodes) expect(await readiness(node, 'ready')).toBe(true);
  }, 60_000);

  it.runIf(mode === 'sharded')(
    'a node started while a master hangs finds the bus (and its mode) once the master answers',
    async () => {
      const port = redis.ports[1]!;
      redis.pause(port);
      let late: RunningDaemon | undefined;
      try {
        try {
          late = await start('n3');
          // It cannot ask that master whether it has SPUBLISH: not up, no mode, no guess.
          await new Promise((r) => setTimeout(r, 3000));
          expect(await cluster(late)).toMatchObject({ busUp: false, ingesting: [] });
        } finally {
          redis.resume(port);
        }
        expect(
          await pollUntil(async () => {
            const c = await cluster(late!);
            return c?.busUp === true && c.pubsub === 'sharded';
          }, 20_000),
        ).toBe(true);
      } finally {
        await late?.stop();
      }
    },
    60_000,
  );

  it('node 1 killed: node 2 takes the camera within 2 lease periods, its viewer goes on, seq increasing', async () => {
    const v = lowViewer;
    const killedAt = Date.now();
    nodes[0]!.proc.kill('SIGKILL');
    expect(
      await pollUntil(async () => (await cluster(nodes[1]!))?.ingesting.includes('demo') === true, 20_000),
    ).toBe(true);
    // 2 lease periods, plus a second of slack for a loaded 2-core machine.
    expect(Date.now() - killedAt).toBeLessThanOrEqual(2 * LEASE_MS + 1000);
    const count = framesOf(v.received).length;
    await v.until('frames node 2 ingests', (r) => framesOf(r).length >= count + 2 * FPS, 30_000);
    expectIncreasing(framesOf(v.received));
  }, 60_000);
});
