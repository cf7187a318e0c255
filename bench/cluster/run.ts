import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { sleep, withTimeout } from '../lib/clock.js';
import { makeJpeg, Publisher } from '../lib/frames.js';
import { Histogram, type LatencySummary } from '../lib/histogram.js';
import { machineLine, type ResultTable, type TargetCheck, writeResult } from '../lib/results.js';
import { type RunningTarget, startTarget } from '../lib/target.js';
import {
  type BusWindow,
  type Cluster,
  type PhaseResult,
  runIdle,
  runPhase,
  type Side,
  type SideResult,
  settle,
} from './phase.js';
import {
  type BenchRedis,
  type BenchRedisCluster,
  countersDelta,
  numsub,
  REDIS_SERVER,
  type RedisCounters,
  readCounters,
  serverFacts,
  shardNumsub,
  startRedis,
  startRedisCluster,
} from './redis.js';

// Issue 13's bench: cross-node delivery against local delivery, in one run on one machine.
// A private redis-server and two framehub nodes on it; a push camera's publisher sends a
// ~20 KB JPEG at 15 fps to node 1 (so node 1 publishes its topics). 200 WS viewers of
// cam/<id>/raw on node 1 (local: the hub hands them the frame) and 200 on node 2 (remote: the
// frame crossed Redis once) are measured in alternating phases (local, remote, remote,
// local, …), then both sets at once. Latency is capture ts → viewer receive. Redis's cost comes
// from INFO deltas over each window: CPU (used_cpu_sys + used_cpu_user), bytes in and out, and
// PUBLISH calls per frame (commandstats), against an idle window with no viewers.
// With --redis-cluster the same phases run on a 3-master Redis Cluster (no replicas) and the
// nodes are configured `redisCluster: true`: on Redis 7 frames cross by SPUBLISH/SSUBSCRIBE, so
// each frame should reach only the master that holds its channel's slot. Both nodes must report
// `cluster.pubsub` 'sharded' (the run fails otherwise); Redis is counted per master, the shard
// owning `fh:t:<topic>` apart from the others, whose SPUBLISH calls must all be the `fh:ctl`
// want messages (counted by the bench's own SSUBSCRIBE of `fh:ctl`). Its result is its own
// section (bench `cluster-sharded`), next to the single-server one.
// Usage: node dist-bench/bench/cluster/run.js [--viewers 200] [--fps 15] [--frame-kb 20]
//        [--seconds 15] [--warmup 3] [--rounds 2] [--idle-seconds 5] [--no-both] [--procs cores-1]
//        [--redis-cluster]

const { values: args } = parseArgs({
  options: {
    viewers: { type: 'string', default: '200' },
    fps: { type: 'string', default: '15' },
    'frame-kb': { type: 'string', default: '20' },
    seconds: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    'idle-seconds': { type: 'string', default: '5' },
    'no-both': { type: 'boolean', default: false },
    procs: { type: 'string', default: String(Math.max(1, os.availableParallelism() - 1)) },
    'redis-cluster': { type: 'boolean', default: false },
  },
});
const viewers = Number(args.viewers);
const fps = Number(args.fps);
const seconds = Number(args.seconds);
const warmupSeconds = Number(args.warmup);
const rounds = Number(args.rounds);
const idleSeconds = Number(args['idle-seconds']);
const both = !args['no-both'];
const procs = Number(args.procs);
const [width, height] = [640, 360];
const camera = 'bench0';
const variant = 'raw';
const topic = `cam/${camera}/${variant}`;
const TARGET_ADDED_P99_MS = 5;
/** --redis-cluster: a 3-master Redis Cluster, sharded pub/sub. */
const sharded = args['redis-cluster'];
const MASTERS = 3;
const bench = sharded ? 'cluster-sharded' : 'cluster';
const channel = `fh:t:${topic}`;
/** Where a node says `want` when it subscribes a topic (src/cluster/redis-bus.ts). */
const CONTROL = 'fh:ctl';
/** The command a frame crosses by, as INFO commandstats names it. */
const PUB = sharded ? 'spublish' : 'publish';
/** Frames in flight at a window's two edges: a publish and its frame may fall either side. */
const EDGE_FRAMES = 2;

const wallStart = performance.now();
const startedAt = new Date().toISOString();
const loadAtStart = os.loadavg();
console.log(`System: ${machineLine()}`);
console.log(
  `cluster bench: ${sharded ? `${MASTERS}-master Redis Cluster (sharded pub/sub)` : 'redis-server'} + 2 nodes; push camera at ${fps} fps to node 1; ${viewers} WS viewers of ${topic} on node 1 (local) against node 2 (remote); ${rounds} round(s) of ${warmupSeconds} s warm-up + ${seconds} s${both ? ', then both at once' : ''}`,
);
const jpeg = await makeJpeg(width, height, Number(args['frame-kb']) * 1024);

/** A node of the cluster: a fresh daemon on the bench's Redis, with the push camera configured. */
function startNode(redisUrl: string, nodeId: string): Promise<RunningTarget> {
  return startTarget('framehub', {
    cameras: [camera],
    fps,
    width,
    height,
    framehubConfig: { cluster: { redisUrl, nodeId, ...(sharded ? { redisCluster: true } : {}) } },
  });
}

type PubSubMode = 'plain' | 'sharded' | undefined;

/**
 * Waits until both nodes' heartbeats are in Redis and each says its bus is up; returns each
 * node's `cluster.pubsub` (set before the bus says up).
 */
