import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JpegSplitter } from '../src/ingest/jpeg-splitter.js';

/** A fake JPEG: SOI, body without FF D9, EOI. Body bytes may contain FF followed by anything but D9/D8. */
const jpeg = (body: number[]) => Buffer.from([0xff, 0xd8, ...body, 0xff, 0xd9]);
const bodyArb = fc.array(fc.integer({ min: 0, max: 0xfe }), { maxLength: 300 });

describe('JpegSplitter', () => {
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

  it('drops a frame that grows past maxFrameBytes instead of buffering it', () => {
    const out: Buffer[] = [];
    const s = new JpegSplitter((f) => out.push(Buffer.from(f)), 100);
    s.push(Buffer.from([0xff, 0xd8, ...new Array(200).fill(1)]));
    s.push(jpeg([7]));
    expect(out).toEqual([jpeg([7])]);
    expect(s.discardedBytes).toBeGreaterThanOrEqual(202);
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
          let pos = 0;
          for (const cut of cuts) {
            if (pos >= stream.length) break;
            s.push(stream.subarray(pos, pos + cut));
            pos += cut;
          }
          if (pos < stream.length) s.push(stream.subarray(pos));
          expect(out).toEqual(frames);
        },
      ),
    );
  });
});
