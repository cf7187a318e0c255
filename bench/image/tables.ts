import { median, quantile, type ResultTable, type TargetCheck } from '../lib/results.js';
import type { FramehubWindow } from './framehub-window.js';
import type { ImageOp, VariantsResult, WindowResult } from './shared.js';

/** One measured window of the run. */
export interface Measured {
  workload: 'hd' | 'imgproxy';
  op: ImageOp;
  /** `framehub-every-core`: the daemon with the job cap lifted to one job per core (run.ts says how). */
  path: 'bare' | 'framehub' | 'framehub-every-core';
  clients: number;
  round: number;
  result: WindowResult | FramehubWindow;
}

/**
 * imgproxy's published 2-vCPU figures: imgproxy/image-servers-benchmark, results/x86_64.md
 * (AWS c7i.large; k6 with 2 VUs for 5 min; the 100 DIV2K validation photos, each format
 * decoded from and encoded to itself; rs:fit:512:512). Mean bytes are k6's http_res_body_size.
 */
export const IMGPROXY_PUBLISHED = {
  jpeg: { reqPerSecond: 79.6, p95Ms: 33.04, meanBytes: 42_571 },
  webp: { reqPerSecond: 22.0, p95Ms: 130.47, meanBytes: 30_951 },
  avif: { reqPerSecond: 13.2, p95Ms: 217.99, meanBytes: 39_204 },
} as const;

/** The job path must keep this share of bare sharp's images/s (issue 10). */
const TARGET_SHARE = 0.9;

export const fmt = (n: number, digits = 1) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const kb = (bytes: number) => fmt(bytes / 1024);
const pct = (ratio: number) => `${(100 * ratio).toFixed(0)}%`;
const label = (op: ImageOp) => `${op.format.toUpperCase()} q${op.quality}`;

/** Every window of one workload, op, path and client count, in run order. */
function windows(
  all: Measured[],
  workload: Measured['workload'],
  op: ImageOp,
  path: Measured['path'],
  clients = 2,
) {
  return all
    .filter((m) => m.workload === workload && m.op === op && m.path === path && m.clients === clients)
    .map((m) => m.result);
}

/** Median images/s, the runs' own figures, and latency quantiles over every run's images. */
function summary(results: WindowResult[]) {
  const rates = results.map((r) => r.imagesPerSecond);
  const latencies = results.flatMap((r) => r.latencyMs);
  const mean = (pick: (r: WindowResult) => number) =>
    results.reduce((s, r) => s + pick(r), 0) / results.length;
  return {
    rate: median(rates),
    runs: rates.length > 1 ? ` (${rates.map((r) => fmt(r)).join(', ')})` : '',
    p50: quantile(latencies, 0.5),
    p95: quantile(latencies, 0.95),
    meanLatency: latencies.reduce((s, v) => s + v, 0) / latencies.length,
    cpu: mean((r) => r.cpuMsPerImage),
    mainThreadCpu: mean((r) => r.mainThreadCpuMsPerImage),
    clientCpu: mean((r) => r.clientCpuMsPerImage ?? 0),
    workersBusy: results.every((r) => r.workersBusyPct !== undefined)
      ? `${fmt(
          mean((r) => r.workersBusyPct!),
          0,
        )}%`
      : '—',
    bytes: mean((r) => r.outputBytes),
  };
}

