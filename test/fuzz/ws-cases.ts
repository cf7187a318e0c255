import fc from 'fast-check';
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

/** What a `/ws` client can send, for the auth-on and auth-off runs alike. */

/** Accepted `sub`/`unsub` records are answered by the subscription's traffic, or by nothing. */
export const SILENT = new Set(['sub', 'unsub']);

/** A JWT-shaped string: valid, signed with another key, truncated, or random. */
const tokenLike = (token: string) =>
  fc.oneof(
    fc.constant(token),
    fc.constant(`${token.slice(0, -4)}AAAA`),
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
const wrongTypes = (token: string) =>
  fc.oneof(
    recordOf('hello', { token: tokenLike(token), resume }),
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

/**
 * The three kinds of /ws case: records of each type with wrong field types (`token` is a valid
 * token the `hello` cases sometimes carry), msgpack values, and bytes no library would write.
 */
export function wsCases(token: () => string) {
  return { wrongTypes: () => wrongTypes(token()), values, bytes };
}
