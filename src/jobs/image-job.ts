import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FramehubError, isClientError } from '../errors.js';
import { probeImage } from '../image/compress.js';
import { FILE_EXTENSIONS, MIME_TYPES } from '../image/image-formats.js';
import type { ImageJobOptions } from '../image/job-options.js';
import { checkUpload } from '../image/upload-check.js';
import type { Logger } from '../log.js';
import type { ImageJobOutput, ImageJobTask, ImageJobTaskResult, JobProgressRecord } from '../pool/tasks.js';
import type { Job, JobStore } from './job-store.js';

export interface ImageJobsOptions {
  store: JobStore;
  /** The pool: runs the task in a worker; `signal` cancels it there or in the queue. */
  run: (task: ImageJobTask, signal: AbortSignal) => Promise<ImageJobTaskResult>;
  /** Each job's outputs go in a directory of its own under this one. */
  resultsDir: string;
  maxPixels: number;
  timeoutSeconds: number;
  /** Told every change of the bytes stored, for the gauge. */
  onStoredBytes: (bytes: number) => void;
  log: Pick<Logger, 'warn' | 'error'>;
}

/** One stored output, for GET /api/v1/jobs/<id>/result/<n>. */
export interface StoredOutput {
  path: string;
  bytes: number;
  mime: string;
  etag: string;
}

/** What a client sees of one output in the job's result. */
export type OutputView = Omit<ImageJobOutput, 'data' | 'etag'> & { n: number; url: string; mime: string };

/**
 * Image jobs: an upload compressed in the pool (src/image/compress.ts), its outputs on disk
 * until the job expires. The upload's header is read before the job exists, so a 202 means a
 * decodable image within images.maxPixels; what only a full decode finds (a truncated scan)
 * fails the job with CORRUPT_IMAGE. DELETE, shutdown and `jobs.imageTimeoutSeconds` reach the
 * worker: piscina drops the task from the queue or replaces the worker running it.
 */
export class ImageJobs {
  private readonly stored = new Map<string, StoredOutput[]>();
  private storedBytes = 0;
  private readonly running = new Map<string, AbortController>();

  constructor(private readonly opts: ImageJobsOptions) {}

  /** Empties the results directory: results of an earlier process belong to jobs that no longer exist. */
  async init(): Promise<void> {
    await rm(this.opts.resultsDir, { recursive: true, force: true });
    await mkdir(this.opts.resultsDir, { recursive: true });
  }

  /** Checks the image's header and starts the job; throws the client's 4xx before any job exists. */
  async start(body: Uint8Array, options: ImageJobOptions): Promise<Job> {
    checkUpload(body, this.opts.maxPixels);
    await probeImage(body, this.opts.maxPixels);
    const job = this.opts.store.create('image');
    const input = new ArrayBuffer(body.byteLength);
    new Uint8Array(input).set(body);
    void this.run(job, { job: job.id, input, options, maxPixels: this.opts.maxPixels });
    return job;
  }

  /** Routes a job_progress ring record. */
  progress(record: JobProgressRecord): void {
    const job = this.opts.store.get(record.job);
    if (job) this.opts.store.progress(job, record.progress);
  }

  /** Output `n` of a finished job, while the job is kept. */
  output(jobId: string, n: number): StoredOutput | undefined {
    return this.stored.get(jobId)?.[n];
  }

  /** Removes a job's files (written or half-written): when the job expires or fails. */
  async forget(jobId: string): Promise<void> {
    const outputs = this.stored.get(jobId) ?? [];
    this.stored.delete(jobId);
    this.addStored(-outputs.reduce((sum, o) => sum + o.bytes, 0));
    await rm(join(this.opts.resultsDir, jobId), { recursive: true, force: true });
  }

  /** Stops every job; for shutdown. */
  stopAll(): void {
    for (const controller of this.running.values()) {
      controller.abort(new FramehubError('ABORTED', 'the daemon is shutting down', 503));
    }
  }

  private async run(job: Job, task: ImageJobTask): Promise<void> {
    const seconds = this.opts.timeoutSeconds;
    const stop = new AbortController();
    this.running.set(job.id, stop);
    const onCancel = () => stop.abort(new FramehubError('ABORTED', 'the job was cancelled', 400));
    job.abort.signal.addEventListener('abort', onCancel, { once: true });
    const deadline = setTimeout(() => {
      const message = `the job ran past its ${seconds} s deadline (jobs.imageTimeoutSeconds)`;
      stop.abort(new FramehubError('JOB_TIMEOUT', message, 504));
    }, seconds * 1000);
    try {
      const result = await this.opts.run(task, stop.signal);
      const outputs = await this.save(job.id, result.outputs, stop.signal);
      this.opts.store.finish(job, {
        result: {
          source: result.source,
          outputs,
          ...(result.placeholder !== undefined && { placeholder: result.placeholder }),
        },
      });
    } catch (err) {
      await this.forget(job.id);
      this.fail(job, stop.signal.aborted ? stop.signal.reason : err);
    } finally {
      clearTimeout(deadline);
      job.abort.signal.removeEventListener('abort', onCancel);
      this.running.delete(job.id);
    }
  }

  /** Writes the outputs to disk; a job cancelled meanwhile keeps nothing. */
  private async save(jobId: string, outputs: ImageJobOutput[], signal: AbortSignal): Promise<OutputView[]> {
    const dir = join(this.opts.resultsDir, jobId);
    await mkdir(dir, { recursive: true });
    const stored: StoredOutput[] = [];
    this.stored.set(jobId, stored);
    const views: OutputView[] = [];
    for (const [n, { data, etag, ...rest }] of outputs.entries()) {
      const path = join(dir, `${n}.${FILE_EXTENSIONS[rest.format]}`);
      await writeFile(path, data);
      stored.push({ path, bytes: data.byteLength, mime: MIME_TYPES[rest.format], etag });
      this.addStored(data.byteLength);
      views.push({ n, url: `/api/v1/jobs/${jobId}/result/${n}`, mime: MIME_TYPES[rest.format], ...rest });
    }
    signal.throwIfAborted();
    return views;
  }

  private fail(job: Job, err: unknown): void {
    if (job.abort.signal.aborted) return;
    if (isClientError(err)) {
      this.opts.store.finish(job, { error: { code: err.code, message: err.message } });
      return;
    }
    // A worker crash, a full disk: the message names internals, so the client gets a fixed one.
    this.opts.log.error({ job: job.id, err }, 'image job failed');
    const code = err instanceof FramehubError ? err.code : 'INTERNAL';
    this.opts.store.finish(job, { error: { code, message: 'internal error; see the daemon log' } });
  }

  private addStored(delta: number): void {
    this.storedBytes += delta;
    this.opts.onStoredBytes(this.storedBytes);
  }
}
