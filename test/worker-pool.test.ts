import pino from 'pino';
import type { Piscina } from 'piscina';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../src/metrics/metrics.js';
import type { VadResultRecord } from '../src/pool/tasks.js';
import { WorkerPool } from '../src/pool/worker-pool.js';
import { resolveVadConfig } from '../src/vad/config.js';
import { decode } from '../src/wire/records.js';

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
