import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { FramehubError } from '../errors.js';
import { annotationSvg, type FrameAnnotation } from './annotation.js';
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

export interface VariantOptions {
  quality?: number;
  /** What the `annotated` variant draws; required when it is asked for. */
  annotation?: FrameAnnotation;
}

/**
 * Produces the requested variants of one camera JPEG. Downscaling lets libjpeg decode at
 * 1/2, 1/4 or 1/8 scale (shrink-on-load), so `low` never decodes the full frame. A variant
 * as wide as the source or wider is the source bytes themselves: never upscaled, never re-encoded.
 * `failOn: 'error'` keeps a frame with a truncated scan (a libjpeg warning) on screen, grey
 * at the bottom, rather than dropping it.
 *
 * `annotated` is `medium`'s pixels with the overlay composited on them. Its frame is decoded
 * once, to `medium`'s size in memory, and `medium` (when asked for too) is encoded from those
 * pixels rather than decoded again. What it adds is the SVG render (librsvg, ~3.5 ms), the
 * composite and one more 640 px JPEG encode: from a 1080p frame, ~11 ms of CPU on top of
 * `medium`'s ~14 ms (2-core EPYC, sharp 0.35.5), against ~22 ms with a second decode.
 *
 * @example
 *   await makeVariants({ jpeg, width: 1280, height: 720, maxPixels: 40e6 }, ['raw', 'low'])
 *   // [{variant:'raw',width:1280,...},{variant:'low',width:320,height:180,...}]
 */
export async function makeVariants(
  source: VariantSource,
  variants: readonly FrameVariant[],
  { quality = 75, annotation }: VariantOptions = {},
): Promise<VariantImage[]> {
  let mediumPixels: Promise<Pixels> | undefined;
  if (variants.includes('annotated')) {
    if (!annotation)
      throw new FramehubError('INTERNAL', 'the annotated variant was asked for without its annotation');
    mediumPixels = decodeTo(source, VARIANT_WIDTHS.medium);
  }
  return Promise.all(
    variants.map(async (variant): Promise<VariantImage> => {
      if (variant === 'annotated') {
        const pixels = await mediumPixels!;
        const overlay = annotationSvg(annotation!, pixels.info.width, pixels.info.height);
        return encode(variant, pixels, quality, overlay);
      }
      const target = variant === 'raw' ? source.width : VARIANT_WIDTHS[variant];
      if (target >= source.width)
        return { variant, width: source.width, height: source.height, data: source.jpeg };
      if (variant === 'medium' && mediumPixels) return encode(variant, await mediumPixels, quality);
      const { data, info } = await decoder(source)
        .resize({ width: target, withoutEnlargement: true, fastShrinkOnLoad: true })
        .jpeg({ quality, mozjpeg: false })
        .toBuffer({ resolveWithObject: true });
      return { variant, width: info.width, height: info.height, data };
    }),
  );
}

/** Decoded pixels and their layout, as sharp gives them back from `.raw()`. */
type Pixels = { data: Buffer; info: OutputInfo };

function decoder(source: VariantSource): Sharp {
  return sharp(source.jpeg, { failOn: 'error', limitInputPixels: source.maxPixels });
}

/**
 * The frame at `width` (or its own size when narrower), as pixels in memory: 640×360×3, 0.7 MB,
 * for `medium`. sharp outputs sRGB (a greyscale JPEG too), so the overlay keeps its colours, and
 * `medium` encoded from these pixels is byte for byte what the one-pipeline resize gives.
 */
function decodeTo(source: VariantSource, width: number): Promise<Pixels> {
  return decoder(source)
    .resize({ width, withoutEnlargement: true, fastShrinkOnLoad: true })
    .raw()
    .toBuffer({ resolveWithObject: true });
}

async function encode(
  variant: FrameVariant,
  { data, info }: Pixels,
  quality: number,
  overlay?: string,
): Promise<VariantImage> {
  const { width, height, channels } = info;
  let image = sharp(data, { raw: { width, height, channels } });
  if (overlay) image = image.composite([{ input: Buffer.from(overlay), top: 0, left: 0 }]);
  const jpeg = await image.jpeg({ quality, mozjpeg: false }).toBuffer();
  return { variant, width, height, data: jpeg };
}
