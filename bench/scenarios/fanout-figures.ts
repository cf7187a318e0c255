import { Histogram } from '../lib/histogram.js';
import type { Figures } from '../lib/load-result.js';
import { type Monitor, round1, round3 } from '../lib/monitor.js';
import type { ProcSample } from '../lib/proc-stats.js';
import { split } from '../lib/swarm.js';
import type { ViewerGroup, WorkerReport } from '../lib/swarm-protocol.js';
import type { Transport } from '../lib/viewers.js';

/** An event-loop utilisation or CPU share above this means a swarm process was the bottleneck. */
export const CLIENT_BOUND = 0.9;
/** After the publisher stops, frames still in flight get this long to arrive. */
export const DRAIN_MS = 1500;
const MiB = 2 ** 20;

/**
 * Spreads viewers over swarm processes, cameras and transports, marking an evenly spread
 * `slowFraction` of them slow, and folds them into groups per process.
 */
export function planGroups(
  viewers: number,
  procs: number,
  cameras: number,
  transport: Transport | 'mix',
  slowFraction: number,
): ViewerGroup[][] {
  const transports: Transport[] = transport === 'mix' ? ['ws', 'sse', 'mjpeg'] : [transport];
  const counts = split(viewers, procs);
  let g = 0;
  return counts.map((n) => {
    const groups = new Map<string, ViewerGroup>();
    for (let j = 0; j < n; j++, g++) {
      const slow = Math.floor((g + 1) * slowFraction) > Math.floor(g * slowFraction);
      const t = transports[g % transports.length]!;
      const camera = g % cameras;
      const key = `${t}/${camera}/${slow}`;
      const group = groups.get(key) ?? {
        count: 0,
        transport: t,
        camera,
        ...(slow ? { slow: 'stall' as const } : {}),
      };
      group.count++;
      groups.set(key, group);
    }
    return [...groups.values()];
  });
}

export function merge(reports: WorkerReport[], pick: (r: WorkerReport) => [number, number][]): Histogram {
  const h = new Histogram();
  for (const r of reports) h.merge(pick(r));
  return h;
}

export function sumCloses(list: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of list) for (const [k, v] of Object.entries(m)) out[k] = (out[k] ?? 0) + v;
  return out;
}

export function fanoutFigures(
  reports: WorkerReport[],
  sentPerCamera: number,
  windowSeconds: number,
  serverAtT0: ProcSample | undefined,
  serverAtEnd: ProcSample | undefined,
  monitor: Monitor,
  procs: number,
): Figures {
  const healthy = reports.map((r) => r.healthy);
  const slow = reports.map((r) => r.slow);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const expected = (cs: typeof healthy) => sum(cs.flatMap((c) => c.viewersPerCamera)) * sentPerCamera;
  const hExpected = expected(healthy);
  const hDelivered = sum(healthy.map((c) => c.frames));
  const sDelivered = sum(slow.map((c) => c.frames));
  const bytes = sum(healthy.map((c) => c.bytes)) + sum(slow.map((c) => c.bytes));
  const perViewer = healthy.flatMap((c) => c.perViewerFrames);
  const lat = merge(reports, (r) => r.healthy.latency).summary();
  const slowLat = merge(reports, (r) => r.slow.latency).summary();
  const ttff = merge(reports, (r) => r.ttff).summary();
  const probe = merge(reports, (r) => r.probeTtff).summary();
  const cpuSeconds = serverAtT0 && serverAtEnd ? serverAtEnd.cpuSeconds - serverAtT0.cpuSeconds : null;
  const gb = bytes / 1e9;
  const measure = monitor.timeline.filter((p) => p.phase === 'measure' || p.phase === 'drain');
  const rssSeries = measure.map((p) => p.serverRssMiB).filter((v): v is number => v !== null);
  const rssAtT0 = serverAtT0 ? serverAtT0.rssBytes / MiB : null;
  const rssMax = rssSeries.length ? Math.max(...rssSeries, rssAtT0 ?? 0) : rssAtT0;
  const busy = measure.map((p) => p.machineBusyPct);
  const closes = (cs: typeof healthy) => sum(cs.map((c) => sum(Object.values(c.serverCloses))));
  const wallSeconds = windowSeconds + DRAIN_MS / 1000;
  return {
    windowSeconds: round3(windowSeconds),
    sentPerCamera,
    healthyViewers: sum(healthy.map((c) => c.viewers)),
    slowViewers: sum(slow.map((c) => c.viewers)),
    expectedFrames: hExpected,
    deliveredFrames: hDelivered,
    deliveredFraction: hExpected > 0 ? hDelivered / hExpected : null,
    worstViewerFraction:
      perViewer.length && sentPerCamera > 0 ? Math.min(...perViewer) / sentPerCamera : null,
    drops: Math.max(0, hExpected - hDelivered),
    seqGaps: sum(healthy.map((c) => c.seqGaps)),
    slowDeliveredFrames: sDelivered,
    deliveredFramesPerSec: round1((hDelivered + sDelivered) / windowSeconds),
    deliveredMBPerSec: round1(bytes / 1e6 / windowSeconds),
    latencyP50Ms: lat.p50,
    latencyP99Ms: lat.p99,
    latencyP999Ms: lat.p999,
    latencyMaxMs: lat.max,
    slowLatencyP99Ms: slowLat.p99,
    ttffP50Ms: ttff.p50,
    ttffP99Ms: ttff.p99,
    probeTtffCount: probe.count,
    probeTtffP50Ms: probe.p50,
    probeTtffP99Ms: probe.p99,
    probeErrors: sum(reports.map((r) => r.probeErrors)),
    healthyServerCloses: closes(healthy),
    slowServerCloses: closes(slow),
    clientErrors: sum(reports.map((r) => r.errors)),
    serverCpuSeconds: cpuSeconds === null ? null : round3(cpuSeconds),
    serverCpuPct: cpuSeconds === null ? null : round1((cpuSeconds / wallSeconds) * 100),
    deliveredGB: round3(gb),
    gbPerServerCpuSecond: cpuSeconds ? round3(gb / cpuSeconds) : null,
    serverCpuSecondsPerGB: gb > 0 && cpuSeconds !== null ? round3(cpuSeconds / gb) : null,
    serverRssAtStartMiB: rssAtT0 === null ? null : round1(rssAtT0),
    serverRssMaxMiB: rssMax === null ? null : round1(rssMax),
    serverRssGrowthMiB: rssMax !== null && rssAtT0 !== null ? round1(rssMax - rssAtT0) : null,
    serverRssEndMiB: serverAtEnd ? round1(serverAtEnd.rssBytes / MiB) : null,
    clientProcs: procs,
    clientCpuPct: round1(
      (sum(reports.map((r) => r.cpuMs)) / Math.max(1, sum(reports.map((r) => r.wallMs)))) *
        100 *
        reports.length,
    ),
    clientMaxCpuShare: round3(Math.max(...reports.map((r) => r.cpuMs / r.wallMs))),
    clientMaxElu: round3(Math.max(...reports.map((r) => r.elu))),
    machineBusyPct: busy.length ? round1(sum(busy) / busy.length) : null,
  };
}
