import type { Redis } from 'ioredis';
import { sleep } from '../lib/clock.js';
import type { Publisher } from '../lib/frames.js';
import { Histogram } from '../lib/histogram.js';
import { fetchMetrics, metricSeries } from '../lib/load-result.js';
import { sampleProc } from '../lib/proc-stats.js';
import { Swarm, split } from '../lib/swarm.js';
import type { OpenResult, WorkerReport } from '../lib/swarm-protocol.js';
import type { RunningTarget } from '../lib/target.js';
import { DeliveryMeter, type DeliveryWindow } from '../metrics/delivery.js';
import { countersDelta, type RedisCounters, readCounters, sumCounters } from './redis.js';

/**
 * One measured phase of bench:cluster: WS viewers on node 1 (local), on node 2 (remote), both
 * sets at once, or none (the idle baseline). Each set of viewers is its own swarm, so the
 * latency of local and remote viewers is counted apart even when they run together. Over the
 * window: the viewers' latency and delivery (bench/metrics/delivery.ts cuts the swarm's
 * cumulative counts at the window's edges), Redis's INFO counters (of the one server, or of
 * each master of a Redis Cluster), the frames the publisher sent, both nodes' CPU from /proc
 * and their bus counters from /metrics.
 */

export type Side = 'local' | 'remote';

export interface Cluster {
  /** Node 1: the push camera's publisher is connected here (the owner of its topics). */
  owner: RunningTarget;
  /** Node 2: its viewers see the camera only through Redis. */
  edge: RunningTarget;
  /** The Redis servers counted: the one server, or each master of the Redis Cluster. */
  redis: Redis[];
  /** Subscribing nodes of each channel: PUBSUB NUMSUB, or SHARDNUMSUB summed over the masters. */
  numsub(channels: string[]): Promise<Record<string, number>>;
  /** The command frames cross by, as INFO commandstats names it: `publish`, or `spublish` (sharded). */
  publishCommand: 'publish' | 'spublish';
  /** Sharded: the `want` messages on `fh:ctl` the bench's own SSUBSCRIBE has received so far. */
  wants?: () => number;
  publisher: Publisher;
  camera: string;
  variant: string;
  /** The topic's channel in Redis (src/cluster/redis-bus.ts: `fh:t:<topic>`). */
  channel: string;
}

export interface PhaseOptions {
  viewers: number;
  procs: number;
  warmupSeconds: number;
  seconds: number;
}

export interface SideResult {
  side: Side;
  opened: number;
  failed: number;
  window: DeliveryWindow;
  /** connect → first frame of each viewer as the set connected (ms). */
  ttff: Histogram;
  seqGaps: number;
  /** The busiest swarm process: event-loop utilisation and CPU share over the window. */
  clientElu: number;
  clientCpuPct: number;
  errorSamples: string[];
}

/** What the shared parts (Redis, the nodes, the publisher) did over the window. */
export interface BusWindow {
  seconds: number;
  /** Frames the publisher sent between the INFO reads (each is one frame of the topic). */
  frames: number;
  /** Summed over the servers (the one server: its own). */
  redis: RedisCounters;
  /** A Redis Cluster: each master's own, in the order of `Cluster.redis`. */
  shards?: RedisCounters[];
  /** Sharded: `want` messages on `fh:ctl` received by the bench's subscriber over the window. */
  wants?: number;
  /** PUBSUB NUMSUB (SHARDNUMSUB summed over the masters) of the channel half-way through the window: the subscribing nodes. */
  subscribers: number;
  /** CPU seconds of each node over the window (/proc). */
  ownerCpuSeconds: number;
  edgeCpuSeconds: number;
  /** framehub_bus_messages_total deltas: node 1 out, node 2 in. */
  ownerBusOut: number;
  edgeBusIn: number;
  /** framehub_frames_dropped_total deltas on both nodes, by series. */
  dropped: Record<string, number>;
  /**
   * PUBLISH (SPUBLISH) calls and frames sent over the whole phase, from before its viewers
   * connected to the window's end (warm-up included): what crossed Redis because these viewers came.
   */
  phasePublishes: number;
  phaseFrames: number;
  /** A Redis Cluster: each master's counters over the whole phase. */
  phaseShards?: RedisCounters[];
  /** Sharded: `want` messages received by the bench's subscriber over the whole phase. */
  phaseWants?: number;
  /** framehub_bus_messages_total{direction="out"} of node 1 over the phase: frame messages only (no `want`). */
  phaseOwnerBusOut: number;
}

