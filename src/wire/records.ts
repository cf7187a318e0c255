import { type Options, Packr, Unpackr } from 'msgpackr';
import { integersAsIntegers } from './msgpack-integers.js';
import { scanMsgpack } from './msgpack-scan.js';

/**
 * The one msgpack codec for everything that crosses the worker ring or the wire. Records are
 * plain msgpack that any decoder reads: `useRecords: false` keeps them maps without msgpackr's
 * record extension; an `undefined` field is left out (as JSON.stringify does, so the msgpack
 * and JSON of an event agree) and an `undefined` in an array is nil, never msgpackr's
 * undefined extension; 64-bit integers decode as numbers (every one framehub writes is below
 * 2^53), never BigInt.
 */
const packr = new Packr({
  // Also what lets msgpack-integers.ts walk the bytes: it knows plain msgpack, not msgpackr records.
  useRecords: false,
  moreTypes: false,
  skipValues: [undefined],
  encodeUndefinedAsNil: true,
  int64AsType: 'number',
} as Options & { skipValues: unknown[] }); // in msgpackr's README and code, not in its types

/** A frame as viewers receive it: DESIGN.md "WS" contract. */
export interface FrameRecord {
  type: 'frame';
  topic: string;
  seq: number;
  ts: number;
  mime: 'image/jpeg';
  width: number;
  height: number;
  data: Uint8Array;
}

/** Encodes a record; integers go out as msgpack integers whatever their size (see integersAsIntegers). */
export function encode(value: unknown): Uint8Array {
  return integersAsIntegers(packr.pack(value));
}

export function decode(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/**
 * Decoder for client bytes. Only plain msgpack passes the scan (no extensions, nesting at most
 * `CLIENT_MAX_DEPTH`), and 64-bit integers decode as (possibly inexact) numbers, never BigInt,
 * so nothing decoded can fail to re-encode.
 */
const untrusted = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** Deepest nesting any client record needs: `hello.resume` is a map in a map. */
export const CLIENT_MAX_DEPTH = 4;

/**
 * Most values in one client message (map keys count): a `sub` or `hello.resume` of 64 topics
 * is about 200 (2,050 at the largest maxTopicsPerConnection, 1024), a publisher record under 20; a frame's JPEG is one binary value.
 */
export const CLIENT_MAX_ITEMS = 4096;

/** Decodes a client message; throws MsgpackRefusedError (or msgpackr's Error) when it is refused. */
export function decodeUntrusted(bytes: Uint8Array): unknown {
  scanMsgpack(bytes, { maxDepth: CLIENT_MAX_DEPTH, maxItems: CLIENT_MAX_ITEMS });
  return untrusted.unpack(bytes);
}
