/**
 * Width and height from a JPEG's start-of-frame marker, without decoding: walks the marker
 * segments (each FFxx with a 2-byte length) up to the first SOFn. Undefined when the bytes
 * end first or are not a JPEG. Costs a few dozen reads, against a libvips call for metadata.
 *
 * @example
 *   jpegSize(bytes) // { width: 640, height: 360 }
 */
export function jpegSize(jpeg: Uint8Array): { width: number; height: number } | undefined {
  if (jpeg[0] !== 0xff || jpeg[1] !== 0xd8) return undefined;
  let at = 2;
  while (at + 9 < jpeg.length) {
    if (jpeg[at] !== 0xff) return undefined;
    const marker = jpeg[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    const length = (jpeg[at + 2]! << 8) | jpeg[at + 3]!;
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      const height = (jpeg[at + 5]! << 8) | jpeg[at + 6]!;
      const width = (jpeg[at + 7]! << 8) | jpeg[at + 8]!;
      return width > 0 && height > 0 ? { width, height } : undefined;
    }
    at += 2 + length;
  }
  return undefined;
}
