import pino from 'pino';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { cameraSchema } from '../src/config/schema.js';
import { annotationSvg, captureTimeText, overlayLayout } from '../src/image/annotation.js';
import { makeVariants, type VariantSource } from '../src/image/variants.js';
import { FrameIngest } from '../src/ingest/frame-ingest.js';
import { createMetrics } from '../src/metrics/metrics.js';
import type { ImageTask } from '../src/pool/tasks.js';
import type { WorkerPool } from '../src/pool/worker-pool.js';

/**
 * The `annotated` camera variant: `medium` with the camera's name, the capture time and a
 * speech indicator composited on it, made only for frames someone watches it on.
 */

const TS = Date.UTC(2024, 4, 1, 12, 34, 56, 789);

/** A 960×540 colour gradient: wider than medium, so both variants come from a resize. */
async function gradientSource(): Promise<VariantSource> {
  const width = 960;
  const height = 540;
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      px[i] = (60 + (x * 120) / width) | 0;
      px[i + 1] = (160 + (y * 60) / height) | 0;
      px[i + 2] = 200;
    }
  const jpeg = await sharp(px, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
  return { jpeg, width, height, maxPixels: 40e6 };
}

async function pixels(jpeg: Uint8Array) {
  const { data, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
  /** Mean absolute difference over rows [y0, y1) against another image of the same size. */
  const diff = (other: Buffer, y0: number, y1: number) => {
    let sum = 0;
    const from = y0 * info.width * info.channels;
    const to = y1 * info.width * info.channels;
    for (let i = from; i < to; i++) sum += Math.abs(data[i]! - other[i]!);
    return sum / (to - from);
  };
  const at = (x: number, y: number) => [
    ...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3),
  ];
  return { data, info, diff, at };
}

describe('annotation overlay', () => {
  it('escapes the camera name and still renders', async () => {
    const svg = annotationSvg({ label: 'Door <script>&"\'\u0001', ts: TS, speech: false }, 640, 360);
    expect(svg).toContain('Door &lt;script&gt;&amp;&quot;&apos; </text>');
    expect(svg).not.toContain('<script');
    // librsvg parses it: one stray character would make it refuse the whole overlay.
    expect(await sharp(Buffer.from(svg)).metadata()).toMatchObject({
      format: 'svg',
      width: 640,
      height: 360,
    });
  });

  it('writes the capture time in UTC, and says so when the time is outside Date', () => {
    expect(captureTimeText(TS)).toBe('2024-05-01 12:34:56 UTC');
    expect(captureTimeText(2 ** 53 - 1)).toBe('time unknown');
  });
});

describe('annotated variant', () => {
  it('is medium with the overlay: a 640 px JPEG that differs in the bands only', async () => {
    const source = await gradientSource();
    const annotation = { label: 'Front door', ts: TS, speech: false };
    const [medium, annotated] = await makeVariants(source, ['medium', 'annotated'], { annotation });
    expect(annotated).toMatchObject({ variant: 'annotated', width: 640, height: 360 });
    expect(await sharp(annotated!.data).metadata()).toMatchObject({
      format: 'jpeg',
      width: 640,
      height: 360,
    });
    // Sharing the decode leaves medium exactly what it is when made alone.
    const [alone] = await makeVariants(source, ['medium']);
    expect(Buffer.compare(medium!.data, alone!.data)).toBe(0);

    const a = await pixels(annotated!.data);
    const m = await pixels(medium!.data);
    const { band } = overlayLayout(640, 360);
    expect(a.diff(m.data, 0, band)).toBeGreaterThan(30); // the top band darkens the frame
    expect(a.diff(m.data, 360 - band, 360)).toBeGreaterThan(30);
    // Away from the bands (past the 16 px JPEG blocks that touch them) nothing changed.
    expect(a.diff(m.data, band + 16, 360 - band - 16)).toBeLessThan(0.5);
  });

  it('draws the speech indicator only while the camera speaks', async () => {
    const source = await gradientSource();
    const { dot } = overlayLayout(640, 360);
    const centre = async (speech: boolean) => {
      const [img] = await makeVariants(source, ['annotated'], { annotation: { label: 'x', ts: TS, speech } });
      return (await pixels(img!.data)).at(dot.cx, dot.cy);
    };
    const [r, g, b] = await centre(true);
    expect(r).toBeGreaterThan(180);
    expect(Math.max(g!, b!)).toBeLessThan(90);
    const [r0] = await centre(false);
    expect(r0).toBeLessThan(120); // the band's darkened gradient, no red
  });
});

describe('annotated on demand', () => {
  /** The frames FrameIngest hands the pool (the pool itself is not under test). */
  const ingestWith = (demand: Set<string>, speaking: boolean) => {
    const tasks: ImageTask[] = [];
    const pool = { submitFrame: (task: ImageTask) => tasks.push(task) } as unknown as WorkerPool;
    const ingest = new FrameIngest(pool, (topic) => demand.has(topic), {
      maxPixels: 40e6,
      metrics: createMetrics(),
      log: pino({ level: 'silent' }),
      speechOf: () => speaking,
    });
    return { tasks, ingest };
  };

  it('is never part of the once-a-second refresh, and goes out with its label and speech state', async () => {
    const { jpeg } = await gradientSource();
    const cam = cameraSchema.parse({ id: 'door', source: 'push', fps: 2 });
    const demand = new Set<string>();
    const { tasks, ingest } = ingestWith(demand, true);
    for (let i = 0; i < 4; i++) ingest.submit(cam, jpeg, TS + i);
    // Frames 1 and 3 refresh every variant nobody watches: all but annotated.
    expect(tasks.map((t) => t.variants)).toEqual([
      ['raw', 'low', 'medium', 'high'],
      ['raw'],
      ['raw', 'low', 'medium', 'high'],
      ['raw'],
    ]);
    expect(tasks.every((t) => t.annotation === undefined)).toBe(true);

    demand.add('cam/door/annotated');
    ingest.submit(cam, jpeg, TS + 4);
    ingest.submit(Object.assign(cam, { name: 'Front <door>' }), jpeg, TS + 5);
    expect(tasks.slice(4).map((t) => [t.variants, t.annotation])).toEqual([
      [['raw', 'low', 'medium', 'high', 'annotated'], { label: 'door', speech: true }],
      [['raw', 'annotated'], { label: 'Front <door>', speech: true }],
    ]);
  });
});