async function clusterUp(nodes: RunningTarget[]): Promise<PubSubMode[]> {
  const modes: PubSubMode[] = nodes.map(() => undefined);
  const up = async (n: RunningTarget, i: number) => {
    const res = await fetch(`${n.url}/api/v1/status`, { signal: AbortSignal.timeout(2000) });
    const c = ((await res.json()) as { cluster?: { busUp: boolean; nodes: unknown[]; pubsub?: PubSubMode } })
      .cluster;
    modes[i] = c?.pubsub;
    return c?.busUp === true && c.nodes.length === nodes.length;
  };
  const deadline = performance.now() + 15_000;
  // Bounded by the deadline.
  while (!(await Promise.all(nodes.map((n, i) => up(n, i).catch(() => false)))).every(Boolean)) {
    if (performance.now() > deadline) throw new Error('the nodes did not both report the bus up in 15 s');
    await sleep(200);
  }
  return modes;
}

/** The masters' slots of the keys and channels the bench looks at (--redis-cluster). */
interface ShardMap {
  /** `fh:t:<topic>`: the shard every frame message must go to. */
  channel: { index: number; slot: number };
  /** `fh:ctl`: where the `want` messages go. */
  control: { index: number; slot: number };
  /** `fh:latest:<topic>`: the latest-frame SET, twice a second. */
  latest: { index: number; slot: number };
  /** `fh:node:n1`, `fh:node:n2`: the heartbeats. */
  heartbeats: { index: number; slot: number }[];
}

