/**
 * The top-level fields of a msgpack map with the type byte of each value, read from the bytes
 * rather than from a decoder (which would hide whether `ts` was sent as an integer or a float).
 */
export interface WireField {
  /** The value's first byte: its msgpack type (fixint, 0xcf, 0xcb, …). */
  typeByte: number;
}

/** Bytes after the type byte that a value of this type occupies, and how many values it contains. */
function extent(bytes: Uint8Array, view: DataView, at: number): { skip: number; items: number } {
  const b = bytes[at]!;
  const len = (n: 1 | 2 | 4) =>
    n === 1 ? bytes[at + 1]! : n === 2 ? view.getUint16(at + 1) : view.getUint32(at + 1);
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return { skip: 0, items: 0 };
  if (b >= 0xa0 && b <= 0xbf) return { skip: b & 0x1f, items: 0 };
  if (b >= 0x80 && b <= 0x8f) return { skip: 0, items: (b & 0x0f) * 2 };
  if (b >= 0x90 && b <= 0x9f) return { skip: 0, items: b & 0x0f };
  switch (b) {
    case 0xc4:
    case 0xd9:
      return { skip: 1 + len(1), items: 0 };
    case 0xc5:
    case 0xda:
      return { skip: 2 + len(2), items: 0 };
    case 0xc6:
    case 0xdb:
      return { skip: 4 + len(4), items: 0 };
    case 0xc7:
      return { skip: 2 + len(1), items: 0 };
    case 0xc8:
      return { skip: 3 + len(2), items: 0 };
    case 0xc9:
      return { skip: 5 + len(4), items: 0 };
    case 0xcc:
    case 0xd0:
      return { skip: 1, items: 0 };
    case 0xcd:
    case 0xd1:
      return { skip: 2, items: 0 };
    case 0xca:
    case 0xce:
    case 0xd2:
      return { skip: 4, items: 0 };
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return { skip: 8, items: 0 };
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return { skip: 1 + 2 ** (b - 0xd4), items: 0 };
    case 0xdc:
      return { skip: 2, items: len(2) };
    case 0xdd:
      return { skip: 4, items: len(4) };
    case 0xde:
      return { skip: 2, items: len(2) * 2 };
    case 0xdf:
      return { skip: 4, items: len(4) * 2 };
    default:
      throw new Error(`msgpack type 0x${b.toString(16)} at ${at}`);
  }
}

/** Offset just past the value at `at`, nested values included. */
function skipValue(bytes: Uint8Array, view: DataView, at: number): number {
  let pending = 1;
  while (pending > 0) {
    pending--;
    const { skip, items } = extent(bytes, view, at);
    at += 1 + skip;
    pending += items;
  }
  return at;
}

/** The fields of a record (a map with string keys); throws when the bytes are not one. */
export function wireFields(bytes: Uint8Array): Map<string, WireField> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const top = extent(bytes, view, 0);
  const b = bytes[0]!;
  if (!((b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf)) throw new Error('not a map');
  let at = 1 + top.skip;
  const fields = new Map<string, WireField>();
  const decoder = new TextDecoder();
  for (let i = 0; i < top.items / 2; i++) {
    const k = extent(bytes, view, at);
    const kb = bytes[at]!;
    const headerLen = kb >= 0xa0 && kb <= 0xbf ? 0 : kb === 0xd9 ? 1 : kb === 0xda ? 2 : kb === 0xdb ? 4 : -1;
    if (headerLen < 0) throw new Error(`key at ${at} is not a string`);
    const key = decoder.decode(bytes.subarray(at + 1 + headerLen, at + 1 + k.skip));
    at += 1 + k.skip;
    fields.set(key, { typeByte: bytes[at]! });
    at = skipValue(bytes, view, at);
  }
  if (at !== bytes.byteLength) throw new Error(`map ends at ${at} of ${bytes.byteLength}`);
  return fields;
}

/** The wire type family of a type byte, in the README's vocabulary. */
export function wireKind(typeByte: number): string {
  const b = typeByte;
  if (b <= 0x7f || (b >= 0xcc && b <= 0xcf)) return 'uint';
  if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3)) return 'negint';
  if (b === 0xca || b === 0xcb) return 'float';
  if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) return 'string';
  if (b >= 0xc4 && b <= 0xc6) return 'bin';
  if (b === 0xc0) return 'nil';
  if (b === 0xc2 || b === 0xc3) return 'bool';
  if ((b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf) return 'map';
  if ((b >= 0x90 && b <= 0x9f) || b === 0xdc || b === 0xdd) return 'array';
  return 'ext';
}

/** Whether a value with this type byte is of a README type (`uint64`, `number`, `string`, …). */
export function matchesWireType(typeByte: number, type: string): boolean {
  const kind = wireKind(typeByte);
  switch (type) {
    case 'uint64':
      return typeByte === 0xcf;
    case 'int':
      return kind === 'uint' || kind === 'negint';
    case 'number':
      return kind === 'uint' || kind === 'negint' || kind === 'float';
    default:
      return kind === type;
  }
}
