import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { readImageHeader, readJpegHeader, readPngHeader } from '../src/image/image-header.js';
import { craftJpeg } from './jpeg-craft.js';

const base = () => sharp({ create: { width: 333, height: 77, channels: 3, background: '#468' } });
let baseline: Buffer;
let png: Buffer;

beforeAll(async () => {
  baseline = await base().jpeg().toBuffer();
  png = await base().png().toBuffer();
});

describe('readJpegHeader', () => {
  it('agrees with sharp on size and progressive for baseline, progressive, EXIF, 4:4:4 and greyscale JPEGs', async () => {
    const jpegs = [
      baseline,
      await base().jpeg({ progressive: true }).toBuffer(),
      await base().withMetadata({ orientation: 6 }).jpeg().toBuffer(),
      await base().jpeg({ chromaSubsampling: '4:4:4' }).toBuffer(),
      await base().greyscale().jpeg().toBuffer(),
    ];
    for (const jpeg of jpegs) {
      const meta = await sharp(jpeg).metadata();
      expect(readJpegHeader(jpeg)).toEqual({
        format: 'jpeg',
        width: meta.width,
        height: meta.height,
        progressive: meta.isProgressive,
        buffersWholeImage: meta.isProgressive,
      });
    }
  });

  it('reads the bombs of issue #8 for what they claim', () => {
    expect(readJpegHeader(craftJpeg({ width: 16383, height: 16383, progressive: true }))).toEqual({
      format: 'jpeg',
      width: 16383,
      height: 16383,
      progressive: true,
      buffersWholeImage: true,
    });
    expect(readJpegHeader(craftJpeg({ width: 60000, height: 60000 }))).toMatchObject({
      width: 60000,
      height: 60000,
      progressive: false,
      buffersWholeImage: false,
    });
  });

  it('flags a baseline JPEG whose first scan leaves out a component: libjpeg buffers it whole', () => {
    expect(readJpegHeader(craftJpeg({ width: 640, height: 360, scanComponents: 1 }))).toMatchObject({
      progressive: false,
      buffersWholeImage: true,
    });
  });

  it('skips fill bytes and standalone markers between segments', () => {
    const jpeg = craftJpeg({ width: 64, height: 48 });
    const padded = Buffer.concat([
      jpeg.subarray(0, 2),
      Buffer.from([0xff, 0xff, 0xff, 0x01]),
      jpeg.subarray(2),
    ]);
    expect(readJpegHeader(padded)).toMatchObject({ width: 64, height: 48 });
  });

  it('returns undefined for malformed headers', () => {
    const jpeg = craftJpeg({ width: 64, height: 48 });
    const sofAt = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    const withSof = (patch: (b: Buffer) => void) => {
      const copy = Buffer.from(jpeg);
      patch(copy);
      return readJpegHeader(copy);
    };
    expect(withSof((b) => b.writeUInt16BE(0, sofAt + 5))).toBeUndefined(); // height 0 (DNL)
    expect(withSof((b) => b.writeUInt16BE(0, sofAt + 7))).toBeUndefined(); // width 0
    expect(withSof((b) => b.writeUInt8(0, sofAt + 9))).toBeUndefined(); // no components
    expect(withSof((b) => b.writeUInt8(5, sofAt + 9))).toBeUndefined(); // more components than bytes
    expect(withSof((b) => b.writeUInt16BE(0xffff, sofAt + 2))).toBeUndefined(); // runs past the end
    expect(withSof((b) => b.writeUInt16BE(1, sofAt + 2))).toBeUndefined(); // length below 2
    const sof = jpeg.subarray(sofAt, sofAt + 19);
    const twoSofs = Buffer.concat([jpeg.subarray(0, sofAt), sof, jpeg.subarray(sofAt)]);
    expect(readJpegHeader(twoSofs)).toBeUndefined();
    expect(readJpegHeader(Buffer.from([0xff, 0xd8, 0xff, 0xd9]))).toBeUndefined(); // EOI, no frame
    expect(readJpegHeader(Buffer.from('not a jpeg at all'))).toBeUndefined();
    expect(readJpegHeader(new Uint8Array([0xff, 0xd8, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined();
  });

  it('returns undefined for every truncation before the first scan header is complete', () => {
    const sosAt = baseline.indexOf(Buffer.from([0xff, 0xda]));
    const sosEnd = sosAt + 2 + baseline.readUInt16BE(sosAt + 2);
    for (let n = 0; n < sosEnd; n++)
      expect(readJpegHeader(baseline.subarray(0, n)), `${n} bytes`).toBeUndefined();
    expect(readJpegHeader(baseline.subarray(0, sosEnd))).toMatchObject({ width: 333, height: 77 });
  });
});

describe('readPngHeader', () => {
  it('reads size and Adam7 interlacing as sharp does', async () => {
    const interlaced = await base().png({ progressive: true }).toBuffer();
    for (const image of [png, interlaced]) {
      const meta = await sharp(image).metadata();
      expect(readPngHeader(image)).toEqual({
        format: 'png',
        width: meta.width,
        height: meta.height,
        progressive: meta.isProgressive,
        buffersWholeImage: meta.isProgressive,
      });
    }
    expect(readPngHeader(interlaced)?.progressive).toBe(true);
  });

  it('reads a claimed 2^31-1 square without trusting it, and refuses out-of-spec fields', () => {
    const patched = (write: (b: Buffer) => void) => {
      const copy = Buffer.from(png);
      write(copy);
      return readPngHeader(copy);
    };
    const square = patched((b) => {
      b.writeUInt32BE(0x7fffffff, 16);
      b.writeUInt32BE(0x7fffffff, 20);
    });
    expect(square).toMatchObject({ width: 0x7fffffff, height: 0x7fffffff });
    expect(patched((b) => b.writeUInt32BE(0x80000000, 16))).toBeUndefined();
    expect(patched((b) => b.writeUInt32BE(0, 20))).toBeUndefined();
    expect(patched((b) => b.writeUInt8(3, 24))).toBeUndefined(); // bit depth 3
    expect(patched((b) => b.writeUInt8(5, 25))).toBeUndefined(); // colour type 5
    expect(patched((b) => b.writeUInt8(2, 28))).toBeUndefined(); // interlace 2
    expect(patched((b) => b.write('IDAT', 12, 'latin1'))).toBeUndefined(); // IHDR not first
  });

  it('returns undefined for every truncation of the signature and IHDR chunk', () => {
    for (let n = 0; n < 33; n++) expect(readPngHeader(png.subarray(0, n)), `${n} bytes`).toBeUndefined();
    expect(readPngHeader(png.subarray(0, 33))).toMatchObject({ width: 333, height: 77 });
  });
});

describe('readImageHeader', () => {
  it('picks the parser from the magic bytes', () => {
    expect(readImageHeader(baseline)?.format).toBe('jpeg');
    expect(readImageHeader(png)?.format).toBe('png');
    expect(readImageHeader(Buffer.from('GIF89a'))).toBeUndefined();
    expect(readImageHeader(new Uint8Array())).toBeUndefined();
  });

  it('never throws on mutated headers, and what it returns is a positive size', () => {
    // A fixed-seed generator: the same 4,000 cases on every run (the fuzzers run the open-ended search).
    let state = 0x2545f491;
    const random = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) / 2 ** 32;
    };
    const seeds = [
      baseline.subarray(0, 700),
      png.subarray(0, 64),
      craftJpeg({ width: 9, height: 9, progressive: true }),
    ];
    for (let i = 0; i < 4000; i++) {
      const bytes = Buffer.from(seeds[i % seeds.length]!);
      for (let k = 1 + Math.floor(random() * 8); k > 0; k--) {
        bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
      const cut = bytes.subarray(0, Math.floor(random() * (bytes.length + 1)));
      const header = readImageHeader(cut);
      if (header) {
        expect(header.width).toBeGreaterThan(0);
        expect(header.height).toBeGreaterThan(0);
      }
    }
  });
});
