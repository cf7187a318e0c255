import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';

/**
 * Arbitraries for msgpack an attacker would send: values with every msgpackr extension
 * (BigInt, structured-clone cycles, records, Sets, Dates, typed arrays, errors, regexps), raw
 * extension bytes of every type code, invalid UTF-8 strings, nesting 100 to 10,000 deep, and
 * headers declaring up to 4 GiB that the message does not hold. Every arbitrary yields the
 * bytes to send, so what the daemon saw can be printed as hex.
 */

/** msgpackr with everything on: what a hostile client library would emit. */
const hostilePackr = new Packr({
  moreTypes: true,
  structuredClone: true,
  useRecords: true,
  largeBigIntToFloat: false,
});
const plainPackr = new Packr({ useRecords: false });

/**
 * Packs what a plain client sends; the fields we mean to be valid go through here. A value
 * plain msgpackr refuses (it calls an own `toJSON` key) goes through the hostile packer.
 */
export function plain(v: unknown): Uint8Array {
  try {
    return plainPackr.pack(v);
  } catch {
    return packHostile(v);
  }
}

/**
 * The test's own reading of a message, as permissive as msgpackr gets, to know what the
 * message claims to be (a `ping`, a `hello` with a token…). Undefined when it does not decode.
 */
const referenceUnpackr = new Unpackr({ moreTypes: true, structuredClone: true, mapsAsObjects: true });
export function readAsRecord(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = referenceUnpackr.unpack(bytes) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export const hex = (b: Uint8Array, max = 256) =>
  Buffer.from(b.subarray(0, max)).toString('hex') + (b.length > max ? `… (${b.length} bytes)` : '');

const concat = (...parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));
const u8 = (...bytes: number[]) => Uint8Array.from(bytes);

export function packHostile(value: unknown): Uint8Array {
  try {
    return Uint8Array.from(hostilePackr.pack(value));
  } catch {
    // A value msgpackr itself cannot write (a boxed symbol…): 0xc1, the byte msgpack never uses.
    return u8(0xc1);
  }
}

/** An object whose String() throws: a decoded map carrying `toString`/`valueOf` keys. */
const trapObject = fc.constantFrom<unknown>(
  { toString: 1, valueOf: 1 },
  { toString: 'x', valueOf: null },
  { toString: {}, valueOf: [] },
  // Own keys named after Object.prototype members and `then` (JSON.parse makes `__proto__` an own key).
  JSON.parse('{"__proto__":1,"constructor":1,"toJSON":1,"then":1,"hasOwnProperty":1}'),
);

const cyclic = fc.anything({ maxDepth: 2 }).map((inner) => {
  const o: Record<string, unknown> = { inner };
  o.self = o;
  return [o, [o, o]] as unknown;
});

const specialNumber = fc.constantFrom<unknown>(
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -0,
  2 ** 53,
  -(2 ** 63),
  2 ** 64,
  1e308,
  5e-324,
  0xffffffff,
  -1,
);

/** Any JS value msgpackr can carry, with every extension it knows. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.anything({
      maxDepth: 3,
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withNullPrototype: true,
      withObjectString: true,
      withSet: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
    }),
  },
  { weight: 2, arbitrary: fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }) },
  { weight: 1, arbitrary: fc.bigInt({ min: 2n ** 64n, max: 2n ** 64n + 1000n }) },
  { weight: 1, arbitrary: trapObject },
  { weight: 1, arbitrary: cyclic },
  { weight: 1, arbitrary: specialNumber },
  { weight: 1, arbitrary: fc.string({ maxLength: 3000 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(new Error('x'), /x/gi, new Date(Number.NaN)) },
);

/** An extension of any type code (-128..127) with any payload, in each of msgpack's ext formats. */
export const extBytes: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.integer({ min: -128, max: 127 }), fc.uint8Array({ maxLength: 40 }), fc.nat(4))
  .map(([type, data, form]) => {
    const t = type & 0xff;
    const fixed = [1, 2, 4, 8, 16].indexOf(data.length);
    if (form < 2 && fixed >= 0) return concat(u8(0xd4 + fixed, t), data);
    if (form === 2) return concat(u8(0xc7, data.length, t), data);
    if (form === 3) return concat(u8(0xc8, 0, data.length, t), data);
    return concat(u8(0xc9, 0, 0, 0, data.length, t), data);
  });

/** A str whose bytes are not UTF-8: overlong forms, lone surrogates, stray continuation bytes. */
export const invalidUtf8Str: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.constantFrom(
      u8(0xff),
      u8(0xfe, 0xff),
      u8(0xc0, 0xaf),
      u8(0xe0, 0x80, 0xaf),
      u8(0xed, 0xa0, 0x80),
      u8(0xf4, 0x90, 0x80, 0x80),
      u8(0x80),
      u8(0xc3),
    ),
    fc.string({ maxLength: 12 }),
    fc.uint8Array({ maxLength: 8 }),
  )
  .map(([bad, text, tail]) => {
    const body = concat(Buffer.from(`cam/${text}/`), bad, tail);
    return concat(u8(0xd9, body.length), body);
  });

