import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JpegSplitter } from '../src/ingest/jpeg-splitter.js';

/** A fake JPEG: SOI, body without FF D9, EOI. Body bytes may contain FF followed by anything but D9/D8. */
const jpeg = (body: number[]) => Buffer.from([0xff, 0xd8, ...body, 0xff, 0xd9]);
const bodyArb = fc.array(fc.integer({ min: 0, max: 0xfe }), { maxLength: 300 });

/**
 * Bytes with FF, D8 and D9 frequent, but never FF D8 or FF D9 together: those would be markers.
 * `size: 'max'` because fast-check's default keeps arrays to about ten items.
 */
const markerFreeArb = (maxLength: number) =>
  fc
    .array(
      fc.oneof(fc.constant(0xff), fc.constant(0xd8), fc.constant(0xd9), fc.integer({ min: 0, max: 0xff })),
      {
        maxLength,
        size: 'max',
      },
    )
    .map((bytes) =>
      bytes.map((b, i) => (i > 0 && bytes[i - 1] === 0xff && (b === 0xd8 || b === 0xd9) ? 0 : b)),
    );

/** Feeds `stream` to `s` cut at the given lengths (the rest in one last read). */
function pushInPieces(s: JpegSplitter, stream: Buffer, cuts: number[]): void {
  let pos = 0;
  for (const cut of cuts) {
    if (pos >= stream.length) break;
    s.push(stream.subarray(pos, pos + cut));
    pos += cut;
  }
  if (pos < stream.length) s.push(stream.subarray(pos));
}

function collect(maxFrameBytes?: number) {
  const frames: Buffer[] = [];
  const oversize: number[] = [];
  const splitter = new JpegSplitter((f) => frames.push(Buffer.from(f)), {
    maxFrameBytes,
    onOversize: (bytes) => oversize.push(bytes),
  });
  return { frames, oversize, splitter };
}

describe('JpegSplitter', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('splits concatenated frames and skips junk before a start marker', () => {
    const out: Buffer[] = [];
    const s = new JpegSplitter((f) => out.push(Buffer.from(f)));
    s.push(Buffer.concat([Buffer.from([1, 2, 3]), jpeg([10, 11]), jpeg([12])]));
    expect(out).toEqual([jpeg([10, 11]), jpeg([12])]);
    expect(s.discardedBytes).toBe(3);
  });

  it('handles markers split across reads', () => {
    const out: Buffer[] = [];
    const s = new JpegSplitter((f) => out.push(Buffer.from(f)));
    const all = Buffer.concat([jpeg([1, 2, 3]), jpeg([4])]);
    for (const b of all) s.push(Buffer.from([b]));
    expect(out).toEqual([jpeg([1, 2, 3]), jpeg([4])]);
  });

  it('drops a frame that grows past maxFrameBytes instead of buffering it, and reports it once', () => {
    const { frames, oversize, splitter } = collect(100);
    splitter.push(Buffer.from([0xff, 0xd8, ...new Array(60).fill(1)]));
    splitter.push(Buffer.from(new Array(60).fill(1)));
    splitter.push(Buffer.from(new Array(80).fill(1)));
    splitter.push(jpeg([7]));
    expect(frames).toEqual([jpeg([7])]);
    expect(splitter.discardedFrames).toBe(1);
    expect(oversize).toEqual([122]);
    expect(splitter.discardedBytes).toBe(202);
  });

  it('drops a complete frame over maxFrameBytes that arrives in one read', () => {
    const { frames, oversize, splitter } = collect(100);
    splitter.push(Buffer.concat([jpeg(new Array(200).fill(1)), jpeg([7])]));
    expect(frames).toEqual([jpeg([7])]);
    expect(oversize).toEqual([204]);
  });

  it('recovers every frame whatever the chunking (property)', () => {
    fc.assert(
      fc.property(
        fc.array(bodyArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 97 })),
        (bodies, cuts) => {
          const frames = bodies.map((b) => jpeg(b.map((x) => (x === 0xd8 || x === 0xd9 ? 0 : x))));
          const stream = Buffer.concat(frames);
          const out: Buffer[] = [];
          const s = new JpegSplitter((f) => out.push(Buffer.from(f)));
          pushInPieces(s, stream, cuts);
          expect(out).toEqual(frames);
        },
      ),
    );
  });

  it('any chunking gives exactly what one whole buffer gives: frames, junk and oversized discards (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(markerFreeArb(40), markerFreeArb(300)), { minLength: 1, maxLength: 6 }),
        markerFreeArb(40),
        // Mostly 1- and 2-byte reads, so markers land on every possible boundary.
        fc.array(fc.oneof(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 120 })), {
          maxLength: 400,
          size: 'max',
        }),
        (items, tail, cuts) => {
          const stream = Buffer.concat([
            ...items.flatMap(([junk, body]) => [Buffer.from(junk), jpeg(body)]),
            Buffer.from(tail),
          ]);
          const whole = collect(200);
          whole.splitter.push(stream);
          const pieces = collect(200);
          pushInPieces(pieces.splitter, stream, cuts);
          const bytewise = collect(200);
          pushInPieces(bytewise.splitter, stream, new Array(stream.length).fill(1));

          expect(whole.frames).toEqual(items.map(([, body]) => jpeg(body)).filter((f) => f.length <= 200));
          for (const run of [pieces, bytewise]) {
            expect(run.frames).toEqual(whole.frames);
            expect(run.splitter.discardedFrames).toBe(whole.splitter.discardedFrames);
            expect(run.oversize.length).toBe(run.splitter.discardedFrames);
            expect(run.splitter.discardedBytes).toBe(whole.splitter.discardedBytes);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('copies each frame once: a 16 MiB frame in 64 KiB reads costs 16 MiB of copying, not ~2 GiB', () => {
    // Deterministic cost measure: every byte the splitter copies goes through Buffer.concat.
    let copied = 0;
    const concat = Buffer.concat;
    vi.spyOn(Buffer, 'concat').mockImplementation((list, total) => {
      const out = concat(list, total);
      copied += out.length;
      return out;
    });
    const copiedFor = (frameBytes: number) => {
      copied = 0;
      const frame = Buffer.alloc(frameBytes, 0x11);
      frame.set([0xff, 0xd8]);
      frame.set([0xff, 0xd9], frameBytes - 2);
      const out: number[] = [];
      const s = new JpegSplitter((f) => out.push(f.length), { maxFrameBytes: 32 * 1024 * 1024 });
      for (let pos = 0; pos < frame.length; pos += 64 * 1024) s.push(frame.subarray(pos, pos + 64 * 1024));
      expect(out).toEqual([frameBytes]);
      return copied;
    };
    const MiB = 1024 * 1024;
    expect(copiedFor(MiB)).toBe(MiB);
    expect(copiedFor(16 * MiB)).toBe(16 * MiB);
  });
});
