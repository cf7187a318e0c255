import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  metricValue,
  noiseJpeg,
  pack,
  pollUntil,
  type RunningDaemon,
  startDaemon,
  testCamera,
  videoTestCamera,
} from './helpers.js';
import { clusterOf as cluster, commandCalls, type RunningRedis, startRedis } from './support/redis.js';
import { HttpStallable, type Received, type StallableViewer, WsStallable } from './support/stream-clients.js';

// Three framehub nodes on one private redis-server (README "Scaling out"). Node 1 starts first
// and takes the camera's lease; node 2 may ingest too (so it takes over when node 1 dies) but
// finds the lease held; node 3 is a pure edge (--ingest=false). Bounds are wide: 2 cores, a CI
// run beside this one.
const LEASE_MS = 3000;
const FPS = 8;
/** A second camera with live H.264 (a keyframe every second), for video across nodes. */
const videoCamera = videoTestCamera('vid', FPS, 1);
const config = {
  cameras: [testCamera('demo', FPS), videoCamera],
  pool: { threads: 1 },
  cluster: { leaseMs: LEASE_MS },
};

let redis: RunningRedis;
/** `redis-cli monitor` (ioredis's monitor() can lose track of its reply queue under load). */
let monitor: ChildProcess | undefined;
const nodes: RunningDaemon[] = [];
/** Every viewer opened, closed at the end. */
const viewers: StallableViewer[] = [];

const port = (node: RunningDaemon) => Number(new URL(node.url).port);
const start = (id: string, ...extra: string[]) =>
  startDaemon(config, ['--redis-url', redis.url, '--node-id', id, ...extra]);

/** Frames of one topic, in arrival order. */
const framesOf = (r: Received[], topic: string) => r.filter((x) => x.kind === 'frame' && x.topic === topic);
const eventsOf = (r: Received[], topic: string) => r.filter((x) => x.kind === 'event' && x.topic === topic);

function expectIncreasing(records: Received[], what: string): void {
  for (let i = 1; i < records.length; i++) {
    if (records[i]!.seq! <= records[i - 1]!.seq!) {
      throw new Error(
        `${what}: seq ${records[i]!.seq} after ${records[i - 1]!.seq} (at ${i}: ${records
          .slice(Math.max(0, i - 3), i + 2)
          .map((x) => x.seq)
          .join(',')})`,
      );
    }
  }
}

/**
 * Who ingests `demo`, sampled every 150 ms from each node's own status (its memory, right even
 * while Redis is down): the longest time two nodes both said so.
 */
