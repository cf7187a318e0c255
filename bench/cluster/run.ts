import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sleep, withTimeout } from '../lib/clock.js';
import { makeJpeg, Publisher } from '../lib/frames.js';
import { Histogram, type LatencySummary } from '../lib/histogram.js';
import { machineLine, type ResultTable, type TargetCheck, writeResult } from '../lib/results.js';
import { type RunningTarget, startTarget } from '../lib/target.js';
import {
  type Cluster,
  type PhaseResult,
  runIdle,
  runPhase,
  type Side,
  type SideResult,
  settle,
} from './phase.js';
import { type BenchRedis, REDIS_SERVER, serverFacts, startRedis } from './redis.js';

// Issue 13's bench: cross-node delivery against local delivery, in one run on one machine.
// A private redis-server and two framehub nodes on it; a push camera's publisher sends a
// ~20 KB JPEG at 15 fps to node 1 (so node 1 publishes its topics). 200 WS viewers of
// cam/<id>/raw on node 1 (local: the hub hands them the frame) and 200 on node 2 (remote: the
// frame crossed Redis once) are measured in alternating phases (local, remote, remote,
// local, …), then both sets at once. Latency is capture ts → viewer receive. Redis's cost comes
// from INFO deltas over each window: CPU (used_cpu_sys + used_cpu_user), bytes in and out, and
// PUBLISH calls per frame (commandstats), against an idle window with no viewers.
// Usage: node dist-bench/bench/cluster/run.js [--viewers 200] [--fps 15] [--frame-kb 20]
//        [--seconds 15] [--warmup 3] [--rounds 2] [--idle-seconds 5] [--no-both] [--procs cores-1]

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
/** Frames in flight at a window's two edges: a publish and its frame may fall either side. */
const EDGE_FRAMES = 2;

const wallStart = performance.now();
const startedAt = new Date().toISOString();
const loadAtStart = os.loadavg();
console.log(`System: ${machineLine()}`);
console.log(
  `cluster bench: redis-server + 2 nodes; push camera at ${fps} fps to node 1; ${viewers} WS viewers of ${topic} on node 1 (local) against node 2 (remote); ${rounds} round(s) of ${warmupSeconds} s warm-up + ${seconds} s${both ? ', then both at once' : ''}`,
);
const jpeg = await makeJpeg(width, height, Number(args['frame-kb']) * 1024);

/** A node of the cluster: a fresh daemon on the bench's Redis, with the push camera configured. */
function startNode(redis: BenchRedis, nodeId: string): Promise<RunningTarget> {
  return startTarget('framehub', {
    cameras: [camera],
    fps,
    width,
    height,
    framehubConfig: { cluster: { redisUrl: redis.url, nodeId } },
  });
}

/** Waits until both nodes' heartbeats are in Redis and each says its bus is up. */
async function clusterUp(nodes: RunningTarget[]): Promise<void> {
  const up = async (n: RunningTarget) => {
    const res = await fetch(`${n.url}/api/v1/status`, { signal: AbortSignal.timeout(2000) });
    const c = ((await res.json()) as { cluster?: { busUp: boolean; nodes: unknown[] } }).cluster;
    return c?.busUp === true && c.nodes.length === nodes.length;
  };
  const deadline = performance.now() + 15_000;
  // Bounded by the deadline.
  while (!(await Promise.all(nodes.map((n) => up(n).catch(() => false)))).every(Boolean)) {
    if (performance.now() > deadline) throw new Error('the nodes did not both report the bus up in 15 s');
    await sleep(200);
  }
}

