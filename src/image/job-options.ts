/**
 * The options of an image job (`POST /api/v1/jobs/image?format=webp&widths=1280,640&maxBytes=200000`),
 * parsed from the query string and checked before the body is read. Every refusal is
 * 400 INVALID_FIELD naming the parameter; no message echoes a client's value.
 */
import { z } from 'zod';
import { FramehubError } from '../errors.js';
import { invalidField, parseQueryOptions, queryInteger } from '../wire/query-options.js';
import { formatsInAcceptHeader, OUTPUT_FORMATS, type OutputFormat } from './image-formats.js';

export const FITS = ['cover', 'contain', 'fill', 'inside', 'outside'] as const;
export type Fit = (typeof FITS)[number];

/** Outputs per job: each costs up to MAX_ENCODES encodes (budget-search.ts). */
export const MAX_WIDTHS = 8;
/** The largest side an output may ask for: WebP's limit, the smallest of the four encoders'. */
export const MAX_SIDE = 16_383;
const MAX_BUDGET_BYTES = 2 ** 31 - 1;

export interface ImageJobOptions {
  format: OutputFormat | 'auto';
  /** What gets encoded: `[format]`, or for `auto` every acceptable format (JPEG always among them). */
  formats: OutputFormat[];
  /** 1..100. Without it: 80, or with maxBytes the search ceiling 85. PNG: see compress.ts. */
  quality?: number;
  /** One output per entry; undefined means one output at the source width. */
  widths?: number[];
  /** The box height for widths[0]; the other widths keep the box's aspect ratio. */
  height?: number;
  fit: Fit;
  /** `#rrggbb`: what alpha is flattened onto for JPEG (default white) and the bars of `contain` (default transparent). */
  background?: string;
  keepMetadata: boolean;
  maxBytes?: number;
  placeholder?: 'blurhash';
  priority: 'low' | 'normal';
}

/** What each parameter must be, as the refusal says it. */
const RULES = {
  format: `one of ${OUTPUT_FORMATS.join(', ')}, auto`,
  accept: `a comma-separated list of ${OUTPUT_FORMATS.join(', ')}`,
  quality: 'an integer from 1 to 100',
  widths: `a comma-separated list of 1 to ${MAX_WIDTHS} integers from 1 to ${MAX_SIDE}`,
  height: `an integer from 1 to ${MAX_SIDE}`,
  fit: `one of ${FITS.join(', ')}`,
  background: 'a colour written #rgb or #rrggbb',
  keepMetadata: 'true or false',
  maxBytes: `an integer from 1 to ${MAX_BUDGET_BYTES}`,
  placeholder: 'blurhash',
  priority: 'low or normal',
} as const;
const integer = queryInteger;
const list = <T extends z.ZodType<unknown, string>>(item: T, max: number) =>
  z
    .string()
    .transform((value) => value.split(','))
    .pipe(z.array(item).min(1).max(max));

const querySchema = z.object({
  format: z.enum([...OUTPUT_FORMATS, 'auto']).default('auto'),
  accept: list(z.enum(OUTPUT_FORMATS), OUTPUT_FORMATS.length).optional(),
  quality: integer(1, 100).optional(),
  widths: list(integer(1, MAX_SIDE), MAX_WIDTHS).optional(),
  height: integer(1, MAX_SIDE).optional(),
  fit: z.enum(FITS).default('inside'),
  background: z
    .string()
    .regex(/^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i)
    .transform((hex) => (hex.length === 4 ? hex.replace(/[0-9a-f]/gi, (d) => d + d) : hex).toLowerCase())
    .optional(),
  keepMetadata: z
    .enum(['true', 'false'])
    .transform((value) => value === 'true')
    .default(false),
  maxBytes: integer(1, MAX_BUDGET_BYTES).optional(),
  placeholder: z.literal('blurhash').optional(),
  priority: z.enum(['low', 'normal']).default('normal'),
});

const invalid = invalidField;

/**
 * Parses and checks an image job's query parameters. `acceptHeader` is the request's `Accept`
 * header; it decides `auto` unless `accept=` is given.
 *
 * @example
 *   parseImageJobOptions(new URLSearchParams('format=auto&widths=1280,640&maxBytes=150000'), 'image/avif,image/webp,*\/*')
 *   // { format: 'auto', formats: ['jpeg', 'webp', 'avif'], widths: [1280, 640], maxBytes: 150000, fit: 'inside', ... }
 * @throws FramehubError INVALID_FIELD (400) naming the first parameter at fault.
 */
export function parseImageJobOptions(query: URLSearchParams, acceptHeader = ''): ImageJobOptions {
  const parsed = parseQueryOptions(query, querySchema, RULES, 'image jobs');
  const { accept, ...options } = parsed;
  if (accept && options.format !== 'auto') throw invalid('accept applies only to format=auto');
  const formats =
    options.format === 'auto'
      ? OUTPUT_FORMATS.filter(
          (format) => format === 'jpeg' || (accept ?? formatsInAcceptHeader(acceptHeader)).includes(format),
        )
      : [options.format];
  return { ...options, formats };
}

/**
 * Throws IMAGE_TOO_LARGE (422) when a requested output box (width × height, with `height`)
 * is over `maxPixels`: `fit=contain` pads a 2×2 image out to the whole box, so the limit on
 * the input alone would let a 95-byte upload make a 16383×16383 output (1 GB of pixels).
 */
export function checkOutputBoxes(options: ImageJobOptions, maxPixels: number): void {
  if (options.height === undefined || !options.widths) return;
  const first = options.widths[0]!;
  for (const width of options.widths) {
    const height = Math.max(1, Math.round((options.height * width) / first));
    if (width * height > maxPixels) {
      throw new FramehubError(
        'IMAGE_TOO_LARGE',
        `an output of ${width}×${height} pixels is over the limit of ${(maxPixels / 1e6).toFixed(1)} MP (images.maxPixels)`,
        422,
      );
    }
  }
}
