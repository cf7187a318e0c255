import { MsgpackRefusedError } from '../errors.js';

/**
 * Limits every msgpack message from a client must meet before it is decoded. The scan walks
 * the bytes once without allocating values, so a hostile message costs its length and nothing
 * more: no extension (BigInt, structured-clone cycles, records, bundled strings, Dates, Sets…)
 * ever reaches msgpackr, nesting is bounded before anything recurses, and a container or
 * string that claims more items or bytes than the message holds is refused before msgpackr
 * allocates for it.
 */
export interface ScanLimits {
  /** Deepest container nesting accepted; the top-level map is depth 1. */
  maxDepth: number;
  /**
   * Most values in the whole message (map keys count). Each becomes a JS value when decoded,
   * so without it 8 MB of one-byte empty maps costs seconds of main-thread time and about
   * 500 MB of heap, though every length is honest.
   */
  maxItems: number;
}

const refuse = (why: string, at: number): never => {
  throw new MsgpackRefusedError(`${why} at byte ${at}`);
};

/** Throws MsgpackRefusedError unless `bytes` is exactly one msgpack value within `limits`. */
export function scanMsgpack(bytes: Uint8Array, limits: ScanLimits): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  /** Items still to read per open container (a map's pairs count twice); [0] is the top level. */
  const remaining: number[] = [1];
  let at = 0;
  let items = 1;

  const need = (n: number) => {
    if (at + n > end) refuse('truncated message', at);
  };
  const skip = (n: number) => {
    need(n);
    at += n;
  };
  const open = (count: number) => {
    // Every item takes at least one byte: a count beyond what is left is a lie.
    if (count > end - at) refuse(`container claims ${count} items`, at);
    if (remaining.length > limits.maxDepth) refuse(`nesting deeper than ${limits.maxDepth}`, at);
    items += count;
    if (items > limits.maxItems) refuse(`more than ${limits.maxItems} values`, at);
    if (count === 0) return;
    remaining.push(count);
  };
  const length = (bytesOfLength: 1 | 2 | 4) => {
    need(bytesOfLength);
    const n =
      bytesOfLength === 1 ? bytes[at]! : bytesOfLength === 2 ? view.getUint16(at) : view.getUint32(at);
    at += bytesOfLength;
    return n;
  };

  while (remaining.length) {
    const top = remaining.length - 1;
    if (remaining[top] === 0) {
      remaining.pop();
      continue;
    }
    remaining[top]!--;
    need(1);
    const b = bytes[at++]!;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue; // the byte is the value
    if (b >= 0xa0 && b <= 0xbf) skip(b & 0x1f);
    else if (b >= 0x80 && b <= 0x8f) open((b & 0x0f) * 2);
    else if (b >= 0x90 && b <= 0x9f) open(b & 0x0f);
    else if (b === 0xc4 || b === 0xd9) skip(length(1));
    else if (b === 0xc5 || b === 0xda) skip(length(2));
    else if (b === 0xc6 || b === 0xdb) skip(length(4));
    else if (b === 0xcc || b === 0xd0) skip(1);
    else if (b === 0xcd || b === 0xd1) skip(2);
    else if (b === 0xca || b === 0xce || b === 0xd2) skip(4);
    else if (b === 0xcb || b === 0xcf || b === 0xd3) skip(8);
    else if (b === 0xdc) open(length(2));
    else if (b === 0xdd) open(length(4));
    else if (b === 0xde) open(length(2) * 2);
    else if (b === 0xdf) open(length(4) * 2);
    // 0xc1 (never used) and every extension: 0xc7-0xc9, 0xd4-0xd8.
    else refuse(`msgpack type 0x${b.toString(16)} is not accepted (no extensions)`, at - 1);
  }
  if (at !== end) refuse('trailing bytes after the record', at);
}