const HUGE_HEADERS = [
  u8(0xdc, 0xff, 0xff),
  u8(0xdd, 0xff, 0xff, 0xff, 0xff),
  u8(0xdd, 0x7f, 0xff, 0xff, 0xff),
  u8(0xde, 0xff, 0xff),
  u8(0xdf, 0xff, 0xff, 0xff, 0xff),
  u8(0xc4, 0xff),
  u8(0xc5, 0xff, 0xff),
  u8(0xc6, 0xff, 0xff, 0xff, 0xff),
  u8(0xd9, 0xff),
  u8(0xda, 0xff, 0xff),
  u8(0xdb, 0xff, 0xff, 0xff, 0xff),
  u8(0xc7, 0xff, 0x42),
  u8(0xc8, 0xff, 0xff, 0x69),
  u8(0xc9, 0xff, 0xff, 0xff, 0xff, 0x70),
  u8(0xdd, 0x00, 0x10, 0x00, 0x00),
  u8(0xdf, 0x00, 0x10, 0x00, 0x00),
];

/** A container or string header declaring far more than follows it. */
export const hugeDeclaredLength: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.constantFrom(...HUGE_HEADERS), fc.uint8Array({ maxLength: 32 }))
  .map(([head, tail]) => concat(head, tail));

/** Containers nested `depth` deep around a leaf: arrays, maps, 32-bit array headers, or a mix. */
export function nested(depth: number, kind: number, leaf: Uint8Array = u8(0x01)): Uint8Array {
  const levels = [u8(0x91), u8(0x81, 0xa1, 0x61), u8(0xdd, 0, 0, 0, 1), u8(0x92, 0xc0)];
  const parts: Uint8Array[] = [];
  for (let i = 0; i < depth; i++) parts.push(levels[kind === 4 ? i % 4 : kind]!);
  parts.push(leaf);
  return concat(...parts);
}

export const deepNesting: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.integer({ min: 100, max: 10_000 }), fc.nat(4))
  .map(([depth, kind]) => nested(depth, kind));

/** Any bytes, half of them starting like a map so they get past the first byte. */
export const rawBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc
    .tuple(fc.integer({ min: 0x81, max: 0x8f }), fc.uint8Array({ maxLength: 600 }))
    .map(([h, t]) => concat(u8(h), t)),
);

/** The bytes of one field value: anything from a valid value to every kind of hostile one. */
export function fieldValue(valid: fc.Arbitrary<unknown>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 3, arbitrary: valid.map(plain) },
    // The wrong type in plain msgpack, which a strict decoder lets through to the field checks.
    {
      weight: 3,
      arbitrary: fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.uint8Array({ maxLength: 64 })).map(plain),
    },
    { weight: 2, arbitrary: hostileValue.map(packHostile) },
    { weight: 1, arbitrary: extBytes },
    { weight: 1, arbitrary: invalidUtf8Str },
    { weight: 1, arbitrary: hugeDeclaredLength },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 3000 }).map((d) => nested(d, 0)) },
  );
}

const strBytes = (s: string) => plain(s);

/**
 * A record `{type, ...fields}` as bytes, with each field present or absent, valid or hostile,
 * in any order, and now and then a hostile `type` or an unknown extra key.
 */
export function recordOf(
  type: string,
  fields: Record<string, fc.Arbitrary<unknown>>,
): fc.Arbitrary<Uint8Array> {
  const names = Object.keys(fields);
  return fc
    .tuple(
      fc.oneof(
        { weight: 8, arbitrary: fc.constant(strBytes(type)) },
        { weight: 1, arbitrary: fieldValue(fc.constantFrom('ping', 'sub', 'hello', 'frame')) },
      ),
      fc.tuple(...names.map((n) => fc.option(fieldValue(fields[n]!), { freq: 5 }))),
      fc.option(fc.tuple(fc.string({ maxLength: 20 }), fieldValue(fc.anything())), { freq: 4 }),
      fc.boolean(),
    )
    .map(([typeBytes, values, extra, typeLast]) => {
      const pairs: Uint8Array[][] = [];
      names.forEach((n, i) => {
        const v = values[i];
        if (v) pairs.push([strBytes(n), v]);
      });
      if (extra) pairs.push([strBytes(extra[0]), extra[1]]);
      const typePair = [strBytes('type'), typeBytes];
      if (typeLast) pairs.push(typePair);
      else pairs.unshift(typePair);
      return concat(u8(0x80 | pairs.length), ...pairs.flat());
    });
}

/** Topic-shaped strings, valid and not, for fields that take topics. */
export const topicLike: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    'cam/demo/low',
    'cam/demo/auto',
    'cam/demo/vad',
    'cam/p1/raw',
    'system',
    'job/abc',
    'cam/nope/low',
    'cam/demo/huge',
    'cam/../low',
    '',
    '/',
    'cam//low',
  ),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
