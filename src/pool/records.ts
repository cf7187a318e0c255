import { Packr } from 'msgpackr';

/**
 * The one msgpack codec for everything that crosses the worker ring or the wire.
 * `useRecords: false` keeps records plain msgpack maps, so any msgpack client (browsers included)
 * can decode them without msgpackr's record extension.
 */
export const packr = new Packr({ useRecords: false, moreTypes: false });

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

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function decode(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}
