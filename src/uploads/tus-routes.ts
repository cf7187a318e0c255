import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { FramehubError, isClientError, RetryLaterError } from '../errors.js';
import type { LimitLabel } from '../metrics/label-values.js';
import type { Principal } from '../server/auth.js';
import { type Credentials, httpCredentials, requireRole } from '../server/auth-guard.js';
import type { ServerContext } from '../server/context.js';
import { answerError, statusLine } from '../server/http-util.js';
import { bodyPastLength, ChunkStream } from './chunk-stream.js';
import { encodeMetadata, parseMetadata } from './tus-metadata.js';
import { type TusStore, type TusUpload, uploadNotFound } from './tus-store.js';

export const TUS_PATH = '/api/v1/uploads';
const TUS_VERSION = '1.0.0';
const TUS_EXTENSIONS = 'creation,creation-with-upload,termination,expiration';
const OFFSET_STREAM = 'application/offset+octet-stream';
/** Up to 15 digits, so every value is a safe integer. */
const COUNT = /^[0-9]{1,15}$/;

/** The `limit` label of a refusal by a tus limit: an upload's size, or uploads stored. */
const LIMIT_OF_STATUS: Record<number, LimitLabel> = { 413: 'tus_upload_length', 429: 'tus_uploads' };

/** What the routes use of the server context; a ServerContext is one. */
export type TusContext = Pick<ServerContext, 'auth' | 'metrics' | 'log' | 'proxy'>;

export interface TusRouteOptions {
  /** Largest Upload-Metadata header accepted, in bytes (400 past it). */
  maxMetadataBytes: number;
}

export interface TusHooks {
  /**
   * The last byte is on disk (called once per upload, before the answer to its last PATCH). The
   * upload stays stored, counted against maxUploads, until `store.remove(upload)` or its expiry:
   * remove it once its bytes are read.
   */
  onComplete(upload: TusUpload): void;
  /**
   * Bytes reached the disk: called after every chunk written (often several per PATCH), so a
   * hook that does real work (a preview) throttles itself. `[0, upload.offset)` of
   * `store.filePath(upload)` is readable.
   */
  onProgress?(upload: TusUpload): void;
  /** Checks an upload's metadata before it is created: a throw (a FramehubError 400) refuses it. */
  checkMetadata?(metadata: Readonly<Record<string, string>>): void;
}

/**
 * The tus 1.0.0 server (core, creation, creation-with-upload, termination, expiration) under
 * `/api/v1/uploads/`, on uWS. Every request but OPTIONS needs `Tus-Resumable: 1.0.0` (412
 * otherwise) and a publisher token; an upload belongs to the token's `sub` and is 404 to any
 * other (admins aside). A PATCH body goes to disk chunk by chunk (see ChunkStream); one that
 * aborts keeps what was written, which is the point of tus. A second PATCH while one is
 * writing gets 423 Locked (tus-js-client retries it), as does DELETE. Every answer carries
 * `Tus-Resumable`; refusals have the `{error:{code,message}}` body, an unexpected failure is
 * the shared 500 `INTERNAL` (answerError).
 *
 * @example
 *   const store = await TusStore.open({ dir, maxUploadBytes, maxUploads: 64, expireMs: 3_600_000, log });
 *   registerTus(app, ctx, store, { maxMetadataBytes: 4096 }, { onComplete: (u) => startImageJob(u) });
 */
