import { open, readFile } from 'node:fs/promises';
import { FramehubError, isClientError } from '../errors.js';
import type { Hub } from '../hub/hub.js';
import { readImageHeader } from '../image/image-header.js';
import { parseImageJobOptions } from '../image/job-options.js';
import type { Logger } from '../log.js';
import type { PreviewTask, PreviewTaskResult } from '../pool/tasks.js';
import type { ImageJobs } from './image-job.js';

/** What an upload looks like to this module (tus-store's TusUpload satisfies it). */
export interface UploadState {
  readonly id: string;
  readonly length: number;
  readonly offset: number;
  readonly metadata: Readonly<Record<string, string>>;
}

export interface UploadJobsOptions {
  hub: Hub;
  imageJobs: ImageJobs;
  /** Where an upload's bytes are on disk. */
  filePath: (upload: UploadState) => string;
  /** Runs a preview in the pool at the `urgent` tier; `signal` stops it (its job process is killed). */
  runPreview: (task: PreviewTask, control: { signal: AbortSignal }) => Promise<PreviewTaskResult>;
  /** images.maxPixels: a preview is never made of an image whose header claims more. */
  maxPixels: number;
  log: Pick<Logger, 'warn'>;
}

/** Metadata keys tus clients add by themselves: file facts, not job options. */
const CLIENT_KEYS = new Set(['filename', 'filetype', 'name', 'type', 'relativePath']);

/** No preview before this much of the file has arrived: less rarely shows anything. */
const PREVIEW_FROM = 0.25;
/** A new preview needs this much more of the file… */
const PREVIEW_STEP = 0.1;
/** …and this long since the last one. */
const PREVIEW_INTERVAL_MS = 1000;
const PREVIEW_WIDTH = 320;
/** A preview decodes at most the first this many bytes: the top of a huge upload is enough. */
const PREVIEW_MAX_BYTES = 16 * 1024 * 1024;
/** A preview still in its worker after this is stopped: previews run ahead of live frames. */
const PREVIEW_TIMEOUT_MS = 5000;

interface Watch {
  format: 'jpeg' | 'png' | 'other' | undefined;
  startedAt: number;
  startOffset: number;
  lastProgress: number;
  lastAt: number;
  /** Progress last published: an event goes out per 5 % (or with a preview), not per chunk. */
  published: number;
  preview?: { n: number; data: Uint8Array };
}

/**
 * Turns a tus upload into an image job, with live previews on the way. The job's topic is
 * `job/<upload id>`, known from the upload's `Location`, so a client can subscribe before the
 * upload completes. Stages: `uploading` (progress is the share received), `previewing` (a
 * JPEG or PNG with at least 25 % received: a small JPEG decoded from what has arrived, at most
 * one per 10 % and per second, at `previewUrl`), then the job's own states, which carry
 * `stage: 'optimizing'` and, when done, `'complete'`. Previews are derived images, never the
 * partial bytes, and live in memory (about 10 KB each, one per upload).
 */
export class UploadJobs {
  private readonly watches = new Map<string, Watch>();
  /**
   * One preview in the pool at a time, whatever the number of uploads: previews are `urgent`,
   * ahead of live frames, so many at once would take every worker from the cameras.
   */
  private previewing = false;

  constructor(private readonly opts: UploadJobsOptions) {}

  /** After each chunk written: publishes progress and, when due, makes a preview. */
  progress(upload: UploadState): void {
    const now = Date.now();
    let watch = this.watches.get(upload.id);
    if (!watch) {
      watch = {
        format: undefined,
        startedAt: now,
        startOffset: upload.offset,
        lastProgress: 0,
        lastAt: 0,
        published: -1,
      };
      this.watches.set(upload.id, watch);
    }
    const progress = upload.length === 0 ? 1 : upload.offset / upload.length;
    if (progress - watch.published >= 0.05) {
      watch.published = progress;
      this.publish(upload, watch.preview ? 'previewing' : 'uploading', progress, now);
    }
    if (this.previewing || progress < PREVIEW_FROM || progress >= 1) return;
    if (progress - watch.lastProgress < PREVIEW_STEP || now - watch.lastAt < PREVIEW_INTERVAL_MS) return;
    this.previewing = true;
    watch.lastProgress = progress;
    watch.lastAt = now;
    void this.preview(upload, watch).finally(() => {
      this.previewing = false;
    });
  }

