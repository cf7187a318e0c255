import fc from 'fast-check';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ImageHeader, readImageHeader } from '../../src/image/image-header.js';
import { JpegSplitter } from '../../src/ingest/jpeg-splitter.js';
import { CLIENT_MAX_DEPTH, decodeUntrusted, encode } from '../../src/wire/records.js';
import { reliability } from '../support/reliability.js';
import { fileBudget } from './budget.js';
import {
  deepNesting,
  extBytes,
  hex,
  hostileValue,
  hugeDeclaredLength,
  invalidUtf8Str,
  packHostile,
  rawBytes,
  recordOf,
} from './hostile-msgpack.js';

/**
 * The byte parsers that see outside bytes before anything else does, in-process: the image
 * header reader (publisher frames), the MJPEG splitter (camera ffmpeg output), and the msgpack
 * decoder for client records. Each must answer for any bytes, in time and memory bounded by
 * the input, and never throw anything but its documented refusal.
 */
const rel = reliability('fuzz-bytes');
const budget = fileBudget(4);

/** The header reader under test: format, size and layout from the first bytes, or undefined. */
const headerOf = (bytes: Uint8Array) => readImageHeader(bytes);

interface Sample {
  name: string;
  format: 'jpeg' | 'png';
  progressive: boolean;
  bytes: Uint8Array;
  width: number;
  height: number;
}
const samples: Sample[] = [];

beforeAll(async () => {
  const noise = (w: number, h: number, ch: 3 | 4) => {
    const px = Buffer.alloc(w * h * ch);
    for (let i = 0; i < px.length; i++) px[i] = (i * 7919) % 251;
    return sharp(px, { raw: { width: w, height: h, channels: ch } });
  };
  const make = async (
    name: string,
    w: number,
    h: number,
    progressive: boolean,
    img: ReturnType<typeof noise>,
  ) => {
    const bytes = new Uint8Array(await img.toBuffer());
    samples.push({
      name,
      format: bytes[0] === 0xff ? 'jpeg' : 'png',
      progressive,
      bytes,
      width: w,
      height: h,
    });
  };
  await make('baseline jpeg', 64, 48, false, noise(64, 48, 3).jpeg({ quality: 60 }));
  await make('progressive jpeg', 40, 30, true, noise(40, 30, 3).jpeg({ progressive: true }));
  await make(
    '4:4:4 jpeg with exif',
    33,
    17,
    false,
    noise(33, 17, 3).withMetadata().jpeg({ chromaSubsampling: '4:4:4' }),
  );
  await make('png', 64, 48, false, noise(64, 48, 3).png());
  await make('interlaced png with alpha', 20, 300, true, noise(20, 300, 4).png({ progressive: true }));
});

/** A sample cut short, with bytes changed in its header, or with a hostile SOF spliced in. */
const imageInput = fc.oneof(
  fc.record({ kind: fc.constant('random'), bytes: fc.uint8Array({ maxLength: 400 }) }),
  fc.record({
    kind: fc.constant('random after SOI'),
    bytes: fc.uint8Array({ maxLength: 400 }).map((b) => Uint8Array.from([0xff, 0xd8, ...b])),
  }),
  fc.record({
    kind: fc.constant('truncated'),
    sample: fc.nat(4),
    cut: fc.double({ min: 0, max: 1, noNaN: true }),
  }),
  fc.record({
    kind: fc.constant('mutated header'),
    sample: fc.nat(4),
    edits: fc.array(fc.tuple(fc.nat(700), fc.nat(255)), { minLength: 1, maxLength: 8 }),
  }),
  fc.record({
    kind: fc.constant('forged segments'),
    segments: fc.array(
      fc.tuple(fc.integer({ min: 0xc0, max: 0xfe }), fc.nat(0xffff), fc.uint8Array({ maxLength: 12 })),
      {
        maxLength: 6,
      },
    ),
  }),
);

function bytesOf(input: {
  kind: string;
  bytes?: Uint8Array;
  sample?: number;
  cut?: number;
  edits?: [number, number][];
  segments?: [number, number, Uint8Array][];
}): { bytes: Uint8Array; sample?: Sample } {
  if (input.bytes) return { bytes: input.bytes };
  if (input.segments) {
    const parts = [Buffer.from([0xff, 0xd8])];
    for (const [marker, length, body] of input.segments)
      parts.push(Buffer.from([0xff, marker, length >> 8, length & 0xff]), Buffer.from(body));
    return { bytes: new Uint8Array(Buffer.concat(parts)) };
  }
  const sample = samples[input.sample!]!;
  if (input.cut !== undefined)
    return { bytes: sample.bytes.subarray(0, Math.floor(sample.bytes.length * input.cut)), sample };
  const bytes = Uint8Array.from(sample.bytes);
  for (const [at, value] of input.edits!) if (at < bytes.length) bytes[at] = value;
  return { bytes };
}

const expected = (s: Sample) => ({
  format: s.format,
  width: s.width,
  height: s.height,
  progressive: s.progressive,
});