export function registerTus(
  app: TemplatedApp,
  ctx: TusContext,
  store: TusStore,
  opts: TusRouteOptions,
  hooks: TusHooks,
): void {
  const options = (res: HttpResponse) =>
    sendTus(res, 204, {
      'Tus-Version': TUS_VERSION,
      'Tus-Extension': TUS_EXTENSIONS,
      'Tus-Max-Size': String(store.opts.maxUploadBytes),
    });
  for (const path of [TUS_PATH, `${TUS_PATH}/`, `${TUS_PATH}/:id`]) app.options(path, options);

  const authorize = async (r: TusRequest): Promise<Principal> => {
    if (r.resumable !== TUS_VERSION) {
      throw new FramehubError('TUS_VERSION_UNSUPPORTED', `Tus-Resumable: ${TUS_VERSION} is required`, 412);
    }
    return requireRole(ctx, 'uploads', r.credentials, 'publisher');
  };
  const find = (r: TusRequest, principal: Principal): TusUpload => {
    const upload = store.get(r.id);
    if (upload.owner !== principal.sub && principal.role !== 'admin') throw uploadNotFound();
    return upload;
  };
  /** Counts a refusal by a limit in framehub_limit_rejections_total, and hands it back to throw. */
  const countLimit = (err: unknown) => {
    const limit = err instanceof FramehubError ? LIMIT_OF_STATUS[err.status] : undefined;
    if (limit) ctx.metrics.limitRejections.labels(limit).inc();
    return err;
  };
  const hook = (name: 'onComplete' | 'onProgress', upload: TusUpload) => {
    try {
      hooks[name]?.(upload);
    } catch (err) {
      ctx.metrics.handlerErrors.labels('tus_hook').inc();
      ctx.log.error({ err, hook: name, upload: upload.id }, 'tus hook threw');
    }
  };
  /** Streams the body to the upload's end at most; completion is reported even if the request then fails. */
  const receive = async (upload: TusUpload, body: ChunkStream) => {
    const wasIncomplete = upload.offset < upload.length;
    const writer = await store.openWriter(upload);
    try {
      await body.pipeTo(async (chunk) => {
        await writer.append(chunk);
        hook('onProgress', upload);
      }, upload.length - upload.offset);
    } finally {
      await writer.close();
      if (wasIncomplete && upload.offset === upload.length) hook('onComplete', upload);
    }
  };

  const create = (res: HttpResponse, req: HttpRequest) => {
    const r = readRequest(res, req);
    const body = r.hasBody ? new ChunkStream(res, r.contentLength) : undefined;
    runTus(ctx, res, body, async (isAborted) => {
      const principal = await authorize(r);
      if (r.deferLength !== '') {
        throw new FramehubError(
          'INVALID_FIELD',
          'Upload-Defer-Length is not supported: send Upload-Length',
          400,
        );
      }
      const length = parseCount(r.uploadLength, 'Upload-Length');
      const metadata = parseMetadata(r.metadata, opts.maxMetadataBytes);
      hooks.checkMetadata?.(metadata);
      if (body) requireOffsetStream(r);
      if (body?.declared !== undefined && body.declared > length) throw countLimit(bodyPastLength());
      if (isAborted()) return;
      let upload: TusUpload;
      try {
        upload = await store.create(length, metadata, principal.sub);
      } catch (err) {
        throw countLimit(err);
      }
      if (length === 0) hook('onComplete', upload);
      if (body) await receive(upload, body);
      if (isAborted()) return;
      sendTus(res, 201, { Location: `${TUS_PATH}/${upload.id}`, ...offsetHeaders(upload) });
    });
  };
  app.post(TUS_PATH, create);
  app.post(`${TUS_PATH}/`, create);

  app.head(`${TUS_PATH}/:id`, (res, req) => {
    const r = readRequest(res, req);
    runTus(ctx, res, undefined, async (isAborted) => {
      const principal = await authorize(r);
      if (isAborted()) return;
      const upload = find(r, principal);
      const metadata = encodeMetadata(upload.metadata);
      sendTus(res, 200, {
        ...offsetHeaders(upload),
        'Upload-Length': String(upload.length),
        ...(metadata === '' ? {} : { 'Upload-Metadata': metadata }),
        'Cache-Control': 'no-store',
      });
    });
  });

  app.patch(`${TUS_PATH}/:id`, (res, req) => {
    const r = readRequest(res, req);
    const body = new ChunkStream(res, r.hasBody ? r.contentLength : 0);
    runTus(ctx, res, body, async (isAborted) => {
      const principal = await authorize(r);
      if (isAborted()) return;
      const upload = find(r, principal);
      requireOffsetStream(r);
      const offset = parseCount(r.uploadOffset, 'Upload-Offset');
      // A locked upload's offset is moving: openWriter answers 423 for it instead.
      if (offset !== upload.offset && !upload.locked) {
        throw new FramehubError(
          'UPLOAD_OFFSET_MISMATCH',
          `Upload-Offset must be the upload's offset, ${upload.offset}`,
          409,
        );
      }
      if (body.declared !== undefined && offset + body.declared > upload.length) {
        throw countLimit(bodyPastLength());
      }
      await receive(upload, body);
      if (isAborted()) return;
      sendTus(res, 204, offsetHeaders(upload));
    });
  });

  app.del(`${TUS_PATH}/:id`, (res, req) => {
    const r = readRequest(res, req);
    runTus(ctx, res, undefined, async (isAborted) => {
      const principal = await authorize(r);
      if (isAborted()) return;
      await store.remove(find(r, principal));
      if (!isAborted()) sendTus(res, 204, {});
    });
  });
}

