import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { noiseJpeg } from '../helpers.js';
import { reliability } from '../support/reliability.js';
import { fileBudget } from './budget.js';
import {
  deepNesting,
  extBytes,
  hostileValue,
  hugeDeclaredLength,
  nested,
  packHostile,
  plain,
  rawBytes,
  recordOf,
} from './hostile-msgpack.js';
import { fuzzConfig, fuzzLive, LiveDaemon } from './live.js';
import { Probe } from './probe.js';

/**
 * `/publish` with a publisher token: frame, audio and ping records with every field of the
 * wrong type, JPEGs cut short or with forged frame headers (sizes up to 65535², progressive),
 * PCM with NaN and Infinity, and the same random values and bytes as `/ws`. Accepted frames
 * and audio are answered by silence; anything else must get an error record with a code or a
 * documented close code, and the checks after every batch are those of ws.test.ts.
 */
const rel = reliability('fuzz-publish');
const budget = fileBudget(2);
const CASES = 1000;
const live = new LiveDaemon(fuzzConfig(true));
const SILENT = new Set(['frame', 'audio']);
let jpeg: Uint8Array;
let sofAt = 0;

beforeAll(async () => {
  jpeg = new Uint8Array(await noiseJpeg(64, 48));
  sofAt = startOfFrame(jpeg);
  await live.start();
}, 60_000);
afterAll(() => live.stop());
afterEach(() => live.ensureUp(), 60_000);

/** Offset of the first SOFn marker (FF C0..CF less C4, C8, CC). */
function startOfFrame(b: Uint8Array): number {
  let at = 2;
  while (at + 4 < b.length) {
    const m = b[at + 1]!;
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) return at;
    at += 2 + ((b[at + 2]! << 8) | b[at + 3]!);
  }
  throw new Error('no SOF in the sample JPEG');
}

const publisher = () => Probe.open(`${live.url.replace(/^http/, 'ws')}/publish`, live.publisherToken);

/** The sample JPEG whole, cut short, with bytes changed, or with a forged size and process. */
const jpegLike = () =>
  fc.oneof(
    fc.constant(jpeg),
    fc.nat(jpeg.length).map((n) => jpeg.subarray(0, n)),
    fc.array(fc.tuple(fc.nat(jpeg.length - 1), fc.nat(255)), { minLength: 1, maxLength: 6 }).map((edits) => {
      const b = Uint8Array.from(jpeg);
      for (const [at, v] of edits) b[at] = v;
      return b;
    }),
    fc
      .tuple(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.constantFrom(0xc0, 0xc1, 0xc2, 0xc3),
      )
      .map(([w, h, sof]) => {
        const b = Uint8Array.from(jpeg);
        b[sofAt + 1] = sof;
        b.set([h >> 8, h & 0xff, w >> 8, w & 0xff], sofAt + 5);
        return b;
      }),
  );

const pcm = fc.oneof(
  fc.uint8Array({ maxLength: 3200 }),
  fc
    .array(
      fc.oneof(fc.float(), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY)),
      {
        maxLength: 400,
      },
    )
    .map((xs) => new Uint8Array(Float32Array.from(xs).buffer)),
);
const camera = fc.oneof(fc.constantFrom('p1', 'p1', 'p1', 'demo', 'nope', ''), hostileValue);

const rate = fc.oneof(fc.constantFrom(8000, 16000, 48000, 1, 0, -1, 2 ** 31), fc.double());
const format = fc.oneof(fc.constantFrom('s16le', 'f32le'), fc.string({ maxLength: 10 }));

/** Well-formed records around hostile payloads (so they reach the JPEG and PCM checks), and records of wrong types. */
const records = () =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: jpegLike().map((data) => plain({ type: 'frame', camera: 'p1', data, ts: Date.now() })),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(rate, format, pcm)
        .map(([r, f, data]) => plain({ type: 'audio', camera: 'p1', rate: r, format: f, data })),
    },
    {
      weight: 2,
      arbitrary: recordOf('frame', {
        camera,
        data: jpegLike(),
        ts: fc.oneof(fc.double(), fc.integer(), fc.constant(Date.now())),
      }),
    },
    { weight: 2, arbitrary: recordOf('audio', { camera, rate, format, data: pcm }) },
    {
      weight: 1,
      arbitrary: recordOf('ping', {
        id: fc.oneof(fc.string({ maxLength: 100 }), fc.integer(), hostileValue),
      }),
    },
  );

const valuesAndBytes = fc.oneof(
  hostileValue.map(packHostile),
  fc
    .tuple(
      fc.constantFrom('frame', 'audio', 'ping'),
      fc.constantFrom('camera', 'type', 'data', 'id', 'rate'),
      hostileValue,
    )
    .map(([type, key, v]) => packHostile({ type, camera: 'p1', [key]: v })),
  rawBytes,
  extBytes,
  hugeDeclaredLength,
  deepNesting,
  fc
    .integer({ min: 100, max: 10_000 })
    .map((d) =>
      Uint8Array.from(
        Buffer.concat([
          Uint8Array.of(0x83),
          plain('type'),
          plain('frame'),
          plain('camera'),
          plain('p1'),
          plain('data'),
          nested(d, d % 5),
        ]),
      ),
    ),
);

describe('/publish (auth on, publisher token)', () => {
  it(
    'answers frame, audio and ping records with wrong field types, forged JPEG headers and non-finite PCM',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/publish: frame/audio/ping with wrong field types, forged JPEGs, NaN PCM',
        cases: records(),
        connect: publisher,
        silentTypes: SILENT,
        params: budget.params(0, 0x9b1, CASES),
      }),
    budget.timeoutMs,
  );

  it(
    'answers random values, raw bytes, every extension type, deep nesting and huge declared lengths',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/publish: msgpack values, raw bytes, ext types, deep nesting, huge lengths',
        cases: valuesAndBytes,
        connect: publisher,
        silentTypes: SILENT,
        params: budget.params(1, 0x9b2, CASES),
      }),
    budget.timeoutMs,
  );
});
