import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { testsrcFrames } from '../lib/camera-frames.js';
import { forkCase } from '../lib/fork-case.js';
import { machineLine, median, type ResultTable, writeResult } from '../lib/results.js';
import type { CaseResult, CaseSpec } from './shared.js';

// Camera frames per second through the daemon's worker pool, by image workers (pool.threads)
// and libuv threads (UV_THREADPOOL_SIZE, where sharp runs). Every case is a fresh process
// started with its UV_THREADPOOL_SIZE (case.ts); the case order alternates between runs and
// medians are reported.
// Usage: node dist-bench/bench/threads/run.js [--runs N] [--seconds S] [--threads 2,4] [--uv 1,2,4]

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '1.5' },
    threads: { type: 'string', default: '2,4' },
    uv: { type: 'string', default: '1,2,4' },
    cameras: { type: 'string', default: '8' },
  },
});
const runs = Number(args.runs);
const seconds = Number(args.seconds);
const warmupSeconds = Number(args.warmup);
const cameras = Number(args.cameras);
const list = (text: string) => text.split(',').map(Number);
const cases = list(args.threads).flatMap((threads) => list(args.uv).map((uv) => ({ threads, uv })));
const [width, height] = [1280, 720];
const caseScript = fileURLToPath(new URL('./case.js', import.meta.url));

/** Writes `count` 1280×720 camera frames (testsrcFrames) into `dir`; returns their mean size. */
function makeFrames(dir: string, count: number): number {
  const frames = testsrcFrames(width, height, count);
  for (const [n, jpeg] of frames.entries())
    writeFileSync(join(dir, `${String(n).padStart(3, '0')}.jpg`), jpeg);
  return frames.reduce((sum, jpeg) => sum + jpeg.byteLength, 0) / count;
}

const runCase = (spec: CaseSpec) =>
  forkCase<CaseResult>(caseScript, spec, {
    env: { ...process.env, UV_THREADPOOL_SIZE: String(spec.uv) },
    timeoutMs: (spec.warmupSeconds + spec.seconds + 30) * 1000,
  });

const fmt = (n: number, digits = 1) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

console.log(`System: ${machineLine()}`);
console.log(
  `threads bench: ${cases.length} cases × ${runs} run(s), ${warmupSeconds} s warm-up + ${seconds} s each, ${cameras} cameras`,
);
const framesDir = mkdtempSync(join(os.tmpdir(), 'framehub-threads-bench-'));
const startedAt = new Date().toISOString();
const loadAtStart = os.loadavg()[0]!.toFixed(2);
const frameBytes = makeFrames(framesDir, 30);
const results: CaseResult[] = [];
try {
  for (let run = 0; run < runs; run++) {
    const order = run % 2 === 0 ? cases : [...cases].reverse();
    for (const { threads, uv } of order) {
      const r = await runCase({ threads, uv, cameras, warmupSeconds, seconds, framesDir, width, height });
      results.push(r);
      console.log(
        `pool.threads ${threads}, UV_THREADPOOL_SIZE ${uv}, run ${run + 1}/${runs}: ${fmt(r.framesPerSecond)} frames/s, ${fmt(r.cpuMsPerFrame)} CPU ms/frame, ${fmt(r.coresBusy, 2)} cores busy`,
      );
    }
  }
} finally {
  rmSync(framesDir, { recursive: true, force: true });
}

const own = (threads: number, uv: number) =>
  results.filter((r) => r.spec.threads === threads && r.spec.uv === uv);
const base = { threads: cases[0]!.threads, uv: Math.max(...list(args.uv)) };
const baseline = median(own(base.threads, base.uv).map((r) => r.framesPerSecond));
const table: ResultTable = {
  caption: `Camera frames per second through the worker pool (median of ${runs} fresh-process runs)`,
  columns: [
    'pool.threads',
    'UV_THREADPOOL_SIZE',
    'frames/s',
    'min–max',
    `vs ${base.threads} threads, UV ${base.uv}`,
    'CPU ms/frame',
    'cores busy',
  ],
  rows: cases.map(({ threads, uv }) => {
    const fps = own(threads, uv).map((r) => r.framesPerSecond);
    return [
      threads,
      uv,
      fmt(median(fps)),
      `${fmt(Math.min(...fps))}–${fmt(Math.max(...fps))}`,
      `${(median(fps) / baseline).toFixed(2)}×`,
      fmt(median(own(threads, uv).map((r) => r.cpuMsPerFrame))),
      fmt(median(own(threads, uv).map((r) => r.coresBusy)), 2),
    ];
  }),
};
const dropped = results.reduce((sum, r) => sum + r.dropped, 0);
const file = writeResult({
  bench: 'threads',
  title: 'sharp parallelism: image workers × libuv threads',
  startedAt,
  conditions: {
    runs,
    'cores (availableParallelism)': os.availableParallelism(),
    'window per case': `${warmupSeconds} s warm-up, then ${seconds} s measured`,
    frames: `30 ffmpeg testsrc2 frames, ${width}×${height}, MJPEG -q:v 5 (the default camera), ${fmt(frameBytes / 1024)} KiB average`,
    'variants per frame':
      'raw, low (320), medium (640), high (1280 = the source: passed through); two resizes and a header check',
    cameras: `${cameras}, each with its next frame submitted when the last finished (closed loop)`,
    'load average at start': loadAtStart,
    'frames dropped by the pool (all runs)': dropped,
  },
  tables: [table],
  targets: [],
  notes: [
    'sharp runs each pipeline on one of libuv’s threads (one pool per process, shared by all worker threads); `sharp.concurrency(1)` keeps each pipeline to one libvips thread. So at most UV_THREADPOOL_SIZE resizes run at once, however many image workers there are.',
    'The daemon sets UV_THREADPOOL_SIZE to max(4, pool.threads) through its preload (`npm start`, the Docker image). On this machine that is 4 for both pool sizes; the rows with fewer libuv threads than cores show the cap the default of 4 puts on a machine with more than 4 cores.',
    'CPU ms/frame is the whole process (main thread, workers and libuv threads) over the measured window, divided by the frames finished in it; cores busy is that CPU time over the window’s wall time. Other work on the machine takes cores from every case alike, so frames/s moves with it; CPU ms/frame does not.',
  ],
  raw: results,
});
console.log(`wrote ${file}`);
const report = spawnSync(process.execPath, [fileURLToPath(new URL('../report.js', import.meta.url))], {
  stdio: 'inherit',
});
if (report.status !== 0) process.exitCode = 1;
