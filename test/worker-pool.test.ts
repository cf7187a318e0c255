import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { Piscina } from 'piscina';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hub } from '../src/hub/hub.js';
import { parseImageJobOptions } from '../src/image/job-options.js';
import { ImageJobs } from '../src/jobs/image-job.js';
import { JobStore } from '../src/jobs/job-store.js';
import { createMetrics } from '../src/metrics/metrics.js';
import type { ImageTask, VadResultRecord } from '../src/pool/tasks.js';
import { WorkerPool } from '../src/pool/worker-pool.js';
import { resolveVadConfig } from '../src/vad/config.js';
import { decode, type FrameRecord } from '../src/wire/records.js';
import { catchError, metricValue, noiseJpeg } from './helpers.js';

// The real pool and vad worker (from dist/: `npm run build` first). A worker that dies (OOM,
// a native crash, terminate) must hand its result ring back, or after one spare ring is used
// up no replacement worker can start and every later task waits forever.

let pool: WorkerPool;
const records: VadResultRecord[] = [];

beforeAll(() => {
  pool = new WorkerPool({
    threads: 1,
    ringBytes: 1 << 16,
    maxQueuedFrames: 4,
    log: pino({ level: 'silent' }),
    metrics: createMetrics(),
    onRecord: (bytes) => records.push(decode(bytes) as VadResultRecord),
  });
});
afterAll(async () => {
  await pool?.close();
});

const config = resolveVadConfig({ sampleRate: 16_000 });
const chunk = (n: number) =>
  pool.runVad({
    stream: `cam/x#${n}`,
    chunk: 0,
    samples: new Int16Array(16_000).buffer,
    format: 'i16',
    config,
    state: null,
  });

describe('worker pool', () => {
  it('keeps running tasks, results still arriving through a ring, after its only worker dies five times', async () => {
    // Worker death is not something a task can ask for, so the test reaches the piscina pool.
    const piscina = (pool as unknown as { image: Piscina }).image;
    for (let round = 0; round < 5; round++) {
      const result = await Promise.race([
        chunk(round),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`round ${round}: task hung`)), 5000),
        ),
      ]);
      expect(result.frames).toBe(50);
      await expect.poll(() => records.some((r) => r.stream === `cam/x#${round}`)).toBe(true);
      const [worker] = piscina.threads;
      await worker!.terminate();
    }
    const rings = pool.stats().rings;
    expect(rings).toHaveLength(2);
    expect(rings.reduce((n, r) => n + r.read, 0)).toBe(5);
  }, 40_000);
});

