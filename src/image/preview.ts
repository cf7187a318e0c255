/**
 * A small JPEG of the part of an upload that has arrived. libvips decodes a truncated JPEG or
 * PNG as far as its data goes (`failOn: 'none'`); the rest comes out grey.
 */
import { open } from 'node:fs/promises';
import sharp from 'sharp';
import { FramehubError } from '../errors.js';

export interface Preview {
  jpeg: Uint8Array;
  width: number;
  height: number;
}

/**
 * Decodes the first `bytes` of the file at `path` into a JPEG at most `width` wide.
 *
 * @throws FramehubError CORRUPT_IMAGE (422) when too little of the image is there to decode.
 */
export async function previewOf(
  path: string,
  bytes: number,
  width: number,
  maxPixels: number,
): Promise<Preview> {
  const file = await open(path, 'r');
  const head = Buffer.alloc(bytes);
  try {
    await file.read(head, 0, bytes, 0);
  } finally {
    await file.close();
  }
  try {
    const { data, info } = await sharp(head, { failOn: 'none', limitInputPixels: maxPixels })
      .rotate()
      .resize({ width, withoutEnlargement: true })
      .jpeg({ quality: 60 })
      .toBuffer({ resolveWithObject: true });
    return { jpeg: data, width: info.width, height: info.height };
  } catch (err) {
    const refusal = new FramehubError('CORRUPT_IMAGE', 'not enough of the image has arrived to preview', 422);
    refusal.cause = err;
    throw refusal;
  }
}