let single: BenchRedis | undefined;
let redisCluster: BenchRedisCluster | undefined;
if (sharded) redisCluster = await startRedisCluster(MASTERS);
else single = await startRedis();
const redisUrl = redisCluster?.url ?? single!.url;
const masters = redisCluster?.clients ?? [single!.client];
const portOf = (i: number) => redisCluster?.ports[i] ?? 0;
let shardMap: ShardMap | undefined;
let ctlSub: Redis | undefined;
let wantCount = 0;
let pubsubModes: PubSubMode[] = [];
/** Each master's counters from before the nodes started to after the last phase. */
let runStart: RedisCounters[] = [];
let runCounters: RedisCounters[] = [];
const facts = await serverFacts(masters[0]!);
const nodes: RunningTarget[] = [];
const phases: PhaseResult[] = [];
let idle: PhaseResult | undefined;
let publisherStats = { sent: 0, late: 0, errors: 0 };
try {
  if (redisCluster) {
    const rc = redisCluster;
    shardMap = {
      channel: await rc.ownerOf(channel),
      control: await rc.ownerOf(CONTROL),
      latest: await rc.ownerOf(`fh:latest:${topic}`),
      heartbeats: [await rc.ownerOf('fh:node:n1'), await rc.ownerOf('fh:node:n2')],
    };
    // The bench's own subscriber of the control channel on its shard: every want message counted.
    ctlSub = new Redis(rc.ports[shardMap.control.index]!, '127.0.0.1', { maxRetriesPerRequest: 1 });
    ctlSub.on('error', () => {});
    ctlSub.on('smessageBuffer', () => {
      wantCount++;
    });
    await withTimeout(ctlSub.ssubscribe(CONTROL), 5000, `SSUBSCRIBE ${CONTROL}`);
    runStart = await Promise.all(masters.map((m) => readCounters(m)));
  }
  nodes.push(await startNode(redisUrl, 'n1'), await startNode(redisUrl, 'n2'));
  pubsubModes = await clusterUp(nodes);
  if (sharded && !pubsubModes.every((m) => m === 'sharded'))
    throw new Error(
      `--redis-cluster: the nodes report cluster.pubsub ${pubsubModes.map((m) => m ?? 'unset').join(', ')}, not sharded on both`,
    );
  const publisher = new Publisher(nodes[0]!.wsBase, [camera], fps, jpeg);
  await publisher.connect();
  await publisher.prime();
  publisher.start();
  const c: Cluster = {
    owner: nodes[0]!,
    edge: nodes[1]!,
    redis: masters,
    numsub: (channels) => (sharded ? shardNumsub(masters, channels) : numsub(masters[0]!, channels)),
    publishCommand: PUB,
    wants: sharded ? () => wantCount : undefined,
    publisher,
    camera,
    variant,
    channel,
  };
  try {
    await sleep(1000);
    idle = await runIdle(c, idleSeconds);
    logPhase(idle);
    const o = { viewers, procs, warmupSeconds, seconds };
    for (let r = 0; r < rounds; r++) {
      // local, remote, remote, local, …: drift over the run favours neither side.
      const order: Side[] = r % 2 === 0 ? ['local', 'remote'] : ['remote', 'local'];
      for (const side of order) {
        phases.push(await runPhase(c, `${side} ${r + 1}`, [side], o));
        logPhase(phases.at(-1)!);
        await settle(c);
      }
    }
    if (both) {
      phases.push(await runPhase(c, 'both at once', ['local', 'remote'], o));
      logPhase(phases.at(-1)!);
    }
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\nnode 1: ${nodes[0]?.stderrTail()}\nnode 2: ${nodes[1]?.stderrTail()}`,
    );
  } finally {
    publisherStats = { ...publisher.stats };
    await withTimeout(publisher.close(), 3000, 'publisher close').catch(() => {});
  }
  if (sharded) {
    const runEnd = await Promise.all(masters.map((m) => readCounters(m)));
    runCounters = runEnd.map((after, i) => countersDelta(runStart[i]!, after));
  }
} finally {
  await Promise.all(nodes.map((n) => n.stop()));
  ctlSub?.disconnect();
  await (redisCluster ?? single)!.stop();
}

function logPhase(p: PhaseResult): void {
  const sides = p.sides.map((s) => {
    const l = s.window.latency.summary();
    return `${s.side}: ${s.opened} viewers, p50 ${f2(l.p50)} ms, p99 ${f2(l.p99)} ms, delivered ${delivered(s)}`;
  });
  const b = p.bus;
  const shards =
    b.shards && shardMap
      ? `; ${b.shards.map((r, i) => `:${portOf(i)}${i === shardMap!.channel.index ? ' (owns the channel)' : ''} ${r.calls.spublish ?? 0} SPUBLISH, ${f2((r.cpuSeconds / b.seconds) * 100)}% CPU, out ${kb(r.netOutputBytes / b.frames)} KB/frame`).join('; ')}; ${b.wants} want message(s)`
      : '';
  console.log(
    `${p.name}: ${sides.join('; ') || 'no viewers'}; Redis ${b.frames} frames, ${b.redis.calls[PUB] ?? 0} ${sharded ? 'SPUBLISH' : 'publishes'}, ${f2((b.redis.cpuSeconds / b.seconds) * 100)}% CPU, in ${kb(b.redis.netInputBytes / b.frames)} KB/frame, out ${kb(b.redis.netOutputBytes / b.frames)} KB/frame, ${b.subscribers} subscribing node(s)${shards}`,
  );
}

// --- result ---

function f2(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(2);
}
function kb(bytes: number): string {
  return Number.isFinite(bytes) ? (bytes / 1000).toFixed(2) : '–';
}
/** Frames received over frames sent × open viewers (by arrival at the window's edges). */
function deliveredShare(s: { frames: number; sent: number; viewers: number }): number {
  return s.sent && s.viewers ? s.frames / (s.sent * s.viewers) : Number.NaN;
}
function delivered(s: SideResult): string {
  const share = deliveredShare({ frames: s.window.frames, sent: s.window.sent, viewers: s.opened });
  return Number.isFinite(share) ? `${(share * 100).toFixed(2)}%` : '–';
}

/** The separate-phase windows of one side merged: frames, sent × viewers and latency. */
function merged(side: Side, together: boolean) {
  const picked = phases
    .filter((p) => (p.sides.length === 2) === together)
    .flatMap((p) => p.sides.filter((s) => s.side === side));
  const latency = new Histogram();
  for (const s of picked) latency.merge(s.window.latency);
  const frames = picked.reduce((a, s) => a + s.window.frames, 0);
  const expected = picked.reduce((a, s) => a + s.window.sent * s.opened, 0);
  return {
    windows: picked.length,
    latency: latency.summary(),
    share: expected ? frames / expected : Number.NaN,
    seqGaps: picked.reduce((a, s) => a + s.seqGaps, 0),
  };
}
const local = merged('local', false);
const remote = merged('remote', false);
const togetherLocal = merged('local', true);
const togetherRemote = merged('remote', true);
const addedP99 = (remote.latency.p99 ?? Number.NaN) - (local.latency.p99 ?? Number.NaN);
const addedP50 = (remote.latency.p50 ?? Number.NaN) - (local.latency.p50 ?? Number.NaN);
const togetherAddedP99 =
  (togetherRemote.latency.p99 ?? Number.NaN) - (togetherLocal.latency.p99 ?? Number.NaN);
const pctOf = (share: number) => (Number.isFinite(share) ? `${(share * 100).toFixed(2)}%` : '–');

const latencyRow = (
  name: string,
  node: string,
  n: string | number,
  frames: number | string,
  share: number,
  l: LatencySummary,
  gaps: number,
  elu: string,
  ttff?: Histogram,
) => [
  name,
  node,
  n,
  frames,
  pctOf(share),
  f2(l.p50),
  f2(l.p99),
  f2(l.p999),
  f2(l.max),
  gaps,
  ttff ? `${f2(ttff.quantileMs(0.5))} / ${f2(ttff.quantileMs(0.99))}` : '',
  elu,
];
const latencyTable: ResultTable = {
  caption: `Frame latency at the viewers, capture ts → WS message received (ms), ${seconds} s windows after a ${warmupSeconds} s warm-up; local = viewers on node 1 (the publisher's node), remote = viewers on node 2 (every frame crossed Redis)`,
  columns: [
    'window',
    'viewers on',
    'viewers',
    'frames received',
    'delivered',
    'p50',
    'p99',
    'p99.9',
    'max',
    'seq gaps',
    'first frame p50 / p99 (connect → frame, ms)',
    'client ELU',
  ],
  rows: [
    ...phases.flatMap((p) =>
      p.sides.map((s) =>
        latencyRow(
          p.sides.length === 2 ? `${p.name}: ${s.side}` : p.name,
          s.side === 'local' ? 'node 1' : 'node 2',
          s.opened,
          s.window.frames,
          deliveredShare({ frames: s.window.frames, sent: s.window.sent, viewers: s.opened }),
          s.window.latency.summary(),
          s.seqGaps,
          s.clientElu.toFixed(2),
          s.ttff,
        ),
      ),
    ),
    latencyRow(
      `all local windows (${local.windows})`,
      'node 1',
      '',
      '',
      local.share,
      local.latency,
      local.seqGaps,
      '',
    ),
    latencyRow(
      `all remote windows (${remote.windows})`,
      'node 2',
      '',
      '',
      remote.share,
      remote.latency,
      remote.seqGaps,
      '',
    ),
  ],
};

const perFrame = (v: number, frames: number) => (frames ? v / frames : Number.NaN);
const idleBus = idle?.bus;
/** Redis's idle rate (latest-frame SETs, heartbeats, NUMSUB polls) over `secs`. */
const idleShare = (pick: (b: PhaseResult['bus']) => number, secs: number) =>
  idleBus ? (pick(idleBus) / idleBus.seconds) * secs : 0;
const otherCalls = (calls: Record<string, number>) =>
  Object.entries(calls)
    .filter(([k]) => k !== 'publish' && k !== 'info')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
const busRows = [...(idle ? [idle] : []), ...phases].map((p) => {
  const b = p.bus;
  const r = b.redis;
  const overIdle = (pick: (x: PhaseResult['bus']) => number) =>
    perFrame(pick(b) - idleShare(pick, b.seconds), b.frames);
  return [
    p.name,
    f2(b.seconds),
    b.frames,
    b.subscribers,
    r.calls.publish ?? 0,
    f2(perFrame(r.calls.publish ?? 0, b.frames)),
    b.ownerBusOut,
    b.edgeBusIn,
    f2((r.cpuSeconds / b.seconds) * 1000),
    f2(perFrame(r.cpuSeconds * 1e6, b.frames)),
    p === idle ? '–' : f2(overIdle((x) => x.redis.cpuSeconds * 1e6)),
    kb(perFrame(r.netInputBytes, b.frames)),
    kb(perFrame(r.netOutputBytes, b.frames)),
    p === idle ? '–' : kb(overIdle((x) => x.redis.netInputBytes)),
    p === idle ? '–' : kb(overIdle((x) => x.redis.netOutputBytes)),
    f2((b.ownerCpuSeconds / b.seconds) * 100),
    f2((b.edgeCpuSeconds / b.seconds) * 100),
    Object.entries(b.dropped)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || '0',
    otherCalls(r.calls) || '–',
  ];
});
const busTable: ResultTable = {
  caption: `Redis over each window, from INFO deltas (cpu: used_cpu_sys + used_cpu_user; stats: total_net_input_bytes / total_net_output_bytes; commandstats), per frame the publisher sent; "over idle" subtracts the idle window's rate (latest-frame SETs, heartbeats, NUMSUB polls, the bench's INFO calls). KB = 1,000 bytes`,
  columns: [
    'window',
    's',
    'frames',
    'subscribing nodes (NUMSUB)',
    'PUBLISH calls',
    'PUBLISH per frame',
    'node 1 bus out',
    'node 2 bus in',
    'Redis CPU ms/s',
    'Redis CPU µs/frame',
    'µs/frame over idle',
    'in KB/frame',
    'out KB/frame',
    'in KB/frame over idle',
    'out KB/frame over idle',
    'node 1 CPU %',
    'node 2 CPU %',
    'frames dropped by the nodes',
    'other Redis commands',
  ],
  rows: busRows,
};

const remoteOnly = phases.filter((p) => p.sides.length === 1 && p.sides[0]!.side === 'remote');
const localOnly = phases.filter((p) => p.sides.length === 1 && p.sides[0]!.side === 'local');
const publishesOk = remoteOnly.every(
  (p) => p.bus.subscribers === 1 && Math.abs((p.bus.redis.calls.publish ?? 0) - p.bus.frames) <= EDGE_FRAMES,
);
const quietOk = localOnly.every((p) => p.bus.phaseOwnerBusOut === 0);
const remoteCpuUs = remoteOnly.map((p) => perFrame(p.bus.redis.cpuSeconds * 1e6, p.bus.frames));
const remoteIn = remoteOnly.map((p) => perFrame(p.bus.redis.netInputBytes, p.bus.frames));
const remoteOut = remoteOnly.map((p) => perFrame(p.bus.redis.netOutputBytes, p.bus.frames));
const range = (xs: number[], fmt: (x: number) => string) =>
  xs.length ? `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}` : '–';

const plainTargets: TargetCheck[] = [
  {
    name: `added p99 latency, ${viewers} viewers on node 2 (remote) against ${viewers} on node 1 (local), separate phases`,
    target: `≤ ${TARGET_ADDED_P99_MS} ms`,
    measured: `${f2(addedP99)} ms (p99 ${f2(remote.latency.p99)} remote against ${f2(local.latency.p99)} local; p50 ${f2(remote.latency.p50)} against ${f2(local.latency.p50)}, +${f2(addedP50)} ms)${both ? `; both at once: ${f2(togetherAddedP99)} ms` : ''}`,
    met: addedP99 <= TARGET_ADDED_P99_MS,
  },
  {
    name: 'PUBLISH per frame per watched topic with one subscribing node (remote windows)',
    target: `1 (± ${EDGE_FRAMES} frames at the window edges), NUMSUB 1`,
    measured: remoteOnly
      .map((p) => `${p.bus.redis.calls.publish ?? 0} for ${p.bus.frames} frames, NUMSUB ${p.bus.subscribers}`)
      .join('; '),
    met: remoteOnly.length > 0 && publishesOk,
  },
  {
    name: 'no frame PUBLISH while no other node watches (local phases: viewers connecting, warm-up and window)',
    target: '0',
    measured: localOnly
      .map(
        (p) =>
          `${p.name}: node 1 published ${p.bus.phaseOwnerBusOut} frame messages over the phase (${p.bus.phaseFrames} frames; Redis PUBLISH calls ${p.bus.phasePublishes}, \`fh:ctl\` want messages included), ${p.bus.redis.calls.publish ?? 0} PUBLISH in its window`,
      )
      .join('; '),
    met: localOnly.length > 0 && quietOk,
  },
  {
    name: 'Redis CPU and bytes per frame reported (remote windows, gross)',
    target: 'reported',
    measured: `CPU ${range(remoteCpuUs, f2)} µs/frame; in ${range(remoteIn, kb)} KB/frame, out ${range(remoteOut, kb)} KB/frame (frame record ${kb(jpeg.byteLength)} KB of JPEG)`,
    met: remoteCpuUs.length > 0 && remoteCpuUs.every(Number.isFinite),
  },
];

// --- --redis-cluster: each master counted apart, the topic's shard against the others ---

const ownerIdx = shardMap?.channel.index ?? 0;
const ctlIdx = shardMap?.control.index ?? -1;
const otherIdx = masters.map((_, i) => i).filter((i) => i !== ownerIdx);
const masterName = (i: number) => `:${portOf(i)}${i === ownerIdx ? " (the topic's shard)" : ''}`;
const spub = (r: RedisCounters | undefined) => r?.calls.spublish ?? 0;
/** The want messages among master i's SPUBLISH calls: all of them land on `fh:ctl`'s master. */
const wantsOn = (i: number, wants: number | undefined) => (i === ctlIdx ? (wants ?? 0) : 0);
/** SPUBLISH calls on master i over a window that were not want messages: frame messages. */
const frameSpub = (b: BusWindow, i: number) => spub(b.shards?.[i]) - wantsOn(i, b.wants);
const idleShard = (i: number, pick: (r: RedisCounters) => number, secs: number) =>
  idleBus?.shards ? (pick(idleBus.shards[i]!) / idleBus.seconds) * secs : 0;
const shardPerFrame = (b: BusWindow, i: number, pick: (r: RedisCounters) => number) =>
  perFrame(pick(b.shards![i]!), b.frames);
const shardOverIdle = (b: BusWindow, i: number, pick: (r: RedisCounters) => number) =>
  perFrame(pick(b.shards![i]!) - idleShard(i, pick, b.seconds), b.frames);
const othersPerFrame = (b: BusWindow, pick: (r: RedisCounters) => number) =>
  perFrame(
    otherIdx.reduce((a, i) => a + pick(b.shards![i]!), 0),
    b.frames,
  );
const cpuUs = (r: RedisCounters) => r.cpuSeconds * 1e6;
const inBytes = (r: RedisCounters) => r.netInputBytes;
const outBytes = (r: RedisCounters) => r.netOutputBytes;
const otherShardCalls = (calls: Record<string, number>) =>
  Object.entries(calls)
    .filter(([k]) => k !== 'spublish' && k !== 'info')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
const windowsWithIdle = [...(idle ? [idle] : []), ...phases];

const shardedBusTable: ResultTable = {
  caption: `The Redis Cluster over each window, from each master's INFO deltas (cpu: used_cpu_sys + used_cpu_user; stats: total_net_input_bytes / total_net_output_bytes; commandstats), per frame the publisher sent. The topic's shard is :${portOf(ownerIdx)}, the master holding ${channel}'s slot; "want messages" are the \`${CONTROL}\` messages the bench's own SSUBSCRIBE received (they are SPUBLISHed on :${portOf(ctlIdx)}, the master of \`${CONTROL}\`'s slot), so frame SPUBLISH = SPUBLISH − want messages there. "over idle" subtracts the master's rate in the idle window (latest-frame SETs, heartbeats, SHARDNUMSUB polls, the bench's INFO calls, cluster gossip). KB = 1,000 bytes`,
  columns: [
    'window',
    's',
    'frames',
    'subscribing nodes (SHARDNUMSUB summed over the masters)',
    "SPUBLISH on the topic's shard",
    'want messages received',
    'frame SPUBLISH per frame (topic shard)',
    'node 1 bus out',
    'node 2 bus in',
    'topic shard CPU ms/s',
    'topic shard CPU µs/frame',
    'µs/frame over idle',
    'in KB/frame',
    'out KB/frame',
    'in KB/frame over idle',
    'out KB/frame over idle',
    'other shards: SPUBLISH',
    'other shards: CPU µs/frame',
    'other shards: in / out KB/frame',
    'all masters CPU µs/frame',
    'node 1 CPU %',
    'node 2 CPU %',
    'frames dropped by the nodes',
  ],
  rows: windowsWithIdle.map((p) => {
    const b = p.bus;
    const o = b.shards?.[ownerIdx];
    const isIdle = p === idle;
    return [
      p.name,
      f2(b.seconds),
      b.frames,
      b.subscribers,
      spub(o),
      b.wants ?? '–',
      f2(perFrame(frameSpub(b, ownerIdx), b.frames)),
      b.ownerBusOut,
      b.edgeBusIn,
      ...shardCells(b, ownerIdx, isIdle),
      otherIdx.map((i) => `:${portOf(i)} ${spub(b.shards?.[i])}`).join(', '),
      b.shards ? f2(othersPerFrame(b, cpuUs)) : '–',
      b.shards ? `${kb(othersPerFrame(b, inBytes))} / ${kb(othersPerFrame(b, outBytes))}` : '–',
      f2(perFrame(b.redis.cpuSeconds * 1e6, b.frames)),
      f2((b.ownerCpuSeconds / b.seconds) * 100),
      f2((b.edgeCpuSeconds / b.seconds) * 100),
      Object.entries(b.dropped)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || '0',
    ];
  }),
};

/** One master's CPU and bytes over a window: ms/s, then per frame, then per frame over idle. */
function shardCells(b: BusWindow, i: number, isIdle: boolean): string[] {
  const r = b.shards?.[i];
  if (!r) return Array(7).fill('–');
  const overIdle = (value: (c: RedisCounters) => number, format: (n: number) => string) =>
    isIdle ? '–' : format(shardOverIdle(b, i, value));
  return [
    f2((r.cpuSeconds / b.seconds) * 1000),
    f2(shardPerFrame(b, i, cpuUs)),
    overIdle(cpuUs, f2),
    kb(shardPerFrame(b, i, inBytes)),
    kb(shardPerFrame(b, i, outBytes)),
    overIdle(inBytes, kb),
    overIdle(outBytes, kb),
  ];
}

const perMasterTable: ResultTable = {
  caption: `Each master over each window (INFO deltas as above; per frame the publisher sent). "want messages" are counted on \`${CONTROL}\`'s master only, where they are SPUBLISHed`,
  columns: [
    'window',
    'master',
    'SPUBLISH',
    'want messages',
    'frame SPUBLISH',
    'CPU ms/s',
    'CPU µs/frame',
    'µs/frame over idle',
    'in KB/frame',
    'out KB/frame',
    'in KB/frame over idle',
    'out KB/frame over idle',
    'other Redis commands',
  ],
  rows: windowsWithIdle.flatMap((p) =>
    masters.map((_, i) => {
      const b = p.bus;
      const r = b.shards?.[i];
      const isIdle = p === idle;
      return [
        p.name,
        masterName(i),
        spub(r),
        i === ctlIdx ? (b.wants ?? 0) : '–',
        frameSpub(b, i),
        ...shardCells(b, i, isIdle),
        r ? otherShardCalls(r.calls) || '–' : '–',
      ];
    }),
  ),
};

const remoteOwnerOk = remoteOnly.every(
  (p) => p.bus.subscribers === 1 && Math.abs(frameSpub(p.bus, ownerIdx) - p.bus.frames) <= EDGE_FRAMES,
);
/** Over the whole run (before the nodes started → after the last phase): SPUBLISH that were not wants. */
const runFrameSpub = (i: number) => spub(runCounters[i]) - wantsOn(i, wantCount);
const othersQuiet = otherIdx.every((i) => runFrameSpub(i) === 0);
const localQuietSharded = localOnly.every(
  (p) => p.bus.phaseOwnerBusOut === 0 && p.bus.phasePublishes - (p.bus.phaseWants ?? 0) === 0,
);
const ownerRange = (pick: (b: BusWindow) => number, fmt: (x: number) => string) =>
  range(
    remoteOnly.map((p) => pick(p.bus)),
    fmt,
  );

const shardedTargets: TargetCheck[] = [
  {
    name: 'both nodes on sharded pub/sub (GET /api/v1/status → cluster.pubsub), asserted at start',
    target: 'sharded',
    measured: pubsubModes.map((m, i) => `n${i + 1} ${m ?? 'unset'}`).join(', '),
    met: pubsubModes.length === 2 && pubsubModes.every((m) => m === 'sharded'),
  },
  plainTargets[0]!,
  {
    name: `SPUBLISH per frame per watched topic on the topic's shard (:${portOf(ownerIdx)}, slot ${shardMap?.channel.slot} of ${channel}) with one subscribing node (remote windows)`,
    target: `1 (± ${EDGE_FRAMES} frames at the window edges), SHARDNUMSUB 1`,
    measured: remoteOnly
      .map(
        (p) =>
          `${p.name}: ${spub(p.bus.shards?.[ownerIdx])} SPUBLISH (${wantsOn(ownerIdx, p.bus.wants)} of them want messages) for ${p.bus.frames} frames, node 1 bus out ${p.bus.ownerBusOut}, SHARDNUMSUB ${p.bus.subscribers}`,
      )
      .join('; '),
    met: remoteOnly.length > 0 && remoteOwnerOk,
  },
  {
    name: `no frame message on the other shards (${otherIdx.map((i) => `:${portOf(i)}`).join(', ')}), whole run: nodes starting, idle, every phase and the pauses between`,
    target: `SPUBLISH 0 apart from \`${CONTROL}\` want messages`,
    measured: `${otherIdx
      .map(
        (i) =>
          `:${portOf(i)}: ${spub(runCounters[i])} SPUBLISH, ${wantsOn(i, wantCount)} want messages${i === ctlIdx ? ` (it holds \`${CONTROL}\`'s slot ${shardMap?.control.slot})` : ''} → ${runFrameSpub(i)} frame messages, out ${ownerRange((b) => perFrame(b.shards?.[i]?.netOutputBytes ?? Number.NaN, b.frames), kb)} KB/frame in the remote windows`,
      )
      .join(
        '; ',
      )}; the topic's shard :${portOf(ownerIdx)}: ${spub(runCounters[ownerIdx])} SPUBLISH, ${wantsOn(ownerIdx, wantCount)} want messages; ${wantCount} want messages in all`,
    met: runCounters.length === masters.length && othersQuiet,
  },
  {
    name: 'no frame SPUBLISH while no other node watches (local phases: viewers connecting, warm-up and window)',
    target: '0',
    measured: localOnly
      .map(
        (p) =>
          `${p.name}: node 1 published ${p.bus.phaseOwnerBusOut} frame messages over the phase (${p.bus.phaseFrames} frames; SPUBLISH calls on all masters ${p.bus.phasePublishes}, ${p.bus.phaseWants ?? 0} of them \`${CONTROL}\` want messages), ${p.bus.redis.calls.spublish ?? 0} SPUBLISH in its window`,
      )
      .join('; '),
    met: localOnly.length > 0 && localQuietSharded,
  },
  {
    name: `Redis CPU and bytes per frame on the topic's shard :${portOf(ownerIdx)} (remote windows)`,
    target: 'reported',
    measured: `CPU ${ownerRange((b) => shardPerFrame(b, ownerIdx, cpuUs), f2)} µs/frame (over idle ${ownerRange((b) => shardOverIdle(b, ownerIdx, cpuUs), f2)}); in ${ownerRange((b) => shardPerFrame(b, ownerIdx, inBytes), kb)} KB/frame, out ${ownerRange((b) => shardPerFrame(b, ownerIdx, outBytes), kb)} KB/frame (over idle in ${ownerRange((b) => shardOverIdle(b, ownerIdx, inBytes), kb)}, out ${ownerRange((b) => shardOverIdle(b, ownerIdx, outBytes), kb)}); other shards together CPU ${ownerRange((b) => othersPerFrame(b, cpuUs), f2)} µs/frame, in ${ownerRange((b) => othersPerFrame(b, inBytes), kb)}, out ${ownerRange((b) => othersPerFrame(b, outBytes), kb)} KB/frame (frame record ${kb(jpeg.byteLength)} KB of JPEG)`,
    met:
      remoteOnly.length > 0 &&
      remoteOnly.every((p) => Number.isFinite(shardPerFrame(p.bus, ownerIdx, cpuUs))),
  },
];
const targets = sharded ? shardedTargets : plainTargets;

/** p99 of each separate window of one side, to show whether one window carries the merged tail. */
const windowP99s = (side: Side) =>
  phases
    .filter((p) => p.sides.length === 1 && p.sides[0]!.side === side)
    .map((p) => `${p.name} ${f2(p.sides[0]!.window.latency.summary().p99)}`)
    .join(', ');
const cores = os.availableParallelism();
const loadAtEnd = os.loadavg();
const notes = [
  `Latency is capture ts (stamped by the publisher at send, in the bench process) → the WS message's arrival at a viewer (swarm processes on the same machine, clocks comparable to well under 1 ms). Local viewers get the frame from node 1's hub; remote viewers get it after node 1 ${sharded ? `SPUBLISHed the hub's record bytes on ${channel} to the master holding its slot (:${portOf(ownerIdx)}), that master copied it to node 2's shard subscriber connection` : `PUBLISHed the hub's record bytes on ${channel}, Redis copied it to node 2's subscriber connection`}, and node 2 decoded it once into its hub. The added p99 compares the merged histograms of the local and the remote windows; windows alternate (local, remote, remote, local, …) so the machine's drift favours neither side. p99 per window (ms): ${windowP99s('local')}; ${windowP99s('remote')}. A single window far above the others, with seq gaps and frames dropped as \`superseded\` on node 1 (its worker pool replaced a waiting frame with a newer one while a worker was late), is the machine stalling every process at once, not the Redis path: rerun on a quiet machine.`,
  `Delivered is frames received over frames sent × open viewers, counted by arrival at the window's edges (so ± a frame per viewer). Seq gaps are frames a viewer saw skipped by the topic's seq. Frames dropped by the nodes over all windows: ${
    Object.entries(
      [...(idle ? [idle] : []), ...phases].reduce<Record<string, number>>((acc, p) => {
        for (const [k, v] of Object.entries(p.bus.dropped)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      }, {}),
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none'
  }. The publisher sent ${publisherStats.sent} frames, ${publisherStats.late} late, ${publisherStats.errors} refused or failed.`,
  sharded
    ? `Redis per frame: the frame's message is the hub's record (${kb(jpeg.byteLength)} KB of JPEG plus about 100 bytes of msgpack fields) with a 7-byte header (origin node, fencing token); one SPUBLISH in on the topic's shard :${portOf(ownerIdx)}, one copy out per subscribing connection of that shard, nothing on the other masters (a sharded message stays in its slot's shard; plain PUBLISH in a Redis Cluster would be broadcast to every master over the cluster bus). Every master still has its idle cost: each node's SHARDNUMSUB poll goes to every master once a second, the bench's INFO and SHARDNUMSUB calls, the heartbeats (\`fh:node:n1\` on :${portOf(shardMap?.heartbeats[0]?.index ?? 0)}, \`fh:node:n2\` on :${portOf(shardMap?.heartbeats[1]?.index ?? 0)}), the latest-frame key (\`fh:latest:${topic}\`, a SET of the record every 500 ms, on :${portOf(shardMap?.latest.index ?? 0)}) and cluster-bus gossip; "over idle" removes each master's own idle rate. The \`${CONTROL}\` want messages (one per node SSUBSCRIBE of a topic, on :${portOf(ctlIdx)}) are counted by the bench's own SSUBSCRIBE of \`${CONTROL}\` (${wantCount} over the run), which adds one copy of each want message to that master's output.`
    : `Redis per frame: the frame's message is the hub's record (${kb(jpeg.byteLength)} KB of JPEG plus about 100 bytes of msgpack fields) with a 7-byte header (origin node, fencing token); one PUBLISH in, one copy out per subscribing connection. Idle (no viewers) still costs the latest-frame key (a SET of the record every 500 ms, for first frames on other nodes), heartbeats and one PUBSUB NUMSUB a second per node; "over idle" removes that rate and leaves what each frame costs. "PUBLISH calls" counts every PUBLISH, including the \`fh:ctl\` want messages a node sends when it subscribes (outside the windows here).`,
];
if (both) {
  const together = phases.find((p) => p.sides.length === 2);
  notes.push(
    `Both at once: ${viewers} local and ${viewers} remote viewers in the same window (two swarms). Added p99 there: ${f2(togetherAddedP99)} ms (p99 ${f2(togetherRemote.latency.p99)} remote, ${f2(togetherLocal.latency.p99)} local). ${
      sharded
        ? `Node 1 then subscribes its own push camera's channel too (a push camera has no lease, so its viewers on the publishing node also SSUBSCRIBE, and node 1 drops its own messages on arrival): SHARDNUMSUB ${together?.bus.subscribers ?? '–'}, still one SPUBLISH per frame, but the topic's shard sends each frame out twice.`
        : `Node 1 then subscribes its own push camera's channel too (a push camera has no lease, so its viewers on the publishing node also SUBSCRIBE, and node 1 drops its own messages on arrival): NUMSUB ${together?.bus.subscribers ?? '–'}, still one PUBLISH per frame, but Redis sends each frame out twice.`
    }`,
  );
}
const clientBusy = phases.flatMap((p) => p.sides).filter((s) => s.clientElu >= 0.9);
if (clientBusy.length) {
  notes.push(
    `Client-bound in ${clientBusy.length} window side(s) (a swarm process at event-loop utilisation ≥ 0.9): those latencies include the client's own lag.`,
  );
}
if (loadAtStart[0]! > 0.5 * cores || loadAtEnd[0]! > cores) {
  notes.push(
    `The machine was busy: 1-minute load average ${loadAtStart[0]!.toFixed(2)} at the start and ${loadAtEnd[0]!.toFixed(2)} at the end on ${cores} cores (this bench's ${sharded ? `${MASTERS} redis-servers` : 'redis-server'}, 2 nodes, swarm and publisher included at the end). Latency tails include time waiting for a CPU; rerun on a quiet machine before trusting the p99.`,
  );
}
const failed = phases.flatMap((p) => p.sides).filter((s) => s.opened < viewers);
for (const s of failed)
  notes.push(`Only ${s.opened} of ${viewers} ${s.side} viewers opened (${s.errorSamples.join('; ')}).`);

const shardedConditions: Record<string, string> = shardMap
  ? {
      redis: `${MASTERS}-master Redis Cluster, no replicas, of redis-server ${facts.version} (${REDIS_SERVER}), joined by \`redis-cli --cluster create\`; loopback ephemeral ports ${masters.map((_, i) => `:${portOf(i)}`).join(', ')} (cluster bus on other ephemeral ports), no persistence; client-output-buffer-limit "${facts['client-output-buffer-limit']}", io-threads ${facts['io-threads']}, maxmemory ${facts.maxmemory}`,
      slots: `${channel}: slot ${shardMap.channel.slot} on :${portOf(shardMap.channel.index)} (the topic's shard); ${CONTROL}: slot ${shardMap.control.slot} on :${portOf(shardMap.control.index)}; fh:latest:${topic}: slot ${shardMap.latest.slot} on :${portOf(shardMap.latest.index)}; fh:node:n1: slot ${shardMap.heartbeats[0]!.slot} on :${portOf(shardMap.heartbeats[0]!.index)}; fh:node:n2: slot ${shardMap.heartbeats[1]!.slot} on :${portOf(shardMap.heartbeats[1]!.index)}`,
      'pub/sub': `GET /api/v1/status → cluster.pubsub: ${pubsubModes.map((m, i) => `n${i + 1} ${m ?? 'unset'}`).join(', ')} (asserted at start)`,
    }
  : {};
const file = writeResult({
  bench,
  title: sharded
    ? `Cross-node delivery on a ${MASTERS}-master Redis Cluster, sharded pub/sub: ${viewers} viewers on the remote node against ${viewers} on the local node`
    : `Cross-node delivery on Redis: ${viewers} viewers on the remote node against ${viewers} on the local node`,
  startedAt,
  conditions: {
    command: `npm run bench:cluster -- ${sharded ? '--redis-cluster ' : ''}--viewers ${viewers} --fps ${fps} --frame-kb ${args['frame-kb']} --seconds ${seconds} --warmup ${warmupSeconds} --rounds ${rounds}${both ? '' : ' --no-both'}`,
    'cores (availableParallelism)': cores,
    node: process.version,
    redis: `redis-server ${facts.version} (${REDIS_SERVER}), loopback, ephemeral port, no persistence; client-output-buffer-limit "${facts['client-output-buffer-limit']}", io-threads ${facts['io-threads']}, maxmemory ${facts.maxmemory}`,
    ...shardedConditions,
    'load average at start (1, 5, 15 min)': loadAtStart.map((l) => l.toFixed(2)).join(', '),
    'load average at end (1, 5, 15 min)': loadAtEnd.map((l) => l.toFixed(2)).join(', '),
    nodes: sharded
      ? `2 fresh processes of dist/src/main.js (node ids n1, n2) with cluster.redisUrl = the ${MASTERS} masters as seeds and cluster.redisCluster true, each with the push camera configured, per-IP limits raised for the swarm`
      : '2 fresh processes of dist/src/main.js (node ids n1, n2) with cluster.redisUrl, each with the push camera configured, per-IP limits raised for the swarm',
    camera: `push camera ${camera}: a ${kb(jpeg.byteLength)} KB ${width}×${height} JPEG at ${fps} fps, one /publish WebSocket to node 1, stamped at send`,
    viewers: `${viewers} WS viewers of ${topic} per side, in ${procs} swarm process(es) per side`,
    windows: `idle ${idleSeconds} s; ${rounds} round(s) of local and remote (alternating), ${warmupSeconds} s warm-up + ${seconds} s each${both ? '; then both at once' : ''}`,
    'run time': `${((performance.now() - wallStart) / 1000).toFixed(0)} s`,
  },
  tables: sharded ? [latencyTable, shardedBusTable, perMasterTable] : [latencyTable, busTable],
  targets,
  notes,
  raw: {
    idle: idle?.bus,
    phases: phases.map((p) => ({
      name: p.name,
      bus: p.bus,
      sides: p.sides.map((s) => ({
        ...s,
        ttff: s.ttff.toSparse(),
        window: { ...s.window, latency: s.window.latency.toSparse() },
      })),
    })),
    publisherStats,
    redis: facts,
    ...(sharded
      ? {
          ports: redisCluster?.ports,
          shardMap,
          pubsub: pubsubModes,
          wants: wantCount,
          runCounters: Object.fromEntries(runCounters.map((r, i) => [`:${portOf(i)}`, r])),
        }
      : {}),
  },
});
console.log(`wrote ${file} (${((performance.now() - wallStart) / 1000).toFixed(0)} s)`);
for (const t of targets) console.log(`${t.met ? 'met   ' : 'MISSED'} ${t.name}: ${t.measured} (${t.target})`);
const report = spawnSync(process.execPath, [fileURLToPath(new URL('../report.js', import.meta.url))], {
  stdio: 'inherit',
});
if (report.status !== 0) process.exitCode = 1;
