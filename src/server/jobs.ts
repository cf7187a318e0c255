import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { FramehubError } from '../errors.js';
import { AudioInputError, type PcmFormat } from '../jobs/audio-input.js';
import type { AudioJobs } from '../jobs/audio-job.js';
import type { JobStore } from '../jobs/job-store.js';
import type { ErrorCode } from '../wire/protocol.js';
import { extractToken, type Principal, recordAuthFailure } from './auth.js';
import type { ServerContext } from './context.js';
import { BodyReader, declaresTooLarge, handleAsync, refuseBody, sendError, sendJson } from './http-util.js';

export interface JobRouteOptions {
  maxUploadBytes: number;
  maxActive: number;
  /** 0 disables the minimum upload rate. */
  minUploadBytesPerSecond: number;
  uploadGraceSeconds: number;
}

/** Refusals by a `jobs.*` limit, by the `limit` label of framehub_limit_rejections_total. */
const LIMIT_OF_CODE: Record<string, string> = {
  UPLOAD_TOO_SLOW: 'upload_rate',
  SAMPLE_RATE_TOO_LOW: 'upsample_ratio',
  AUDIO_TOO_LONG: 'audio_seconds',
  JOB_TIMEOUT: 'job_timeout',
};

const mayRunJobs = (p: Principal) => p.role === 'publisher' || p.role === 'admin';

/** Parses `?format=&rate=` for raw PCM; undefined when neither is given. */
function pcmFormat(query: URLSearchParams): PcmFormat | undefined {
  const format = query.get('format');
  const rate = query.get('rate');
  if (format === null && rate === null) return undefined;
  if (format !== 's16le' && format !== 'f32le') {
    throw new AudioInputError('INVALID_FIELD', 'format must be s16le or f32le', 400);
  }
  const n = Number(rate);
  if (!Number.isInteger(n) || n < 8000 || n > 192_000) {
    throw new AudioInputError('INVALID_FIELD', 'rate must be an integer from 8000 to 192000', 400);
  }
  return { format, rate: n };
}

/**
 * `POST /api/v1/jobs/audio` → 202 {id}; `GET /api/v1/jobs/<id>`; `DELETE /api/v1/jobs/<id>`.
 * Submitting needs role publisher or admin when auth is on; reading and cancelling need any
 * valid token (job ids are random UUIDs).
 */
export function registerJobs(
  app: TemplatedApp,
  ctx: ServerContext,
  store: JobStore,
  audio: AudioJobs,
  opts: JobRouteOptions,
) {
  const tokenOf = (req: HttpRequest) =>
    extractToken({ authorization: req.getHeader('authorization'), query: req.getQuery() ?? '' }).token;

  // Everything the headers decide (length, token, role, format, a free slot) is decided before
  // the body is read: a refused upload costs its headers, not its bytes.
  app.post('/api/v1/jobs/audio', (res, req) => {
    if (declaresTooLarge(req, opts.maxUploadBytes)) {
      const message = `request body over ${opts.maxUploadBytes} bytes`;
      return sendError(res, 413, 'TOO_LARGE', message, {}, true);
    }
    const token = tokenOf(req);
    const query = new URLSearchParams(req.getQuery() ?? '');
    const body = new BodyReader(res, req, opts.maxUploadBytes, {
      minBytesPerSecond: opts.minUploadBytesPerSecond,
      graceSeconds: opts.uploadGraceSeconds,
    });
    handleAsync(
      res,
      async (isAborted) => {
        const fail = (
          status: number,
          code: ErrorCode | string,
          message: string,
          headers?: Record<string, string>,
        ) => {
          if (!isAborted()) refuseBody(res, body, status, code as ErrorCode, message, headers);
        };
        let principal: Principal;
        let pcm: PcmFormat | undefined;
        try {
          principal = await ctx.auth.verify(token);
        } catch (err) {
          recordAuthFailure(ctx, 'jobs', err);
          return fail(401, 'UNAUTHORIZED', (err as Error).message);
        }
        if (!mayRunJobs(principal)) return fail(403, 'FORBIDDEN', 'jobs need role publisher or admin');
        try {
          pcm = pcmFormat(query);
        } catch (err) {
          if (err instanceof AudioInputError) return fail(err.status, err.code, err.message);
          throw err;
        }
        if (isAborted()) return;
        const slot = store.claim(opts.maxActive);
        if (!slot) {
          ctx.metrics.limitRejections.labels('active_jobs').inc();
          return fail(429, 'RATE_LIMITED', `${opts.maxActive} jobs are already running`, {
            'Retry-After': '5',
          });
        }
        try {
          // body.signal also fires while the decoder is starting: a client that gives up
          // before the 202 takes its ffmpeg (and its slot) with it.
          const job = await audio.start(await body.read(), pcm, body.signal);
          if (isAborted()) return;
          sendJson(res, 202, { id: job.id, topic: `job/${job.id}` }, { Location: `/api/v1/jobs/${job.id}` });
        } catch (err) {
          if (!(err instanceof FramehubError)) throw err;
          const limit = LIMIT_OF_CODE[err.code];
          if (limit) ctx.metrics.limitRejections.labels(limit).inc();
          // Every FramehubError here carries a fixed message: never ffmpeg's stderr.
          return fail(err.status, err.code, err.message);
        } finally {
          // A created job now counts as active until it finishes; any failure frees the slot.
          slot.release();
        }
      },
      body,
    );
  });

  for (const kind of ['image', 'video']) {
    app.post(`/api/v1/jobs/${kind}`, (res) =>
      sendError(res, 404, 'NOT_FOUND', `${kind} jobs are not available in this version`),
    );
  }

  const withJob = (method: 'get' | 'del', handle: (res: HttpResponse, id: string) => void) =>
    app[method]('/api/v1/jobs/:id', (res, req) => {
      const id = req.getParameter(0) ?? '';
      const token = tokenOf(req);
      handleAsync(res, async (isAborted) => {
        try {
          await ctx.auth.verify(token);
        } catch (err) {
          recordAuthFailure(ctx, 'jobs', err);
          if (!isAborted()) sendError(res, 401, 'UNAUTHORIZED', (err as Error).message);
          return;
        }
        if (!isAborted()) handle(res, id);
      });
    });

  withJob('get', (res, id) => {
    const job = store.get(id);
    if (!job) return sendError(res, 404, 'NOT_FOUND', `no job ${id.slice(0, 64)} (finished jobs expire)`);
    sendJson(res, 200, store.view(job));
  });
  withJob('del', (res, id) => {
    const job = store.get(id);
    if (!job) return sendError(res, 404, 'NOT_FOUND', `no job ${id.slice(0, 64)}`);
    store.cancel(job);
    sendJson(res, 200, store.view(job));
  });
}
