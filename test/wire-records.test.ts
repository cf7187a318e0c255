import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, encode } from '../src/wire/records.js';
import { postNotice, type RunningDaemon, root, startDaemon, testCamera, Viewer } from './helpers.js';
import { matchesWireType, wireFields, wireKind } from './support/msgpack-fields.js';

/**
 * The README's table of server records against what a live daemon sends: every record type
 * in the table is received, has its required fields, no undocumented field, and each value's
 * msgpack type byte is of the documented type. Integers are integers on the wire: `ts` is a
 * uint64 (0xcf), never a float64 (0xcb), which strictly typed decoders refuse.
 */

interface FieldSpec {
  optional: boolean;
  types: string[];
}

/** README "Wire protocol": the rows of the server-records table, record → field → spec. */
function documentedRecords(): Map<string, Map<string, FieldSpec>> {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('| record | on | fields besides `type` |'));
  const rows = table.split('\n').slice(2);
  const out = new Map<string, Map<string, FieldSpec>>();
  for (const row of rows) {
    if (!row.startsWith('| `')) break;
    const cells = row.split(/(?<!\\)\|/).map((c) => c.trim());
    const name = /^`(\w+)`$/.exec(cells[1]!)?.[1];
    if (!name) throw new Error(`README row without a record name: ${row}`);
    const fields = new Map<string, FieldSpec>([['type', { optional: false, types: ['string'] }]]);
    for (const m of cells[3]!.matchAll(/`(\w+)(\?)?` ([a-z0-9]+(?:\\\|[a-z0-9]+)*)/g)) {
      fields.set(m[1]!, { optional: m[2] === '?', types: m[3]!.split('\\|') });
    }
    out.set(name, fields);
  }
  return out;
}

const DOCUMENTED = documentedRecords();

/** Every record received on the sockets below: its raw bytes and its type. */
const received: { bytes: Uint8Array; type: string }[] = [];
const waiters = new Set<() => void>();
let daemon: RunningDaemon;
const sockets: Viewer[] = [];

/** A WS client whose raw messages go into `received`. */
async function capture(url: string): Promise<Viewer> {
  const v = new Viewer(url);
  v.ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) return;
    const bytes = new Uint8Array(data);
    received.push({ bytes, type: String((decode(bytes) as { type?: unknown }).type) });
    for (const w of waiters) w();
  });
  sockets.push(v);
  await v.opened;
  return v;
}

const ofType = (type: string) => received.filter((r) => r.type === type).map((r) => r.bytes);

/** Waits until a record of `type` has been received. */
function until(type: string, timeoutMs: number): Promise<void> {
  return new Promise((res, rej) => {
    const check = () => {
      if (!received.some((r) => r.type === type)) return;
      waiters.delete(check);
      clearTimeout(timer);
      res();
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      rej(
        new Error(`no ${type} record in ${timeoutMs} ms (got ${[...new Set(received.map((r) => r.type))]})`),
      );
    }, timeoutMs);
    waiters.add(check);
    check();
  });
}

beforeAll(async () => {
  daemon = await startDaemon({
    cameras: [
      { ...testCamera('demo', 5), video: 'transcode' },
      { id: 'pushcam', source: 'push' },
    ],
  });
  await daemon.waitForLog((l) => l.msg === 'camera up', 30_000);
  // An audio job (one second of silence), so its topic has job records to replay.
  const job = await fetch(`${daemon.url}/api/v1/jobs/audio?format=s16le&rate=8000`, {
    method: 'POST',
    body: new Uint8Array(16_000),
  });
  expect(job.status).toBe(202);
  const { id } = (await job.json()) as { id: string };
  await postNotice(daemon.url, 'wire records');

  const viewer = await capture(daemon.wsUrl);
  viewer.send({ type: 'hello', resume: { system: 0, [`job/${id}`]: 0 } });
  viewer.send({
    type: 'sub',
    topics: [
      'system',
      `job/${id}`,
      'cam/demo/low',
      'cam/demo/auto',
      'cam/demo/vad',
      'cam/demo/video',
      'cam/nope/low',
    ],
  });
  viewer.send({ type: 'ping', id: 'p1' });
  viewer.send({ type: 'ping', id: 7 });
  viewer.send({ type: 'ping' });

  // A resume from another process's epoch is answered with a gap record.
  const resumer = await capture(daemon.wsUrl);
  resumer.send({ type: 'hello', resume: { system: 1 }, epoch: 'otherepoch' });
  resumer.send({ type: 'sub', topics: ['system'] });

  const publisher = await capture(`${daemon.url.replace(/^http/, 'ws')}/publish`);
  publisher.send({ type: 'ping', id: 'pub' });
  publisher.send({ type: 'frame', camera: 'demo', data: new Uint8Array([0xff, 0xd8, 0xff, 0xd9]) });
}, 60_000);

afterAll(async () => {
  for (const s of sockets) s.close();
  await daemon?.stop();
});