  /**
   * The job options an upload's metadata carries, checked when the upload is created (400
   * there, not after the last byte). What tus clients send by themselves (Uppy: `filename`,
   * `filetype`, `name`, `type`, `relativePath`) is not an option and is ignored.
   */
  optionsOf(metadata: Readonly<Record<string, string>>) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(metadata)) if (!CLIENT_KEYS.has(key)) params.append(key, value);
    return parseImageJobOptions(params);
  }

  /** The upload is whole: start its image job, with the options its metadata carries. */
  async complete(upload: UploadState): Promise<void> {
    const watch = this.watches.get(upload.id);
    try {
      const options = parseImageJobOptions(
        new URLSearchParams(upload.metadata),
        upload.metadata.accept ?? '',
      );
      const body = await readFile(this.opts.filePath(upload));
      await this.opts.imageJobs.start(body, options, { id: upload.id, stages: true });
    } catch (err) {
      const error = isClientError(err)
        ? { code: err.code, message: err.message }
        : { code: 'INTERNAL', message: 'internal error; see the daemon log' };
      if (!isClientError(err))
        this.opts.log.warn({ upload: upload.id, err }, 'could not start the job of an upload');
      this.opts.hub.publishEvent(`job/${upload.id}`, {
        type: 'job',
        id: upload.id,
        kind: 'image',
        state: 'failed',
        stage: 'complete',
        progress: 1,
        error,
      });
    } finally {
      if (watch) watch.preview = undefined;
      this.watches.delete(upload.id);
    }
  }

  /** The newest preview of an upload still arriving. */
  latestPreview(uploadId: string): Uint8Array | undefined {
    return this.watches.get(uploadId)?.preview?.data;
  }

  /** The upload was removed or expired. */
  forget(uploadId: string): void {
    this.watches.delete(uploadId);
  }

  private async preview(upload: UploadState, watch: Watch): Promise<void> {
    const path = this.opts.filePath(upload);
    try {
      watch.format ??= await sniff(path, this.opts.maxPixels);
      if (watch.format !== 'jpeg' && watch.format !== 'png') return;
      const bytes = Math.min(upload.offset, PREVIEW_MAX_BYTES);
      const task = { path, bytes, width: PREVIEW_WIDTH, maxPixels: this.opts.maxPixels };
      const result = await this.opts.runPreview(task, { signal: AbortSignal.timeout(PREVIEW_TIMEOUT_MS) });
      if (!this.watches.has(upload.id)) return;
      const n = (watch.preview?.n ?? 0) + 1;
      watch.preview = { n, data: result.jpeg };
      this.publish(upload, 'previewing', upload.offset / upload.length, Date.now(), n);
    } catch (err) {
      // Too little decodable yet, or the pool is busy: the next chunk tries again.
      if (!(err instanceof FramehubError))
        this.opts.log.warn({ upload: upload.id, err }, 'upload preview failed');
    }
  }

  private publish(
    upload: UploadState,
    stage: 'uploading' | 'previewing',
    progress: number,
    now: number,
    n?: number,
  ) {
    const watch = this.watches.get(upload.id);
    const received = upload.offset - (watch?.startOffset ?? 0);
    const rate = received / Math.max(1, now - (watch?.startedAt ?? now));
    const eta = rate > 0 ? new Date(now + (upload.length - upload.offset) / rate).toISOString() : undefined;
    const preview = n ?? watch?.preview?.n;
    this.opts.hub.publishEvent(`job/${upload.id}`, {
      type: 'job',
      id: upload.id,
      kind: 'image',
      state: 'running',
      stage,
      progress,
      ...(preview !== undefined && { previewUrl: `/api/v1/uploads/${upload.id}/preview?n=${preview}` }),
      ...(eta && { estimatedCompletion: eta }),
    });
  }
}

/** How much of the file the header is looked for in. */
const HEAD_BYTES = 64 * 1024;

/**
 * The upload's format from its first bytes: `jpeg` or `png` when a preview may be made,
 * `other` (never previewed) for anything else or a header over `maxPixels`, undefined while
 * the header has not fully arrived.
 */
async function sniff(path: string, maxPixels: number): Promise<Watch['format']> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await file.read(head, 0, HEAD_BYTES, 0);
    const header = readImageHeader(head.subarray(0, bytesRead));
    if (!header) return bytesRead < HEAD_BYTES ? undefined : 'other';
    return header.width * header.height > maxPixels ? 'other' : header.format;
  } finally {
    await file.close();
  }
}