/** Part 1: the job path against bare sharp, and the 90% target per format. */
export function jobPathTable(
  all: Measured[],
  ops: ImageOp[],
): { table: ResultTable; targets: TargetCheck[] } {
  const rows: (string | number)[][] = [];
  const targets: TargetCheck[] = [];
  for (const op of ops) {
    const bare = summary(windows(all, 'hd', op, 'bare'));
    const row = (path: string, s: typeof bare) => [
      label(op),
      path,
      `${fmt(s.rate)}${s.runs}`,
      pct(s.rate / bare.rate),
      fmt(s.p50),
      fmt(s.p95),
      fmt(s.cpu),
      fmt(s.mainThreadCpu),
      fmt(s.clientCpu),
      pct((s.cpu + s.clientCpu) / bare.cpu),
      s.workersBusy,
      kb(s.bytes),
    ];
    rows.push(row('bare sharp, 2 at once', bare));
    const hub = summary(windows(all, 'hd', op, 'framehub'));
    for (const path of ['framehub', 'framehub-every-core'] as const) {
      for (const clients of [2, 4]) {
        const runs = windows(all, 'hd', op, path, clients);
        const config = path === 'framehub' ? '' : ', jobs on every core';
        if (runs.length) rows.push(row(`framehub job${config}, ${clients} clients`, summary(runs)));
      }
    }
    targets.push({
      name: `image job path vs bare sharp, 1080p JPEG → 640 px ${op.format.toUpperCase()}, 2 clients, default config`,
      target: `>= ${pct(TARGET_SHARE)} of bare sharp's images/s`,
      measured: pct(hub.rate / bare.rate),
      met: hub.rate / bare.rate >= TARGET_SHARE,
    });
  }
  return {
    table: {
      caption:
        'Image jobs vs bare sharp: 1920×1080 JPEG → 640 px wide (images/s: median, then each run; CPU in ms per image)',
      columns: [
        'output',
        'path',
        'images/s',
        'vs bare sharp',
        'p50 ms',
        'p95 ms',
        'CPU, all threads',
        'of which main thread',
        'client CPU',
        'CPU vs bare (with client)',
        'pool workers busy',
        'output KB',
      ],
      rows,
    },
    targets,
  };
}

/** Where a job's time goes, per framehub workload with 2 clients (means over its runs, ms). */
export function breakdownTable(all: Measured[]): ResultTable {
  const hubs = all.filter((m) => m.path !== 'bare' && m.clients === 2);
  const keys = [...new Set(hubs.map((m) => `${m.workload}|${label(m.op)}|${m.path}`))];
  const rows = keys.map((key) => {
    const [workload, name, path] = key.split('|') as [Measured['workload'], string, Measured['path']];
    const same = (m: Measured) => m.workload === workload && label(m.op) === name && m.clients === 2;
    const runs = hubs.filter((m) => same(m) && m.path === path);
    const breakdowns = runs.map((m) => (m.result as FramehubWindow).breakdown);
    const mean = (k: keyof FramehubWindow['breakdown']) =>
      fmt(breakdowns.reduce((s, b) => s + b[k], 0) / breakdowns.length);
    const bare = summary(all.filter((m) => same(m) && m.path === 'bare').map((m) => m.result));
    return [
      `${workload === 'hd' ? '1080p → 640' : 'fit 512×512'} ${name}${path === 'framehub' ? '' : ', jobs on every core'}`,
      mean('postMs'),
      mean('waitMs'),
      mean('resultMs'),
      fmt(summary(runs.map((m) => m.result)).meanLatency),
      mean('serverJobMs'),
      mean('queueWaitMs'),
      mean('poolTaskMs'),
      mean('computeMs'),
      mean('eventMs'),
      fmt(bare.meanLatency),
    ];
  });
  return {
    caption:
      'Where an image job’s time goes, 2 clients (mean ms per image; client side, then the daemon’s own clocks)',
    columns: [
      'workload',
      'POST → 202',
      'wait for done',
      'GET result',
      'client total',
      'job created → finished',
      'queue wait',
      'pool task',
      'decode + encode',
      'done event after finish',
      'bare sharp call',
    ],
    rows,
  };
}

/**
 * Part 2: imgproxy's workload through framehub and bare sharp here, with imgproxy's published
 * figures beside them; `plainJpeg` is bare sharp's JPEG with imgproxy's encoder settings.
 */
