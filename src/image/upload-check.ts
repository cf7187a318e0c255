/**
 * What an image job's upload must pass before a job exists, from its bytes alone (no
 * decoder): the size its header claims, and, for JPEG and PNG, an end where the format puts
 * one. Catching a truncated upload here answers 422 at once, rather than after it has queued
 * for a worker and half-decoded.
 */
import { FramehubError } from '../errors.js';
import { type ImageHeader, readImageHeader } from './image-header.js';

/** How far from the end an end marker may sit: cameras and editors append a little after it. */
const TAIL_BYTES = 64 * 1024;
const JPEG_EOI = Uint8Array.of(0xff, 0xd9);
const PNG_IEND = Uint8Array.of(0x49, 0x45, 0x4e, 0x44);

/**
 * Throws IMAGE_TOO_LARGE (422) for a JPEG or PNG header over `maxPixels`, and CORRUPT_IMAGE
 * (422) for a JPEG without its end marker or a PNG without IEND near the end. Other formats
 * are left to the decoder. Returns the JPEG or PNG header it read, if any.
 */
export function checkUpload(bytes: Uint8Array, maxPixels: number): ImageHeader | undefined {
  const header = readImageHeader(bytes);
  if (header && header.width * header.height > maxPixels) {
    throw new FramehubError(
      'IMAGE_TOO_LARGE',
      `${header.width}×${header.height} pixels is over the limit of ${(maxPixels / 1e6).toFixed(1)} MP (images.maxPixels)`,
      422,
    );
  }
  const isJpeg = bytes[0] === 0xff && bytes[1] === 0xd8;
  const isPng = bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const tail = bytes.subarray(Math.max(0, bytes.length - TAIL_BYTES));
  if ((isJpeg && !contains(tail, JPEG_EOI)) || (isPng && !contains(tail, PNG_IEND))) {
    throw new FramehubError(
      'CORRUPT_IMAGE',
      `the ${isJpeg ? 'JPEG' : 'PNG'} is truncated: it has no end marker`,
      422,
    );
  }
  return header;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).includes(Buffer.from(needle));
}