const ownership = {
  samples: [] as { at: number; owners: string[] }[],
  running: true,
  done: Promise.resolve(),
  start() {
    this.done = (async () => {
      while (this.running) {
        const at = Date.now();
        const states = await Promise.all(nodes.map((n) => cluster(n)));
        const owners = states.flatMap((s) => (s?.ingesting.includes('demo') ? [s.nodeId] : []));
        this.samples.push({ at, owners });
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
  },
  longestDoubleMs(): number {
    let longest = 0;
    let since: number | undefined;
    for (const s of this.samples) {
      if (s.owners.length >= 2) {
        since ??= s.at;
        longest = Math.max(longest, s.at - since);
      } else since = undefined;
    }
    return longest;
  },
};

beforeAll(async () => {
  redis = await startRedis();
  nodes.push(await start('n1'));
  // Node 1 alone: it takes the lease (and its ffmpeg starts) before the others exist.
  expect(
    await pollUntil(async () => (await cluster(nodes[0]!))?.ingesting.length === 2, 20_000),
    'node 1 ingests both cameras',
  ).toBe(true);
  nodes.push(await start('n2'), await start('n3', '--ingest=false'));
  ownership.start();
}, 60_000);

afterAll(async () => {
  ownership.running = false;
  await ownership.done;
  for (const v of viewers) v.close();
  monitor?.kill();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
}, 60_000);

function ws(node: RunningDaemon, topics: string): WsStallable {
  const v = new WsStallable(`${node.wsUrl}?topics=${topics}`);
  viewers.push(v);
  return v;
}

function http(node: RunningDaemon, path: string, format: 'sse' | 'mjpeg'): HttpStallable {
  const v = new HttpStallable(port(node), path, format);
  viewers.push(v);
  return v;
}

describe('three nodes on Redis', () => {
  const LOW = 'cam/demo/low';
  const VAD = 'cam/demo/vad';
  let remote: { name: string; v: StallableViewer; vad: boolean }[] = [];

  it('reports every node, and that node 1 alone ingests the camera', async () => {
    expect(
      await pollUntil(async () => (await cluster(nodes[0]!))?.nodes.length === 3, 10_000),
      'three heartbeats in Redis',
    ).toBe(true);
    const c = (await cluster(nodes[1]!))!;
    expect(c.busUp).toBe(true);
    expect(c.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3']);
    expect(c.nodes.find((n) => n.id === 'n1')!.cameras).toEqual(['demo', 'vid']);
    expect(c.nodes.find((n) => n.id === 'n2')!.cameras).toEqual([]);
    expect(c.nodes.map((n) => n.ingest)).toEqual([true, true, false]);
    expect((await cluster(nodes[2]!))!.ingesting).toEqual([]);
    const ready = await get(`${nodes[1]!.url}/readyz`);
    expect(JSON.parse(ready.text)).toEqual({ status: 'ready' });
  });

  it('WS, SSE and MJPEG viewers on nodes 2 and 3 get node 1 frames and VAD events, seq increasing', async () => {
    for (const [i, node] of [nodes[1]!, nodes[2]!].entries()) {
      remote.push(
        { name: `ws@n${i + 2}`, v: ws(node, `${LOW},${VAD},system`), vad: true },
        { name: `sse@n${i + 2}`, v: http(node, `/sse?topics=${LOW},${VAD},system`, 'sse'), vad: true },
        { name: `mjpeg@n${i + 2}`, v: http(node, '/cams/demo/low.mjpeg', 'mjpeg'), vad: false },
      );
    }
    for (const { name, v, vad } of remote) {
      await v.until(`${name}: 12 frames`, (r) => framesOf(r, LOW).length >= 12, 20_000);
      // The test tone is 2 s on, 2 s off: a transition at least every 2.3 s.
      if (vad) await v.until(`${name}: 2 VAD events`, (r) => eventsOf(r, VAD).length >= 2, 20_000);
    }
    for (const { name, v, vad } of remote) {
      expectIncreasing(framesOf(v.received, LOW), `${name} frames`);
      if (vad) {
        expectIncreasing(eventsOf(v.received, VAD), `${name} vad`);
        expect(eventsOf(v.received, VAD).every((e) => e.type === 'vad' || e.type === 'segment')).toBe(true);
      }
    }
    // Node 1 sent each frame once per subscribing node and counted it; nodes 2 and 3 took them in.
    const m1 = (await get(`${nodes[0]!.url}/metrics`)).text;
    const m2 = (await get(`${nodes[1]!.url}/metrics`)).text;
    expect(metricValue(m1, 'framehub_bus_messages_total{direction="out"}')).toBeGreaterThan(10);
    expect(metricValue(m2, 'framehub_bus_messages_total{direction="in"}')).toBeGreaterThan(10);
    expect(metricValue(m2, 'framehub_bus_up')).toBe(1);
  }, 60_000);

  it('a late joiner on node 3 gets a first frame within 200 ms, on a topic node 3 did not carry yet', async () => {
    const v = ws(nodes[2]!, 'cam/demo/medium');
    await v.opened;
    const opened = Date.now();
    await v.until('first medium frame', (r) => framesOf(r, 'cam/demo/medium').length >= 1, 5000);
    const firstMs = Date.now() - opened;
    expect(firstMs).toBeLessThanOrEqual(200);
    // Then live frames follow (the owner now makes and publishes `medium`).
    await v.until('live medium frames', (r) => framesOf(r, 'cam/demo/medium').length >= 4, 15_000);
    expectIncreasing(framesOf(v.received, 'cam/demo/medium'), 'late joiner');
    v.close();
  }, 30_000);

  it('a remote viewer makes the owner produce a variant nobody watches there (annotated)', async () => {
    // `annotated` is made only while watched (never refreshed): only node 2's demand can start it.
    const v = ws(nodes[1]!, 'cam/demo/annotated');
    await v.until(
      'annotated frames from node 1',
      (r) => framesOf(r, 'cam/demo/annotated').length >= 2 * FPS,
      20_000,
    );
    const seqs = framesOf(v.received, 'cam/demo/annotated').map((f) => f.seq!);
    expectIncreasing(framesOf(v.received, 'cam/demo/annotated'), 'annotated');
    // Made for every frame (not once a second): most steps are 1.
    const steps = seqs.slice(1).map((s, i) => s - seqs[i]!);
    expect(steps.filter((d) => d === 1).length).toBeGreaterThanOrEqual(steps.length / 2);
    v.close();
  }, 30_000);

  it('publishes one message per frame per watched topic, none for topics only node 1 watches', async () => {
    // A viewer of `high` on node 1 only: nothing of it may cross Redis.
    const local = ws(nodes[0]!, 'cam/demo/high');
    await local.until('high on node 1', (r) => framesOf(r, 'cam/demo/high').length >= 2, 15_000);
    monitor = spawn('/usr/bin/redis-cli', ['-p', String(redis.port), 'monitor'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const published = new Map<string, number>();
    // `1796279634.845705 [0 127.0.0.1:53596] "publish" "fh:t:cam/demo/low" "…"`
    createInterface({ input: monitor.stdout! }).on('line', (line) => {
      const m = /\] "publish" "([^"]*)"/i.exec(line);
      if (m) published.set(m[1]!, (published.get(m[1]!) ?? 0) + 1);
    });
    // The medium viewer left: nodes drop the channel within 1 s, node 1 stops within 1 s more.
    await new Promise((r) => setTimeout(r, 2500));
    published.clear();
    const stats = redis.client();
    await stats.config('RESETSTAT');
    const watcher = remote[0]!.v;
    const before = framesOf(watcher.received, LOW).at(-1)!.seq!;
    const vadBefore = eventsOf(watcher.received, VAD).length;
    await watcher.until('4 s of frames', (r) => framesOf(r, LOW).at(-1)!.seq! >= before + 4 * FPS, 20_000);
    const after = framesOf(watcher.received, LOW).at(-1)!.seq!;
    const vadCount = eventsOf(watcher.received, VAD).length - vadBefore;
    const calls = await commandCalls(stats);
    const lowPublishes = published.get(`fh:t:${LOW}`) ?? 0;
    // Frames of `low` made in the window: seq after - before (every one is published once, for
    // both nodes: Redis copies it to each subscriber). Window edges: ± 2.
    expect(Math.abs(lowPublishes - (after - before))).toBeLessThanOrEqual(2);
    // One per VAD event (edges as for frames: MONITOR sees a publish before the viewer gets it).
    expect(Math.abs((published.get(`fh:t:${VAD}`) ?? 0) - vadCount)).toBeLessThanOrEqual(2);
    expect(published.get('fh:t:cam/demo/high') ?? 0).toBe(0);
    expect(published.get('fh:t:cam/demo/medium') ?? 0).toBe(0);
    expect([...published.keys()].every((c) => c === `fh:t:${LOW}` || c === `fh:t:${VAD}`)).toBe(true);
    // INFO commandstats agrees: publishes are those of low and vad (MONITOR saw each).
    const total = [...published.values()].reduce((a, b) => a + b, 0);
    expect(Math.abs((calls.publish ?? 0) - total)).toBeLessThanOrEqual(2);
    monitor.kill();
    monitor = undefined;
    local.close();
  }, 40_000);

  it('live video of node 1 crosses to node 3 byte for byte: init, then fragments from a keyframe', async () => {
    const v = ws(nodes[2]!, 'cam/vid/video');
    await v.until(
      '3 s of fragments',
      (r) => r.filter((x) => x.type === 'fragment').length >= 3 * FPS,
      30_000,
    );
    const init = v.received.find((x) => x.type === 'init')!;
    expect(init.body).toMatchObject({ topic: 'cam/vid/video', width: 320, height: 180 });
    const frs = v.received.filter((x) => x.type === 'fragment');
    expect(v.received.indexOf(init)).toBeLessThan(v.received.indexOf(frs[0]!));
    // A viewer starts at a keyframe, even on a node that joined the stream mid-GOP.
    expect(frs[0]!.body!.keyframe).toBe(true);
    for (let i = 1; i < frs.length; i++) expect(frs[i]!.seq).toBe(frs[i - 1]!.seq! + 1);
    // The bytes that crossed are what ffmpeg made: ffprobe reads the concatenation as H.264.
    const file = join(mkdtempSync(join(tmpdir(), 'framehub-cluster-')), 'remote.mp4');
    writeFileSync(
      file,
      Buffer.concat([init.body!.data as Uint8Array, ...frs.map((f) => f.body!.data as Uint8Array)]),
    );
    const probe = JSON.parse(
      execFileSync(
        '/usr/bin/ffprobe',
        ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', file],
        {
          encoding: 'utf8',
        },
      ),
    ).streams[0];
    expect(probe).toMatchObject({ codec_name: 'h264', width: 320, height: 180 });
    expect(Number(probe.nb_read_frames)).toBe(frs.length);
    v.close();
  }, 45_000);

  it('SIGKILL of node 1: another node ingests within 2 lease periods, viewers resume with seq increasing', async () => {
    const lastBefore = remote.map(({ v }) => framesOf(v.received, LOW).at(-1)!.seq!);
    const killedAt = Date.now();
    nodes[0]!.proc.kill('SIGKILL');
    const survivors = [nodes[1]!, nodes[2]!];
    let owner: string | undefined;
    await pollUntil(async () => {
      for (const n of survivors) {
        const c = await cluster(n);
        if (c?.ingesting.includes('demo')) owner = c.nodeId;
      }
      return owner !== undefined;
    }, 4 * LEASE_MS);
    const takeoverMs = Date.now() - killedAt;
    expect(owner, 'node 2 took the lease (node 3 is a pure edge)').toBe('n2');
    // 2 lease periods, plus the status poll's own lag on a loaded machine.
    expect(takeoverMs).toBeLessThanOrEqual(2 * LEASE_MS + 1000);
    for (const [i, { name, v }] of remote.entries()) {
      await v.until(`${name}: frames again`, (r) => framesOf(r, LOW).at(-1)!.seq! > lastBefore[i]!, 30_000);
      await v.until(
        `${name}: 5 more`,
        (r) => framesOf(r, LOW).filter((f) => f.seq! > lastBefore[i]!).length >= 5,
      );
      expectIncreasing(framesOf(v.received, LOW), `${name} across the takeover`);
    }
    for (const { name, v, vad } of remote)
      if (vad) expectIncreasing(eventsOf(v.received, VAD), `${name} vad`);
    // Node 2's camera_up crossed to the `system` viewers of node 3, numbered there.
    const edge = remote.find((r) => r.name === 'ws@n3')!.v;
    await edge.until(
      'camera_up from node 2 on node 3',
      (r) => r.some((x) => x.topic === 'system' && x.body?.kind === 'camera_up' && x.body?.node === 'n2'),
      20_000,
    );
    expectIncreasing(eventsOf(edge.received, 'system'), 'system on node 3');
    nodes.shift();
  }, 60_000);

  it('Redis stops: local viewing goes on, /readyz degraded; Redis back: cross-node viewing resumes, no restart', async () => {
    const states = await Promise.all(nodes.map((n) => cluster(n)));
    const ownerIndex = states.findIndex((s) => s?.ingesting.includes('demo'));
    expect(ownerIndex).toBeGreaterThanOrEqual(0);
    const owner = nodes[ownerIndex]!;
    const other = nodes[1 - ownerIndex]!;
    const local = ws(owner, LOW);
    await local.until('owner-local frames', (r) => framesOf(r, LOW).length >= 3, 15_000);
    const watcher = remote.find((r) => r.name === `ws@${other === nodes[0] ? 'n2' : 'n3'}`)!.v;
    // Live video on the node that does not ingest `vid`, across the restart.
    const vidOwner = states.findIndex((s) => s?.ingesting.includes('vid'));
    const video = ws(nodes[1 - vidOwner]!, 'cam/vid/video');
    const fragments = () => video.received.filter((x) => x.type === 'fragment').length;
    await video.until('remote fragments', () => fragments() >= FPS, 30_000);

    await redis.stop();
    for (const n of nodes) {
      expect(
        await pollUntil(
          async () => JSON.parse((await get(`${n.url}/readyz`)).text).status === 'degraded',
          10_000,
        ),
      ).toBe(true);
      const r = await get(`${n.url}/readyz`);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.text)).toEqual({ status: 'degraded', bus: 'down' });
      const m = (await get(`${n.url}/metrics`)).text;
      expect(metricValue(m, 'framehub_bus_up')).toBe(0);
      expect(metricValue(m, 'framehub_bus_disconnects_total')).toBeGreaterThanOrEqual(1);
    }
    await watcher.until(
      'bus_down on the remote viewer',
      (r) => r.some((x) => x.topic === 'system' && x.body?.kind === 'bus_down'),
      10_000,
    );
    // The owner still serves its own viewers.
    const localBefore = framesOf(local.received, LOW).length;
    await local.until(
      'local frames while Redis is down',
      (r) => framesOf(r, LOW).length >= localBefore + 10,
      15_000,
    );
    expect((await cluster(owner))!.ingesting).toEqual(['demo', 'vid']);
    const remoteLast = framesOf(watcher.received, LOW).at(-1)!.seq!;

    await redis.start();
    for (const n of nodes) {
      expect(
        await pollUntil(
          async () => JSON.parse((await get(`${n.url}/readyz`)).text).status === 'ready',
          15_000,
        ),
      ).toBe(true);
    }
    await watcher.until(
      'bus_up',
      (r) => r.some((x) => x.topic === 'system' && x.body?.kind === 'bus_up'),
      10_000,
    );
    await watcher.until(
      'cross-node frames again',
      (r) => framesOf(r, LOW).filter((f) => f.seq! > remoteLast).length >= 5,
      20_000,
    );
    // The owner took its lease back from the empty Redis with a new token: the same process,
    // so the receivers keep its video track (init) and its fragments go on, with no restart.
    const fragmentsBefore = fragments();
    await video.until(
      'fragments after the Redis restart',
      () => fragments() >= fragmentsBefore + 2 * FPS,
      30_000,
    );
    video.close();
    for (const { name, v } of remote.filter((r) => !r.name.endsWith('n1'))) {
      if (v.received.length === 0) continue;
      expectIncreasing(framesOf(v.received, LOW), `${name} across the Redis restart`);
    }
    expectIncreasing(framesOf(local.received, LOW), 'owner-local across the Redis restart');
    remote = [];
  }, 90_000);

  it("a job's events cross: an upload on node 2 watched from node 3 until its image job is done", async () => {
    const [jobNode, edge] = [nodes[0]!, nodes[1]!];
    const jpeg = await noiseJpeg(640, 480);
    const meta = `format ${Buffer.from('webp').toString('base64')},widths ${Buffer.from('64').toString('base64')}`;
    const created = await fetch(`${jobNode.url}/api/v1/uploads/`, {
      method: 'POST',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(jpeg.length), 'Upload-Metadata': meta },
    });
    expect(created.status).toBe(201);
    const id = created.headers.get('location')!.split('/').pop()!;
    const v = ws(edge, `job/${id}`);
    const check = redis.client();
    expect(
      await pollUntil(async () => {
        const [, n] = (await check.call('PUBSUB', 'NUMSUB', `fh:t:job/${id}`)) as [string, number];
        return Number(n) >= 1;
      }, 10_000),
      'node 3 subscribed the job topic',
    ).toBe(true);
    const patched = await fetch(`${jobNode.url}/api/v1/uploads/${id}`, {
      method: 'PATCH',
      headers: {
        'Tus-Resumable': '1.0.0',
        'Content-Type': 'application/offset+octet-stream',
        'Upload-Offset': '0',
      },
      body: jpeg,
    });
    expect(patched.status).toBe(204);
    await v.until('the job done on node 3', (r) => r.some((x) => x.body?.state === 'done'), 30_000);
    const events = eventsOf(v.received, `job/${id}`);
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events.every((e) => e.type === 'job')).toBe(true);
    expectIncreasing(events, 'job events on node 3');
  }, 45_000);

  it('refuses a frame written to Redis with a header-breaking mime: an edge snapshot never carries it', async () => {
    const client = redis.client();
    const states = await Promise.all(nodes.map(cluster));
    const owner = states.find((s) => s?.ingesting.includes('demo'))!;
    const edge = nodes[states.findIndex((s) => s !== undefined && s !== owner)]!;
    const token = Number(await client.get('fh:fence:{demo}'));
    const topic = 'cam/demo/high';
    const record = pack({
      type: 'frame',
      topic,
      seq: 2 ** 40,
      ts: Date.now(),
      mime: 'image/jpeg\r\nX-Injected: yes',
      width: 2,
      height: 2,
      data: await noiseJpeg(8, 8),
    });
    const id = Buffer.from(owner.nodeId);
    const fence = Buffer.alloc(8);
    fence.writeBigUInt64BE(BigInt(token));
    // As the owner's own message, with its current token: only the fields give it away.
    await client.set(
      `fh:latest:${topic}`,
      Buffer.concat([Buffer.from([id.length]), id, fence, record]),
      'PX',
      5000,
    );
    const res = await fetch(`${edge.url}/cams/demo/high.jpg`);
    expect(res.headers.get('x-injected')).toBeNull();
    expect(Number(res.headers.get('x-seq') ?? 0)).toBeLessThan(2 ** 40);
  }, 30_000);

  it('never had two nodes ingesting the camera for longer than one lease period', () => {
    expect(ownership.samples.length).toBeGreaterThan(20);
    expect(ownership.longestDoubleMs()).toBeLessThanOrEqual(LEASE_MS);
  });
});
