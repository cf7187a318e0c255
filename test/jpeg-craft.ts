/**
 * Hand-built JPEG headers for hostile-input tests: a few hundred bytes that claim any size.
 * The segments are the smallest a real decoder accepts (one quantisation table, one Huffman
 * table per class with a single 1-bit code), so libjpeg gets as far as allocating for the
 * claimed size: the scan that follows is a run of zero bytes, every block decoding to "no change".
 */

export interface CraftOptions {
  width: number;
  height: number;
  /** SOF2 with a DC-only first scan (the decoder must buffer the whole image), else SOF0. */
  progressive?: boolean;
  /** 4:2:0 halves the chroma planes; 4:4:4 keeps them full size. */
  sampling?: '444' | '420';
  /** Zero bytes of entropy-coded data after SOS. */
  scanBytes?: number;
  /** Components in the first scan (1..3): fewer than 3 makes a baseline file multi-scan. */
  scanComponents?: number;
  /** Overrides the luma sampling byte (H<<4|V); 0x00 is invalid and refused by libjpeg's header read. */
  lumaSamplingByte?: number;
}

const segment = (marker: number, body: number[]): number[] => {
  const length = body.length + 2;
  return [0xff, marker, length >> 8, length & 0xff, ...body];
};

const oneCodeTable = (tableClass: 0 | 1, symbol: number): number[] => [
  (tableClass << 4) | 0,
  1,
  ...new Array<number>(15).fill(0),
  symbol,
];

/** A syntactically complete JPEG (SOI … EOI) whose SOF claims `width`×`height`. */
export function craftJpeg(opts: CraftOptions): Buffer {
  const { width, height, progressive = false, sampling = '420', scanBytes = 300, scanComponents = 3 } = opts;
  const luma = opts.lumaSamplingByte ?? (sampling === '420' ? 0x22 : 0x11);
  const sof = segment(progressive ? 0xc2 : 0xc0, [
    8,
    height >> 8,
    height & 0xff,
    width >> 8,
    width & 0xff,
    3,
    ...[1, luma, 0],
    ...[2, 0x11, 0],
    ...[3, 0x11, 0],
  ]);
  // DC category 0 (no difference) and AC end-of-block, each coded as the single bit 0.
  const tables = progressive
    ? segment(0xc4, oneCodeTable(0, 0))
    : segment(0xc4, [...oneCodeTable(0, 0), ...oneCodeTable(1, 0)]);
  // Progressive: the DC first scan (Ss=Se=0); baseline: the one full scan (Ss=0, Se=63).
  const scan = [1, 0x00, 2, 0x00, 3, 0x00].slice(0, 2 * scanComponents);
  const sos = segment(0xda, [scanComponents, ...scan, 0, progressive ? 0 : 63, 0]);
  return Buffer.from([
    0xff,
    0xd8,
    ...segment(0xdb, [0, ...new Array<number>(64).fill(1)]),
    ...sof,
    ...tables,
    ...sos,
    ...new Array<number>(scanBytes).fill(0),
    0xff,
    0xd9,
  ]);
}
