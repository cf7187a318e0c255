import pino from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cameraSchema } from '../src/config/schema.js';
import { FrameIngest } from '../src/ingest/frame-ingest.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { WorkerPool } from '../src/pool/worker-pool.js';
import { get, metricValue, pack, type RunningDaemon, rssBytes, startDaemon, Viewer } from './helpers.js';
import { craftJpeg } from './jpeg-craft.js';

// Finding 2 of issue #8: a ~500-byte progressive JPEG claiming 16383×16383 made libjpeg
// allocate (and zero) a whole-image coefficient buffer, 1.7 GB at 4:4:4, in a worker; and a
// header sharp refused still had its `raw` relayed with the claimed size. Pushed frames are now
// checked on the main thread before a worker sees them, and the worker re-reads the header
// with libjpeg before relaying anything.

const MB = 1024 * 1024;
let daemon: RunningDaemon;
let publisher: Viewer;
let viewer: Viewer;
// A plausible capture time (the daemon replaces an implausible ts with the arrival time), counted up.
let nextTs = Date.now();

/** Sends a frame to the push camera and returns the ts that identifies it at the viewer. */
const push = (data: Uint8Array): number => {
  const ts = nextTs++;
  publisher.ws.send(pack({ type: 'frame', camera: 'edge', ts, data }));
  return ts;
};
const framesWith = (pred: (r: Record<string, unknown>) => boolean) => viewer.of('frame').filter(pred);
const dropped = async (reason: string) =>
  metricValue(
    (await get(`${daemon.url}/metrics`)).text,
    `framehub_frames_dropped_total{reason="${reason}"}`,
  ) ?? 0;

/** A small valid JPEG, pushed after a hostile frame: frames of one camera are handled in order,
 *  so once it reaches the viewer anything the hostile frame could have produced has too. */
let sentinel: Buffer;
const pushSentinel = async (timeoutMs = 30_000) => {
  const ts = push(sentinel);
  await viewer.until((rs) => rs.some((r) => r.topic === 'cam/edge/raw' && r.ts === ts), timeoutMs);
};

/** Peak RSS of the daemon while `during` runs, sampled every 20 ms. */
async function peakRssDuring(during: () => Promise<void>): Promise<{ before: number; peak: number }> {
  const pid = daemon.proc.pid!;
  const before = rssBytes(pid);
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid));
  }, 20);
  try {
    await during();
  } finally {
    clearInterval(timer);
  }
  return { before, peak: Math.max(peak, rssBytes(pid)) };
}

beforeAll(async () => {
  sentinel = await sharp({ create: { width: 328, height: 200, channels: 3, background: '#3a6' } })
    .jpeg()
    .toBuffer();
  // One worker: the hostile frame and the sentinel behind it run in order on the old code too.
  daemon = await startDaemon({ cameras: [{ id: 'edge', source: 'push', fps: 5 }], pool: { threads: 1 } });
  publisher = new Viewer(`${daemon.url.replace(/^http/, 'ws')}/publish`);
  viewer = new Viewer(`${daemon.wsUrl}?topics=cam/edge/raw,cam/edge/low`);
  await Promise.all([publisher.opened, viewer.opened]);
});

afterAll(async () => {
  publisher?.close();
  viewer?.close();
  if (!daemon) return;
  // Finding 12: after bombs the old daemon could ignore SIGTERM; never let that hang the suite.
  const killer = setTimeout(() => daemon.proc.kill('SIGKILL'), 15_000);
  await daemon.stop();
  clearTimeout(killer);
});