const redis = await startRedis();
const facts = await serverFacts(redis.client);
const nodes: RunningTarget[] = [];
const phases: PhaseResult[] = [];
let idle: PhaseResult | undefined;
let publisherStats = { sent: 0, late: 0, errors: 0 };
try {
  nodes.push(await startNode(redis, 'n1'), await startNode(redis, 'n2'));
  await clusterUp(nodes);
  const publisher = new Publisher(nodes[0]!.wsBase, [camera], fps, jpeg);
  await publisher.connect();
  await publisher.prime();
  publisher.start();
  const c: Cluster = {
    owner: nodes[0]!,
    edge: nodes[1]!,
    redis: redis.client,
    publisher,
    camera,
    variant,
    channel: `fh:t:${topic}`,
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
} finally {
  await Promise.all(nodes.map((n) => n.stop()));
  await redis.stop();
}

function logPhase(p: PhaseResult): void {
  const sides = p.sides.map((s) => {
    const l = s.window.latency.summary();
    return `${s.side}: ${s.opened} viewers, p50 ${f2(l.p50)} ms, p99 ${f2(l.p99)} ms, delivered ${delivered(s)}`;
  });
  const b = p.bus;
  console.log(
    `${p.name}: ${sides.join('; ') || 'no viewers'}; Redis ${b.frames} frames, ${b.redis.calls.publish ?? 0} publishes, ${f2((b.redis.cpuSeconds / b.seconds) * 100)}% CPU, in ${kb(b.redis.netInputBytes / b.frames)} KB/frame, out ${kb(b.redis.netOutputBytes / b.frames)} KB/frame, ${b.subscribers} subscribing node(s)`,
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

const targets: TargetCheck[] = [
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

/** p99 of each separate window of one side, to show whether one window carries the merged tail. */
const windowP99s = (side: Side) =>
  phases
    .filter((p) => p.sides.length === 1 && p.sides[0]!.side === side)
    .map((p) => `${p.name} ${f2(p.sides[0]!.window.latency.summary().p99)}`)
    .join(', ');
const cores = os.availableParallelism();
const loadAtEnd = os.loadavg();
const notes = [
  `Latency is capture ts (stamped by the publisher at send, in the bench process) → the WS message's arrival at a viewer (swarm processes on the same machine, clocks comparable to well under 1 ms). Local viewers get the frame from node 1's hub; remote viewers get it after node 1 PUBLISHed the hub's record bytes on ${`fh:t:${topic}`}, Redis copied it to node 2's subscriber connection, and node 2 decoded it once into its hub. The added p99 compares the merged histograms of the local and the remote windows; windows alternate (local, remote, remote, local, …) so the machine's drift favours neither side. p99 per window (ms): ${windowP99s('local')}; ${windowP99s('remote')}. A single window far above the others, with seq gaps and frames dropped as \`superseded\` on node 1 (its worker pool replaced a waiting frame with a newer one while a worker was late), is the machine stalling every process at once, not the Redis path: rerun on a quiet machine.`,
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
  `Redis per frame: the frame's message is the hub's record (${kb(jpeg.byteLength)} KB of JPEG plus about 100 bytes of msgpack fields) with a 7-byte header (origin node, fencing token); one PUBLISH in, one copy out per subscribing connection. Idle (no viewers) still costs the latest-frame key (a SET of the record every 500 ms, for first frames on other nodes), heartbeats and one PUBSUB NUMSUB a second per node; "over idle" removes that rate and leaves what each frame costs. "PUBLISH calls" counts every PUBLISH, including the \`fh:ctl\` want messages a node sends when it subscribes (outside the windows here).`,
];
if (both) {
  const together = phases.find((p) => p.sides.length === 2);
  notes.push(
    `Both at once: ${viewers} local and ${viewers} remote viewers in the same window (two swarms). Added p99 there: ${f2(togetherAddedP99)} ms (p99 ${f2(togetherRemote.latency.p99)} remote, ${f2(togetherLocal.latency.p99)} local). Node 1 then subscribes its own push camera's channel too (a push camera has no lease, so its viewers on the publishing node also SUBSCRIBE, and node 1 drops its own messages on arrival): NUMSUB ${together?.bus.subscribers ?? '–'}, still one PUBLISH per frame, but Redis sends each frame out twice.`,
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
    `The machine was busy: 1-minute load average ${loadAtStart[0]!.toFixed(2)} at the start and ${loadAtEnd[0]!.toFixed(2)} at the end on ${cores} cores (this bench's redis-server, 2 nodes, swarm and publisher included at the end). Latency tails include time waiting for a CPU; rerun on a quiet machine before trusting the p99.`,
  );
}
const failed = phases.flatMap((p) => p.sides).filter((s) => s.opened < viewers);
for (const s of failed)
  notes.push(`Only ${s.opened} of ${viewers} ${s.side} viewers opened (${s.errorSamples.join('; ')}).`);

const file = writeResult({
  bench: 'cluster',
  title: `Cross-node delivery on Redis: ${viewers} viewers on the remote node against ${viewers} on the local node`,
  startedAt,
  conditions: {
    command: `npm run bench:cluster -- --viewers ${viewers} --fps ${fps} --frame-kb ${args['frame-kb']} --seconds ${seconds} --warmup ${warmupSeconds} --rounds ${rounds}${both ? '' : ' --no-both'}`,
    'cores (availableParallelism)': cores,
    node: process.version,
    redis: `redis-server ${facts.version} (${REDIS_SERVER}), loopback, ephemeral port, no persistence; client-output-buffer-limit "${facts['client-output-buffer-limit']}", io-threads ${facts['io-threads']}, maxmemory ${facts.maxmemory}`,
    'load average at start (1, 5, 15 min)': loadAtStart.map((l) => l.toFixed(2)).join(', '),
    'load average at end (1, 5, 15 min)': loadAtEnd.map((l) => l.toFixed(2)).join(', '),
    nodes:
      '2 fresh processes of dist/src/main.js (node ids n1, n2) with cluster.redisUrl, each with the push camera configured, per-IP limits raised for the swarm',
    camera: `push camera ${camera}: a ${kb(jpeg.byteLength)} KB ${width}×${height} JPEG at ${fps} fps, one /publish WebSocket to node 1, stamped at send`,
    viewers: `${viewers} WS viewers of ${topic} per side, in ${procs} swarm process(es) per side`,
    windows: `idle ${idleSeconds} s; ${rounds} round(s) of local and remote (alternating), ${warmupSeconds} s warm-up + ${seconds} s each${both ? '; then both at once' : ''}`,
    'run time': `${((performance.now() - wallStart) / 1000).toFixed(0)} s`,
  },
  tables: [latencyTable, busTable],
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
  },
});
console.log(`wrote ${file} (${((performance.now() - wallStart) / 1000).toFixed(0)} s)`);
for (const t of targets) console.log(`${t.met ? 'met   ' : 'MISSED'} ${t.name}: ${t.measured} (${t.target})`);
const report = spawnSync(process.execPath, [fileURLToPath(new URL('../report.js', import.meta.url))], {
  stdio: 'inherit',
});
if (report.status !== 0) process.exitCode = 1;
