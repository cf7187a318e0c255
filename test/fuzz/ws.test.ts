import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { reliability } from '../support/reliability.js';
import { fileBudget } from './budget.js';
import {
  deepNesting,
  extBytes,
  hostileValue,
  hugeDeclaredLength,
  invalidUtf8Str,
  nested,
  packHostile,
  plain,
  rawBytes,
  recordOf,
  topicLike,
} from './hostile-msgpack.js';
import { fuzzConfig, fuzzLive, LiveDaemon, Probe } from './live.js';

/**
 * `/ws` with auth on, as an anonymous client before `hello` and as a viewer after it: random
 * msgpack values with every extension, raw bytes, deep nesting, huge declared lengths, and
 * each record type (hello, sub, unsub, ping) with every field of the wrong type. Every message
 * must get an error record with a code, a documented close code or its documented answer, and
 * after every batch the daemon is up, its RSS bounded, and a viewer of another camera still
 * gets frames.
 */
const rel = reliability('fuzz-ws');
const budget = fileBudget(4);
const CASES = 1000;
const live = new LiveDaemon(fuzzConfig(true));
/** Accepted `sub`/`unsub` records are answered by the subscription's traffic, or by nothing. */
const SILENT = new Set(['sub', 'unsub']);

beforeAll(() => live.start(), 60_000);
afterAll(() => live.stop());
afterEach(() => live.ensureUp(), 60_000);

const anonymous = () => Probe.open(live.daemon.wsUrl);
const viewer = () => Probe.open(live.daemon.wsUrl, live.viewerToken);

/** A JWT-shaped string: valid, signed with another key, truncated, or random. */
const tokenLike = () =>
  fc.oneof(
    fc.constant(live.viewerToken),
    fc.constant(`${live.viewerToken.slice(0, -4)}AAAA`),
    fc.string({ maxLength: 200 }),
    fc.constantFrom('', 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.', '.'.repeat(100)),
  );
const topics = fc.array(
  fc.oneof({ weight: 3, arbitrary: topicLike }, { weight: 1, arbitrary: hostileValue }),
  {
    maxLength: 70,
  },
);
const resume = fc.oneof(
  fc.dictionary(topicLike, fc.oneof(fc.integer(), fc.double(), hostileValue), { maxKeys: 70 }),
  hostileValue,
);
const pingId = fc.oneof(fc.string({ maxLength: 100 }), fc.integer(), fc.double(), hostileValue);

/** Each record type with its fields present or absent, valid or of any other type. */
const wrongTypes = () =>
  fc.oneof(
    recordOf('hello', { token: tokenLike(), resume }),
    recordOf('sub', { topics }),
    recordOf('unsub', { topics }),
    recordOf('ping', { id: pingId }),
  );

/** Values msgpackr writes with every extension on, bare or as a field of a record. */
const values = fc.oneof(
  { weight: 2, arbitrary: hostileValue.map(packHostile) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom('ping', 'sub', 'unsub', 'hello'),
        fc.constantFrom('id', 'topics', 'token', 'resume'),
        hostileValue,
      )
      .map(([type, key, v]) => packHostile({ type, [key]: v })),
  },
);

/** Bytes no msgpack library would write. */
const bytes = fc.oneof(
  rawBytes,
  extBytes,
  hugeDeclaredLength,
  deepNesting,
  fc.integer({ min: 100, max: 10_000 }).map((d) => recordWith('ping', 'id', nested(d, d % 5))),
  hugeDeclaredLength.map((h) => recordWith('sub', 'topics', h)),
  extBytes.map((e) => recordWith('ping', 'id', e)),
  fc
    .array(invalidUtf8Str, { minLength: 1, maxLength: 3 })
    .map((strs) => recordWithArray('sub', 'topics', strs)),
);

function recordWith(type: string, key: string, value: Uint8Array): Uint8Array {
  return Uint8Array.from(Buffer.concat([Uint8Array.of(0x82), plain('type'), plain(type), plain(key), value]));
}
function recordWithArray(type: string, key: string, items: Uint8Array[]): Uint8Array {
  return recordWith(
    type,
    key,
    Uint8Array.from(Buffer.concat([Uint8Array.of(0x90 | items.length), ...items])),
  );
}

describe('/ws before hello (auth on)', () => {
  it(
    'answers random msgpack values and each record type with wrong field types',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/ws before auth: msgpack values (every extension) and records with wrong field types',
        cases: fc.oneof(values, wrongTypes()),
        connect: anonymous,
        anonymous: true,
        silentTypes: SILENT,
        params: budget.params(0, 0x3e5a, CASES),
      }),
    budget.timeoutMs,
  );

  it(
    'answers raw bytes, every extension type, deep nesting, huge declared lengths and invalid UTF-8',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/ws before auth: raw bytes, ext types, nesting 100-10000, huge lengths, invalid UTF-8',
        cases: bytes,
        connect: anonymous,
        anonymous: true,
        silentTypes: SILENT,
        params: budget.params(1, 0x3e5b, CASES),
      }),
    budget.timeoutMs,
  );
});

describe('/ws after hello (auth on, viewer token)', () => {
  it(
    'answers each record type with wrong field types',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/ws after auth: hello/sub/unsub/ping with wrong field types',
        cases: wrongTypes(),
        connect: viewer,
        silentTypes: SILENT,
        params: budget.params(2, 0x3e5c, CASES),
      }),
    budget.timeoutMs,
  );

  it(
    'answers random values and bytes',
    () =>
      fuzzLive({
        live,
        rel,
        cls: '/ws after auth: msgpack values and raw bytes',
        cases: fc.oneof(values, bytes),
        connect: viewer,
        silentTypes: SILENT,
        params: budget.params(3, 0x3e5d, CASES),
      }),
    budget.timeoutMs,
  );
});
