import sharp from 'sharp';

/** Target widths of the resized variants; `raw` is the camera JPEG untouched. */
export const VARIANT_WIDTHS = { low: 320, medium: 640, high: 1280 } as const;
export type ResizedVariant = keyof typeof VARIANT_WIDTHS;
export const FRAME_VARIANTS = ['raw', 'low', 'medium', 'high'] as const;
export type FrameVariant = (typeof FRAME_VARIANTS)[number];

export interface VariantImage {
  variant: FrameVariant;
  width: number;
  height: number;
  data: Uint8Array;
}

// One libvips thread per worker: the pool already runs one worker per core, and libvips'
// own thread pool on top of that only adds contention. The cache holds decoded images we
// never reuse (every frame is new).
sharp.concurrency(1);
sharp.cache(false);

/**
 * Produces the requested variants of one camera JPEG. Downscaling lets libjpeg decode at
 * 1/2, 1/4 or 1/8 scale (shrink-on-load), so `low` never decodes the full frame. A variant
 * as wide as the source or wider is the source bytes themselves: never upscaled, never re-encoded.
 *
 * @example
 *   await makeVariants(jpeg, 1280, 720, ['raw', 'low']) // [{variant:'raw',width:1280,...},{variant:'low',width:320,height:180,...}]
 */
export async function makeVariants(
  jpeg: Uint8Array,
  width: number,
  height: number,
  variants: readonly FrameVariant[],
  quality = 75,
): Promise<VariantImage[]> {
  if (width <= 0 || height <= 0) {
    // Pushed frames come without a declared size: read it from the JPEG header (no decode).
    const meta = await sharp(jpeg).metadata();
    width = meta.width ?? 0;
    height = meta.height ?? 0;
  }
  return Promise.all(
    variants.map(async (variant): Promise<VariantImage> => {
      const target = variant === 'raw' ? width : VARIANT_WIDTHS[variant];
      if (target >= width) return { variant, width, height, data: jpeg };
      const { data, info } = await sharp(jpeg, { failOn: 'error' })
        .resize({ width: target, withoutEnlargement: true, fastShrinkOnLoad: true })
        .jpeg({ quality, mozjpeg: false })
        .toBuffer({ resolveWithObject: true });
      return { variant, width: info.width, height: info.height, data };
    }),
  );
}