export interface PhaseResult {
  name: string;
  sides: SideResult[];
  bus: BusWindow;
}

interface Snapshot {
  at: number;
  sent: number;
  redis: RedisCounters[];
  wants: number;
  ownerCpu: number;
  edgeCpu: number;
  ownerMetrics: string;
  edgeMetrics: string;
}

async function snapshot(c: Cluster): Promise<Snapshot> {
  const [redis, ownerMetrics, edgeMetrics] = await Promise.all([
    Promise.all(c.redis.map((r) => readCounters(r))),
    fetchMetrics(c.owner.url),
    fetchMetrics(c.edge.url),
  ]);
  return {
    at: performance.now(),
    sent: c.publisher.stats.sent,
    redis,
    wants: c.wants?.() ?? 0,
    ownerCpu: sampleProc(c.owner.pid!)?.cpuSeconds ?? Number.NaN,
    edgeCpu: sampleProc(c.edge.pid!)?.cpuSeconds ?? Number.NaN,
    ownerMetrics: ownerMetrics ?? '',
    edgeMetrics: edgeMetrics ?? '',
  };
}

const series = (text: string, name: string, labels: string) => metricSeries(text, name)[labels] ?? 0;

function droppedDelta(before: string, after: string, node: string): Record<string, number> {
  const name = 'framehub_frames_dropped_total';
  const was = metricSeries(before, name);
  const out: Record<string, number> = {};
  for (const [labels, v] of Object.entries(metricSeries(after, name))) {
    const d = v - (was[labels] ?? 0);
    if (d) out[`${node} ${labels}`] = d;
  }
  return out;
}

function busWindow(c: Cluster, a: Snapshot, b: Snapshot, subscribers: number, phaseStart = a): BusWindow {
  const out = 'framehub_bus_messages_total';
  const shards = b.redis.map((after, i) => countersDelta(a.redis[i]!, after));
  const phaseShards = b.redis.map((after, i) => countersDelta(phaseStart.redis[i]!, after));
  const cluster = c.redis.length > 1;
  return {
    seconds: (b.at - a.at) / 1000,
    frames: b.sent - a.sent,
    redis: sumCounters(shards),
    shards: cluster ? shards : undefined,
    wants: c.wants ? b.wants - a.wants : undefined,
    subscribers,
    ownerCpuSeconds: b.ownerCpu - a.ownerCpu,
    edgeCpuSeconds: b.edgeCpu - a.edgeCpu,
    ownerBusOut:
      series(b.ownerMetrics, out, '{direction="out"}') - series(a.ownerMetrics, out, '{direction="out"}'),
    edgeBusIn:
      series(b.edgeMetrics, out, '{direction="in"}') - series(a.edgeMetrics, out, '{direction="in"}'),
    dropped: {
      ...droppedDelta(a.ownerMetrics, b.ownerMetrics, 'node 1'),
      ...droppedDelta(a.edgeMetrics, b.edgeMetrics, 'node 2'),
    },
    phasePublishes: sumCounters(phaseShards).calls[c.publishCommand] ?? 0,
    phaseFrames: b.sent - phaseStart.sent,
    phaseShards: cluster ? phaseShards : undefined,
    phaseWants: c.wants ? b.wants - phaseStart.wants : undefined,
    phaseOwnerBusOut:
      series(b.ownerMetrics, out, '{direction="out"}') -
      series(phaseStart.ownerMetrics, out, '{direction="out"}'),
  };
}

