import { randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FramehubError } from '../errors.js';
import { probeImage } from '../image/compress.js';
import { FILE_EXTENSIONS, MIME_TYPES } from '../image/image-formats.js';
import { checkOutputBoxes, type ImageJobOptions } from '../image/job-options.js';
import { checkUpload } from '../image/upload-check.js';
import type { Logger } from '../log.js';
import type { ImageJobOutput, ImageJobTask, ImageJobTaskResult, JobProgressRecord } from '../pool/tasks.js';
import type { JobControl } from '../pool/worker-pool.js';
import { type Job, type JobStore, jobError } from './job-store.js';

export interface ImageJobsOptions {
  store: JobStore;
  /**
   * The pool (WorkerPool.runImageJob): runs the task in its options' tier. Throws synchronously
   * when that tier's queue is full (429 with Retry-After). `signal` stops it in the queue or in
   * its worker; `onStart` says a worker took it.
   */
  run: (task: ImageJobTask, control: Required<JobControl>) => Promise<ImageJobTaskResult>;
  /** Each job's outputs go in a directory of its own under this one. */
  resultsDir: string;
  /** A running job's input, as a file its job process reads (see ImageJobTask.inputPath). */
  workDir: string;
  maxPixels: number;
  /** The longest a job may run in a worker; its wait in the queue does not count. */
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
 * fails the job with CORRUPT_IMAGE. DELETE, shutdown and `jobs.imageTimeoutSeconds` (counted
 * from the moment a worker takes the job) reach the worker: the pool drops the task from its
 * queue or kills the job process running it.
 */
export class ImageJobs {
  private readonly stored = new Map<string, StoredOutput[]>();
  private storedBytes = 0;
  private readonly running = new Map<string, AbortController>();

  constructor(private readonly opts: ImageJobsOptions) {}

  /** Empties the results and work directories: what an earlier process left belongs to jobs that no longer exist. */
  async init(): Promise<void> {
    for (const dir of [this.opts.resultsDir, this.opts.workDir]) {
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
    }
  }

  /**
   * Checks the image's header and queues the job, taking `body` over: its memory moves to the
   * worker, so the caller must not read it afterwards; throws the client's 4xx, or the pool's 429
   * when the job's tier is full, before any job exists. `id` and `stages` are for an upload's
   * job (tus), which keeps the upload's id and says its stage in its events.
   */
  async start(
    body: Uint8Array,
    options: ImageJobOptions,
    { id = randomUUID(), stages = false }: { id?: string; stages?: boolean } = {},
  ): Promise<Job> {
    checkOutputBoxes(options, this.opts.maxPixels);
    checkUpload(body, this.opts.maxPixels);
    await probeImage(body, this.opts.maxPixels);
    const input = ownBuffer(body);
    const stop = new AbortController();
    let job: Job | undefined;
    let deadline: NodeJS.Timeout | undefined;
    // onStart comes in a microtask after a worker takes the task: `job` exists by then.
    const onStart = () => {
      if (!job || stop.signal.aborted) return;
      this.opts.store.progress(job, 0);
      const seconds = this.opts.timeoutSeconds;
      deadline = setTimeout(() => {
        const message = `the job ran past its ${seconds} s deadline (jobs.imageTimeoutSeconds)`;
        stop.abort(new FramehubError('JOB_TIMEOUT', message, 504));
      }, seconds * 1000);
    };
    // Queued before the job is created: a full tier throws here, and no job exists to fail.
    const result = this.opts.run(
      { job: id, input, inputPath: join(this.opts.workDir, id), options, maxPixels: this.opts.maxPixels },
      { signal: stop.signal, onStart },
    );
    job = this.opts.store.create('image', id, stages);
    // The deadline is the worker's: once the outputs are back, saving them cannot time out.
    void this.finish(job, result, stop, () => clearTimeout(deadline));
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

  /** Follows a queued job to its end: outputs saved, or its files removed and the failure recorded. */
  private async finish(
    job: Job,
    result: Promise<ImageJobTaskResult>,
    stop: AbortController,
    workerDone: () => void,
  ): Promise<void> {
    this.running.set(job.id, stop);
    const onCancel = () => stop.abort(new FramehubError('ABORTED', 'the job was cancelled', 400));
    job.abort.signal.addEventListener('abort', onCancel, { once: true });
    try {
      const { source, outputs, placeholder } = await result.finally(workerDone);
      const views = await this.save(job.id, outputs, stop.signal);
      this.opts.store.finish(job, {
        result: { source, outputs: views, ...(placeholder !== undefined && { placeholder }) },
      });
    } catch (err) {
      this.fail(job, stop.signal.aborted ? stop.signal.reason : err);
      await this.forget(job.id).catch((rmErr: unknown) =>
        this.opts.log.warn({ job: job.id, err: rmErr }, 'could not remove the files of a failed image job'),
      );
    } finally {
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
    const { error, internal } = jobError(err);
    if (internal) this.opts.log.error({ job: job.id, err }, 'image job failed');
    this.opts.store.finish(job, { error });
  }

  private addStored(delta: number): void {
    this.storedBytes += delta;
    this.opts.onStoredBytes(this.storedBytes);
  }
}

/** The body's memory as an ArrayBuffer of its own, to move to a worker: copied only when shared. */
function ownBuffer(body: Uint8Array): ArrayBuffer {
  if (
    body.byteOffset === 0 &&
    body.byteLength === body.buffer.byteLength &&
    body.buffer instanceof ArrayBuffer
  ) {
    return body.buffer;
  }
  const copy = new ArrayBuffer(body.byteLength);
  new Uint8Array(copy).set(body);
  return copy;
}
