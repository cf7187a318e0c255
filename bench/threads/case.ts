import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { benchDir } from '../lib/results.js';
import type { CaseResult, CaseSpec } from './shared.js';

// One case in a fresh process (run.ts forks it with UV_THREADPOOL_SIZE in its environment, so
// libuv sizes its pool before anything runs): the daemon's own WorkerPool, fed camera frames
// in a closed loop per camera, each frame asking for every variant, as a camera with a viewer
// on each variant (or at a refresh) does. A camera's next frame goes in when its last record
// (`high`) comes out of the ring, so the pool is never idle for lack of input and nothing is
// superseded.

type Product = {
  pool: typeof import('../../src/pool/worker-pool.js');
  metrics: typeof import('../../src/metrics/metrics.js');
  log: typeof import('../../src/log.js');
  records: typeof import('../../src/wire/records.js');
};

const spec = JSON.parse(process.argv[2]!) as CaseSpec;
if (process.env.UV_THREADPOOL_SIZE !== String(spec.uv))
  throw new Error('case started without its UV_THREADPOOL_SIZE');

// The product build (`npm run build`): the workers only exist there, compiled.
const dist = (path: string) => import(pathToFileURL(join(benchDir, '..', 'dist', 'src', path)).href);
const product: Product = {
  pool: await dist('pool/worker-pool.js'),
  metrics: await dist('metrics/metrics.js'),
  log: await dist('log.js'),
  records: await dist('wire/records.js'),
};

const frames = readdirSync(spec.framesDir)
  .filter((f) => f.endsWith('.jpg'))
  .sort()
  .map((f) => readFileSync(join(spec.framesDir, f)));
const metrics = product.metrics.createMetrics();
const log = product.log.log;
log.level = 'warn';

let finished = 0;
let stopping = false;
const seqs = new Map<string, number>();
const pool = new product.pool.WorkerPool({
  threads: spec.threads,
  ringBytes: 8 * 1024 * 1024,
  maxQueuedFrames: 8,
  log,
  metrics,
  onRecord: (bytes) => {
    const record = product.records.decode(bytes) as { type: string; topic: string };
    if (record.type !== 'frame' || !record.topic.endsWith('/high')) return;
    finished++;
    if (!stopping) submit(record.topic.split('/')[1]!);
  },
});

function submit(camera: string): void {
  const seq = (seqs.get(camera) ?? 0) + 1;
  seqs.set(camera, seq);
  const frame = frames[seq % frames.length]!;
  // A private ArrayBuffer the worker takes by transfer, as FrameIngest makes for every frame.
  const jpeg = new ArrayBuffer(frame.byteLength);
  new Uint8Array(jpeg).set(frame);
  const taken = pool.submitFrame({
    camera,
    seq,
    ts: Date.now(),
    width: spec.width,
    height: spec.height,
    maxPixels: 40_000_000,
    jpeg,
    variants: ['raw', 'low', 'medium', 'high'],
  });
  if (!taken) throw new Error('the pool refused a frame: more cameras than threads + maxQueuedFrames');
}

const droppedSoFar = async () =>
  ((await metrics.framesDropped.get()).values as { value: number }[]).reduce((sum, v) => sum + v.value, 0);

for (let i = 0; i < spec.cameras; i++) submit(`cam${i}`);
await new Promise((resolve) => setTimeout(resolve, spec.warmupSeconds * 1000));
const start = { t: performance.now(), cpu: process.cpuUsage(), finished, dropped: await droppedSoFar() };
await new Promise((resolve) => setTimeout(resolve, spec.seconds * 1000));
const elapsed = (performance.now() - start.t) / 1000;
const cpu = process.cpuUsage(start.cpu);
const done = finished - start.finished;
const dropped = (await droppedSoFar()) - start.dropped;
stopping = true;
// Let the frames in flight finish, so closing terminates idle workers rather than failing tasks.
while (pool.stats().inFlightFrames > 0) await new Promise((resolve) => setTimeout(resolve, 10));
await pool.close(5000);

const result: CaseResult = {
  spec,
  framesPerSecond: done / elapsed,
  cpuMsPerFrame: (cpu.user + cpu.system) / 1000 / done,
  coresBusy: (cpu.user + cpu.system) / 1e6 / elapsed,
  dropped,
};
process.send!(result);
