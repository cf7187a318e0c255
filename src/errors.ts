/**
 * Every error class and every error code framehub has, in one place (README "Error codes").
 * Pure: no I/O, no server, metrics or logging imports, so every layer (workers included) may
 * use it.
 */

/**
 * Every documented code (README "Error codes"). The first group a client can meet: in a
 * `{type:'error'}` record, an HTTP body `{error:{code,message}}`, a job's `error.code`, or the
 * reason of a WebSocket close. The last group only an operator meets: in the log, or as the
 * reason start-up or shutdown failed.
 */
export type ErrorCode =
  | 'BAD_MESSAGE'
  | 'UNKNOWN_TYPE'
  | 'BAD_TOPIC'
  | 'UNKNOWN_TOPIC'
  | 'UNSUPPORTED_CODEC' // 406 / WS error: the browser named codecs and none plays the camera's video
  | 'TOO_MANY_TOPICS'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'TOO_MANY_CONNECTIONS'
  | 'RATE_LIMITED'
  | 'NOT_PUSH_CAMERA'
  | 'NOT_FOUND'
  | 'NOT_HERE' // 409: DELETE of a job another node runs (several nodes on Redis): send it to that node
  | 'BAD_REQUEST'
  | 'TOO_LARGE'
  | 'TOO_BIG'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'UNSUPPORTED_FORMAT' // 415: an image format this build cannot decode (HEIC: sharp's libheif has no HEVC)
  | 'INVALID_FIELD'
  | 'EMPTY_BODY'
  | 'BAD_PCM_LENGTH'
  | 'BAD_PCM_VALUES'
  | 'DECODE_FAILED'
  | 'NO_AUDIO'
  | 'NO_FRAME_YET'
  | 'NOT_READY'
  | 'ABORTED'
  | 'IMAGE_TOO_LARGE'
  | 'CORRUPT_IMAGE'
  | 'JOB_TIMEOUT'
  | 'UPLOAD_TOO_SLOW'
  | 'AUDIO_TOO_LONG'
  | 'SAMPLE_RATE_TOO_LOW'
  | 'VAD_CHUNK_FAILED'
  | 'VAD_STREAM_MISMATCH'
  // tus uploads (src/uploads): tus clients go by the status, these name it for everyone else.
  | 'UPLOAD_OFFSET_MISMATCH' // 409: Upload-Offset is not the upload's offset
  | 'UPLOAD_EXPIRED' // 410: expired, not swept yet (404 NOT_FOUND after)
  | 'TUS_VERSION_UNSUPPORTED' // 412: Tus-Resumable is missing or not 1.0.0
  | 'UPLOAD_LOCKED' // 423: another PATCH is writing to the upload
  // ffmpeg runs over uploads (src/media/ffmpeg-run.ts) and video jobs.
  | 'MEDIA_UNSUPPORTED' // 415: not an accepted container (playlists and manifests never are)
  | 'MEDIA_DECODE_FAILED' // 422: the container was recognised, ffmpeg could not decode it
  | 'MEDIA_TOO_LONG' // 422: the source runs past jobs.video.maxSeconds
  | 'MEDIA_TIMEOUT' // 504 or a job's error: ffmpeg ran past its deadline and was killed
  | 'MEDIA_CANCELLED' // a job's error: DELETE or shutdown killed ffmpeg
  | 'MEDIA_FAILED' // 500: ffmpeg could not be started, or failed on our own files
  | 'INTERNAL'
  | 'BAD_CONFIG'
  | 'RECORD_TOO_LARGE'
  | 'RING_CORRUPT'
  | 'VAD_BACKEND_UNAVAILABLE'
  | 'WORKERS_BUSY';

/**
 * Base class for every failure framehub reports to a client or an operator. `code` is stable
 * UPPER_SNAKE and is what clients and tests match on. `status` is the HTTP status the code maps
 * to. 500 (the default) marks an internal failure: its message may name internals, so the HTTP
 * route wrapper logs and counts it and the client only sees 500 `INTERNAL`. Any other status
 * promises a message written for the client (never a path, a host, or a library's text).
 *
 * @example
 *   throw new FramehubError('BAD_TOPIC', 'topic "x" is not valid', 400);
 */