export function imgproxyTable(
  all: Measured[],
  ops: ImageOp[],
  plainJpeg: ImageOp,
  sourceKb: Record<string, number>,
): ResultTable {
  const hubPath = all.some((m) => m.workload === 'imgproxy' && m.path === 'framehub-every-core')
    ? 'framehub-every-core'
    : 'framehub';
  const rows: (string | number)[][] = [];
  for (const op of ops) {
    const bare = summary(windows(all, 'imgproxy', op, 'bare'));
    const workload = `${op.format.toUpperCase()} (${fmt(sourceKb[op.format]!, 0)} KB) → ${label(op)}`;
    const row = (path: string, s: typeof bare) => [
      workload,
      path,
      `${fmt(s.rate)}${s.runs}`,
      fmt(s.p95),
      pct(s.rate / bare.rate),
      kb(s.bytes),
    ];
    const hub = summary(windows(all, 'imgproxy', op, hubPath));
    rows.push(row(hubPath === 'framehub' ? 'framehub job' : 'framehub job, jobs on every core', hub));
    rows.push(row('bare sharp', bare));
    if (op.format === 'jpeg') {
      rows.push(
        row('bare sharp, imgproxy’s JPEG settings', summary(windows(all, 'imgproxy', plainJpeg, 'bare'))),
      );
    }
    const published = IMGPROXY_PUBLISHED[op.format];
    rows.push([
      workload,
      'imgproxy, published (c7i.large)',
      fmt(published.reqPerSecond),
      fmt(published.p95Ms),
      '',
      kb(published.meanBytes),
    ]);
  }
  return {
    caption:
      'imgproxy’s benchmark workload: fit inside 512×512, 2 concurrent clients (this machine; imgproxy’s own published 2-vCPU run for reference)',
    columns: ['source → output', 'path', 'req/s', 'p95 ms', 'vs bare sharp', 'output KB'],
    rows,
  };
}

/** Part 3: one camera's live variant set, per CPU-second. */
export function variantsTable(results: VariantsResult[], fps: number): ResultTable {
  const sets = [...new Set(results.map((r) => r.spec.variants.join(' + ')))];
  const cpuOf = (set: string) =>
    results.filter((r) => r.spec.variants.join(' + ') === set).map((r) => r.cpuMsPerFrame);
  const rows = sets.map((set) => {
    const cpu = cpuOf(set);
    const wall = results.filter((r) => r.spec.variants.join(' + ') === set).map((r) => r.wallMsPerFrame);
    return [
      set,
      `${fmt(median(cpu))} (${cpu.map((c) => fmt(c)).join(', ')})`,
      fmt(1000 / median(cpu)),
      `${fmt((median(cpu) * fps) / 10, 0)}%`,
      fmt(median(wall)),
    ];
  });
  return {
    caption: `One camera’s live variants from a 1920×1080 JPEG (makeVariants, CPU of every thread; median, then each run)`,
    columns: [
      'variants',
      'CPU ms/frame',
      'camera-frames per CPU-second',
      `one core at ${fps} fps`,
      'wall ms/frame, one frame at a time',
    ],
    rows,
  };
}

/** The annotated variant's extra CPU per frame, ms and as a share of the set without it. */
export function annotatedCost(results: VariantsResult[]): { ms: number; share: number } {
  const cpu = (annotated: boolean) =>
    median(
      results.filter((r) => r.spec.variants.includes('annotated') === annotated).map((r) => r.cpuMsPerFrame),
    );
  return { ms: cpu(true) - cpu(false), share: cpu(true) / cpu(false) - 1 };
}

/** framehub's mean output bytes on imgproxy's workload over imgproxy's published mean, per format. */
export function outputSizes(all: Measured[], ops: ImageOp[]): string {
  return ops
    .map((op) =>
      pct(
        summary(
          all
            .filter((m) => m.workload === 'imgproxy' && m.op === op && m.path !== 'bare')
            .map((m) => m.result),
        ).bytes / IMGPROXY_PUBLISHED[op.format].meanBytes,
      ),
    )
    .join(', ');
}