describe('image header parsing', () => {
  it(
    'reads exact sizes from real images and undefined or sane sizes from random, truncated and mutated ones',
    () => {
      const cls = 'image header parser (in-process): random, truncated, mutated, forged';
      for (const s of samples) expect(headerOf(s.bytes), s.name).toMatchObject(expected(s));
      fc.assert(
        fc.property(imageInput, (input) => {
          const { bytes, sample } = bytesOf(input);
          let size: ImageHeader | undefined;
          const started = performance.now();
          try {
            size = headerOf(bytes);
          } catch (err) {
            rel.record(cls, `threw ${(err as Error)?.constructor?.name} (WRONG)`);
            throw new Error(`header parser threw on ${hex(bytes)}: ${err}`);
          }
          rel.record(cls, size ? `${size.format} header` : 'undefined');
          expect(performance.now() - started).toBeLessThan(50);
          if (!size) return;
          const max = size.format === 'jpeg' ? 0xffff : 0x7fffffff;
          for (const n of [size.width, size.height])
            expect(Number.isInteger(n) && n >= 1 && n <= max).toBe(true);
          if (size.progressive) expect(size.buffersWholeImage).toBe(true);
          // A cut-short real image is read exactly or not at all.
          if (sample) expect(size).toMatchObject(expected(sample));
        }),
        budget.params(0, 0x1ead, 3000, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );
});

describe('MJPEG splitter', () => {
  /** Bytes dense in 0xFF, D8, D9 and 00, so markers (and markers split across reads) are common. */
  const markerByte = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(0xff, 0xd8, 0xd9, 0x00) },
    { weight: 1, arbitrary: fc.nat(255) },
  );
  const stream = fc.array(
    fc.array(markerByte, { maxLength: 300 }).map((b) => Buffer.from(b)),
    { maxLength: 40 },
  );

  it(
    'never throws, emits only whole SOI..EOI frames within the limit, holds at most the limit, and accounts for every byte',
    () => {
      const cls = 'MJPEG splitter (in-process): random reads, 64..4096-byte limit';
      fc.assert(
        fc.property(stream, fc.integer({ min: 64, max: 4096 }), (chunks, max) => {
          const frames: Buffer[] = [];
          const splitter = new JpegSplitter((f) => frames.push(f), { maxFrameBytes: max });
          const held = () => (splitter as unknown as { partsBytes: number }).partsBytes;
          let fed = 0;
          for (const c of chunks) {
            try {
              splitter.push(c);
            } catch (err) {
              rel.record(cls, `threw ${(err as Error)?.constructor?.name} (WRONG)`);
              throw err;
            }
            fed += c.length;
            expect(held()).toBeLessThanOrEqual(max);
          }
          rel.record(cls, frames.length ? 'frames' : 'no frame');
          for (const f of frames) {
            expect(f.length).toBeLessThanOrEqual(max);
            expect([f[0], f[1], f[f.length - 2], f[f.length - 1]]).toEqual([0xff, 0xd8, 0xff, 0xd9]);
          }
          const inFrame = (splitter as unknown as { inFrame: boolean }).inFrame;
          const lastWasFF = (splitter as unknown as { lastWasFF: boolean }).lastWasFF;
          // A trailing 0xFF while hunting is counted by the next read, once it is known not to start a frame.
          const pending = held() + (!inFrame && lastWasFF ? 1 : 0);
          const emitted = frames.reduce((n, f) => n + f.length, 0);
          expect(emitted + splitter.discardedBytes + pending).toBe(fed);
        }),
        budget.params(1, 0x5b1, 2000, { shrink: true }),
      );
      // Under the limit, where a read boundary falls must not change which frames come out.
      fc.assert(
        fc.property(stream, fc.array(fc.nat(), { maxLength: 10 }), (chunks, cuts) => {
          const whole = Buffer.concat(chunks);
          const once: Buffer[] = [];
          new JpegSplitter((f) => once.push(f)).push(whole);
          const pieces: Buffer[] = [];
          const splitter = new JpegSplitter((f) => pieces.push(f));
          const at = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b);
          let from = 0;
          for (const to of [...at, whole.length]) {
            splitter.push(whole.subarray(from, to));
            from = to;
          }
          expect(pieces).toEqual(once);
        }),
        budget.params(2, 0x5b2, 1000, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );
});

describe('client msgpack decoding', () => {
  /** True when `v` holds only what plain msgpack maps to: no BigInt, Date, Set, Map, class instance. */
  function plainValue(v: unknown, depth: number): boolean {
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return true;
    if (typeof v === 'number') return true;
    if (v instanceof Uint8Array) return true;
    const items = Array.isArray(v)
      ? v
      : typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype
        ? Object.values(v as object)
        : undefined;
    if (!items) return false;
    // An empty container holds nothing to recurse into, so the limit counts the ones with items.
    if (items.length > 0 && depth > CLIENT_MAX_DEPTH) return false;
    return items.every((x) => plainValue(x, depth + 1));
  }
  const clientBytes = fc.oneof(
    rawBytes,
    hostileValue.map(packHostile),
    extBytes,
    invalidUtf8Str,
    hugeDeclaredLength,
    deepNesting,
    recordOf('ping', { id: hostileValue }),
    recordOf('sub', { topics: fc.array(hostileValue, { maxLength: 4 }) }),
  );

  it(
    'decodeUntrusted answers a plain value that re-encodes, or throws an Error with a message, for any bytes',
    () => {
      const cls = 'decodeUntrusted (in-process): random bytes, every extension, deep, huge lengths';
      fc.assert(
        fc.property(clientBytes, (bytes) => {
          let value: unknown;
          const started = performance.now();
          try {
            value = decodeUntrusted(bytes);
          } catch (err) {
            const isError = err instanceof Error && err.message.length > 0 && !(err instanceof RangeError);
            rel.record(cls, isError ? 'refused' : `threw ${(err as Error)?.constructor?.name} (WRONG)`);
            if (!isError) throw new Error(`decodeUntrusted(${hex(bytes)}) threw ${err}`);
            return;
          }
          rel.record(cls, 'decoded');
          expect(performance.now() - started).toBeLessThan(100);
          expect(plainValue(value, 1), `decodeUntrusted(${hex(bytes)}) gave a non-plain value`).toBe(true);
          expect(() => encode(value)).not.toThrow();
        }),
        budget.params(3, 0xdec0de, 3000, { shrink: true }),
      );
    },
    budget.timeoutMs,
  );
});