describe('worker pool priorities (2 threads: at most 1 job runs)', () => {
  // Jobs are test/support/priority-worker.mjs tasks held on their worker until the test opens
  // their gate, so which task waits for which is decided by the pool, not by timing.
  const holder = fileURLToPath(new URL('./support/priority-worker.mjs', import.meta.url));
  const frames: FrameRecord[] = [];
  const metrics = createMetrics();
  let two: WorkerPool;
  beforeAll(() => {
    two = new WorkerPool({
      threads: 2,
      ringBytes: 1 << 20,
      maxQueuedFrames: 4,
      log: pino({ level: 'silent' }),
      metrics,
      onRecord: (bytes) => frames.push(decode(bytes) as FrameRecord),
      queue: { maxPerTier: { low: 1 } },
    });
  });
  afterAll(async () => {
    await two?.close();
  });

  function heldJob(id: string, tier: 'normal' | 'low', signal?: AbortSignal) {
    const sab = new SharedArrayBuffer(4);
    let onStart!: () => void;
    const started = new Promise<void>((resolve) => {
      onStart = resolve;
    });
    const done = two.runJob<string>({ id, gate: sab }, tier, holder, [], { signal, onStart });
    const open = () => {
      Atomics.store(new Int32Array(sab), 0, 1);
      Atomics.notify(new Int32Array(sab), 0);
    };
    return { done, started, open };
  }

  let frameSeq = 0;
  async function frame(): Promise<ImageTask> {
    const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#246' } })
      .jpeg()
      .toBuffer();
    const owned = new ArrayBuffer(jpeg.byteLength);
    new Uint8Array(owned).set(jpeg);
    const seq = ++frameSeq;
    return {
      camera: 'cam',
      seq,
      ts: seq,
      width: 64,
      height: 48,
      maxPixels: 40e6,
      jpeg: owned,
      variants: ['raw'],
    };
  }

  it('puts a frame through while a job holds the only job slot and others wait; a full tier is a 429', async () => {
    const first = heldJob('first', 'normal');
    await first.started;
    const second = heldJob('second', 'low');
    expect(two.stats()).toMatchObject({ runningJobs: 1, maxRunningJobs: 1, queued: { normal: 0, low: 1 } });
    // The tier holds 1: a third low job is refused before it is queued, as the route refuses one.
    expect(two.canAcceptJob('low')).toBe(false);
    expect(catchError(() => two.runJob({ id: 'third' }, 'low', holder, []))).toMatchObject({
      code: 'RATE_LIMITED',
      status: 429,
      retryAfterSeconds: 1,
    });
    expect(
      metricValue(await metrics.registry.metrics(), 'framehub_limit_rejections_total{limit="pool_queue"}'),
    ).toBe(1);

    const task = await frame();
    expect(two.submitFrame(task)).toBe(true);
    await expect.poll(() => frames.some((f) => f.seq === task.seq), { timeout: 15_000 }).toBe(true);
    expect(two.stats()).toMatchObject({ runningJobs: 1, queued: { low: 1 } }); // the jobs never moved
    first.open();
    await second.started;
    second.open();
    await expect(Promise.all([first.done, second.done])).resolves.toEqual(['first', 'second']);
    const text = await metrics.registry.metrics();
    expect(metricValue(text, 'framehub_pool_queue_wait_seconds_count{tier="low"}')).toBe(1);
    expect(metricValue(text, 'framehub_pool_queue_wait_seconds_count{tier="high"}')).toBeGreaterThanOrEqual(
      1,
    );
  }, 30_000);

  it('stops a job: queued, it leaves unrun; running, its worker is told through the cancel port, and the pool goes on', async () => {
    const stopRunning = new AbortController();
    const stopQueued = new AbortController();
    const running = heldJob('running', 'normal', stopRunning.signal);
    await running.started;
    const queued = heldJob('queued', 'normal', stopQueued.signal);
    expect(two.stats().queued.normal).toBe(1);

    const cancelled = new Error('cancelled');
    stopQueued.abort(cancelled);
    await expect(queued.done).rejects.toBe(cancelled);
    expect(two.stats().queued.normal).toBe(0);

    const timedOut = new Error('timed out');
    stopRunning.abort(timedOut);
    await expect(running.done).rejects.toBe(timedOut);
    const text = await metrics.registry.metrics();
    expect(metricValue(text, 'framehub_pool_job_terminations_total')).toBe(1);
    // The job slot comes back once the task has ended; the same worker takes the next job.
    const next = heldJob('next', 'normal');
    await next.started;
    next.open();
    await expect(next.done).resolves.toBe('next');
    const task = await frame();
    two.submitFrame(task);
    await expect.poll(() => frames.some((f) => f.seq === task.seq), { timeout: 15_000 }).toBe(true);
    expect(two.stats().rings.filter((r) => r.read > 0).length).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('rejects, on close, a job still waiting for a slot rather than leaving it pending', async () => {
    const pool = new WorkerPool({
      threads: 1,
      ringBytes: 1 << 16,
      maxQueuedFrames: 4,
      log: pino({ level: 'silent' }),
      metrics: createMetrics(),
      onRecord: () => {},
    });
    const sab = new SharedArrayBuffer(4);
    let onStart!: () => void;
    const started = new Promise<void>((resolve) => {
      onStart = resolve;
    });
    const running = pool.runJob({ id: 'running', gate: sab }, 'normal', holder, [], { onStart });
    await started;
    const waiting = pool.runJob({ id: 'waiting' }, 'low', holder, []);
    const settled = Promise.allSettled([running, waiting]);
    await pool.close();
    expect((await settled).map((s) => s.status)).toEqual(['rejected', 'rejected']);
  }, 30_000);
});

describe('image jobs on the pool: the deadline runs from a worker taking the job', () => {
  it('fails a job running past jobs.imageTimeoutSeconds with JOB_TIMEOUT, keeps nothing, and never counts the wait', async () => {
    const metrics = createMetrics();
    const pool = new WorkerPool({
      threads: 1,
      ringBytes: 1 << 20,
      maxQueuedFrames: 4,
      log: pino({ level: 'silent' }),
      metrics,
      onRecord: () => {},
    });
    const resultsDir = mkdtempSync(join(tmpdir(), 'framehub-pool-deadline-'));
    const store = new JobStore(new Hub(new Set(), metrics), metrics, 60_000);
    const jobs = new ImageJobs({
      store,
      run: (task, control) => pool.runImageJob(task, control),
      resultsDir,
      workDir: join(resultsDir, 'work'),
      maxPixels: 40e6,
      timeoutSeconds: 10,
      onStoredBytes: () => {},
      log: pino({ level: 'silent' }),
    });
    try {
      await jobs.init();
      // Tens of seconds of AVIF encoding, then a small job queued behind it on the only thread:
      // it waits longer than the deadline and must still be done, since its deadline starts
      // when a worker takes it. The deadline is 10 s, wide on both sides: one 4000 px encode
      // of the slow job takes about 20 s on this 2-core box, and the quick job's worker first
      // starts a new job process (the slow one's was killed; about 0.5 s when quiet).
      const slow = await jobs.start(
        await noiseJpeg(4000, 3000, 90),
        parseImageJobOptions(new URLSearchParams('format=avif&widths=4000,3000,2000&quality=90')),
      );
      const quick = await jobs.start(
        await noiseJpeg(320, 240),
        parseImageJobOptions(new URLSearchParams('format=jpeg&widths=100')),
      );
      const ended = () => ['done', 'failed', 'cancelled'].includes(store.get(quick.id)?.state ?? '');
      await expect.poll(ended, { timeout: 60_000 }).toBe(true);
      expect(store.get(quick.id)?.state).toBe('done');
      expect(store.get(slow.id)).toMatchObject({ state: 'failed', error: { code: 'JOB_TIMEOUT' } });
      expect(existsSync(join(resultsDir, slow.id))).toBe(false);
      expect(metricValue(await metrics.registry.metrics(), 'framehub_pool_job_terminations_total')).toBe(1);
    } finally {
      await pool.close();
      rmSync(resultsDir, { recursive: true, force: true });
    }
  }, 90_000);
});
