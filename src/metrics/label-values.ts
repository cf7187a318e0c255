import type { AuthFailure, ErrorCode } from '../errors.js';

/**
 * Every label value framehub's counters and gauges can take, except `camera` (from config).
 * createMetrics() gives each of these series a 0 at start, because Prometheus cannot see the
 * first increment of a series that did not exist at the previous scrape: the first burst of
 * rejections would read 0 in `increase()`, and a panel of a gauge no one has set says "No data".
 * The code that counts WS errors, handler errors and job limits takes the types below, so a new
 * value fails to compile until it is listed; test/metrics-registry.test.ts also fails when a
 * scrape after activity holds a series the first scrape did not. The cost: about 400 series of
 * mostly zeros, about 45 KiB per scrape (bench:metrics: 60.9 KiB with 50 cameras).
 */

/** Viewer transports (connections, frames and bytes sent, slow viewers, variant switches). */
export const VIEWER_TRANSPORTS = ['ws', 'sse', 'mjpeg'] as const;

/** Transports that carry live video, and so can skip to a keyframe (`keyframe_wait`). */
export const VIDEO_TRANSPORTS = ['ws', 'sse'] as const;

/** framehub_frames_dropped_total{reason}; `keyframe_wait` also has a transport. */
export const DROP_REASONS = [
  'pool_busy',
  'ring_full',
  'stale',
  'slow',
  'worker_error',
  'too_large',
  'refused',
  'corrupt',
  'superseded',
] as const;

/** framehub_limit_rejections_total{limit}. */
export const LIMITS = [
  'connections',
  'connections_per_ip',
  'connect_rate',
  'topics_per_connection',
  'active_jobs',
  'unauthenticated',
  'http_framing',
  'subscribe_rate',
  'upload_rate',
  'upsample_ratio',
  'audio_seconds',
  'video_seconds',
  'job_timeout',
  'tus_upload_length',
  'tus_uploads',
  'pool_queue',
  'origin',
] as const;
export type LimitLabel = (typeof LIMITS)[number];

/** framehub_auth_failures_total{transport}: every route or socket that checks a token. */
export const AUTH_TRANSPORTS = [
  'ws',
  'publish',
  'sse',
  'mjpeg',
  'snapshot',
  'jobs',
  'uploads',
  'notices',
  'status',
] as const;

/** framehub_auth_failures_total{reason}: a record, so a new AuthFailure fails to compile until listed. */
const AUTH_REASON_SET: Record<AuthFailure, true> = {
  missing: true,
  malformed: true,
  expired: true,
  not_yet_valid: true,
  issued_in_future: true,
  lifetime: true,
  signature: true,
  algorithm: true,
  key: true,
  claims: true,
  forbidden: true,
  internal: true,
  timeout: true,
  proxied_anonymous: true,
};
export const AUTH_REASONS = Object.keys(AUTH_REASON_SET) as AuthFailure[];

/** framehub_ws_errors_total{code}: the codes an `error` record on /ws or /publish can carry. */
export const WS_ERROR_CODES = [
  'BAD_MESSAGE',
  'UNKNOWN_TYPE',
  'BAD_TOPIC',
  'UNKNOWN_TOPIC',
  'UNSUPPORTED_CODEC',
  'TOO_MANY_TOPICS',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'RATE_LIMITED',
  'TOO_BIG',
  'NOT_PUSH_CAMERA',
  'IMAGE_TOO_LARGE',
  'CORRUPT_IMAGE',
  'BAD_PCM_VALUES',
  'INTERNAL',
] as const satisfies readonly ErrorCode[];
/** The type of every WS `error` record's code: sendError takes only these, so each is initialised. */
export type WsErrorCode = (typeof WS_ERROR_CODES)[number];

/** framehub_handler_errors_total{handler}: the handlers wrapped by a catch-and-count guard. */
export const HANDLERS = [
  'http',
  'ws.upgrade',
  'ws.open',
  'ws.message',
  'ws.hello',
  'ws.drain',
  'ws.close',
  'ws.verdict',
  'ws.sweep',
  'sse.sweep',
  'mjpeg.sweep',
  'publish.upgrade',
  'publish.open',
  'publish.message',
  'publish.verdict',
  'tus_hook',
  'unhandled_rejection',
] as const;
/** What guard() and its kin count under: only these, so each is initialised. */
export type HandlerName = (typeof HANDLERS)[number];

export const JOB_KINDS = ['image', 'audio', 'video'] as const;
export const JOB_OUTCOMES = ['done', 'failed', 'cancelled'] as const;
/** Jobs ffmpeg encodes, whose progress gives a speed. */
export const FFMPEG_JOB_KINDS = ['audio', 'video'] as const;

/** framehub_pool_task_duration_seconds{task}. */
export const POOL_TASKS = ['image', 'vad', 'image_job', 'preview'] as const;
export const POOL_PRIORITIES = ['live', 'job'] as const;

/** framehub_bus_messages_total{direction}: published to the cluster bus, or taken from it. */
export const BUS_DIRECTIONS = ['in', 'out'] as const;
