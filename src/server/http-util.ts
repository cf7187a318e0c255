import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import {
  BodyAbortedError,
  BodyTooLargeError,
  type ErrorCode,
  isClientError,
  RetryLaterError,
  UploadTooSlowError,
} from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  202: '202 Accepted',
  204: '204 No Content',
  206: '206 Partial Content',
  304: '304 Not Modified',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  408: '408 Request Timeout',
  409: '409 Conflict',
  410: '410 Gone',
  412: '412 Precondition Failed',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  416: '416 Range Not Satisfiable',
  422: '422 Unprocessable Entity',
  423: '423 Locked',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? String(status);
}

/**
 * Writes a whole JSON response in one corked batch. `closeConnection` ends the connection after
 * it: needed whenever a request body is still unread, or uWS would go on reading it.
 */
export function sendJson(
  res: HttpResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  closeConnection = false,
): void {
  res.cork(() => {
    res
      .writeStatus(statusLine(status))
      .writeHeader('Content-Type', 'application/json')
      .writeHeader('X-Content-Type-Options', 'nosniff');
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    res.end(JSON.stringify(body), closeConnection);
  });
}

/** The one error shape for HTTP: `{error:{code,message}}` with the matching status. */
export function sendError(
  res: HttpResponse,
  status: number,
  code: ErrorCode,
  message: string,
  headers: Record<string, string> = {},
  closeConnection = false,
): void {
  sendJson(res, status, { error: { code, message } }, headers, closeConnection);
}

/** Where an unexpected HTTP failure is counted and logged; ServerContext is one. */
export interface ErrorSink {
  metrics: Pick<Metrics, 'handlerErrors'>;
  log: Pick<Logger, 'error' | 'warn'>;
}

export interface ErrorAnswerOptions {
  /** The request's body, maybe still unread: dropped, and the connection closed if much is left. */
  body?: BodyReader;
  /** The client is gone: count and log as usual, answer nothing. */
  aborted?: boolean;
  /** Close the connection after the answer (a body nobody will read may follow). */
  closeConnection?: boolean;
}

/**
 * The one way an HTTP failure is answered, whether a route threw it synchronously (see
 * guardRoutes) or from an async handler (handleAsync). A client error (a FramehubError with a
 * status other than 500; see isClientError) gets its own status, code and message, plus
 * `Retry-After` for a RetryLaterError. Anything else is counted in
 * `framehub_handler_errors_total{handler="http"}`, logged with its cause, and answered with a
 * generic 500 `INTERNAL`: the raw message may name files, hosts or library internals. It never
 * throws: a response already answered or aborted (uWS throws on any use of it) is logged.
 *
 * @example
 *   answerError(ctx, res, new BodyTooLargeError(16384), { body }); // 413 TOO_LARGE
 */
export function answerError(
  sink: ErrorSink,
  res: HttpResponse,
  err: unknown,
  opts: ErrorAnswerOptions = {},
): void {
  if (!isClientError(err)) {
    sink.metrics.handlerErrors.labels('http').inc();
    sink.log.error({ err }, 'HTTP handler failed; answered 500');
  }
  if (opts.aborted) return;
  const close = (opts.body?.release() ?? false) || opts.closeConnection;
  try {
    if (!isClientError(err)) sendError(res, 500, 'INTERNAL', 'internal error', {}, close);
    else {
      const headers: Record<string, string> =
        err instanceof RetryLaterError ? { 'Retry-After': String(err.retryAfterSeconds) } : {};
      sendError(res, err.status, err.code, err.message, headers, close);
    }
  } catch (answerErr) {
    sink.log.warn(
      { err: answerErr, cause: err },
      'could not answer an HTTP error: already answered or aborted',
    );
  }
}

/**
 * Runs an async handler safely: marks the response aborted before any await (uWS forbids
 * touching an aborted response), and answers whatever it throws through answerError, so a route
 * refuses a request by throwing a FramehubError. Pass the request's BodyReader, if any, so an
 * abort ends its read and an error answer does not leave it half read. `whenAborted` runs a
 * callback when the client leaves, for a handler waiting on the socket.
 *
 * @example
 *   handleAsync(ctx, res, async (isAborted) => {
 *     await requireRole(ctx, 'status', token, 'admin'); // a refusal throws: 401 or 403
 *     if (!isAborted()) sendJson(res, 200, status());
 *   });
 */
