/**
 * The formats an image job can write, and how they are named on the wire: MIME type, file
 * extension and `Accept` header entries. Telling what an input is stays sharp's job.
 */

/** In order of preference when two formats give the same number of bytes: the most widely readable first. */
export const OUTPUT_FORMATS = ['jpeg', 'webp', 'avif', 'png'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const MIME_TYPES: Readonly<Record<OutputFormat, string>> = {
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  avif: 'image/avif',
  png: 'image/png',
};

export const FILE_EXTENSIONS: Readonly<Record<OutputFormat, string>> = {
  jpeg: 'jpg',
  webp: 'webp',
  avif: 'avif',
  png: 'png',
};

const FORMAT_OF_MIME = new Map<string, OutputFormat>(
  OUTPUT_FORMATS.map((format) => [MIME_TYPES[format], format]),
);

/**
 * The output formats an `Accept` header names, in OUTPUT_FORMATS order. Wildcards (`image/*`,
 * `*\/*`) name none: every browser sends them, and reading them as "all four" would make `auto`
 * encode PNG for every photo. A type with `q=0` is refused, as RFC 9110 says. JPEG is always
 * in: every client reads it.
 *
 * @example
 *   formatsInAcceptHeader('image/avif,image/webp,image/apng,*\/*;q=0.8') // ['jpeg', 'webp', 'avif']
 */
export function formatsInAcceptHeader(accept: string): OutputFormat[] {
  const named = new Set<OutputFormat>(['jpeg']);
  for (const entry of accept.split(',')) {
    const [type = '', ...params] = entry.split(';').map((part) => part.trim().toLowerCase());
    const format = FORMAT_OF_MIME.get(type);
    if (format && !params.some((param) => /^q=0(?:\.0{0,3})?$/.test(param))) named.add(format);
  }
  return OUTPUT_FORMATS.filter((format) => named.has(format));
}

/**
 * A decoded input's format (sharp's `metadata().format`, and `compression` for HEIF) as an
 * output format, or undefined when no job can write it (GIF, TIFF, HEIC).
 */
export function outputFormatOfSource(
  format: string | undefined,
  compression?: string,
): OutputFormat | undefined {
  if (format === 'heif') return compression === 'av1' ? 'avif' : undefined;
  return OUTPUT_FORMATS.find((candidate) => candidate === format);
}
