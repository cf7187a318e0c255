import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { forkCase } from '../lib/fork-case.js';
import { benchDir, machineLine, writeResult } from '../lib/results.js';
import { framehubWindow } from './framehub-window.js';
import type { BareSpec, ImageOp, LoadWindow, VariantsResult, VariantsSpec, WindowResult } from './shared.js';
import { HD, PICTURE, writeSources } from './sources.js';
import {
  annotatedCost,
  breakdownTable,
  fmt,
  IMGPROXY_PUBLISHED,
  imgproxyTable,
  jobPathTable,
  type Measured,
  outputSizes,
  variantsTable,
} from './tables.js';

// bench:image — image jobs measured three ways, in one run (about 3 minutes on 2 cores):
// 1. framehub's job path (POST, `done` on job/<id> with the result URL, GET the result) against bare
//    sharp doing the same resize in a fresh process, 2 clients each, 1080p JPEG → 640 px JPEG
//    and WebP; the order alternates between rounds.
// 2. imgproxy's benchmark workload (fit 512×512; JPEG q80, WebP q75, AVIF q65; 2 clients),
//    through framehub and through bare sharp, beside imgproxy's published 2-vCPU figures.
// 3. One camera's live variant set (low + medium + high, then with annotated) per CPU-second.
// Every daemon and every bare-sharp case is a fresh process.
// Usage: node dist-bench/bench/image/run.js [--seconds 5] [--imgproxy-seconds 4] [--warmup 1.2] [--rounds 2]

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    'imgproxy-seconds': { type: 'string', default: '4' },
    warmup: { type: 'string', default: '1.2' },
    rounds: { type: 'string', default: '2' },
  },
});
const CLIENTS = 2;
const FPS = 15;
const rounds = Number(args.rounds);
const hdWindow: LoadWindow = {
  clients: CLIENTS,
  warmupSeconds: Number(args.warmup),
  seconds: Number(args.seconds),
};
const imgproxyWindow: LoadWindow = { ...hdWindow, seconds: Number(args['imgproxy-seconds']) };
const hdOps: ImageOp[] = [
  { format: 'jpeg', quality: 80, width: 640, fit: 'inside' },
  { format: 'webp', quality: 80, width: 640, fit: 'inside' },
];
const imgproxyOps: ImageOp[] = (['jpeg', 'webp', 'avif'] as const).map((format) => ({
  format,
  quality: { jpeg: 80, webp: 75, avif: 65 }[format],
  width: 512,
  height: 512,
  fit: 'inside',
}));
const plainJpeg: ImageOp = { ...imgproxyOps[0]!, mozjpeg: false };
const variantSets: VariantsSpec['variants'][] = [
  ['low', 'medium', 'high'],
  ['low', 'medium', 'high', 'annotated'],
];
const bareScript = fileURLToPath(new URL('./bare-case.js', import.meta.url));
const variantsScript = fileURLToPath(new URL('./variants-case.js', import.meta.url));
/**
 * The job cap (pool.queue.maxRunningJobs, threads − 1 by default) keeps one worker free for live
 * frames, so on 2 cores jobs get one worker. These windows have no cameras, so they also run
 * with the cap lifted to one job per core: through that key where this build's config takes
 * it, else with one worker more than cores (the cap is then the core count; the spare worker
 * idles).
 */
const cores = os.availableParallelism();
const schemaModule = pathToFileURL(join(benchDir, '..', 'dist', 'src', 'config', 'schema.js')).href;
const { configSchema } = (await import(schemaModule)) as typeof import('../../src/config/schema.js');
const capKey = { pool: { queue: { maxRunningJobs: cores } } };
const liftCap = configSchema.safeParse(capKey).success
  ? { config: capKey, says: `pool.queue.maxRunningJobs ${cores}` }
  : {
      config: { pool: { threads: cores + 1 } },
      says: `pool.threads ${cores + 1} (no pool.queue key in this build)`,
    };
