import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sleep } from '../lib/clock.js';
import { makeJpeg } from '../lib/frames.js';
import type { LatencySummary } from '../lib/histogram.js';
import { metricDeltas, metricSum } from '../lib/load-result.js';
import { machineLine, type ResultTable, type TargetCheck, writeResult } from '../lib/results.js';
import { Swarm } from '../lib/swarm.js';
import type { OpenResult } from '../lib/swarm-protocol.js';
import { type RunningTarget, startTarget } from '../lib/target.js';
import { DeliveryMeter, type DeliveryWindow, mergeWindows, planMix, viewerPlan } from './delivery.js';
import { CameraFeeds } from './feeds.js';
import { measureScrapeCost, type ScrapeCost, Scraper } from './scrape.js';

// What a scrape of /metrics costs with 50 cameras configured and 1,000 viewers connected (issue
// 12: "/metrics stays cheap"), against a baseline of the same build with 1 camera and no viewer,
// in one run. Three setups: a daemon with 1 push camera; a second daemon with 50 push cameras,
// before and then after 1,000 viewers (WS, SSE and MJPEG, spread over the cameras) connect.
// Each setup: paced scrapes timed at the client, the body's size and series, and the daemon's
// CPU over a burst of back-to-back scrapes from /proc, less its background rate. With the
// viewers connected, it also compares their frame latency in windows with a scrape every second
// against quiet windows.
// Usage: node dist-bench/bench/metrics/run.js [--cameras 50] [--viewers 1000] [--fps 2]
//        [--frame-kb 4] [--scrapes 200] [--gap-ms 20] [--burst 200] [--background-seconds 2]
//        [--window-seconds 10] [--window-pairs 3] [--warmup 3] [--procs cores-1]

const { values: args } = parseArgs({
  options: {
    cameras: { type: 'string', default: '50' },
    viewers: { type: 'string', default: '1000' },
    fps: { type: 'string', default: '2' },
    'frame-kb': { type: 'string', default: '4' },
    scrapes: { type: 'string', default: '200' },
    'gap-ms': { type: 'string', default: '20' },
    burst: { type: 'string', default: '200' },
    'background-seconds': { type: 'string', default: '2' },
    'window-seconds': { type: 'string', default: '10' },
    'window-pairs': { type: 'string', default: '3' },
    warmup: { type: 'string', default: '3' },
    procs: { type: 'string', default: String(Math.max(1, os.availableParallelism() - 1)) },
  },
});
const cameraCount = Number(args.cameras);
const viewerCount = Number(args.viewers);
const fps = Number(args.fps);
const windowSeconds = Number(args['window-seconds']);
const windowPairs = Number(args['window-pairs']);
const warmupSeconds = Number(args.warmup);
const procs = Number(args.procs);
const costOptions = {
  scrapes: Number(args.scrapes),
  gapMs: Number(args['gap-ms']),
  burst: Number(args.burst),
  backgroundMs: Number(args['background-seconds']) * 1000,
};
/** The scrape interval the CPU target is stated at. */
const INTERVAL_SECONDS = 5;
const TARGET_P99_MS = 50;
const TARGET_BODY_BYTES = 256 * 1024;
const TARGET_CPU_SHARE = 0.02;
const [width, height] = [320, 180];
const KiB = 1024;

interface Setup {
  name: string;
  cameras: number;
  viewers: number;
  /** framehub_connections summed, from a scrape after the measurement. */
  connections: number;
  cost: ScrapeCost;
}

const wallStart = performance.now();
console.log(`System: ${machineLine()}`);
console.log(
  `metrics bench: baseline 1 camera / 0 viewers; ${cameraCount} cameras / 0 viewers; ${cameraCount} cameras / ${viewerCount} viewers; push cameras at ${fps} fps`,
);
const startedAt = new Date().toISOString();
const loadAtStart = os.loadavg().map((l) => l.toFixed(2));
const jpeg = await makeJpeg(width, height, Number(args['frame-kb']) * KiB);
const ids = (n: number) => Array.from({ length: n }, (_, i) => `bench${i}`);

