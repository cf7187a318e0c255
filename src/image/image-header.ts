/**
 * Image size and layout read from the first bytes of a JPEG or PNG, without decoding: what a
 * limit must know before any decoder allocates for the claimed size. Every parser returns
 * undefined, never throws, on bytes that end early or do not hold a well-formed header.
 */

export interface ImageHeader {
  format: 'jpeg' | 'png';
  width: number;
  height: number;
  /** A progressive JPEG (SOF2, SOF6, SOF10, SOF14) or an Adam7-interlaced PNG. */
  progressive: boolean;
  /**
   * The decoder holds the whole image before it can hand out a row: progressive JPEG, a JPEG
   * whose first scan leaves out a component (libjpeg then buffers every coefficient), or an
   * interlaced PNG. Such an image costs memory for its full size even when only a thumbnail
   * is wanted: a 500-byte progressive header claiming 16383×16383 makes libjpeg zero 1.6 GB.
   */
  buffersWholeImage: boolean;
}

/**
 * Reads whichever of the two formats the bytes start with.
 *
 * @example
 *   readImageHeader(bytes) // { format: 'png', width: 640, height: 360, progressive: false, buffersWholeImage: false }
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader | undefined {
  return bytes[0] === 0xff ? readJpegHeader(bytes) : readPngHeader(bytes);
}

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const TEM = 0x01;
const PROGRESSIVE_SOF = new Set([0xc2, 0xc6, 0xca, 0xce]);

/** SOF0..SOF15, less DHT (C4), JPG (C8) and DAC (CC), which share the range. */
const isStartOfFrame = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
/** Markers with no length field: TEM and the restart markers RST0..RST7. */
const isStandalone = (m: number) => m === TEM || (m >= 0xd0 && m <= 0xd7);

/**
 * Walks a JPEG's marker segments (each FFxx with a 2-byte length) to its first scan (SOS): the
 * frame header (SOFn) gives the size and coding process, the scan header whether the first scan
 * covers every component. A few dozen byte reads, against a libvips call for metadata.
 * Refuses, as libjpeg does, a second SOF, a zero width, height or component count, and a
 * segment that runs past the end.
 *
 * @example
 *   readJpegHeader(camFrame) // { format: 'jpeg', width: 1280, height: 720, progressive: false, buffersWholeImage: false }
 */
export function readJpegHeader(jpeg: Uint8Array): ImageHeader | undefined {
  if (jpeg.length < 4 || jpeg[0] !== 0xff || jpeg[1] !== SOI) return undefined;
  let frame: { width: number; height: number; progressive: boolean; components: number } | undefined;
  let at = 2;
  while (at + 4 <= jpeg.length) {
    if (jpeg[at] !== 0xff) return undefined;
    const marker = jpeg[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (isStandalone(marker)) {
      at += 2;
      continue;
    }
    if (marker === SOI || marker === EOI) return undefined;
    const length = (jpeg[at + 2]! << 8) | jpeg[at + 3]!;
    const body = at + 4;
    const end = at + 2 + length;
    if (length < 2 || end > jpeg.length) return undefined;
    if (isStartOfFrame(marker)) {
      // precision(1) height(2) width(2) components(1), then 3 bytes per component.
      if (frame || length < 8) return undefined;
      const height = (jpeg[body + 1]! << 8) | jpeg[body + 2]!;
      const width = (jpeg[body + 3]! << 8) | jpeg[body + 4]!;
      const components = jpeg[body + 5]!;
      if (width === 0 || height === 0 || components === 0 || length < 8 + 3 * components) return undefined;
      frame = { width, height, progressive: PROGRESSIVE_SOF.has(marker), components };
    } else if (marker === SOS) {
      if (!frame || length < 3) return undefined;
      const { width, height, progressive, components } = frame;
      const buffersWholeImage = progressive || jpeg[body]! < components;
      return { format: 'jpeg', width, height, progressive, buffersWholeImage };
    }
    at = end;
  }
  return undefined;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const IHDR = [0x49, 0x48, 0x44, 0x52];
const PNG_BIT_DEPTHS = new Set([1, 2, 4, 8, 16]);
const PNG_COLOUR_TYPES = new Set([0, 2, 3, 4, 6]);
/** Signature, then the IHDR chunk: length, type, 13 bytes of data, CRC. */
const PNG_HEADER_BYTES = 8 + 4 + 4 + 13 + 4;

const u32 = (b: Uint8Array, at: number) =>
  b[at]! * 2 ** 24 + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);

/**
 * Reads a PNG's IHDR, which the format requires to be the first chunk. Width and height are
 * 1..2^31-1 by the spec; the bit depth, colour type and interlace method must be ones the spec
 * defines. The CRC is not checked: the decoder checks it, and nothing here depends on it.
 *
 * @example
 *   readPngHeader(png) // { format: 'png', width: 64, height: 64, progressive: true, buffersWholeImage: true }
 */
export function readPngHeader(png: Uint8Array): ImageHeader | undefined {
  if (png.length < PNG_HEADER_BYTES) return undefined;
  if (PNG_SIGNATURE.some((byte, i) => png[i] !== byte)) return undefined;
  if (u32(png, 8) !== 13 || IHDR.some((byte, i) => png[12 + i] !== byte)) return undefined;
  const width = u32(png, 16);
  const height = u32(png, 20);
  const [bitDepth, colourType, compression, filter, interlace] = png.subarray(24, 29);
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) return undefined;
  if (!PNG_BIT_DEPTHS.has(bitDepth!) || !PNG_COLOUR_TYPES.has(colourType!)) return undefined;
  if (compression !== 0 || filter !== 0 || interlace! > 1) return undefined;
  const progressive = interlace === 1;
  return { format: 'png', width, height, progressive, buffersWholeImage: progressive };
}