describe('the README documents the server records', () => {
  it('has the table, with the records every transport sends', () => {
    expect([...DOCUMENTED.keys()].sort()).toEqual(
      [
        'error',
        'fragment',
        'frame',
        'gap',
        'hello',
        'init',
        'job',
        'pong',
        'segment',
        'system',
        'vad',
        'variant',
      ].sort(),
    );
    expect(DOCUMENTED.get('frame')!.get('ts')).toEqual({ optional: false, types: ['uint64'] });
  });
});

describe('server records from a live daemon match the README, type byte by type byte', () => {
  // The camera's tone gives a segment every 4 s, after up to two more of start-up.
  const waitMs = (name: string) => (name === 'segment' || name === 'vad' ? 20_000 : 10_000);

  it.each([...DOCUMENTED.keys()])(
    '%s',
    async (name) => {
      const spec = DOCUMENTED.get(name)!;
      await until(name, waitMs(name));
      for (const bytes of ofType(name)) {
        const fields = wireFields(bytes);
        const decoded = decode(bytes) as Record<string, unknown>;
        for (const [field, f] of spec) {
          if (!f.optional)
            expect(fields.has(field), `${name}.${field} missing in ${JSON.stringify(decoded)}`).toBe(true);
        }
        for (const [field, { typeByte }] of fields) {
          const f = spec.get(field);
          expect(f, `${name}.${field} is not documented`).toBeDefined();
          const ok = f!.types.some((t) => matchesWireType(typeByte, t));
          expect(
            ok,
            `${name}.${field} is 0x${typeByte.toString(16)} (${wireKind(typeByte)}), README says ${f!.types.join('|')}`,
          ).toBe(true);
        }
      }
    },
    30_000,
  );

  it('sends no record type the README does not list', async () => {
    await until('segment', 20_000);
    const types = new Set(received.map((r) => r.type));
    expect([...types].filter((t) => !DOCUMENTED.has(t))).toEqual([]);
  }, 30_000);

  it('ts of a frame, a vad segment, a pong and an event is uint64 on the wire (0xcf), never float64', async () => {
    await until('segment', 20_000);
    for (const name of ['frame', 'vad', 'segment', 'pong', 'system', 'job', 'init', 'fragment']) {
      for (const bytes of ofType(name)) expect(wireFields(bytes).get('ts')?.typeByte, name).toBe(0xcf);
    }
    const segment = wireFields(ofType('segment')[0]!);
    expect(segment.get('start')?.typeByte).toBe(0xcf);
    expect(segment.get('end')?.typeByte).toBe(0xcf);
  }, 30_000);
});

describe('the encoder', () => {
  it('writes integers beyond 32 bits as 64-bit integers and leaves fractions as float64', () => {
    const bytes = encode({ ts: 1_750_000_000_123, neg: -(2 ** 40), half: 0.5, big: 2 ** 53, tiny: 7 });
    const fields = wireFields(bytes);
    expect(fields.get('ts')!.typeByte).toBe(0xcf);
    expect(fields.get('neg')!.typeByte).toBe(0xd3);
    expect(fields.get('half')!.typeByte).toBe(0xcb);
    expect(fields.get('big')!.typeByte).toBe(0xcf);
    expect(fields.get('tiny')!.typeByte).toBe(7);
    expect(decode(bytes)).toEqual({
      ts: 1_750_000_000_123,
      neg: -(2 ** 40),
      half: 0.5,
      big: 2 ** 53,
      tiny: 7,
    });
  });

  it('round-trips any number exactly, and sends every integer as an integer type', () => {
    const number = fc.oneof(
      fc.maxSafeInteger(),
      fc.integer(),
      fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)),
      fc.constantFrom(2 ** 53, 2 ** 63, 2 ** 64 - 2 ** 11, -(2 ** 63), 1e300, -1e300),
    );
    fc.assert(
      fc.property(number, (n) => {
        const bytes = encode({ n });
        expect(decode(bytes)).toEqual({ n });
        const kind = wireKind(wireFields(bytes).get('n')!.typeByte);
        const fitsInt64 = n >= -(2 ** 63) && n < 2 ** 64;
        expect(kind).toBe(Number.isInteger(n) && fitsInt64 ? (n < 0 ? 'negint' : 'uint') : 'float');
      }),
      { numRuns: 5000 },
    );
  });

  it('rewrites floats inside nested maps and arrays, and leaves binary bytes that look like 0xcb alone', () => {
    const data = new Uint8Array([0xcb, 0x42, 0x79, 0, 0, 0, 0, 0, 0]);
    const value = { a: [{ at: 2 ** 40 }, 2 ** 35], data, s: '\xcb'.repeat(9) };
    const bytes = encode(value);
    expect(decode(bytes)).toEqual({ ...value, data: Buffer.from(data) });
    expect(Buffer.from(bytes).includes(Buffer.from(data))).toBe(true);
    expect(Buffer.from(bytes).indexOf(0xcb)).toBe(Buffer.from(bytes).indexOf(Buffer.from(data)));
  });

  it('leaves out undefined fields, as JSON does, instead of msgpackr’s undefined extension', () => {
    const bytes = encode({ type: 'system', reason: undefined, list: [undefined] });
    expect([...wireFields(bytes).keys()]).toEqual(['type', 'list']);
    expect(decode(bytes)).toEqual({ type: 'system', list: [null] });
  });
});