export function handleAsync(
  sink: ErrorSink,
  res: HttpResponse,
  work: (isAborted: () => boolean, whenAborted: (fn: () => void) => void) => Promise<void>,
  body?: BodyReader,
): void {
  let aborted = false;
  // uWS keeps one onAborted handler per response: a handler that waits on the socket (a
  // streamed file waiting for onWritable) registers here to be woken when the client leaves.
  const waiting: (() => void)[] = [];
  res.onAborted(() => {
    aborted = true;
    body?.abort();
    for (const fn of waiting) fn();
  });
  work(
    () => aborted,
    (fn) => waiting.push(fn),
  ).catch((err: unknown) => answerError(sink, res, err, { body, aborted }));
}

/**
 * The slowest body a reader accepts: the average rate since `read()` must reach
 * `minBytesPerSecond` once `graceSeconds` have passed. An average (not a per-chunk gap) lets a
 * burst pay for a later stall, so an upload of N bytes is held at most
 * max(grace, N / minBytesPerSecond) seconds. 0 disables it.
 */
export interface MinUploadRate {
  minBytesPerSecond: number;
  graceSeconds: number;
}

/** How often a reader with a minimum rate checks it: one timer per upload, not one per chunk. */
const RATE_CHECK_MS = 1000;

/**
 * Throws BodyTooLargeError when the request declares a `Content-Length` over `maxBytes`, so it
 * is refused with 413 before a byte is read (guardRoutes closes the connection after it). A
 * chunked body has no length and is held to the limit as it streams.
 */
export function refuseDeclaredTooLarge(req: HttpRequest, maxBytes: number): void {
  const declared = req.getHeader('content-length');
  if (declared !== '' && !(Number(declared) <= maxBytes)) throw new BodyTooLargeError(maxBytes);
}

/**
 * After an early reply, up to this much of a body still on its way is read and thrown away, so
 * a client with a small body gets its answer on a connection that stays open. Past it (or with
 * no Content-Length) the connection is closed instead; a client still sending then may see a
 * reset rather than the reply, which is the price of not reading what nobody asked for.
 */
const LINGER_BYTES = 64 * 1024;

/**
 * A request body, read only once the handler has decided it wants it. Construct it
 * synchronously in the handler (uWS delivers chunks only to a reader attached before the
 * handler returns). It pauses the socket at once, so while auth and limits are checked only
 * what came with the headers is held (one socket read, about 100 KB), and a refused upload is
 * never read. With a `MinUploadRate`, a body that trickles in is cut off with
 * UploadTooSlowError, so a slow client cannot hold what the upload holds (a job slot) for long.
 * An error answered before the body is complete (handleAsync passes the reader to answerError)
 * drops the body and closes the connection when much of it is still to come, or uWS would go
 * on delivering it (and a socket left paused would never finish). Rejections happen only
 * inside `read()`, so no promise is ever left unobserved.
 *
 * @example
 *   const body = new BodyReader(res, req, 16 * 1024);
 *   handleAsync(ctx, res, async (isAborted) => {
 *     await requireRole(ctx, 'notices', token, 'admin'); // a 401 or 403 drops the body unread
 *     const bytes = await body.read(); // rejects BodyTooLargeError past the limit
 *   }, body);
 */
export class BodyReader {
  private chunks: Buffer[] = [];
  /**
   * The whole body, allocated once read() is called (after auth and a job slot) when
   * Content-Length declares it (at most maxBytes): chunks are copied straight in, with no
   * per-chunk buffer and no concat. Its pages are committed as bytes arrive, so a slow upload
   * holds only what it sent.
   */
  private whole: Buffer | undefined;
  private size = 0;
  private paused = true;
  private complete = false;
  private dropped = false;
  private failure: Error | undefined;
  private waiter: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  /** From Content-Length; undefined for a chunked body. */
  private readonly declared: number | undefined;
  private rateCheck: NodeJS.Timeout | undefined;
  private readonly aborted = new AbortController();