interface Daemon {
  target: RunningTarget;
  feeds: CameraFeeds;
  scraper: Scraper;
}

/** A fresh daemon with `cameras` push cameras fed at `fps`, and a warmed-up scraper. */
async function withDaemon<T>(cameras: string[], body: (d: Daemon) => Promise<T>): Promise<T> {
  // startTarget raises the per-IP limits (LOAD_TEST_LIMITS): the swarm connects from one address.
  const target = await startTarget('framehub', { cameras, fps, width, height });
  const feeds = new CameraFeeds(target.wsBase, cameras, fps, jpeg);
  const scraper = new Scraper(target.port);
  try {
    await feeds.start();
    // The first scrapes pay for JIT and lazily made series; a running Prometheus never sees them.
    for (let i = 0; i < 10; i++) await scraper.scrape();
    return await body({ target, feeds, scraper });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${target.stderrTail()}`);
  } finally {
    scraper.close();
    await feeds.close();
    await target.stop();
  }
}

async function measureSetup(d: Daemon, name: string, cameras: number, viewers: number): Promise<Setup> {
  const cost = await measureScrapeCost(d.scraper, d.target.pid!, costOptions);
  const connections = metricSum((await d.scraper.scrape()).body.toString(), 'framehub_connections') ?? 0;
  console.log(
    `${name}: ${cost.exposition.series} series, ${(cost.exposition.bytes / KiB).toFixed(1)} KiB; scrape p50 ${cost.p50Ms.toFixed(2)} ms, p99 ${cost.p99Ms.toFixed(2)} ms, max ${cost.maxMs.toFixed(2)} ms; ${cost.cpuMsPerScrape.toFixed(2)} ms CPU per scrape (background ${(cost.backgroundCpuMsPerSec / 10).toFixed(1)}% of a core)`,
  );
  return { name, cameras, viewers, connections, cost };
}

const setups: Setup[] = [];
const windows: DeliveryWindow[] = [];
let opened: OpenResult[] = [];
let clientElu = 0;
let clientCpuPct = 0;
/** The publishers' counts at the end of the delivery windows. */
let feedStats = { sent: 0, late: 0, errors: 0 };
/** framehub_frames_dropped_total deltas over the delivery windows, by series. */
let droppedInWindows: Record<string, number> = {};
const plan = viewerPlan(viewerCount, procs, cameraCount);

setups.push(await withDaemon(ids(1), (d) => measureSetup(d, '1 camera, 0 viewers (baseline)', 1, 0)));
await withDaemon(ids(cameraCount), async (d) => {
  setups.push(await measureSetup(d, `${cameraCount} cameras, 0 viewers`, cameraCount, 0));
  const swarm = await Swarm.start(procs);
  try {
    opened = await swarm.each<OpenResult>(
      plan.map((groups) => ({
        cmd: 'open',
        port: d.target.port,
        cameras: ids(cameraCount),
        variant: 'raw',
        groups,
        concurrency: Math.max(1, Math.round(200 / procs)),
        connectTimeoutMs: 10_000,
        throttleKiBps: 0,
      })),
      60_000 + viewerCount * 20,
      'open viewers',
    );
    const openCount = opened.reduce((a, o) => a + o.opened, 0);
    console.log(`${openCount} of ${viewerCount} viewers open; ${warmupSeconds} s warm-up`);
    await sleep(warmupSeconds * 1000);
    const before = (await d.scraper.scrape()).body.toString();
    const meter = new DeliveryMeter(swarm, () => d.feeds.sent);
    await meter.start();
    for (let i = 0; i < windowPairs; i++) {
      for (const scraper of [undefined, d.scraper]) {
        const w = await meter.window(windowSeconds, scraper);
        windows.push(w);
        const l = w.latency.summary();
        console.log(
          `window ${windows.length} (${w.scraping ? 'scrape every 1 s' : 'no scrapes'}): ${w.frames} frames, latency p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms`,
        );
      }
    }
    const after = (await d.scraper.scrape()).body.toString();
    feedStats = { sent: d.feeds.sent, late: d.feeds.late, errors: d.feeds.errors };
    droppedInWindows = metricDeltas(before, after, ['framehub_frames_dropped_total']);
    clientElu = Math.max(...meter.reports.map((r) => r.elu));
    clientCpuPct = Math.max(...meter.reports.map((r) => (r.cpuMs / r.wallMs) * 100));
    setups.push(
      await measureSetup(
        d,
        `${cameraCount} cameras, ${viewerCount.toLocaleString('en')} viewers`,
        cameraCount,
        viewerCount,
      ),
    );
  } finally {
    await swarm.close();
  }
});

// --- result ---

const [baseline, noViewers, loaded] = setups as [Setup, Setup, Setup];
const openCount = opened.reduce((a, o) => a + o.opened, 0);
const f2 = (n: number | null) => (n === null || !Number.isFinite(n) ? '–' : n.toFixed(2));
const kib = (bytes: number) => (bytes / KiB).toFixed(1);
const cpuShare = (s: Setup) => s.cost.cpuMsPerScrape / (INTERVAL_SECONDS * 1000);
const pct = (share: number) => `${(share * 100).toFixed(3)}%`;
const times = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const scrapingWindows = windows.filter((w) => w.scraping);
const intervalScrapes = scrapingWindows.flatMap((w) => w.scrapeMs);

const costTable: ResultTable = {
  caption: `A scrape of /metrics per setup: ${costOptions.scrapes} paced scrapes (client wall time, request → last body byte, ms) and the daemon's CPU over ${costOptions.burst} back-to-back scrapes, less its background rate`,
  columns: [
    'setup',
    'connections (framehub_connections)',
    'series',
    'families',
    'body KiB',
    'body vs baseline',
    'p50 ms',
    'p99 ms',
    'max ms',
    'daemon CPU ms per scrape',
    `CPU at a ${INTERVAL_SECONDS} s interval (% of a core)`,
    'daemon background CPU (% of a core)',
  ],
  rows: setups.map((s) => [
    s.name,
    s.connections,
    s.cost.exposition.series,
    s.cost.exposition.families.length,
    kib(s.cost.exposition.bytes),
    times(s.cost.exposition.bytes, baseline.cost.exposition.bytes),
    f2(s.cost.p50Ms),
    f2(s.cost.p99Ms),
    f2(s.cost.maxMs),
    f2(s.cost.cpuMsPerScrape),
    pct(cpuShare(s)),
    (s.cost.backgroundCpuMsPerSec / 10).toFixed(1),
  ]),
};

/** Received over what the viewers would get if every frame sent reached every viewer of its camera. */
const delivered = (w: { frames: number; sent: number }) =>
  w.sent ? `${((w.frames / ((w.sent * openCount) / cameraCount)) * 100).toFixed(1)}%` : '–';
const latencyRow = (
  name: string,
  scrapes: number,
  w: { frames: number; sent: number },
  l: LatencySummary,
) => [name, scrapes, w.frames, delivered(w), f2(l.p50), f2(l.p99), f2(l.p999), f2(l.max)];
const quiet = mergeWindows(windows.filter((w) => !w.scraping));
const scraping = mergeWindows(scrapingWindows);
const deliveryTable: ResultTable = {
  caption: `Frame latency at the ${viewerCount.toLocaleString('en')} viewers with ${cameraCount} cameras, capture ts → arrival (ms), ${windowSeconds} s windows alternating: no scrapes, a scrape every 1 s`,
  columns: ['window', 'scrapes', 'frames received', 'delivered', 'p50', 'p99', 'p99.9', 'max'],
  rows: [
    ...windows.map((w, i) =>
      latencyRow(
        `${i + 1}: ${w.scraping ? 'scrape every 1 s' : 'no scrapes'}`,
        w.scrapeMs.length,
        w,
        w.latency.summary(),
      ),
    ),
    latencyRow('all windows without scrapes', 0, quiet, quiet.latency),
    latencyRow('all windows with a scrape every 1 s', intervalScrapes.length, scraping, scraping.latency),
  ],
};

const baselineFamilies = new Map(baseline.cost.exposition.families.map((f) => [f.name, f]));
const familyTable: ResultTable = {
  caption: `The 10 largest metric families with ${cameraCount} cameras and ${viewerCount.toLocaleString('en')} viewers (bytes of their lines), against the baseline`,
  columns: ['family', 'type', 'series', 'series at baseline', 'bytes'],
  rows: [...loaded.cost.exposition.families]
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 10)
    .map((f) => [f.name, f.type, f.series, baselineFamilies.get(f.name)?.series ?? 0, f.bytes]),
};