/** Opens `viewers` WS viewers of the camera on one node, in a swarm of their own. */
async function openSide(
  c: Cluster,
  side: Side,
  o: PhaseOptions,
): Promise<{ swarm: Swarm; opened: OpenResult[] }> {
  const node = side === 'local' ? c.owner : c.edge;
  const swarm = await Swarm.start(o.procs);
  try {
    const opened = await swarm.each<OpenResult>(
      split(o.viewers, o.procs).map((count) => ({
        cmd: 'open',
        port: node.port,
        cameras: [c.camera],
        variant: c.variant,
        groups: [{ count, transport: 'ws', camera: 0 }],
        concurrency: Math.max(1, Math.round(100 / o.procs)),
        connectTimeoutMs: 10_000,
        throttleKiBps: 0,
      })),
      60_000,
      `open ${side} viewers`,
    );
    return { swarm, opened };
  } catch (err) {
    await swarm.close();
    throw err;
  }
}

/** Runs one phase: opens the viewer sets, warms up, measures one window, closes them. */
export async function runPhase(
  c: Cluster,
  name: string,
  sides: Side[],
  o: PhaseOptions,
): Promise<PhaseResult> {
  const open: { side: Side; swarm: Swarm; opened: OpenResult[] }[] = [];
  try {
    const phaseStart = await snapshot(c);
    for (const side of sides) open.push({ side, ...(await openSide(c, side, o)) });
    await sleep(o.warmupSeconds * 1000);
    const meters = open.map((s) => new DeliveryMeter(s.swarm, () => c.publisher.stats.sent));
    await Promise.all(meters.map((m) => m.start()));
    const before = await snapshot(c);
    let subscribers = Number.NaN;
    const half = sleep((o.seconds * 1000) / 2).then(async () => {
      subscribers = (await c.numsub([c.channel]))[c.channel] ?? 0;
    });
    const windows = await Promise.all(meters.map((m) => m.window(o.seconds, undefined)));
    const after = await snapshot(c);
    await half;
    const results = open.map((s, i): SideResult => {
      const reports: WorkerReport[] = meters[i]!.reports;
      const ttff = new Histogram();
      for (const r of reports) ttff.merge(r.ttff);
      return {
        side: s.side,
        opened: s.opened.reduce((a, r) => a + r.opened, 0),
        failed: s.opened.reduce((a, r) => a + r.failed, 0),
        window: windows[i]!,
        ttff,
        seqGaps: reports.reduce((a, r) => a + r.healthy.seqGaps, 0),
        clientElu: Math.max(...reports.map((r) => r.elu)),
        clientCpuPct: Math.max(...reports.map((r) => (r.cpuMs / r.wallMs) * 100)),
        errorSamples: [...new Set(reports.flatMap((r) => r.errorSamples))].slice(0, 3),
      };
    });
    return { name, sides: results, bus: busWindow(c, before, after, subscribers, phaseStart) };
  } finally {
    for (const s of open) await s.swarm.close();
  }
}

/** No viewers anywhere: what Redis costs with only the latest-frame keys, heartbeats and polls. */
export async function runIdle(c: Cluster, seconds: number): Promise<PhaseResult> {
  const before = await snapshot(c);
  await sleep(seconds * 1000);
  const subscribers = (await c.numsub([c.channel]))[c.channel] ?? 0;
  const after = await snapshot(c);
  return { name: 'idle (no viewers)', sides: [], bus: busWindow(c, before, after, subscribers) };
}

/**
 * After a phase: waits until no node subscribes the channel (a node drops it within its 1 s
 * tick after its last viewer left), then until the owner's own view of the demand (its
 * PUBSUB NUMSUB or SHARDNUMSUB, polled once a second) has caught up, so no phase inherits the last one's
 * publishing. Bounded: 10 s.
 */
export async function settle(c: Cluster): Promise<void> {
  const deadline = performance.now() + 10_000;
  // Bounded by the deadline.
  while (performance.now() < deadline) {
    if (((await c.numsub([c.channel]))[c.channel] ?? 0) === 0) break;
    await sleep(200);
  }
  await sleep(1500);
}
