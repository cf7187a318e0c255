import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, type RunningDaemon, readMjpeg, root, startDaemon, testCamera } from './helpers.js';
import { type RunningNginx, startNginx } from './support/nginx.js';
import { type RunningRedis, startRedis } from './support/redis.js';
import { HttpStallable, type Received, type StallableViewer, WsStallable } from './support/stream-clients.js';

// Three framehub nodes on one private redis-server behind Debian's nginx with
// docs/nginx-cluster.conf (README "Behind a load balancer"), as operators deploy them. Node 1
// takes the camera's lease; every node serves it. Bounds are wide: 2 cores, a CI run beside.
const FPS = 8;
const LOW = 'cam/demo/low';
const VAD = 'cam/demo/vad';
/** Viewers of each transport opened through nginx at first. */
const PER_TRANSPORT = 4;
const config = {
  cameras: [testCamera('demo', FPS)],
  pool: { threads: 1 },
  trustProxy: ['127.0.0.1'],
  cluster: { leaseMs: 3000 },
};

const CLUSTER_CONF = join(root, 'docs', 'nginx-cluster.conf');
/** The ports docs/nginx-cluster.conf names for its three nodes, in order. */
const DOC_PORTS = [8081, 8082, 8083];

/**
 * docs/nginx-cluster.conf with only the ports changed: `listen 80;` becomes this test's port on
 * 127.0.0.1 and each `server 127.0.0.1:808x` a node's port. Throws if a line moved, so the
 * test cannot quietly run a config other than the documented one.
 */
function clusterConfig(listenPort: number, nodePorts: number[]): string {
  let text = readFileSync(CLUSTER_CONF, 'utf8');
  const listen = '    listen 80;\n';
  const servers = DOC_PORTS.map((p) => `    server 127.0.0.1:${p} `);
  for (const line of [listen, ...servers]) {
    if (text.split(line).length !== 2) throw new Error(`${CLUSTER_CONF} no longer has "${line.trim()}" once`);
  }
  text = text.replace(listen, `    listen 127.0.0.1:${listenPort};\n`);
  for (const [i, line] of servers.entries())
    text = text.replace(line, `    server 127.0.0.1:${nodePorts[i]} `);
  return text;
}

interface LoggedRequest {
  uri: string;
  status: number;
  /** The nodes nginx tried, in order (`$upstream_addr`): more than one when it moved on. */
  upstreams: string[];
}

