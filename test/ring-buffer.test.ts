import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRing, RingReader, RingWriter, startDraining } from '../src/pool/ring-buffer.js';
import { HEADER_BYTES, W } from '../src/pool/ring-layout.js';

/** A payload whose bytes encode its sequence number, so order and content can be checked. */
function payload(seq: number, length: number, shift = 0): Uint8Array {
  // `shift` places the view off 8-byte alignment, as a slice of a bigger buffer would be.
  const out = new Uint8Array(new ArrayBuffer(length + shift), shift, length);
  for (let i = 0; i < length; i++) out[i] = (seq * 7 + i * 13) & 0xff;
  return out;
}

function drainAll(reader: RingReader): Uint8Array[] {
  const out: Uint8Array[] = [];
  reader.drain((r) => out.push(r));
  return out;
}

function ring(capacity: number) {
  const sab = createRing(capacity);
  return { sab, writer: new RingWriter(sab), reader: new RingReader(sab) };
}

describe('ring buffer', () => {
  it('rounds capacity up to a multiple of 8 and rejects nonsense', () => {
    const { writer, reader } = ring(61);
    expect(reader.stats().capacity).toBe(64);
    expect(writer.maxRecordBytes).toBe(56);
    expect(() => createRing(8)).toThrow(RangeError);
    expect(() => createRing(1.5 * 64)).not.toThrow();
    expect(() => new RingReader(new SharedArrayBuffer(HEADER_BYTES + 64))).toThrow(TypeError);
  });

  it('carries an empty payload as an 8-byte record', () => {
    const { writer, reader } = ring(64);
    expect(writer.write(new Uint8Array(0), 0)).toBe(true);
    expect(reader.stats().usedBytes).toBe(8);
    const got = drainAll(reader);
    expect(got.map((r) => r.length)).toEqual([0]);
    expect(reader.stats()).toMatchObject({ usedBytes: 0, written: 1, read: 1 });
  });

  it('returns private, 8-aligned copies that outlive the ring space', () => {
    const { sab, writer, reader } = ring(4096);
    writer.write(payload(1, 13), 0);
    writer.write(payload(2, 2000, 3), 0);
    const got = drainAll(reader);
    new Uint8Array(sab).fill(0xee, HEADER_BYTES);
    expect(got).toEqual([payload(1, 13), payload(2, 2000)]);
    for (const r of got) {
      expect(r.buffer).toBeInstanceOf(ArrayBuffer);
      expect(r.byteOffset % 8).toBe(0);
    }
  });

  it('wraps around, skipping a tail too short for the next record', () => {
    const { writer, reader } = ring(64);
    // Two 24-byte records reach offset 48; a third needs 24 but only 16 remain.
    expect(writer.write(payload(0, 16), 0)).toBe(true);
    expect(writer.write(payload(1, 13), 0)).toBe(true);
    expect(drainAll(reader)).toEqual([payload(0, 16), payload(1, 13)]);
    expect(writer.write(payload(2, 16), 0)).toBe(true);
    expect(reader.stats().usedBytes).toBe(16 + 24); // skipped tail + record at offset 0
    expect(writer.write(payload(3, 8), 0)).toBe(true);
    expect(drainAll(reader)).toEqual([payload(2, 16), payload(3, 8)]);
    expect(reader.stats()).toMatchObject({ usedBytes: 0, written: 4, read: 4, drops: 0, fullEvents: 0 });
  });

  it('wraps without a marker when a record ends exactly at the end', () => {
    const { writer, reader } = ring(64);
    expect(writer.write(payload(0, 24), 0)).toBe(true); // 32 bytes
    expect(drainAll(reader)).toHaveLength(1);
    expect(writer.write(payload(1, 24), 0)).toBe(true); // 32 bytes, ends at 64
    expect(writer.write(payload(2, 24), 0)).toBe(true); // 32 bytes at offset 0
    expect(reader.stats().usedBytes).toBe(64);
    expect(drainAll(reader)).toEqual([payload(1, 24), payload(2, 24)]);
  });

  it('fills the ring to the last byte, refuses until drained, then accepts', () => {
    const { writer, reader } = ring(64);
    expect(writer.write(payload(0, 56), 0)).toBe(true);
    expect(reader.stats().usedBytes).toBe(64);
    expect(writer.write(new Uint8Array(0), 0)).toBe(false);
    expect(writer.write(payload(1, 1), 0)).toBe(false);
    expect(reader.stats()).toMatchObject({ written: 1, fullEvents: 2, drops: 2 });
    expect(drainAll(reader)).toEqual([payload(0, 56)]);
    expect(writer.write(payload(2, 56), 0)).toBe(true);
    expect(drainAll(reader)).toEqual([payload(2, 56)]);
  });

  it('a maximum record at a non-zero offset waits for the reader to pass the wrap marker', () => {
    const { writer, reader } = ring(64);
    writer.write(payload(0, 16), 0);
    drainAll(reader); // empty, but head and tail sit at offset 24
    expect(writer.write(payload(1, 56), 0)).toBe(false); // marker written, 64 not yet free
    expect(reader.stats()).toMatchObject({ usedBytes: 40, fullEvents: 1, drops: 1 });
    expect(reader.drain(() => {})).toBe(0); // consumes only the marker
    expect(writer.write(payload(1, 56), 0)).toBe(true);
    expect(drainAll(reader)).toEqual([payload(1, 56)]);
  });

  it('throws RECORD_TOO_LARGE for a record that could never fit, writing nothing', () => {
    const { writer, reader } = ring(64);
    expect(() => writer.write(new Uint8Array(57), 0)).toThrow(
      expect.objectContaining({ code: 'RECORD_TOO_LARGE' }),
    );
    expect(() => writer.write(new Uint8Array(1000))).toThrow(
      expect.objectContaining({ code: 'RECORD_TOO_LARGE' }),
    );
    expect(reader.stats()).toMatchObject({ usedBytes: 0, written: 0, fullEvents: 0, drops: 0 });
  });

  it('gives up on a full ring after the timeout and counts the drop', () => {
    const { writer, reader } = ring(64);
    writer.write(payload(0, 40), 0);
    const started = performance.now();
    expect(writer.write(payload(1, 40), 30)).toBe(false);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    expect(reader.stats()).toMatchObject({ written: 1, fullEvents: 1, drops: 1 });
    expect(drainAll(reader)).toEqual([payload(0, 40)]);
  });

  it('widens the uint32 shared counters past 2^32', () => {
    const sab = createRing(64);
    const header = new Int32Array(sab, 0, HEADER_BYTES >> 2);
    header[W.DROPS] = -2; // 2^32 - 2
    header[W.FULL_EVENTS] = -1;
    header[W.WRITTEN] = -1;
    header[W.READ] = -1;
    const writer = new RingWriter(sab);
    const reader = new RingReader(sab);
    writer.write(payload(0, 56), 0);
    for (let i = 0; i < 3; i++) expect(writer.write(payload(1, 8), 0)).toBe(false);
    expect(reader.stats()).toMatchObject({ written: 2 ** 32, drops: 2 ** 32 + 1, fullEvents: 2 ** 32 + 2 });
    drainAll(reader);
    writer.write(payload(2, 8), 0);
    expect(reader.stats()).toMatchObject({ written: 2 ** 32 + 1, read: 2 ** 32 });
  });

  it('consumes a record whose handler threw; the next drain goes on after it', () => {
    const { writer, reader } = ring(256);
    for (let i = 0; i < 3; i++) writer.write(payload(i, 10), 0);
    const seen: number[] = [];
    const onRecord = (r: Uint8Array) => {
      seen.push(r[0]!);
      if (seen.length === 1) throw new Error('boom');
    };
    expect(() => reader.drain(onRecord)).toThrow('boom');
    expect(reader.drain(onRecord)).toBe(2);
    expect(seen).toEqual([0, 7, 14]);
  });

  it('reports a corrupt record header as RING_CORRUPT', () => {
    const { sab, writer, reader } = ring(64);
    writer.write(payload(0, 8), 0);
    new Int32Array(sab, HEADER_BYTES, 2)[0] = 9999;
    expect(() => reader.drain(() => {})).toThrow(expect.objectContaining({ code: 'RING_CORRUPT' }));
  });

  it('waitForData resolves at once with data, and on the doorbell otherwise', async () => {
    const { writer, reader } = ring(256);
    writer.write(payload(0, 4), 0);
    await reader.waitForData();
    drainAll(reader);
    let woke = false;
    const waiting = reader.waitForData().then(() => {
      woke = true;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(woke).toBe(false);
    writer.write(payload(1, 4), 0); // sees READER_WAITING, rings the doorbell
    await waiting;
    expect(drainAll(reader)).toEqual([payload(1, 4)]);
  });

  it('startDraining passes handler errors to onError, keeps going, and stops', async () => {
    const { writer, reader } = ring(1024);
    const got: number[] = [];
    const errors: unknown[] = [];
    const loop = startDraining(
      reader,
      (r) => {
        if (r[0] === 7) throw new Error('bad record');
        got.push(r[0]!);
      },
      (e) => errors.push(e),
    );
    for (let i = 0; i < 3; i++) writer.write(payload(i, 4), 0);
    await new Promise((r) => setTimeout(r, 20));
    writer.write(payload(3, 4), 0);
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual([0, 14, 21]);
    expect(errors).toHaveLength(1);
    loop.stop();
    writer.write(payload(4, 4), 0);
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual([0, 14, 21]);
  });

  it('keeps bytes and order across random writes, drains and wrap-arounds', () => {
    const op = fc.oneof(
      { weight: 3, arbitrary: fc.record({ size: fc.nat(), shift: fc.integer({ min: 0, max: 7 }) }) },
      { weight: 1, arbitrary: fc.constant('drain' as const) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 16, max: 4096 }), fc.array(op, { maxLength: 400 }), (capacity, ops) => {
        const { writer, reader } = ring(capacity);
        const cap = reader.stats().capacity;
        // Records up to half the ring always fit an empty ring, however the wrap falls.
        const maxSize = Math.floor((cap / 2 - 8) / 8) * 8;
        const expected: Uint8Array[] = [];
        const got: Uint8Array[] = [];
        let seq = 0;
        let refused = 0;
        for (const o of ops) {
          if (o === 'drain') {
            reader.drain((r) => got.push(r));
            expect(reader.stats().usedBytes).toBe(0);
            continue;
          }
          const p = payload(seq++, o.size % (maxSize + 1), o.shift);
          const usedBefore = reader.stats().usedBytes;
          if (writer.write(p, 0)) expected.push(p);
          else {
            refused++;
            expect(usedBefore).toBeGreaterThan(0);
          }
          expect(reader.stats().usedBytes).toBeLessThanOrEqual(cap);
        }
        reader.drain((r) => got.push(r));
        expect(got).toEqual(expected);
        expect(reader.stats()).toMatchObject({
          written: expected.length,
          read: expected.length,
          drops: refused,
          fullEvents: refused,
        });
      }),
      { numRuns: 300 },
    );
  });

  it('carries 50k records from a worker intact and in order, blocking the writer on a small ring', async () => {
    const count = 50_000;
    const sab = createRing(4096);
    const reader = new RingReader(sab);
    const worker = new Worker(new URL('./fixtures/ring-producer.mjs', import.meta.url), {
      workerData: { ring: sab, count, maxBytes: 600, seed: 12345 },
    });
    const done = new Promise<{ refused: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    // Nobody drains yet, so the writer must fill the ring and block on it.
    while (reader.stats().fullEvents === 0) await new Promise((r) => setTimeout(r, 5));

    let nextSeq = 0;
    const problems: string[] = [];
    const allArrived = new Promise<void>((resolve) => {
      const loop = startDraining(
        reader,
        (r) => {
          const view = new DataView(r.buffer, r.byteOffset, r.byteLength);
          const seq = view.getUint32(0, true);
          let sum = 0;
          for (let i = 16; i < r.length; i++) sum = (sum * 31 + r[i]!) >>> 0;
          if (seq !== nextSeq || view.getUint32(4, true) !== r.length || view.getUint32(8, true) !== sum) {
            if (problems.length < 5) problems.push(`record ${nextSeq}: seq ${seq}, length ${r.length}`);
          }
          if (++nextSeq === count) {
            loop.stop();
            resolve();
          }
        },
        (e) => problems.push(String(e)),
      );
    });
    const [{ refused }] = await Promise.all([done, allArrived]);
    await worker.terminate();
    expect(problems).toEqual([]);
    expect(nextSeq).toBe(count);
    expect(refused).toBe(0);
    const stats = reader.stats();
    expect(stats).toMatchObject({ written: count, read: count, drops: 0, usedBytes: 0 });
    expect(stats.fullEvents).toBeGreaterThan(0);
  });
});
