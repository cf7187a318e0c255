/**
 * The work of an image job, run in a job process (workers/job-process.ts): decode an upload
 * and encode it to the requested formats and widths, optionally under a byte budget. Pure:
 * bytes in, bytes out, no I/O.
 */
import { encode as encodeBlurhash } from 'blurhash';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { FramehubError } from '../errors.js';
import { type Encoded, fitBudget, MAX_ENCODES, SEARCH_CEILING, smallest } from './budget-search.js';
import { type OutputFormat, outputFormatOfSource } from './image-formats.js';
import { readImageHeader } from './image-header.js';
import { checkOutputBoxes, type ImageJobOptions } from './job-options.js';

export interface ImageOutput {
  format: OutputFormat;
  bytes: number;
  /** What it was encoded at; absent for a lossless PNG and for the source kept as it is. */
  quality?: number;
  width: number;
  height: number;
  /** Encodes this output cost, all formats and sizes together: at most MAX_ENCODES with maxBytes. */
  encodes: number;
  /** Wall time of this output: its decode and every encode. */
  ms: number;
  /** Only with maxBytes: true when bytes <= maxBytes. */
  targetMet?: boolean;
  /** The input bytes themselves, untouched (see keepsSource). */
  kept?: 'source';
  data: Uint8Array;
}

export interface ImageJobResult {
  /** The input as decoded: its format (heif with AV1 reads `avif`) and its size after EXIF rotation. */
  source: { format: string; width: number; height: number; bytes: number };
  outputs: ImageOutput[];
  /** BlurHash (4×3 components) of the first output's picture, alpha flattened onto `background` or white. */
  placeholder?: string;
}

const DEFAULT_QUALITY = 80;

/**
 * Measured on this 2-core box under load, one libvips thread, 1920×1080: effort 3 takes
 * 0.5 s for a photo and 1.1 s for a text screenshot; effort 4 takes 2.8-3.4 s for 2-23% fewer
 * bytes, efforts 1 and 2 save under 0.2 s for up to 9% more.
 */
const AVIF_EFFORT = 3;
/**
 * PNG: zlib level 9 and no adaptive filtering. Measured on a 1280×800 screenshot on this box:
 * adaptive filtering makes it 310 KB instead of 202 KB (it pays only on photos, which nobody
 * should ask as PNG). Palette effort 4 takes 0.35 s against 0.55 s for the default 7, for 15%
 * more bytes; on a photo-like picture effort 7 takes 4× longer, and a budget search may
 * encode 10 times.
 */
const PNG_ZLIB_LEVEL = 9;
const PALETTE_EFFORT = 4;
const BLURHASH_WIDTH = 32;

/** What sharp may decode for a job; SVG, HEIC and the rest are refused before any decode. */
const INPUT_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);
const INPUT_NAMES = 'JPEG, PNG, WebP, AVIF, GIF or TIFF';

/**
 * Compresses one image as `options` say: one output per width, each in the smallest of
 * `options.formats` at equal quality, or, with maxBytes, the best quality and size that fit.
 * Every decode runs under `limits.maxPixels` with `failOn: 'error'`, so a truncated input
 * fails rather than coming out grey. `onProgress` gets 0..1 after every encode.
 *
 * @example
 *   const options = parseImageJobOptions(new URLSearchParams('format=webp&maxBytes=93036'));
 *   const { outputs } = await compressImage(photo, options, { maxPixels: 40e6 });
 *   // [{ format: 'webp', bytes: 89276, quality: 76, width: 1600, height: 1200, encodes: 7, targetMet: true, ... }]
 * @throws FramehubError EMPTY_BODY, UNSUPPORTED_MEDIA_TYPE (415), IMAGE_TOO_LARGE or CORRUPT_IMAGE (422).
 */
