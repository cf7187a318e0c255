import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { isJobId, type JobDirectory } from '../cluster/job-directory.js';
import { AudioInputError, type ErrorCode, FramehubError, RetryLaterError } from '../errors.js';
import { parseImageJobOptions } from '../image/job-options.js';
import type { PcmFormat } from '../jobs/audio-input.js';
import type { AudioJobs } from '../jobs/audio-job.js';
import type { ImageJobs } from '../jobs/image-job.js';
import type { Job, JobStore } from '../jobs/job-store.js';
import type { VideoJobs } from '../jobs/video-job.js';
import { parseVideoJobOptions } from '../jobs/video-options.js';
import type { LimitLabel } from '../metrics/label-values.js';
import type { WorkerPool } from '../pool/worker-pool.js';
import { type Credentials, httpCredentials, requireRole } from './auth-guard.js';
import type { ServerContext } from './context.js';
import { fileRequest, sendFile } from './file-response.js';
import { BodyReader, handleAsync, refuseDeclaredTooLarge, sendJson } from './http-util.js';

export interface JobRouteOptions {
  maxUploadBytes: number;
  maxActive: number;
  /** 0 disables the minimum upload rate. */
  minUploadBytesPerSecond: number;
  uploadGraceSeconds: number;
}

/** Refusals by a `jobs.*` limit, by the `limit` label of framehub_limit_rejections_total. */
const LIMIT_OF_CODE: Partial<Record<ErrorCode, LimitLabel>> = {
  UPLOAD_TOO_SLOW: 'upload_rate',
  SAMPLE_RATE_TOO_LOW: 'upsample_ratio',
  AUDIO_TOO_LONG: 'audio_seconds',
  JOB_TIMEOUT: 'job_timeout',
  MEDIA_TOO_LONG: 'video_seconds',
};

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
 * `POST /api/v1/jobs/audio` and `/image` → 202 {id, topic}; `GET /api/v1/jobs/<id>`;
 * `GET /api/v1/jobs/<id>/result/<n>` (an image job's output n); `DELETE /api/v1/jobs/<id>`.
 * Submitting needs role publisher (or admin) when auth is on; reading and cancelling need any
 * valid token (job ids are random UUIDs). Every refusal is thrown and answered by handleAsync.
 */
export function registerJobs(
  app: TemplatedApp,
  ctx: ServerContext,
  store: JobStore,
  jobs: { audio: AudioJobs; image: ImageJobs; video: VideoJobs; pool: Pick<WorkerPool, 'admitJob'> },
  opts: JobRouteOptions,
  /** Jobs other nodes run (several nodes on Redis): GET answers them from any node. */
  directory?: Pick<JobDirectory, 'get'>,
) {
  const { audio, image } = jobs;
  const uploadBody = (res: HttpResponse, req: HttpRequest) =>
    new BodyReader(res, req, opts.maxUploadBytes, {
      minBytesPerSecond: opts.minUploadBytesPerSecond,
      graceSeconds: opts.uploadGraceSeconds,
    });

  /**
   * Runs `start` holding one of the `maxActive` slots (429 with Retry-After when none is free).
   * A created job counts as active until it finishes; any failure frees the slot at once.
   */
  const withSlot = async (start: () => Promise<void>) => {
    const slot = store.claim(opts.maxActive);
    if (!slot) {
      ctx.metrics.limitRejections.labels('active_jobs').inc();
      throw new RetryLaterError('RATE_LIMITED', `${opts.maxActive} jobs are already running`, 429, 5);
    }
    try {
      await start();
    } catch (err) {
      const limit = err instanceof FramehubError ? LIMIT_OF_CODE[err.code] : undefined;
      if (limit) ctx.metrics.limitRejections.labels(limit).inc();
      throw err;
    } finally {
      slot.release();
    }
  };

  // Everything the headers decide (length, token, role, format, a free slot) is decided before
  // the body is read: a refused upload costs its headers, not its bytes.
  /**
   * The rest of a job POST, once its headers are read: the auth gate, `prepare` (what the query
   * decides, refused after auth), a slot, the body, the job, then 202 {id, topic}.
   */
  const submit = <T>(
    res: HttpResponse,
    credentials: Credentials,
    body: BodyReader,
    prepare: () => T,
    start: (bytes: Buffer, prepared: T) => Promise<Job>,
  ) =>
    handleAsync(
      ctx,
      res,
      async (isAborted) => {
        await requireRole(ctx, 'jobs', credentials, 'publisher');
        const prepared = prepare();
        if (isAborted()) return;
        await withSlot(async () => {
          const job = await start(await body.read(), prepared);
          if (isAborted()) return;
          sendJson(res, 202, { id: job.id, topic: `job/${job.id}` }, { Location: `/api/v1/jobs/${job.id}` });
        });
      },
      body,
    );

  app.post('/api/v1/jobs/audio', (res, req) => {
    refuseDeclaredTooLarge(req, opts.maxUploadBytes);
    const credentials = httpCredentials(res, req);
    const query = new URLSearchParams(req.getQuery() ?? '');
    const body = uploadBody(res, req);
    // body.signal also fires while the decoder is starting: a client that gives up before the
    // 202 takes its ffmpeg (and its slot) with it.
    submit(
      res,
      credentials,
      body,
      () => pcmFormat(query),
      (bytes, pcm) => audio.start(bytes, pcm, body.signal),
    );
  });

  app.post('/api/v1/jobs/image', (res, req) => {
    refuseDeclaredTooLarge(req, opts.maxUploadBytes);
    const credentials = httpCredentials(res, req);
    // Options are checked before the body is read: a bad `format=` costs its headers only.
    const options = parseImageJobOptions(new URLSearchParams(req.getQuery() ?? ''), req.getHeader('accept'));
    // So is room in the job's pool tier: a full tier is 429 with Retry-After before any byte is read.
    jobs.pool.admitJob(options.priority);
    const body = uploadBody(res, req);
    submit(
      res,
      credentials,
      body,
      () => options,
      (bytes) => image.start(bytes, options),
    );
  });

  app.post('/api/v1/jobs/video', (res, req) => {
    refuseDeclaredTooLarge(req, opts.maxUploadBytes);
    const credentials = httpCredentials(res, req);
    // Options and room in the video queue are checked before the body is read (400, 429).
    const options = parseVideoJobOptions(new URLSearchParams(req.getQuery() ?? ''));
    jobs.video.admit();
    const body = uploadBody(res, req);
    // body.signal stops the probe of a client that gives up before the 202.
    submit(
      res,
      credentials,
      body,
      () => options,
      (bytes) => jobs.video.start(bytes, options, body.signal),
    );
  });

  app.get('/api/v1/jobs/:id/result/:n', (res, req) => {
    const id = req.getParameter(0) ?? '';
    const n = req.getParameter(1) ?? '';
    const credentials = httpCredentials(res, req);
    const request = fileRequest(req);
    handleAsync(ctx, res, async (isAborted, whenAborted) => {
      await requireRole(ctx, 'jobs', credentials, 'viewer');
      if (isAborted()) return;
      const output = /^\d{1,3}$/.test(n) ? image.output(id, Number(n)) : undefined;
      if (!output) {
        throw new FramehubError(
          'NOT_FOUND',
          `no result ${n.slice(0, 8)} of job ${id.slice(0, 64)} (results expire with their job)`,
          404,
        );
      }
      await sendFile(res, output, request, isAborted, whenAborted);
    });
  });

  const withJob = (method: 'get' | 'del', handle: (res: HttpResponse, job: Job) => void) =>
    app[method]('/api/v1/jobs/:id', (res, req) => {
      const id = req.getParameter(0) ?? '';
      const credentials = httpCredentials(res, req);
      handleAsync(ctx, res, async (isAborted) => {
        await requireRole(ctx, 'jobs', credentials, 'viewer');
        if (isAborted()) return;
        const job = store.get(id);
        if (job) return handle(res, job);
        const remote = directory && isJobId(id) ? await directory.get(id) : undefined;
        if (isAborted()) return;
        if (remote && method === 'get') return sendJson(res, 200, remote);
        if (remote) {
          throw new FramehubError('NOT_HERE', `job ${id} runs on node ${remote.node}: cancel it there`, 409);
        }
        throw new FramehubError('NOT_FOUND', `no job ${id.slice(0, 64)} (finished jobs expire)`, 404);
      });
    });

  withJob('get', (res, job) => sendJson(res, 200, store.view(job)));
  withJob('del', (res, job) => {
    store.cancel(job);
    sendJson(res, 200, store.view(job));
  });
}