const hubPaths: Measured['path'][] = ['framehub', 'framehub-every-core'];
/** Bare sharp first in even rounds, the daemons first (in reverse) in odd ones. */
const order = (round: number): Measured['path'][] =>
  round % 2 === 0 ? ['bare', ...hubPaths] : [...hubPaths].reverse().concat('bare');

console.log(`System: ${machineLine()}`);
const startedAt = new Date().toISOString();
const loadAtStart = os.loadavg().map((l) => l.toFixed(2));
const dir = mkdtempSync(join(os.tmpdir(), 'framehub-image-bench-'));
const measured: Measured[] = [];
const variants: VariantsResult[] = [];
try {
  const sources = await writeSources(dir);
  console.log(`sources written in ${dir}`);

  const measure =
    (workload: Measured['workload'], op: ImageOp, files: string[], window: LoadWindow) =>
    async (path: Measured['path'], round: number) => {
      const result: WindowResult =
        path === 'bare'
          ? await forkCase<WindowResult>(bareScript, { files, op, window } satisfies BareSpec, {
              timeoutMs: (window.warmupSeconds + window.seconds + 60) * 1000,
            })
          : await framehubWindow(files, op, window, dir, path === 'framehub' ? {} : liftCap.config);
      measured.push({ workload, op, path, clients: window.clients, round, result });
      console.log(
        `${workload} ${op.format} q${op.quality} ${path} ×${window.clients} round ${round + 1}: ` +
          `${fmt(result.imagesPerSecond)} images/s, CPU ${fmt(result.cpuMsPerImage)} ms/image` +
          (result.clientCpuMsPerImage === undefined ? '' : ` + ${fmt(result.clientCpuMsPerImage)} client`) +
          `, machine busy ${fmt(result.machineBusyPct, 0)}% (this bench ${fmt(result.ownBusyPct, 0)}%)`,
      );
    };

  for (const op of hdOps) {
    const run = measure('hd', op, sources.hd, hdWindow);
    for (let round = 0; round < rounds; round++) for (const path of order(round)) await run(path, round);
    // More clients than workers: the pool never waits for a client's HTTP round trips.
    await measure('hd', op, sources.hd, { ...hdWindow, clients: 2 * CLIENTS })('framehub-every-core', 0);
  }
  for (const [i, op] of imgproxyOps.entries()) {
    // AVIF takes ~10× JPEG's time per image: a longer window, for enough images to read a p95.
    const window =
      op.format === 'avif' ? { ...imgproxyWindow, seconds: 2 * imgproxyWindow.seconds } : imgproxyWindow;
    const run = measure('imgproxy', op, sources.imgproxy[op.format], window);
    for (let round = 0; round < rounds; round++) {
      for (const path of order(i + round).filter((p) => p === 'bare' || p === 'framehub-every-core'))
        await run(path, round);
    }
  }
  // How much of imgproxy's JPEG lead is its encoder settings rather than its code or hardware.
  const plain = measure('imgproxy', plainJpeg, sources.imgproxy.jpeg, imgproxyWindow);
  for (let round = 0; round < rounds; round++) await plain('bare', round);
  for (let round = 0; round < 2; round++) {
    for (const set of round % 2 === 0 ? variantSets : [...variantSets].reverse()) {
      const spec: VariantsSpec = {
        files: sources.hd,
        variants: set,
        warmupFrames: 5,
        minSeconds: 3,
        minFrames: 30,
        maxFrames: 400,
      };
      const r = await forkCase<VariantsResult>(variantsScript, spec, { timeoutMs: 120_000 });
      variants.push(r);
      console.log(`variants ${set.join('+')} round ${round + 1}: ${fmt(r.cpuMsPerFrame)} CPU ms/frame`);
    }
  }

  const loadAtEnd = os.loadavg().map((l) => l.toFixed(2));
  const busy = measured.map((m) => m.result.machineBusyPct);
  const others = measured.map((m) => m.result.machineBusyPct - m.result.ownBusyPct);
  const jobPath = jobPathTable(measured, hdOps);
  const annotated = annotatedCost(variants);
  const sourceKb = Object.fromEntries(
    Object.entries(sources.meanBytes).map(([format, bytes]) => [format, bytes / 1024]),
  );
  const file = writeResult({
    bench: 'image',
    title: 'Image jobs: the job path vs bare sharp, imgproxy’s workload, a camera’s variants per CPU-second',
    startedAt,
    conditions: {
      command: 'npm run bench:image',
      'load average (1, 5, 15 min) at start': loadAtStart.join(', '),
      'load average (1, 5, 15 min) at end': loadAtEnd.join(', '),
      'machine busy during the windows (all tenants)': `${fmt(Math.min(...busy), 0)}–${fmt(Math.max(...busy), 0)}%`,
      'of which not this bench (busy minus the measured processes)': `${fmt(Math.min(...others), 0)}–${fmt(Math.max(...others), 0)}%`,
      'cores (availableParallelism)': os.availableParallelism(),
      sharp: `${sharp.versions.sharp}, libvips ${sharp.versions.vips}`,
      clients: `${CLIENTS} closed loops (each starts its next image when its last one is done)`,
      windows: `${hdWindow.warmupSeconds} s warm-up, then ${hdWindow.seconds} s (1080p) or ${imgproxyWindow.seconds} s (imgproxy workload; AVIF ${2 * imgproxyWindow.seconds} s); ${rounds} rounds, bare sharp and framehub alternating first`,
      'framehub daemon':
        'dist/src/main.js, fresh per window, no cameras, pool.threads 0 (one image worker per core), UV_THREADPOOL_SIZE ' +
        `${process.env.UV_THREADPOOL_SIZE ?? 'unset (libuv: 4)'}, jobs.maxActive 8, jobs.dataDir under ${os.tmpdir()} (disk), ttlSeconds 10, jobs.nice 10 (the default: the job processes at nice 10)`,
      'job cap': `the default pool (pool.threads 0: one worker per core; the daemon has no camera, so jobs may use every worker), and “jobs on every core”: ${liftCap.says}, which the 4-client and imgproxy-workload windows use`,
      'bare sharp':
        'a fresh process, sharp.concurrency(1) and cache off as in the pool workers, 2 calls in flight on libuv’s threads',
      '1080p source': `3 generated photo-like 1920×1080 JPEGs, q85 4:2:0 baseline, ${fmt(sources.meanBytes.hd / 1024, 0)} KB mean`,
      'imgproxy-workload sources': `3 generated photo-like ${PICTURE.width}×${PICTURE.height} pictures (DIV2K's usual size), each saved as imgproxy's dataset script saves DIV2K's PNGs: JPEG Q75 (${fmt(sourceKb.jpeg!, 0)} KB), WebP Q75 (${fmt(sourceKb.webp!, 0)} KB), AVIF Q65 effort 0 (${fmt(sourceKb.avif!, 0)} KB)`,
      'variant frames': `the 1080p sources as camera frames (${HD.width}×${HD.height}), makeVariants quality 75, annotation with speech on`,
    },
    tables: [
      jobPath.table,
      breakdownTable(measured),
      imgproxyTable(measured, imgproxyOps, plainJpeg, sourceKb),
      variantsTable(variants, FPS),
    ],
    targets: jobPath.targets,
    notes: [
      'Bare sharp is one pipeline per image (`sharp(input).rotate().resize().jpeg()`) with the encoder settings the jobs use (sharp’s mozjpeg preset for JPEG, AVIF effort 3), so the ratio is the cost of the job path. The job path adds HTTP both ways, a header probe on the main thread, the upload’s transfer to a worker, which writes it to a file for its job process (a child at nice 10) to read, a second probe there, a SHA-256 ETag, the outputs copied back over IPC and to the main thread, a directory and a file per job, the job’s events, and the client’s GET of the result. One format without a budget is one libvips pipeline, as bare sharp’s.',
      'CPU columns are ms per image finished in the window, read from /proc: the daemon’s (or the bare process’s) threads and child processes (the image job processes, where the decode and encode run), its main thread alone (in the daemon: HTTP, WebSockets, job bookkeeping and file calls; the rest is the job processes, the workers’ JS and V8’s GC), and the bench process acting as the clients. On 2 cores the clients share the CPU with the daemon, so their cost comes out of framehub’s images/s too; bare sharp has no clients.',
      '“Pool workers busy” is framehub_pool_task_duration_seconds{task="image_job"} over the window, divided by the cores (at most one job per core runs) and the window. Where the pool has the priority queue’s job cap (pool.queue.maxRunningJobs, default threads − 1), jobs get all workers but one even with no camera: one of two here, so at most 50%. With jobs on every core and 2 clients, each worker still sits idle while its client’s image is in an HTTP leg (POST, event, GET); 4 clients keep both workers fed, so that row shows what the extra CPU alone costs.',
      'The breakdown’s client columns add up to the client total. The rest are the daemon’s figures: “job created → finished” is the job’s createdAt → finishedAt (from after the upload and the probe to the outputs on disk), “queue wait” is framehub_pool_queue_wait_seconds{tier="normal"} (waiting for a worker the cap allows), “pool task” is the task duration histogram (the worker’s run, its job process included, and the copies there and back), “decode + encode” is the job process’s `outputs[0].ms`, and “done event after finish” is the client’s receipt of `done` minus finishedAt (millisecond clocks).',
      `imgproxy’s figures are its own published run, not measured here: an AWS c7i.large (2 vCPU, one physical core with two hyperthreads), imgproxy fetching each source from nginx, k6 with 2 VUs for 5 minutes over the 100 DIV2K validation photos (imgproxy/image-servers-benchmark, results/x86_64.md). rs:fit:512:512 keeps the aspect ratio inside the box and never enlarges: sharp’s fit=inside with withoutEnlargement, which the jobs use. The hardware differs, so the fair ratio is framehub against bare sharp on this machine; bare sharp here against imgproxy there is rough. Encoders differ too: imgproxy’s JPEG defaults leave trellis quantisation, deringing and progressive off (the “imgproxy’s JPEG settings” row encodes that way), its current default AVIF speed is 8 (libvips effort 1) where the jobs use effort 3 (the benchmark’s imgproxy version is not recorded), and WebP is effort 4 in both. The published JPEG, WebP and AVIF req/s are ${IMGPROXY_PUBLISHED.jpeg.reqPerSecond}, ${IMGPROXY_PUBLISHED.webp.reqPerSecond} and ${IMGPROXY_PUBLISHED.avif.reqPerSecond}.`,
      `The sources are generated (no download): luma texture at eight scales, hard-edged regions and grain. The output KB column checks them against DIV2K: with the jobs’ encoders our outputs are ${outputSizes(measured, imgproxyOps)} of imgproxy’s mean response (JPEG, WebP, AVIF), a rough sign that they are about as hard to compress.`,
      `The annotated variant adds ${fmt(annotated.ms)} CPU ms per frame (${fmt(100 * annotated.share, 0)}% on top of low + medium + high); it is made only while someone watches it. From 1080p, high (1280 px) decodes the whole frame (shrink-on-load needs 2× or more); low and medium decode at 1/4 and 1/2 scale.`,
    ],
    raw: { measured, variants },
  });
  console.log(`wrote ${file}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const report = spawnSync(process.execPath, [fileURLToPath(new URL('../report.js', import.meta.url))], {
  stdio: 'inherit',
});
if (report.status !== 0) process.exitCode = 1;
