import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { FramehubError } from '../errors.js';
import { parseTopic } from '../hub/topics.js';
import type { ErrorCode } from '../wire/protocol.js';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
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
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  416: '416 Range Not Satisfiable',
  422: '422 Unprocessable Entity',
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

/**
 * Runs an async handler safely: marks the response aborted before any await (uWS forbids
 * touching an aborted response) and turns a thrown error into a generic 500 `INTERNAL`, reported
 * through onInternalError (the daemon counts and logs it). Pass the
 * request's BodyReader, if any, so an abort ends its read and a 500 does not leave it half read.
 */
export function handleAsync(
  res: HttpResponse,
  work: (isAborted: () => boolean) => Promise<void>,
  body?: BodyReader,
): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
    body?.abort();
  });
  work(() => aborted).catch((err: unknown) => {
    reportInternalError(err);
    if (aborted) return;
    // The raw message may name files, hosts or library internals: it goes to the log only.
    if (body) refuseBody(res, body, 500, 'INTERNAL', 'internal error');
    else sendError(res, 500, 'INTERNAL', 'internal error');
  });
}

/** Where handleAsync reports an unexpected error (set once by the daemon: count and log). */
let reportInternalError: (err: unknown) => void = () => {};

export function onInternalError(report: (err: unknown) => void): void {
  reportInternalError = report;
}

/** The peer address as text; read synchronously, before any await (uWS frees it after). */
export function remoteIp(res: HttpResponse): string {
  return Buffer.from(res.getRemoteAddressAsText()).toString();
}

/** Tallies a requested frame topic by variant (`auto` included) for the connections census. */
export function countVariant(counts: Record<string, number>, requested: string): void {
  const t = parseTopic(requested);
  const key = t?.kind === 'auto' ? 'auto' : t?.kind === 'frame' ? t.variant : undefined;
  if (key) counts[key] = (counts[key] ?? 0) + 1;
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
 * True when the request declares a `Content-Length` over `maxBytes`: refuse it with 413 before
 * reading a byte. A chunked body has no length and is held to the limit as it streams.
 */
export function declaresTooLarge(req: HttpRequest, maxBytes: number): boolean {
  const declared = req.getHeader('content-length');
  return declared !== '' && !(Number(declared) <= maxBytes);
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
 * A reply sent before the body is complete goes through `refuseBody`, which drops
 * the body and closes the connection when much of it is still to come, or uWS would go on
 * delivering it (and a socket left paused would never finish). Rejections happen only inside
 * `read()`, so no promise is ever left unobserved.
 *
 * @example
 *   const body = new BodyReader(res, req, 16 * 1024);
 *   handleAsync(res, async (isAborted) => {
 *     if (!(await allowed())) return refuseBody(res, body, 403, 'FORBIDDEN', 'admins only');
 *     const bytes = await body.read(); // rejects BodyTooLargeError past the limit
 *   }, body);
 */
export class BodyReader {
  private chunks: Buffer[] = [];
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
    // uWS neuters the chunk when this callback returns, so it is copied.
    this.chunks.push(Buffer.from(new Uint8Array(chunk)));
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
    const body = Buffer.concat(this.chunks);
    this.chunks = [];
    waiter.resolve(body);
  }
}

/** Refuses a request whose body may be unread: drops it, and closes unless little of it is left. */
export function refuseBody(
  res: HttpResponse,
  body: BodyReader,
  status: number,
  code: ErrorCode,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendError(res, status, code, message, headers, body.release());
}
