/**
 * The options of a video job (`POST /api/v1/jobs/video?chunkSeconds=10&renditions=480p,720p&hls=true&thumbnails=5`),
 * parsed from the query string and checked before the body is read. Every refusal is 400
 * INVALID_FIELD naming the parameter; no message echoes a client's value.
 */
import { z } from 'zod';
import { RENDITION_NAMES, type RenditionName } from '../media/video-job-args.js';
import { parseQueryOptions, queryInteger } from '../wire/query-options.js';

export interface VideoJobOptions {
  /** 2..60 s; every chunk but the last is this long (cut at the next frame). */
  chunkSeconds: number;
  /** Asked for; undefined means the default (the source height capped at 720p). */
  renditions: RenditionName[] | undefined;
  hls: boolean;
  /** A sprite tile every this many seconds; 0 makes no sprite sheet (the poster is always made). */
  thumbnails: number;
  /** The source's audio volume under an overlay, 0..1. */
  duck: number;
  /** The body's last this many bytes are the overlay audio; 0 means no overlay. */
  overlayAudioBytes: number;
}

const RULES = {
  chunkSeconds: 'an integer from 2 to 60',
  renditions: `a comma-separated list of ${RENDITION_NAMES.join(', ')}`,
  hls: 'true or false',
  thumbnails: 'an integer from 0 to 3600 (seconds between sprite tiles; 0 for none)',
  duck: 'a number from 0 to 1',
  overlayAudioBytes: 'an integer from 1 to the body length less one byte of video',
} as const;
const integer = queryInteger;

const querySchema = z.object({
  chunkSeconds: integer(2, 60).default(10),
  renditions: z
    .string()
    .transform((value) => value.split(','))
    .pipe(
      z
        .array(z.enum(RENDITION_NAMES as [RenditionName, ...RenditionName[]]))
        .min(1)
        .max(RENDITION_NAMES.length),
    )
    .optional(),
  hls: z
    .enum(['true', 'false'])
    .transform((value) => value === 'true')
    .default(false),
  thumbnails: integer(0, 3600).default(0),
  duck: z
    .string()
    .regex(/^(?:0|1|0?\.\d{1,4}|1\.0{1,4})$/)
    .transform(Number)
    .default(0.2),
  overlayAudioBytes: integer(1, 2 ** 31 - 1).optional(),
});

/**
 * Parses and checks a video job's query parameters.
 *
 * @example
 *   parseVideoJobOptions(new URLSearchParams('chunkSeconds=5&renditions=480p,720p&hls=true'))
 *   // { chunkSeconds: 5, renditions: ['480p', '720p'], hls: true, thumbnails: 0, duck: 0.2, overlayAudioBytes: 0 }
 * @throws FramehubError INVALID_FIELD (400) naming the first parameter at fault.
 */
export function parseVideoJobOptions(query: URLSearchParams): VideoJobOptions {
  const parsed = parseQueryOptions(query, querySchema, RULES, 'video jobs');
  const { renditions, overlayAudioBytes, ...rest } = parsed;
  return { ...rest, renditions, overlayAudioBytes: overlayAudioBytes ?? 0 };
}
