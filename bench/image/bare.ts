import type { Sharp } from 'sharp';
import type { ImageOp } from './shared.js';

/**
 * The op as a sharp user would write it, in one pipeline, with the encoder settings framehub's
 * image jobs use (src/image/compress.ts `withEncoder`: mozjpeg for JPEG, AVIF effort 3), so the
 * ratio is the cost of the job path and not of a different encoder. EXIF rotation and
 * never-enlarge are the job's defaults too.
 */
export function bareSharp(pipeline: Sharp, op: ImageOp): Sharp {
  const resized = pipeline
    .rotate()
    .resize({ width: op.width, height: op.height, fit: op.fit, withoutEnlargement: true });
  switch (op.format) {
    case 'jpeg':
      return resized.jpeg({ quality: op.quality, mozjpeg: op.mozjpeg ?? true });
    case 'webp':
      return resized.webp({ quality: op.quality });
    case 'avif':
      return resized.avif({ quality: op.quality, effort: 3 });
  }
}

/** The same op as an image job's query string. */
export function jobQuery(op: ImageOp): string {
  const params = new URLSearchParams({
    format: op.format,
    quality: String(op.quality),
    widths: String(op.width),
    fit: op.fit,
  });
  if (op.height !== undefined) params.set('height', String(op.height));
  return params.toString();
}