export async function compressImage(
  input: Uint8Array,
  options: ImageJobOptions,
  limits: { maxPixels: number },
  onProgress: (fraction: number) => void = () => {},
): Promise<ImageJobResult> {
  checkOutputBoxes(options, limits.maxPixels);
  const meta = await probeImage(input, limits.maxPixels);
  const { width, height } = meta.autoOrient;
  const widths = options.widths ?? [width];
  const boxes = widths.map((w) => ({
    width: w,
    height: options.height && Math.max(1, Math.round((options.height * w) / widths[0]!)),
  }));
  const plannedEncodes = options.maxBytes === undefined ? options.formats.length : MAX_ENCODES;
  const outputs: ImageOutput[] = [];
  let placeholder: string | undefined;
  for (const [i, box] of boxes.entries()) {
    const started = performance.now();
    const progress = (encodes: number) =>
      onProgress((i + Math.min(encodes, plannedEncodes) / plannedEncodes) / boxes.length);
    let picture: Picture | undefined;
    if (keepsSource(input, meta, box, options)) {
      const format = outputFormatOfSource(meta.format, meta.compression)!;
      outputs.push({
        format,
        bytes: input.length,
        width,
        height,
        encodes: 0,
        ms: 0,
        targetMet: true,
        kept: 'source',
        data: input,
      });
    } else if (encodesOnce(options) && !(i === 0 && options.placeholder === 'blurhash')) {
      const { data, ...rest } = await encodeDirect(input, box, options, limits.maxPixels);
      progress(1);
      outputs.push({ ...rest, bytes: data.length, encodes: 1, ms: 0, data });
    } else {
      picture = await decodePicture(input, box, options, limits.maxPixels);
      const { result, encodes, targetMet } = await encodeOutput(picture, options, progress);
      const { data, ...rest } = result;
      outputs.push({
        ...rest,
        bytes: data.length,
        encodes,
        ms: 0,
        ...(targetMet !== undefined && { targetMet }),
        data,
      });
    }
    if (i === 0 && options.placeholder === 'blurhash') {
      placeholder = await blurhashOf(
        picture ?? (await decodePicture(input, box, options, limits.maxPixels)),
        options,
      );
    }
    outputs[i]!.ms = Math.round(performance.now() - started);
    progress(plannedEncodes);
  }
  const source = {
    format: outputFormatOfSource(meta.format, meta.compression) ?? meta.format,
    width,
    height,
    bytes: input.length,
  };
  return { source, outputs, ...(placeholder !== undefined && { placeholder }) };
}

const decoder = (input: Uint8Array, maxPixels: number) =>
  sharp(input, { limitInputPixels: maxPixels, failOn: 'error' });

/**
 * Reads the header (no pixels) and refuses what no job may decode: empty input, content sharp
 * does not recognise, formats outside JPEG, PNG, WebP, AVIF, GIF and TIFF (SVG, HEIC), and a
 * size over `maxPixels` (sharp's limitInputPixels).
 *
 * @example
 *   await probeImage(upload, 40e6) // { format: 'png', width: 1280, height: 800, ... }
 * @throws FramehubError EMPTY_BODY (400), UNSUPPORTED_MEDIA_TYPE or UNSUPPORTED_FORMAT (HEIC) (415), IMAGE_TOO_LARGE or CORRUPT_IMAGE (422).
 */