/** nginx's own record of which node answered each request (written when the request ends). */
function upstreamLog(nginx: RunningNginx): LoggedRequest[] {
  let text = '';
  try {
    text = readFileSync(join(nginx.dir, 'upstreams.log'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [uri, status, addrs] = line.split('|') as [string, string, string];
      return { uri, status: Number(status), upstreams: addrs.split(', ') };
    });
}

let redis: RunningRedis;
let nginx: RunningNginx;
const nodes: RunningDaemon[] = [];
const viewers: StallableViewer[] = [];
/** Viewers whose connection ended (nginx closes it when the node behind it dies). */
const ended = new Set<StallableViewer>();

const port = (node: RunningDaemon) => Number(new URL(node.url).port);
const address = (node: RunningDaemon) => `127.0.0.1:${port(node)}`;
const start = (id: string) => startDaemon(config, ['--redis-url', redis.url, '--node-id', id]);

/** The node's own `/api/v1/status`, asked directly (no proxy headers: the admin with auth off). */
async function status(node: RunningDaemon) {
  const res = await fetch(`${node.url}/api/v1/status`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as {
    viewers: { ws: number; sse: number; mjpeg: number };
    cluster: { ingesting: string[]; nodes: unknown[] };
  };
}

const total = (v: { ws: number; sse: number; mjpeg: number }) => v.ws + v.sse + v.mjpeg;

function track<V extends StallableViewer>(v: V): V {
  viewers.push(v);
  void v.ended.then(() => ended.add(v));
  return v;
}

/** WS, SSE and MJPEG viewers through nginx, `count` of each, opened one after another. */
async function openThroughNginx(count: number) {
  const opened: { name: string; v: StallableViewer; vad: boolean }[] = [];
  for (let i = 0; i < count; i++) {
    const v = track(new WsStallable(`ws://127.0.0.1:${nginx.port}/ws?topics=${LOW},${VAD}`));
    await v.opened;
    opened.push({ name: `ws ${opened.length}`, v, vad: true });
  }
  for (const [format, path] of [
    ['sse', `/sse?topics=${LOW},${VAD}`],
    ['mjpeg', '/cams/demo/low.mjpeg'],
  ] as const) {
    for (let i = 0; i < count; i++) {
      const v = track(new HttpStallable(nginx.port, path, format));
      expect(await v.responded, `${format} ${i} through nginx`).toBe(200);
      opened.push({ name: `${format} ${opened.length}`, v, vad: format === 'sse' });
    }
  }
  return opened;
}

const framesOf = (r: Received[]) => r.filter((x) => x.kind === 'frame' && x.topic === LOW);
const eventsOf = (r: Received[]) => r.filter((x) => x.kind === 'event' && x.topic === VAD);

function expectIncreasing(records: Received[], what: string): void {
  const seqs = records.map((r) => r.seq!);
  const at = seqs.findIndex((s, i) => i > 0 && s <= seqs[i - 1]!);
  expect(at, `${what}: seq ${seqs.slice(Math.max(0, at - 3), at + 2).join(',')}`).toBe(-1);
}

/** A snapshot: its status, and for a 200 its age (ms since capture) and JPEG width. */
async function snapshot(url: string) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) return { status: res.status, body: await res.text() };
  const jpeg = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    ageMs: Date.now() - Number(res.headers.get('x-timestamp')),
    width: (await sharp(jpeg).metadata()).width,
  };
}

beforeAll(async () => {
  redis = await startRedis();
  nodes.push(await start('n1'));
  expect(
    await pollUntil(async () => (await status(nodes[0]!)).cluster.ingesting.includes('demo'), 20_000),
    'node 1 ingests the camera',
  ).toBe(true);
  nodes.push(await start('n2'), await start('n3'));
  expect(
    await pollUntil(async () => (await status(nodes[0]!)).cluster.nodes.length === 3, 10_000),
    'three heartbeats in Redis',
  ).toBe(true);
  const ports = nodes.map(port);
  nginx = await startNginx(ports[0]!, (listenPort, dir) =>
    [
      // The test's own log (beside the usual one): which node nginx sent each request to.
      `log_format upstreams '$request_uri|$status|$upstream_addr';`,
      `access_log ${dir}/upstreams.log upstreams;`,
      clusterConfig(listenPort, ports),
    ].join('\n'),
  );
}, 60_000);

afterAll(async () => {
  for (const v of viewers) v.close();
  await nginx?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
}, 60_000);