/** The request's headers, read before any await (uWS frees the request when the handler returns). */
interface TusRequest {
  id: string;
  credentials: Credentials;
  resumable: string;
  contentType: string;
  uploadLength: string;
  uploadOffset: string;
  deferLength: string;
  metadata: string;
  /** From Content-Length; undefined for a chunked body. */
  contentLength: number | undefined;
  hasBody: boolean;
}

function readRequest(res: HttpResponse, req: HttpRequest): TusRequest {
  const length = req.getHeader('content-length');
  const chunked = req.getHeader('transfer-encoding') !== '';
  return {
    // Empty for POST, whose route has no parameter.
    id: req.getParameter(0) ?? '',
    credentials: httpCredentials(res, req),
    resumable: req.getHeader('tus-resumable'),
    contentType: req.getHeader('content-type'),
    uploadLength: req.getHeader('upload-length'),
    uploadOffset: req.getHeader('upload-offset'),
    deferLength: req.getHeader('upload-defer-length'),
    metadata: req.getHeader('upload-metadata'),
    // guardRoutes has refused a malformed or doubled Content-Length before any route runs.
    contentLength: length === '' ? undefined : Number(length),
    hasBody: chunked || (length !== '' && length !== '0'),
  };
}

function parseCount(value: string, header: string): number {
  if (!COUNT.test(value))
    throw new FramehubError('INVALID_FIELD', `${header} must be a number of bytes`, 400);
  return Number(value);
}

function requireOffsetStream(r: TusRequest): void {
  const type = r.contentType.split(';')[0]?.trim().toLowerCase();
  if (type !== OFFSET_STREAM) {
    throw new FramehubError('UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${OFFSET_STREAM}`, 415);
  }
}

function offsetHeaders(upload: TusUpload): Record<string, string> {
  return {
    'Upload-Offset': String(upload.offset),
    // RFC 7231 IMF-fixdate, as the expiration extension asks.
    'Upload-Expires': new Date(upload.expiresAt).toUTCString(),
  };
}

/** One tus answer, corked (it is written after an await); with `json`, the body and its type. */
function sendTus(
  res: HttpResponse,
  status: number,
  headers: Record<string, string>,
  json?: string,
  closeConnection = false,
): void {
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('Tus-Resumable', TUS_VERSION);
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    // A 204 has no Content-Length (RFC 9110 8.6); end() would write one.
    if (status === 204) res.endWithoutBody();
    else if (json === undefined) res.end(undefined, closeConnection);
    else {
      res.writeHeader('Content-Type', 'application/json').writeHeader('X-Content-Type-Options', 'nosniff');
      res.end(json, closeConnection);
    }
  });
}

/**
 * handleAsync for tus: the same abort rule (marked before any await, the body told), and
 * refusals answered with the tus headers (Tus-Version on 412, Retry-After on 429). An
 * unexpected failure goes to answerError: counted, logged, a generic 500.
 */
function runTus(
  ctx: TusContext,
  res: HttpResponse,
  body: ChunkStream | undefined,
  work: (isAborted: () => boolean) => Promise<void>,
): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
    body?.abort();
  });
  work(() => aborted).catch((err: unknown) => {
    const closeConnection = body?.dropUnread() ?? false;
    if (aborted || !isClientError(err)) {
      answerError(ctx, res, err, { aborted, closeConnection });
      return;
    }
    const headers: Record<string, string> = {};
    if (err.status === 412) headers['Tus-Version'] = TUS_VERSION;
    if (err instanceof RetryLaterError) headers['Retry-After'] = String(err.retryAfterSeconds);
    const json = JSON.stringify({ error: { code: err.code, message: err.message } });
    try {
      sendTus(res, err.status, headers, json, closeConnection);
    } catch (answerErr) {
      ctx.log.warn(
        { err: answerErr, cause: err },
        'could not answer a tus refusal: already answered or aborted',
      );
    }
  });
}
