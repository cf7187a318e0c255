/**
 * The maxBytes search of an image job (README "The maxBytes search"): the best quality, then
 * the largest size, whose encode fits a byte budget, in at most MAX_ENCODES encodes. Pure
 * arithmetic over an `encode` callback: the caller decodes once and encodes on demand.
 */
import type { OutputFormat } from './image-formats.js';

/** The quality search of maxBytes runs between these (the requested quality is the ceiling when given). */
export const SEARCH_CEILING = 85;
const SEARCH_FLOOR = 30;
/**
 * Encodes one output may cost under maxBytes, all formats and sizes together. Without a
 * dimension step the search needs formats + 1 + 5 (bisection of 30..85 to within 2); each
 * dimension step costs one more. An encode of a 1080p picture takes 0.05-1 s (AVIF the most).
 */
export const MAX_ENCODES = 10;
/** The bisection stops once the best quality that fits and the lowest that does not are this close. */
const QUALITY_RESOLUTION = 2;
/** A dimension step keeps 1/√2 of the width and height: half the pixels. */
const DIMENSION_STEP = Math.SQRT1_2;
/** Dimension steps stop at this shorter side (or the picture's own, if shorter). */
const MIN_SIDE = 16;

export interface Encoded {
  format: OutputFormat;
  quality?: number;
  width: number;
  height: number;
  data: Buffer;
}

export const smallest = (results: Encoded[]) =>
  results.reduce((a, b) => (b.data.length < a.data.length ? b : a));

export type Encode = (format: OutputFormat, quality: number, scale?: number) => Promise<Encoded>;

/**
 * The maxBytes search. Every format is encoded at the ceiling; if none fits, only the smallest
 * of them is searched further (formats rarely trade places as quality drops, and searching each
 * would multiply the encodes). Then the floor: if it fits, bisect the quality between floor and
 * ceiling; if not, step the dimensions down by 1/√2 (half the pixels) as many times as halvings
 * of bytes are still needed (bytes fall roughly in proportion to pixels, usually a little
 * less, so this seldom shrinks more than needed and saves an encode per step skipped), and
 * try the floor again. At most MAX_ENCODES encodes; when nothing fits, the
 * smallest result seen is returned with targetMet false.
 */
export async function fitBudget(
  encode: Encode,
  encodesSoFar: () => number,
  size: { width: number; height: number },
  formats: OutputFormat[],
  maxBytes: number,
  ceiling: number,
): Promise<{ result: Encoded; targetMet: boolean }> {
  const fits = (result: Encoded) => result.data.length <= maxBytes;
  const floor = Math.min(SEARCH_FLOOR, ceiling);
  const atCeiling: Encoded[] = [];
  for (const format of formats) atCeiling.push(await encode(format, ceiling));
  let least = smallest(atCeiling);
  if (fits(least)) return { result: least, targetMet: true };
  const format = least.format;
  const minScale = Math.min(1, MIN_SIDE / Math.min(size.width, size.height));
  let scale = 1;
  // The lowest quality known not to fit at this scale: the ceiling at full size, unknown (one above) after a step.
  let over = ceiling;
  let atFloor: Encoded | undefined = floor === ceiling ? least : undefined;
  for (;;) {
    if (!atFloor) {
      if (encodesSoFar() >= MAX_ENCODES) break;
      atFloor = await encode(format, floor, scale);
    }
    if (atFloor.data.length < least.data.length) least = atFloor;
    if (fits(atFloor))
      return { result: await bisect(encode, encodesSoFar, atFloor, over, scale, fits), targetMet: true };
    if (scale <= minScale) break;
    const halvings = Math.max(1, Math.ceil(Math.log2(atFloor.data.length / maxBytes)));
    scale = Math.max(minScale, scale * DIMENSION_STEP ** halvings);
    over = ceiling + 1;
    atFloor = undefined;
  }
  return { result: least, targetMet: false };
}

/** Raises the quality from a result that fits towards `over` (which does not) while encodes remain. */
async function bisect(
  encode: Encode,
  encodesSoFar: () => number,
  fitting: Encoded,
  over: number,
  scale: number,
  fits: (result: Encoded) => boolean,
): Promise<Encoded> {
  let best = fitting;
  let high = over;
  while (high - best.quality! > QUALITY_RESOLUTION && encodesSoFar() < MAX_ENCODES) {
    const result = await encode(best.format, Math.round((best.quality! + high) / 2), scale);
    if (fits(result)) best = result;
    else high = result.quality!;
  }
  return best;
}