const targets: TargetCheck[] = [
  {
    name: `scrape p99 with ${cameraCount} cameras and ${viewerCount.toLocaleString('en')} viewers`,
    target: `≤ ${TARGET_P99_MS} ms`,
    measured: `${f2(loaded.cost.p99Ms)} ms (baseline ${f2(baseline.cost.p99Ms)} ms; at a 1 s interval during delivery, max ${f2(Math.max(...intervalScrapes))} ms of ${intervalScrapes.length})`,
    met: loaded.cost.p99Ms <= TARGET_P99_MS,
  },
  {
    name: `/metrics body with ${cameraCount} cameras and ${viewerCount.toLocaleString('en')} viewers`,
    target: `≤ ${TARGET_BODY_BYTES / KiB} KiB`,
    measured: `${kib(loaded.cost.exposition.bytes)} KiB, ${loaded.cost.exposition.series} series (baseline ${kib(baseline.cost.exposition.bytes)} KiB, ${baseline.cost.exposition.series} series)`,
    met: loaded.cost.exposition.bytes <= TARGET_BODY_BYTES,
  },
  {
    name: `daemon CPU for scrapes at a ${INTERVAL_SECONDS} s interval`,
    target: `≤ ${TARGET_CPU_SHARE * 100}% of one core`,
    measured: `${pct(cpuShare(loaded))} (${f2(loaded.cost.cpuMsPerScrape)} ms per scrape; baseline ${f2(baseline.cost.cpuMsPerScrape)} ms)`,
    met: cpuShare(loaded) <= TARGET_CPU_SHARE,
  },
];