describe('three nodes behind nginx with docs/nginx-cluster.conf', () => {
  let first: { name: string; v: StallableViewer; vad: boolean }[] = [];

  it('spreads WS, SSE and MJPEG viewers over the nodes; each gets frames and VAD events, seq increasing', async () => {
    first = await openThroughNginx(PER_TRANSPORT);
    for (const { name, v, vad } of first) {
      await v.until(`${name}: 12 frames`, (r) => framesOf(r).length >= 12, 20_000);
      // The test tone is 2 s on, 2 s off: a VAD transition at least every 2.3 s.
      if (vad) await v.until(`${name}: 2 VAD events`, (r) => eventsOf(r).length >= 2, 20_000);
    }
    for (const { name, v, vad } of first) {
      expectIncreasing(framesOf(v.received), `${name} frames`);
      if (vad) expectIncreasing(eventsOf(v.received), `${name} vad`);
    }
    // Where nginx put them, as each node counts its own viewers.
    const opened = 3 * PER_TRANSPORT;
    let perNode: { ws: number; sse: number; mjpeg: number }[] = [];
    const counted = await pollUntil(async () => {
      perNode = await Promise.all(nodes.map(async (n) => (await status(n)).viewers));
      return perNode.reduce((sum, v) => sum + total(v), 0) === opened;
    }, 10_000);
    const spread = JSON.stringify(perNode);
    expect(counted, `${opened} viewers in all: ${spread}`).toBe(true);
    expect(perNode.filter((v) => total(v) > 0).length, spread).toBeGreaterThanOrEqual(2);
    // least_conn with viewers opened one by one: every node gets some, of every transport.
    expect(
      perNode.every((v) => total(v) > 0),
      spread,
    ).toBe(true);
    for (const transport of ['ws', 'sse', 'mjpeg'] as const) {
      expect(
        perNode.filter((v) => v[transport] > 0).length,
        `${transport}: ${spread}`,
      ).toBeGreaterThanOrEqual(2);
    }
    // MJPEG parts through nginx are whole JPEGs of the low variant.
    const parts = await readMjpeg(`${nginx.url}/cams/demo/low.mjpeg`, 3);
    for (const p of parts) expect((await sharp(p.jpeg).metadata()).width).toBe(320);
  }, 90_000);

  it('answers a snapshot .jpg from any node: 200 with a fresh JPEG, through nginx and from each node', async () => {
    const before = upstreamLog(nginx).length;
    for (let i = 0; i < 6; i++) {
      const s = await snapshot(`${nginx.url}/cams/demo/low.jpg`);
      expect(s, `snapshot ${i} through nginx`).toMatchObject({ status: 200, type: 'image/jpeg', width: 320 });
      expect(s.ageMs).toBeLessThan(3000);
    }
    for (const node of nodes) {
      const s = await snapshot(`${node.url}/cams/demo/low.jpg`);
      expect(s, `snapshot from ${node.url}`).toMatchObject({ status: 200, width: 320 });
      expect(s.ageMs).toBeLessThan(3000);
    }
    let served = new Set<string>();
    await pollUntil(() => {
      const jpgs = upstreamLog(nginx)
        .slice(before)
        .filter((r) => r.uri === '/cams/demo/low.jpg');
      served = new Set(jpgs.map((r) => r.upstreams.at(-1)!));
      return jpgs.length >= 6;
    }, 5000);
    expect(served.size, `nodes that answered: ${[...served].join(' ')}`).toBeGreaterThanOrEqual(2);
  }, 30_000);

  // A node that neither ingests the camera nor carries the topic for a viewer answers `.jpg`
  // from the latest frame Redis keeps (ClusterBus.freshen), never 503 or a frame it kept.
  it('answers a snapshot of a topic nobody watches from every node (medium: no viewer anywhere)', async () => {
    for (const node of nodes) {
      const s = await snapshot(`${node.url}/cams/demo/medium.jpg`);
      expect(s, `medium snapshot from ${node.url}`).toMatchObject({ status: 200, width: 640 });
      expect(s.ageMs).toBeLessThan(3000);
    }
  }, 30_000);

  it('SIGKILL of a node that does not own the camera: its viewers are cut, the rest go on, nginx sends new viewers around it', async () => {
    const states = await Promise.all(nodes.map(status));
    const owner = states.findIndex((s) => s.cluster.ingesting.includes('demo'));
    expect(owner, 'a node ingests the camera').toBeGreaterThanOrEqual(0);
    // A node with SSE viewers, so one of them can reconnect as EventSource would.
    const victimIndex = [2, 1, 0].find((i) => i !== owner && states[i]!.viewers.sse > 0)!;
    expect(victimIndex, JSON.stringify(states.map((s) => s.viewers))).toBeDefined();
    const victim = nodes[victimIndex]!;
    const cut = total(states[victimIndex]!.viewers);
    const survivors = nodes.filter((n) => n !== victim);
    const lastBefore = new Map(first.map(({ v }) => [v, framesOf(v.received).at(-1)!.seq!]));

    victim.proc.kill('SIGKILL');
    // nginx closes the client side of each connection it had through the dead node, and only those.
    expect(await pollUntil(() => ended.size >= cut, 15_000), `${ended.size} of ${cut} cut`).toBe(true);
    expect(ended.size).toBe(cut);
    for (const { name, v } of first.filter(({ v }) => !ended.has(v))) {
      await v.until(
        `${name}: frames after the kill`,
        (r) => framesOf(r).filter((f) => f.seq! > lastBefore.get(v)!).length >= 5,
        20_000,
      );
      expectIncreasing(framesOf(v.received), `${name} across the kill`);
    }

    // The dead node has the fewest connections, so least_conn tries it first: refused, and
    // nginx moves the request on to a live node before the client sees anything.
    const logged = upstreamLog(nginx).length;
    for (let i = 0; i < 6; i++) {
      const s = await snapshot(`${nginx.url}/cams/demo/low.jpg`);
      expect(s, `snapshot ${i} after the kill`).toMatchObject({ status: 200, width: 320 });
    }
    let afterKill: LoggedRequest[] = [];
    await pollUntil(() => {
      afterKill = upstreamLog(nginx)
        .slice(logged)
        .filter((r) => r.uri === '/cams/demo/low.jpg');
      return afterKill.length >= 6;
    }, 5000);
    const moved = afterKill.filter((r) => r.upstreams.length > 1 && r.upstreams[0] === address(victim));
    expect(moved.length, JSON.stringify(afterKill)).toBeGreaterThanOrEqual(1);
    expect(afterKill.every((r) => r.status === 200 && r.upstreams.at(-1) !== address(victim))).toBe(true);
    expect(nginx.errors()).toMatch(
      new RegExp(`connect\\(\\) failed \\(111: Connection refused\\).*upstream: "http://${address(victim)}`),
    );

    // No stickiness needed: a cut SSE viewer reconnects with its Last-Event-ID, lands on a
    // survivor (another process, another epoch) and is told so with a `gap`, then events go on.
    const cutSse = first.find(({ name, v }) => name.startsWith('sse') && ended.has(v))!;
    const lastId = eventsOf(cutSse.v.received).at(-1)!.id!;
    const back = track(
      new HttpStallable(nginx.port, `/sse?topics=${LOW},${VAD}`, 'sse', { 'Last-Event-ID': lastId }),
    );
    expect(await back.responded).toBe(200);
    await back.until('reconnected: a VAD event', (r) => eventsOf(r).length >= 1, 20_000);
    const gap = back.received.find((r) => r.kind === 'gap' && r.topic === VAD);
    expect(gap?.body, `resumed from ${lastId}`).toMatchObject({ reason: 'epoch' });
    expect(back.received.indexOf(gap!)).toBeLessThan(back.received.indexOf(eventsOf(back.received)[0]!));
    expectIncreasing(eventsOf(back.received), 'reconnected vad');

    // New viewers of every transport through nginx: all admitted, all get frames.
    const fresh = await openThroughNginx(2);
    for (const { name, v, vad } of fresh) {
      await v.until(`new ${name}: 8 frames`, (r) => framesOf(r).length >= 8, 20_000);
      expectIncreasing(framesOf(v.received), `new ${name} frames`);
      if (vad) {
        await v.until(`new ${name}: a VAD event`, (r) => eventsOf(r).length >= 1, 20_000);
        expectIncreasing(eventsOf(v.received), `new ${name} vad`);
      }
    }
    expect(fresh.filter(({ v }) => ended.has(v))).toEqual([]);
    // Every viewer still open is on a survivor.
    const open = viewers.length - ended.size;
    let counts: number[] = [];
    const counted = await pollUntil(async () => {
      counts = await Promise.all(survivors.map(async (n) => total((await status(n)).viewers)));
      return counts[0]! + counts[1]! === open;
    }, 10_000);
    expect(counted, `${open} open viewers, survivors count ${counts.join(' + ')}`).toBe(true);
  }, 120_000);
});