export class FramehubError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly status = 500,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** True when the error's message may be sent to a client as it is (see FramehubError). */
export const isClientError = (err: unknown): err is FramehubError =>
  err instanceof FramehubError && err.status !== 500;

/** Configuration failed validation; the message names the field. Start-up exits 2. */
export class ConfigError extends FramehubError {
  constructor(message: string) {
    super('BAD_CONFIG', message);
  }
}

// --- auth ---------------------------------------------------------------------------------

export type AuthErrorCode = 'UNAUTHORIZED' | 'FORBIDDEN';

/**
 * The failing check of a refused token: the `reason` label of `framehub_auth_failures_total`
 * and a field of the log line. Never sent to the client.
 */
export type AuthFailure =
  | 'missing'
  | 'malformed'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'lifetime'
  | 'signature'
  | 'algorithm'
  | 'key'
  | 'claims'
  /** A valid token whose role does not allow the request (403). */
  | 'forbidden'
  /** verify() met an error it does not know: a bug, logged at error level. */
  | 'internal'
  /** A WebSocket that sent no hello with a token in time (auth on). */
  | 'timeout'
  /** Auth off, and a proxy relayed the request: an admin endpoint or publishing refused (403, close 4003). */
  | 'proxied_anonymous';

/**
 * What a client is told, one text per code. Naming the failing check ("signature", "expired",
 * `"alg" not allowed`) would tell an attacker which part of a forged token passed. "missing
 * token" is kept apart because it depends only on the request itself (no token found in the
 * header, subprotocol or query), and it is the most common integration mistake.
 */
export const AUTH_CLIENT_MESSAGES = {
  UNAUTHORIZED: 'missing or invalid token',
  MISSING: 'missing token',
  FORBIDDEN: 'token does not allow this',
  /** Auth off behind a proxy: nothing about a token to hide, and the operator needs to see why. */
  PROXIED: 'auth is off: not allowed through a proxy',
} as const;

/**
 * UNAUTHORIZED (401): no usable token. FORBIDDEN (403): a valid token that does not cover the
 * camera or endpoint. `message` is the client-safe text of the code; `reason` (the failing
 * check) and `detail` (what exactly failed) are for metrics and logs only.
 *
 * @example
 *   throw new AuthError('UNAUTHORIZED', 'expired', `exp ${exp} is ${now - exp} s ago`);
 *   err.message; // 'missing or invalid token'
 */
export class AuthError extends FramehubError {
  declare readonly code: AuthErrorCode;