const notes = [
  `Series are the sample lines of the text format, one stored time series each in Prometheus (a histogram's buckets, _sum and _count each count). Adding ${cameraCount - 1} cameras added ${noViewers.cost.exposition.series - baseline.cost.exposition.series} series (${((noViewers.cost.exposition.series - baseline.cost.exposition.series) / (cameraCount - 1)).toFixed(1)} per camera); connecting ${openCount} viewers added ${loaded.cost.exposition.series - noViewers.cost.exposition.series}: no label is per connection, so viewers change values, not series. The body is uncompressed (the daemon does not gzip /metrics).`,
  `Scrape time is the client's wall time on one keep-alive connection, as Prometheus keeps one, with ${costOptions.gapMs} ms between scrapes so each finds the daemon as a periodic scrape would. Daemon CPU per scrape: the process's user+system CPU from /proc/<pid>/stat over ${costOptions.burst} back-to-back scrapes, less its background rate (frames in and out) read over ${costOptions.backgroundMs / 1000} s quiet windows before and after the burst; /proc counts in 10 ms ticks, so ±${(20 / costOptions.burst).toFixed(2)} ms per scrape. The CPU target divides it by a ${INTERVAL_SECONDS} s scrape interval.`,
  `The push cameras get a ${kib(jpeg.byteLength)} KiB ${width}×${height} JPEG at ${fps} fps each, so per-camera counters move and the viewers have frames to time. The viewers watch the raw variant, but every frame still passes the worker pool as for any camera (the raw frame into the ring, and about once a second the other variants refreshed), which is most of the background CPU. Frames dropped by the daemon during the delivery windows: ${
    Object.entries(droppedInWindows)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none'
  }. The publishers sent ${feedStats.sent} frames, ${feedStats.late} late and ${feedStats.errors} refused or failed. The swarm's busiest process had an event-loop utilisation of ${clientElu.toFixed(2)} and ${clientCpuPct.toFixed(0)}% CPU over the windows${clientElu >= 0.9 ? ' (client-bound: its latency includes its own lag)' : ''}.`,
];
const p99s = (scrapingKind: boolean) =>
  windows.filter((w) => w.scraping === scrapingKind).map((w) => w.latency.summary().p99 ?? Number.NaN);
