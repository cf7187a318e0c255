/**
 * msgpackr writes a JS number that is an integer beyond 32 bits (a `Date.now()` timestamp, a
 * segment time in ms) as float64, and has no option to do otherwise; strictly typed decoders
 * (Go's, Rust's serde, Java's) then refuse it where the protocol says integer. This rewrites,
 * in place, each float64 holding an integer as the 64-bit integer of the same size: 0xcb + 8
 * bytes becomes 0xcf (uint64) or, below zero, 0xd3 (int64) + 8 bytes. Same length, so no copy
 * and no offset moves; the cost is one walk over the value's headers, skipping strings and
 * binaries by their length (a frame record is about 20 headers whatever its JPEG size).
 *
 * @example
 *   integersAsIntegers(packr.pack({ ts: Date.now() })) // ts as 0xcf, not 0xcb
 */
export function integersAsIntegers(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Values still to visit; a container adds its items. Our encoder's output is one value.
  let pending = 1;
  let at = 0;
  while (pending > 0) {
    pending--;
    const b = bytes[at++]!;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue;
    if (b >= 0xa0 && b <= 0xbf) at += b & 0x1f;
    else if (b >= 0x80 && b <= 0x8f) pending += (b & 0x0f) * 2;
    else if (b >= 0x90 && b <= 0x9f) pending += b & 0x0f;
    else if (b === 0xcb) {
      rewriteIntegral(view, at - 1);
      at += 8;
    } else if (b === 0xc4 || b === 0xd9) at += 1 + bytes[at]!;
    else if (b === 0xc5 || b === 0xda) at += 2 + view.getUint16(at);
    else if (b === 0xc6 || b === 0xdb) at += 4 + view.getUint32(at);
    else if (b === 0xc7)
      at += 2 + bytes[at]!; // ext 8: length, type, data
    else if (b === 0xc8) at += 3 + view.getUint16(at);
    else if (b === 0xc9) at += 5 + view.getUint32(at);
    else if (b >= 0xd4 && b <= 0xd8)
      at += 1 + 2 ** (b - 0xd4); // fixext: type + 1..16 bytes
    else if (b === 0xcc || b === 0xd0) at += 1;
    else if (b === 0xcd || b === 0xd1) at += 2;
    else if (b === 0xca || b === 0xce || b === 0xd2) at += 4;
    else if (b === 0xcf || b === 0xd3) at += 8;
    else if (b === 0xdc || b === 0xde) {
      pending += view.getUint16(at) * (b === 0xde ? 2 : 1);
      at += 2;
    } else if (b === 0xdd || b === 0xdf) {
      pending += view.getUint32(at) * (b === 0xdf ? 2 : 1);
      at += 4;
    } else throw new Error(`msgpack type 0x${b.toString(16)} at ${at - 1}: not our encoder's output`);
  }
  if (at !== bytes.byteLength) throw new Error(`msgpack value ends at ${at} of ${bytes.byteLength}`);
  return bytes;
}

const TWO_32 = 2 ** 32;
const TWO_64 = 2 ** 64;
const TWO_63 = 2 ** 63;

/** The float64 at `at` (its type byte), as an integer type when it holds one that fits. */
function rewriteIntegral(view: DataView, at: number): void {
  const value = view.getFloat64(at + 1);
  if (!Number.isInteger(value)) return;
  if (value >= 0 && value <= Number.MAX_SAFE_INTEGER) {
    // The common case (a ms timestamp), without allocating a BigInt: ToUint32 is exact here.
    view.setUint8(at, 0xcf);
    view.setUint32(at + 1, Math.floor(value / TWO_32));
    view.setUint32(at + 5, value >>> 0);
  } else if (value >= 0 && value < TWO_64) {
    view.setUint8(at, 0xcf);
    view.setBigUint64(at + 1, BigInt(value));
  } else if (value < 0 && value >= -TWO_63) {
    view.setUint8(at, 0xd3);
    view.setBigInt64(at + 1, BigInt(value));
  }
}
