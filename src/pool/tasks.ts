/**
 * What the pool sends each worker and what comes back: plain types shared by the main thread
 * and the workers, so neither imports the other.
 */
import type { MessagePort } from 'node:worker_threads';
import type { ErrorCode } from '../errors.js';
import type { ImageJobResult, ImageOutput } from '../image/compress.js';
import type { ImageJobOptions } from '../image/job-options.js';
import type { FrameRejection, FrameVariant } from '../image/variant-names.js';
import type { VadConfig } from '../vad/config.js';
import type { VadSegment, VadState, VadTransition } from '../vad/detector.js';

/** A camera frame moved (not copied) into the worker, with the size its header claims. */
export interface ImageTask {
  camera: string;
  seq: number;
  ts: number;
  width: number;
  height: number;
  /** images.maxPixels, applied again by sharp to every call (limitInputPixels). */
  maxPixels: number;
  jpeg: ArrayBuffer;
  variants: FrameVariant[];
  /** What the `annotated` variant draws (set when it is asked for); the time is `ts`. */
  annotation?: { label: string; speech: boolean };
}

export interface ImageTaskResult {
  written: number;
  /** Records dropped because the ring stayed full (ring_full). */
  dropped: number;
  /** Records larger than the whole ring, dropped on their own (too_large). */
  tooLarge: number;
  bytesOut: number;
  ms: number;
  /** Of `ms`, the time in sharp (resize and encode of the variants): framehub_image_encode_seconds. */
  encodeMs: number;
  /** Set when the frame was dropped whole: nothing of it went out. */
  rejected?: FrameRejection;
}

/** What the vad worker writes into its ring for each chunk. */
export interface VadResultRecord {
  type: 'vad_result';
  stream: string;
  chunk: number;
  transitions: VadTransition[];
  segments: VadSegment[];
  frames: number;
  backend: 'native' | 'js';
}

/** The task the vad worker receives; samples are transferred. */
export interface VadPoolTask {
  stream: string;
  chunk: number;
  samples: ArrayBuffer;
  format: 'i16' | 'f32';
  config: VadConfig;
  state: VadState | null;
  end?: boolean;
}

export interface VadPoolResult {
  state: VadState;
  frames: number;
  ms: number;
}

export type RunVad = (task: VadPoolTask) => Promise<VadPoolResult>;

/** An image job for a pool worker: the upload, moved in, and its checked options. */
export interface ImageJobTask {
  job: string;
  input: ArrayBuffer;
  /**
   * Where the worker writes the input for its job process to read: a file costs a write and a
   * read, where the process's IPC channel cost 7 ms of CPU and 9 ms of wall time for 400 KB.
   * The process removes it once read; the worker, if the process never got that far.
   */
  inputPath: string;
  options: ImageJobOptions;
  /** images.maxPixels, applied by sharp to every decode (limitInputPixels). */
  maxPixels: number;
}

/** What the pool adds to every job task (WorkerPool.runJob), for workers/job-process-client.ts. */
export interface JobProcessFields {
  /** jobs.nice: how far the job process's nice value is raised above the daemon's. */
  nice: number;
  /** A message on it (any) cancels the running job: the worker kills its job process. Moved in. */
  cancel: MessagePort;
}

/** One output as the worker hands it back; the main thread writes it to disk. */
export interface ImageJobOutput extends Omit<ImageOutput, 'data'> {
  /** A strong ETag (quoted): the same bytes give the same tag. */
  etag: string;
  data: Uint8Array;
}

export interface ImageJobTaskResult {
  source: ImageJobResult['source'];
  outputs: ImageJobOutput[];
  placeholder?: string;
}

/** A worker → its job process (workers/job-process.ts): one request at a time. */
export type JobProcessRequest =
  | { kind: 'image'; inputPath: string; options: ImageJobOptions; maxPixels: number }
  | ({ kind: 'preview' } & PreviewTask);

/** The job process → its worker: progress (0..1) any number of times, then a result or an error. */
export type JobProcessReply =
  | { progress: number }
  | { result: ImageJobTaskResult | PreviewTaskResult }
  | { error: { code: ErrorCode; message: string; status: number } };

/** A worker's progress on a job (0..1), through its ring; the job store publishes it on `job/<id>`. */
export interface JobProgressRecord {
  type: 'job_progress';
  job: string;
  progress: number;
}

/** A preview of an upload still arriving: the worker decodes the first `bytes` of the file. */
export interface PreviewTask {
  path: string;
  bytes: number;
  width: number;
  /** images.maxPixels, applied by sharp to the decode. */
  maxPixels: number;
}

export interface PreviewTaskResult {
  jpeg: Uint8Array;
  width: number;
  height: number;
}
