import sharp, { type Metadata } from 'sharp';
import {
  type FrameRejection,
  type FrameVariant,
  VARIANT_WIDTHS,
  type VariantImage,
} from './variant-names.js';

// One libvips thread per worker: the pool already runs one worker per core, and libvips'
// own thread pool on top of that only adds contention. The cache holds decoded images we
// never reuse (every frame is new).
sharp.concurrency(1);
sharp.cache(false);

/** A frame's bytes, the size its header claims, and the limit every decode of it runs under. */
export interface VariantSource {
  jpeg: Uint8Array;
  /** From the header, read on the main thread; makeVariants needs it verified by verifyFrameHeader. */
  width: number;
  height: number;
  /** sharp's limitInputPixels: a second, independent check of the size before any decode. */
  maxPixels: number;
}

/**
 * Re-reads a frame's header with libjpeg (a header read, no decode) and
 * checks it says what the main thread's parser said: a JPEG, of the claimed size, within
 * maxPixels, not progressive. Nothing of a frame is relayed before this passes, `raw` included,
 * so viewers never get a size no decoder has vouched for.
 *
 * @example
 *   await verifyFrameHeader({ jpeg, width: 1280, height: 720, maxPixels: 40e6 }) // undefined: relay it
 */
export async function verifyFrameHeader(claimed: VariantSource): Promise<FrameRejection | undefined> {
  let meta: Metadata;
  try {
    meta = await sharp(claimed.jpeg, { failOn: 'error', limitInputPixels: claimed.maxPixels }).metadata();
  } catch (err) {
    return { reason: 'corrupt', message: (err as Error).message };
  }
  const { format, width, height, isProgressive } = meta;
  if (format !== 'jpeg' || width !== claimed.width || height !== claimed.height || isProgressive) {
    return {
      reason: 'refused',
      message: `decoder reads ${format} ${width}x${height}${isProgressive ? ' progressive' : ''}, header parser read ${claimed.width}x${claimed.height}`,
    };
  }
  return undefined;
}

/**
 * Produces the requested variants of one camera JPEG. Downscaling lets libjpeg decode at
 * 1/2, 1/4 or 1/8 scale (shrink-on-load), so `low` never decodes the full frame. A variant
 * as wide as the source or wider is the source bytes themselves: never upscaled, never re-encoded.
 * `failOn: 'error'` keeps a frame with a truncated scan (a libjpeg warning) on screen, grey
 * at the bottom, rather than dropping it.
 *
 * @example
 *   await makeVariants({ jpeg, width: 1280, height: 720, maxPixels: 40e6 }, ['raw', 'low'])
 *   // [{variant:'raw',width:1280,...},{variant:'low',width:320,height:180,...}]
 */
export async function makeVariants(
  source: VariantSource,
  variants: readonly FrameVariant[],
  quality = 75,
): Promise<VariantImage[]> {
  const { jpeg, width, height, maxPixels } = source;
  return Promise.all(
    variants.map(async (variant): Promise<VariantImage> => {
      const target = variant === 'raw' ? width : VARIANT_WIDTHS[variant];
      if (target >= width) return { variant, width, height, data: jpeg };
      const { data, info } = await sharp(jpeg, { failOn: 'error', limitInputPixels: maxPixels })
        .resize({ width: target, withoutEnlargement: true, fastShrinkOnLoad: true })
        .jpeg({ quality, mozjpeg: false })
        .toBuffer({ resolveWithObject: true });
      return { variant, width: info.width, height: info.height, data };
    }),
  );
}