const range = (xs: number[]) => `${f2(Math.min(...xs))}–${f2(Math.max(...xs))} ms`;
notes.push(
  `Delivery: frame latency p99 was ${f2(scraping.latency.p99)} ms over the windows with a scrape every 1 s and ${f2(quiet.latency.p99)} ms over the windows without (per window: ${range(p99s(true))} with, ${range(p99s(false))} without). A scrape holds the daemon's main thread for about its CPU time (${f2(loaded.cost.cpuMsPerScrape)} ms), so at most that much delay for the frames that meet it; a spread between windows of the same kind larger than that is the machine (the load average is in the conditions). "Delivered" is frames received over frames sent × open viewers ÷ cameras, counted by arrival at the window's edges, so it can pass 100% by a frame per camera.`,
);
const cores = os.availableParallelism();
const loadAtEnd = os.loadavg()[0]!;
// At the start only other work counts; by the end this bench's own processes add about 1.
if (Number(loadAtStart[0]) > 0.5 * cores || loadAtEnd > cores) {
  notes.push(
    `The machine was busy: 1-minute load average ${loadAtStart[0]} at the start and ${loadAtEnd.toFixed(2)} at the end (this bench's daemon, swarm and publishers included) on ${cores} cores. The tails (scrape p99 and max, frame p99) include time waiting for a CPU, which the CPU per scrape does not.`,
  );
}
if (openCount < viewerCount) notes.push(`Only ${openCount} of ${viewerCount} viewers opened.`);

const file = writeResult({
  bench: 'metrics',
  title: `/metrics scrape cost: ${cameraCount} cameras and ${viewerCount.toLocaleString('en')} viewers against 1 camera and none`,
  startedAt,
  conditions: {
    command: `npm run bench:metrics -- --cameras ${cameraCount} --viewers ${viewerCount} --fps ${fps} --scrapes ${costOptions.scrapes} --burst ${costOptions.burst} --window-seconds ${windowSeconds} --window-pairs ${windowPairs}`,
    'cores (availableParallelism)': os.availableParallelism(),
    node: process.version,
    'load average at start (1, 5, 15 min)': loadAtStart.join(', '),
    'load average at end (1, 5, 15 min)': os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(', '),
    daemons: `two fresh processes of dist/src/main.js: 1 push camera; then ${cameraCount} push cameras (bench0…), per-IP limits raised for the swarm`,
    cameras: `push, ${kib(jpeg.byteLength)} KiB ${width}×${height} JPEG at ${fps} fps each, one /publish WebSocket per camera, started staggered over a frame period (bench/metrics/feeds.ts), stamped at send`,
    viewers: `${openCount} of ${viewerCount} open (${Object.entries(planMix(plan))
      .map(([t, n]) => `${n} ${t}`)
      .join(', ')}), ${viewerCount / cameraCount} per camera, variant raw, in ${procs} swarm process(es)`,
    'delivery windows': `${windowPairs} pairs of ${windowSeconds} s (no scrapes, then a scrape every 1 s), after a ${warmupSeconds} s warm-up`,
    'run time': `${((performance.now() - wallStart) / 1000).toFixed(0)} s`,
  },
  tables: [costTable, deliveryTable, familyTable],
  targets,
  notes,
  raw: {
    setups: setups.map((s) => ({ ...s, cost: { ...s.cost } })),
    windows: windows.map((w) => ({ ...w, latency: w.latency.toSparse() })),
    opened,
    droppedInWindows,
    feedStats,
  },
});
console.log(`wrote ${file} (${((performance.now() - wallStart) / 1000).toFixed(0)} s)`);
for (const t of targets) console.log(`${t.met ? 'met   ' : 'MISSED'} ${t.name}: ${t.measured} (${t.target})`);
const report = spawnSync(process.execPath, [fileURLToPath(new URL('../report.js', import.meta.url))], {
  stdio: 'inherit',
});
if (report.status !== 0) process.exitCode = 1;
