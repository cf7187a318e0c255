// @ts-check
/**
 * msgpack for the WS transports: msgpackr's browser build (vendor/msgpackr.js, a classic
 * script loaded before the modules, with no eval), so the page decodes records exactly as
 * every other client does. Read on first use, so DOM-free modules that import this one
 * still load in Node.
 */

/** @typedef {typeof import('msgpackr')} Msgpackr */

/** @type {{ pack: (value: unknown) => Uint8Array, unpack: (bytes: Uint8Array) => unknown } | undefined} */
let codec;

function load() {
  if (codec) return codec;
  const lib = /** @type {{ msgpackr?: Msgpackr }} */ (globalThis).msgpackr;
  if (!lib) throw new Error('vendor/msgpackr.js is not loaded');
  // Plain maps, no msgpackr record extension: what the server sends and accepts. 64-bit
  // integers (a uint64 `ts`) decode as numbers, not BigInt: every one the server sends is
  // below 2^53, and the record checks expect numbers.
  const packr = new lib.Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
  codec = { pack: (value) => packr.pack(value), unpack: (bytes) => packr.unpack(bytes) };
  return codec;
}

/** @param {unknown} record */
export const pack = (record) => load().pack(record);

/** @param {Uint8Array} bytes */
export const unpack = (bytes) => load().unpack(bytes);