  constructor(
    code: AuthErrorCode,
    readonly reason: AuthFailure,
    readonly detail = '',
    options?: { cause?: unknown },
  ) {
    super(code, authClientMessage(code, reason), code === 'FORBIDDEN' ? 403 : 401);
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

function authClientMessage(code: AuthErrorCode, reason: AuthFailure): string {
  if (reason === 'proxied_anonymous') return AUTH_CLIENT_MESSAGES.PROXIED;
  if (code === 'FORBIDDEN') return AUTH_CLIENT_MESSAGES.FORBIDDEN;
  return reason === 'missing' ? AUTH_CLIENT_MESSAGES.MISSING : AUTH_CLIENT_MESSAGES.UNAUTHORIZED;
}

// --- HTTP requests and limits -------------------------------------------------------------

/**
 * A refusal that passes if the client waits: answered with `Retry-After`.
 *
 * @example
 *   throw new RetryLaterError('RATE_LIMITED', '4 jobs are already running', 429, 5);
 */
export class RetryLaterError extends FramehubError {
  constructor(
    code: 'TOO_MANY_CONNECTIONS' | 'RATE_LIMITED' | 'NO_FRAME_YET',
    message: string,
    status: 429 | 503,
    readonly retryAfterSeconds: number,
  ) {
    super(code, message, status);
  }
}

/** Body over the endpoint's limit; answered as 413 `TOO_LARGE`. */
export class BodyTooLargeError extends FramehubError {
  constructor(readonly limit: number) {
    super('TOO_LARGE', `request body over ${limit} bytes`, 413);
  }
}

/** The client went away before the whole body arrived; there is nobody left to answer. */
export class BodyAbortedError extends FramehubError {
  constructor() {
    super('ABORTED', 'the client closed the connection before the body was complete', 400);
  }
}

/** The body arrived slower than the endpoint's minimum rate; answered as 408 `UPLOAD_TOO_SLOW`. */
export class UploadTooSlowError extends FramehubError {
  constructor(minBytesPerSecond: number, graceSeconds: number) {
    super(
      'UPLOAD_TOO_SLOW',
      `upload slower than ${minBytesPerSecond} bytes/s on average after ${graceSeconds} s; send it faster`,
      408,
    );
  }
}

/** A client message broke the msgpack limits (README "What a client message may be"). */
export class MsgpackRefusedError extends FramehubError {
  constructor(message: string) {
    super('BAD_MESSAGE', message, 400);
  }
}

// --- jobs and VAD -------------------------------------------------------------------------

/** Bad audio input, or a job stopped by a limit, with the HTTP status it maps to. */
export class AudioInputError extends FramehubError {}

/**
 * ffmpeg failed. The client gets the code and a fixed message; `detail` (exit status and the
 * stderr tail) goes to the log only, since stderr tells a refused port from a missing file.
 */
export class DecoderError extends AudioInputError {
  constructor(
    code: 'DECODE_FAILED' | 'INTERNAL',
    message: string,
    status: number,
    readonly detail: string,
  ) {
    super(code, message, status);
  }
}

export type MediaErrorCode =
  | 'MEDIA_UNSUPPORTED'
  | 'MEDIA_DECODE_FAILED'
  | 'MEDIA_TOO_LONG'
  | 'MEDIA_TIMEOUT'
  | 'MEDIA_CANCELLED'
  | 'MEDIA_FAILED';

/**
 * An ffmpeg run over an upload failed or was stopped. The client gets the code and a message
 * written for it; `detail` (exit status, the stderr tail) is for the log only, since stderr
 * names files, hosts and ports.
 *
 * @example
 *   throw new MediaError('MEDIA_TIMEOUT', 'ffmpeg ran past its 600 s deadline', 504);
 */
export class MediaError extends FramehubError {
  declare readonly code: MediaErrorCode;

  constructor(
    code: MediaErrorCode,
    message: string,
    status: number,
    readonly detail = '',
  ) {
    super(code, message, status);
  }
}

/** A chunk's sample type differs from the stream's earlier chunks, or the config changed under the state. */
export class VadStreamError extends FramehubError {
  constructor(message: string) {
    super('VAD_STREAM_MISMATCH', message, 422);
  }
}

/**
 * A chunk of a stream failed in the pool (a worker threw, crashed, or found its result ring
 * full); `cause` is the pool's error.
 *
 * @example
 *   await stream.end().catch((e) => e.code === 'VAD_CHUNK_FAILED' && log.warn(e.cause));
 */
export class VadChunkError extends FramehubError {
  constructor(stream: string, chunk: number, cause: Error) {
    super('VAD_CHUNK_FAILED', `VAD chunk ${chunk} of ${stream} failed: ${cause.message}`);
    this.cause = cause;
  }
}

/** FRAMEHUB_VAD_BACKEND=native when the addon is not built or does not load. */
export class VadBackendUnavailableError extends FramehubError {
  constructor(reason: string) {
    super('VAD_BACKEND_UNAVAILABLE', `native VAD backend requested but unavailable: ${reason}`);
  }
}

// --- pool and process ---------------------------------------------------------------------

/** A record does not fit the ring even when the ring is empty. */
export class RecordTooLargeError extends FramehubError {
  constructor(size: number, max: number) {
    super(
      'RECORD_TOO_LARGE',
      `record of ${size} bytes exceeds the ring's maximum record size of ${max} bytes`,
    );
  }
}

/** The header of a record was not one the writer could have written: memory was overwritten. */
export class RingCorruptError extends FramehubError {
  constructor(offset: number, detail: string) {
    super('RING_CORRUPT', `ring record at offset ${offset} is corrupt: ${detail}`);
  }
}

/**
 * stop() gave the worker threads until the deadline and one had still not exited: it is inside
 * a native call (libvips decoding a huge frame, say) that termination cannot interrupt.
 */
export class WorkersBusyError extends FramehubError {
  constructor() {
    super('WORKERS_BUSY', 'a worker thread was still inside a native call at the shutdown deadline');
  }
}