  constructor(
    private readonly res: HttpResponse,
    req: HttpRequest,
    readonly maxBytes: number,
    private readonly minRate?: MinUploadRate,
  ) {
    const length = req.getHeader('content-length');
    this.declared = length === '' ? undefined : Number(length);
    res.onData((chunk, isLast) => this.onChunk(chunk, isLast));
    res.pause();
  }

  /** Aborted when the client goes away, also after the body was read: work done for it can stop. */
  get signal(): AbortSignal {
    return this.aborted.signal;
  }

  /**
   * The whole body; rejects BodyTooLargeError past `maxBytes`, UploadTooSlowError below the
   * minimum rate, BodyAbortedError on abort.
   */
  read(): Promise<Buffer> {
    if (this.waiter || this.dropped) throw new Error('BodyReader.read() called twice or after release()');
    if (this.declared !== undefined && this.declared > 0 && this.declared <= this.maxBytes && !this.failure) {
      this.whole = Buffer.allocUnsafeSlow(this.declared);
      let at = 0;
      for (const chunk of this.chunks) at += chunk.copy(this.whole, at);
      this.chunks = [];
    }
    this.resume();
    this.watchRate();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.settle();
    });
  }

  /**
   * Stops collecting before a reply: drops what was held and ignores the rest. Returns true
   * when so much is still to come that the reply must close the connection.
   */
  release(): boolean {
    this.dropped = true;
    this.chunks = [];
    this.whole = undefined;
    this.stopRateCheck();
    const unread = this.declared === undefined ? Number.POSITIVE_INFINITY : this.declared - this.size;
    if (this.failure || !(unread <= LINGER_BYTES)) return true;
    // Resume, or the rest of the body (and any keep-alive request after it) is never read.
    this.resume();
    return false;
  }

  /** Called from onAborted: the response is gone, so the socket must not be touched again. */
  abort(): void {
    this.paused = false;
    this.fail(new BodyAbortedError());
    this.aborted.abort();
  }

  /** Counts from the first read, when the body is first asked for: waiting on auth is not the client's fault. */
  private watchRate(): void {
    const rate = this.minRate;
    if (!rate || rate.minBytesPerSecond <= 0 || this.complete || this.failure) return;
    const since = performance.now();
    const sizeBefore = this.size;
    this.rateCheck = setInterval(() => {
      const seconds = (performance.now() - since) / 1000;
      if (seconds < rate.graceSeconds) return;
      if ((this.size - sizeBefore) / seconds >= rate.minBytesPerSecond) return;
      this.fail(new UploadTooSlowError(rate.minBytesPerSecond, rate.graceSeconds));
    }, RATE_CHECK_MS);
    this.rateCheck.unref();
  }

  private stopRateCheck(): void {
    clearInterval(this.rateCheck);
    this.rateCheck = undefined;
  }

  private onChunk(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.dropped || this.failure) return;
    this.size += chunk.byteLength;
    if (this.size > this.maxBytes) {
      this.fail(new BodyTooLargeError(this.maxBytes));
      return;
    }
    // uWS neuters the chunk when this callback returns, so it is copied. uWS frames the body
    // by Content-Length, so a declared body never overruns `whole`.
    if (this.whole) this.whole.set(new Uint8Array(chunk), this.size - chunk.byteLength);
    else this.chunks.push(Buffer.copyBytesFrom(new Uint8Array(chunk)));
    if (isLast) {
      this.complete = true;
      this.stopRateCheck();
      this.settle();
    }
  }

  private resume(): void {
    if (!this.paused || this.failure) return;
    this.paused = false;
    this.res.resume();
  }

  private fail(err: Error): void {
    if (this.complete || this.failure) return;
    this.failure = err;
    this.chunks = [];
    this.whole = undefined;
    this.stopRateCheck();
    this.settle();
  }

  private settle(): void {
    const waiter = this.waiter;
    if (!waiter || !(this.failure || this.complete)) return;
    this.waiter = undefined;
    if (this.failure) {
      waiter.reject(this.failure);
      return;
    }
    const body = this.whole?.subarray(0, this.size) ?? Buffer.concat(this.chunks);
    this.chunks = [];
    this.whole = undefined;
    waiter.resolve(body);
  }
}