export async function probeImage(input: Uint8Array, maxPixels: number): Promise<Metadata> {
  if (input.length === 0) throw new FramehubError('EMPTY_BODY', 'the image is empty', 400);
  const meta = await decoding(decoder(input, maxPixels).metadata(), input, maxPixels);
  if (!INPUT_FORMATS.has(meta.format)) {
    throw new FramehubError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${meta.format} images are not accepted; send ${INPUT_NAMES}`,
      415,
    );
  }
  if (meta.format === 'heif' && meta.compression !== 'av1') {
    throw new FramehubError(
      'UNSUPPORTED_FORMAT',
      'HEIC (HEVC-coded HEIF) cannot be decoded by this build of sharp (libheif without HEVC); convert it to JPEG or AVIF',
      415,
    );
  }
  return meta;
}

/** Runs a sharp call on the input and turns its failure into the client's error; sharp's text (paths, library names) stays in `cause`. */
async function decoding<T>(work: Promise<T>, input: Uint8Array, maxPixels: number): Promise<T> {
  try {
    return await work;
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    // An encoder's failure (encodeDirect runs decode and encode as one call) is ours, not the upload's.
    if (/save|too large for the \w+ format/i.test(text)) throw err;
    const refusal = /unsupported image format/i.test(text)
      ? new FramehubError('UNSUPPORTED_MEDIA_TYPE', `not an image framehub reads (${INPUT_NAMES})`, 415)
      : /exceeds pixel limit/i.test(text)
        ? tooLarge(input, maxPixels)
        : new FramehubError('CORRUPT_IMAGE', 'the image is corrupt or truncated', 422);
    refusal.cause = err;
    throw refusal;
  }
}

function tooLarge(input: Uint8Array, maxPixels: number): FramehubError {
  const limit = `the limit of ${(maxPixels / 1e6).toFixed(1)} MP`;
  const header = readImageHeader(input);
  const claims = header
    ? `${header.width}×${header.height} pixels is over ${limit}`
    : `the image is over ${limit}`;
  return new FramehubError('IMAGE_TOO_LARGE', claims, 422);
}

interface Box {
  width: number;
  height: number | undefined;
}

/**
 * The untouched source is the answer when it fits the budget in an acceptable format and
 * nothing would change it: no resize, no EXIF rotation, a single frame, and no EXIF, XMP or
 * IPTC to strip (unless keepMetadata). An ICC profile does not stop it: browsers honour it.
 */
function keepsSource(input: Uint8Array, meta: Metadata, box: Box, options: ImageJobOptions): boolean {
  const format = outputFormatOfSource(meta.format, meta.compression);
  const sameSize =
    box.height === undefined
      ? box.width >= meta.width
      : box.width === meta.width && box.height === meta.height;
  return (
    options.maxBytes !== undefined &&
    input.length <= options.maxBytes &&
    format !== undefined &&
    options.formats.includes(format) &&
    sameSize &&
    (meta.orientation ?? 1) === 1 &&
    (meta.pages ?? 1) === 1 &&
    (options.keepMetadata || (!meta.exif && !meta.xmp && !meta.iptc))
  );
}

/** One output's picture at full size, decoded once; `at` gives a pipeline for it at any smaller size. */
interface Picture {
  pixels: Buffer;
  raw: { width: number; height: number; channels: 1 | 2 | 3 | 4 };
  at(width: number, height: number): Sharp;
}

/**
 * Decodes, rotates by EXIF, resizes (never enlarging) and converts to sRGB, into raw pixels
 * held for the output's encodes: the budget search encodes up to 10 times, and decoding a
 * 24 MP PNG takes 0.5 s against 0.05 s for encoding it at 1600 px. The cost is width × height
 * × channels bytes held per output (96 MB for a 24 MP RGBA picture at full size).
 * With keepMetadata the encodes decode the input again instead: EXIF, XMP and ICC cannot ride
 * on raw pixels. Scaling the picture's own size with the same fit redoes the same crop.
 */
async function decodePicture(input: Uint8Array, box: Box, options: ImageJobOptions, maxPixels: number) {
  const pipeline = sized(input, box, { ...options, keepMetadata: false }, maxPixels).raw();
  const { data, info } = await decoding(pipeline.toBuffer({ resolveWithObject: true }), input, maxPixels);
  const raw = { width: info.width, height: info.height, channels: info.channels };
  const at = options.keepMetadata
    ? (width: number, height: number) => sized(input, { width, height }, options, maxPixels)
    : (width: number, height: number) => {
        const pixels = sharp(data, { raw });
        return width === raw.width && height === raw.height
          ? pixels
          : pixels.resize(width, height, { fit: 'fill' });
      };
  return { pixels: data, raw, at } satisfies Picture;
}

/** Decode, EXIF rotation and resize into `box` (never enlarging), as one pipeline to encode or to hold raw. */
function sized(input: Uint8Array, box: Box, options: ImageJobOptions, maxPixels: number): Sharp {
  const pipeline = decoder(input, maxPixels)
    .rotate()
    .resize({
      ...box,
      fit: options.fit,
      background: options.background ?? { r: 0, g: 0, b: 0, alpha: 0 },
      withoutEnlargement: true,
    });
  return options.keepMetadata ? pipeline.keepMetadata() : pipeline;
}

/** The quality an output is encoded at without a budget: none for PNG unless asked (lossless). */
const qualityOf = (format: OutputFormat, options: ImageJobOptions) =>
  format === 'png' && options.quality === undefined ? undefined : (options.quality ?? DEFAULT_QUALITY);

/** One format and no budget: a single encode, so nothing is worth holding between encodes. */
const encodesOnce = (options: ImageJobOptions) =>
  options.maxBytes === undefined && options.formats.length === 1;

/**
 * The output of encodesOnce options in one libvips pipeline, decode to encode. Measured on a
 * 1080p JPEG to 640 px on this 2-core box: 5-10 ms less CPU than decoding to raw pixels and
 * encoding those (38-46 ms against 45-58 ms per image), which is what the job path spends on
 * top of bare sharp.
 */
async function encodeDirect(input: Uint8Array, box: Box, options: ImageJobOptions, maxPixels: number) {
  const format = options.formats[0]!;
  const quality = qualityOf(format, options);
  const pipeline = withEncoder(sized(input, box, options, maxPixels), format, quality, options.background);
  const { data, info } = await decoding(pipeline.toBuffer({ resolveWithObject: true }), input, maxPixels);
  return { format, ...(quality !== undefined && { quality }), width: info.width, height: info.height, data };
}

/**
 * PNG is lossless unless a quality or a budget is given; then it is a palette PNG
 * (libimagequant) and the quality is the palette's quality.
 */
function withEncoder(
  pipeline: Sharp,
  format: OutputFormat,
  quality: number | undefined,
  background?: string,
) {
  switch (format) {
    case 'jpeg':
      return pipeline.flatten({ background: background ?? '#ffffff' }).jpeg({ quality, mozjpeg: true });
    case 'webp':
      return pipeline.webp({ quality });
    case 'avif':
      return pipeline.avif({ quality, effort: AVIF_EFFORT });
    case 'png':
      return quality === undefined
        ? pipeline.png({ compressionLevel: PNG_ZLIB_LEVEL })
        : pipeline.png({ compressionLevel: PNG_ZLIB_LEVEL, palette: true, quality, effort: PALETTE_EFFORT });
  }
}

/** Encodes one output: every candidate format at one quality, or the budget search. */
async function encodeOutput(
  picture: Picture,
  options: ImageJobOptions,
  progress: (encodes: number) => void,
): Promise<{ result: Encoded; encodes: number; targetMet?: boolean }> {
  let encodes = 0;
  const encode = async (format: OutputFormat, quality: number | undefined, scale = 1): Promise<Encoded> => {
    const width = Math.max(1, Math.round(picture.raw.width * scale));
    const height = Math.max(1, Math.round(picture.raw.height * scale));
    const pipeline = withEncoder(picture.at(width, height), format, quality, options.background);
    const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
    progress(++encodes);
    return {
      format,
      ...(quality !== undefined && { quality }),
      width: info.width,
      height: info.height,
      data,
    };
  };
  const { maxBytes } = options;
  const formats = await keepingTransparency(picture, options.formats);
  if (maxBytes === undefined) {
    const results: Encoded[] = [];
    for (const format of formats) results.push(await encode(format, qualityOf(format, options)));
    return { result: smallest(results), encodes };
  }
  const found = await fitBudget(
    encode,
    () => encodes,
    picture.raw,
    formats,
    maxBytes,
    options.quality ?? SEARCH_CEILING,
  );
  return { ...found, encodes };
}

/**
 * `auto` does not flatten a picture that uses its alpha channel into JPEG when an acceptable
 * format keeps it: a logo on a white square is a broken logo, however small. An opaque alpha
 * channel (common in PNG) does not count; telling costs one pass over the pixels.
 */
async function keepingTransparency(picture: Picture, formats: OutputFormat[]): Promise<OutputFormat[]> {
  const hasAlpha = picture.raw.channels % 2 === 0;
  if (!hasAlpha || !formats.includes('jpeg') || formats.length === 1) return formats;
  const { isOpaque } = await sharp(picture.pixels, { raw: picture.raw }).stats();
  return isOpaque ? formats : formats.filter((format) => format !== 'jpeg');
}

/** BlurHash of a 32-px-wide thumbnail of the picture: 4×3 components, a 28-character string. */
async function blurhashOf(picture: Picture, options: ImageJobOptions): Promise<string> {
  const width = Math.min(BLURHASH_WIDTH, picture.raw.width);
  const height = Math.max(1, Math.round((picture.raw.height * width) / picture.raw.width));
  const { data, info } = await sharp(picture.pixels, { raw: picture.raw })
    .resize(width, height, { fit: 'fill' })
    .flatten({ background: options.background ?? '#ffffff' })
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return encodeBlurhash(
    new Uint8ClampedArray(data.buffer, data.byteOffset, data.length),
    info.width,
    info.height,
    4,
    3,
  );
}