describe('pushed frames are checked before any decode', () => {
  it('relays a valid pushed JPEG at its own size, raw and resized', async () => {
    const ts = push(sentinel);
    await viewer.until((rs) => rs.filter((r) => r.ts === ts).length === 2, 15_000);
    const [raw] = framesWith((r) => r.ts === ts && r.topic === 'cam/edge/raw');
    const [low] = framesWith((r) => r.ts === ts && r.topic === 'cam/edge/low');
    expect(raw).toMatchObject({ width: 328, height: 200, mime: 'image/jpeg' });
    expect(Buffer.from(raw!.data as Uint8Array).equals(sentinel)).toBe(true);
    expect(low).toMatchObject({ width: 320, height: 195 });
  });

  it('refuses a 500-byte progressive 16383×16383 bomb: counted, never relayed, RSS bounded', async () => {
    const bomb = craftJpeg({ width: 16383, height: 16383, progressive: true, sampling: '444' });
    expect(bomb.length).toBeLessThan(600);
    const refusedBefore = await dropped('refused');
    let bombTs = 0;
    const rss = await peakRssDuring(async () => {
      bombTs = push(bomb);
      await pushSentinel(60_000);
    });
    const growthMb = (rss.peak - rss.before) / MB;
    // Soft: on the old code all three fail, and the report should show each number.
    expect.soft(framesWith((r) => r.ts === bombTs || r.width === 16383)).toHaveLength(0);
    expect.soft(growthMb, `RSS grew ${growthMb.toFixed(0)} MB`).toBeLessThan(200);
    expect.soft(await dropped('refused')).toBeGreaterThan(refusedBefore);
  }, 90_000);

  it('refuses a baseline header claiming 60000×60000 before the worker: no raw with the claimed size', async () => {
    const refusedBefore = await dropped('refused');
    const workerErrorsBefore = await dropped('worker_error');
    const ts = push(craftJpeg({ width: 60000, height: 60000 }));
    await pushSentinel();
    expect.soft(framesWith((r) => r.ts === ts || r.width === 60000)).toHaveLength(0);
    expect.soft(await dropped('refused')).toBeGreaterThan(refusedBefore);
    // Refused on the main thread: the worker never saw it fail.
    expect.soft(await dropped('worker_error')).toBe(workerErrorsBefore);
  });

  it('refuses bytes that start like a JPEG but have no start-of-frame', async () => {
    const refusedBefore = await dropped('refused');
    const noSof = Buffer.concat([
      Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0, 0]),
      Buffer.alloc(64, 7),
    ]);
    const ts = push(noSof);
    await pushSentinel();
    expect(framesWith((r) => r.ts === ts)).toHaveLength(0);
    expect(await dropped('refused')).toBeGreaterThan(refusedBefore);
  });

  it('drops a frame whose header libjpeg itself refuses, counted corrupt, with no raw relayed', async () => {
    // Sampling factors of 0: our header parser reads a plausible 320×180, libjpeg does not.
    const corruptBefore = await dropped('corrupt');
    const ts = push(craftJpeg({ width: 320, height: 180, lumaSamplingByte: 0x00 }));
    // Nothing is pushed until the worker has judged it: a frame pushed behind it would replace
    // it in the camera's queue (latest wins), and it would be counted superseded instead.
    await expect.poll(() => dropped('corrupt'), { timeout: 30_000 }).toBeGreaterThan(corruptBefore);
    await pushSentinel();
    expect(framesWith((r) => r.ts === ts)).toHaveLength(0);
  });
});

describe('FrameIngest.submit', () => {
  // What /publish answers a refused frame with: the verdict, before any worker is involved.
  let pool: WorkerPool;
  const metrics = createMetrics();
  const log = pino({ level: 'silent' });
  beforeAll(() => {
    pool = new WorkerPool({
      threads: 1,
      ringBytes: 1 << 20,
      maxQueuedFrames: 4,
      log,
      metrics,
      onRecord: () => {},
    });
  });
  afterAll(async () => {
    await pool?.close();
  });

  it('answers each refused frame with a code and accepts a valid one', async () => {
    const cam = cameraSchema.parse({ id: 'edge', source: 'push' });
    const ingest = new FrameIngest(pool, () => false, { maxPixels: 40e6, metrics, log });
    const verdict = (jpeg: Uint8Array) => ingest.submit(cam, jpeg, Date.now());
    expect(verdict(craftJpeg({ width: 60000, height: 60000 }))).toMatchObject({
      ok: false,
      code: 'IMAGE_TOO_LARGE',
    });
    expect(verdict(craftJpeg({ width: 640, height: 360, progressive: true }))).toMatchObject({
      ok: false,
      code: 'BAD_MESSAGE',
    });
    // Baseline, but its first scan holds one component of three: libjpeg buffers the whole image.
    expect(verdict(craftJpeg({ width: 640, height: 360, scanComponents: 1 }))).toMatchObject({
      ok: false,
      code: 'BAD_MESSAGE',
    });
    expect(verdict(Buffer.from([0xff, 0xd8, 0xff, 0xd9]))).toMatchObject({
      ok: false,
      code: 'CORRUPT_IMAGE',
    });
    expect(verdict(sentinel)).toEqual({ ok: true });
    const text = await metrics.registry.metrics();
    expect(metricValue(text, 'framehub_frames_dropped_total{reason="refused"}')).toBe(4);
  });
});
