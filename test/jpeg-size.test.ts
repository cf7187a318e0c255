import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { jpegSize } from '../src/image/jpeg-size.js';

describe('jpegSize', () => {
  it('reads baseline and progressive JPEGs, with and without EXIF, as sharp does', async () => {
    const base = sharp({ create: { width: 333, height: 77, channels: 3, background: '#468' } });
    const variants = [
      await base.clone().jpeg().toBuffer(),
      await base.clone().jpeg({ progressive: true }).toBuffer(),
      await base.clone().withMetadata({ orientation: 1 }).jpeg().toBuffer(),
    ];
    for (const jpeg of variants) expect(jpegSize(jpeg)).toEqual({ width: 333, height: 77 });
  });

  it('returns undefined for non-JPEG or truncated bytes', async () => {
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } })
      .jpeg()
      .toBuffer();
    expect(jpegSize(Buffer.from('not a jpeg at all'))).toBeUndefined();
    expect(jpegSize(jpeg.subarray(0, 6))).toBeUndefined();
    expect(jpegSize(new Uint8Array([0xff, 0xd8, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined();
  });
});
