import type { VadConfig } from '../vad/config.js';
import type { VadSegment, VadState, VadTransition } from '../vad/detector.js';

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

export interface VadStreamOptions {
  stream: string;
  config: VadConfig;
  format: 'i16' | 'f32';
  run: RunVad;
  /** Audio waiting for the worker beyond this is an overrun: the backlog is dropped and the stream restarts. */
  maxPendingSamples: number;
  onOverrun?: (droppedSamples: number) => void;
}

/**
 * One audio stream (a camera, or a job) through the VAD. Chunks run strictly one after
 * another, since each needs the state the previous one returned; audio that arrives while one
 * runs is joined into the next task, so a slow pool means fewer, larger tasks, not a queue.
 * Results come back through the worker's ring; `deliver` is called with them in order.
 */
export class VadStream {
  private state: VadState | null = null;
  private pending: (Int16Array | Float32Array)[] = [];
  private pendingSamples = 0;
  private running = false;
  private ending = false;
  private nextChunk = 0;
  private failed: Error | undefined;
  private finished: { resolve: () => void; reject: (e: Error) => void; lastChunk: number } | undefined;
  private lastDelivered = -1;

  constructor(private readonly opts: VadStreamOptions) {}

  /** Samples submitted so far, including pending ones. */
  samplesIn = 0;

  push(samples: Int16Array | Float32Array): void {
    if (this.ending || samples.length === 0) return;
    this.samplesIn += samples.length;
    this.pending.push(samples);
    this.pendingSamples += samples.length;
    if (this.pendingSamples > this.opts.maxPendingSamples) {
      this.opts.onOverrun?.(this.pendingSamples);
      this.pending = [];
      this.pendingSamples = 0;
      this.state = null;
      return;
    }
    this.pump();
  }

  /** Ends the stream: the last chunk closes any open segment. Resolves when its results arrived. */
  end(): Promise<void> {
    this.ending = true;
    return new Promise((resolve, reject) => {
      this.finished = { resolve, reject, lastChunk: -1 };
      this.pump();
    });
  }

  /** Called with each ring record of this stream. */
  deliver(record: VadResultRecord, onResult: (r: VadResultRecord) => void): void {
    this.lastDelivered = record.chunk;
    onResult(record);
    if (this.finished && record.chunk === this.finished.lastChunk) this.finished.resolve();
  }

  private pump(): void {
    if (this.running || this.failed) return;
    const last = this.ending;
    if (this.pendingSamples === 0 && !last) return;
    if (last && this.finished && this.finished.lastChunk >= 0) return;
    const samples = join(this.pending, this.pendingSamples, this.opts.format);
    this.pending = [];
    this.pendingSamples = 0;
    const chunk = this.nextChunk++;
    if (last && this.finished) this.finished.lastChunk = chunk;
    this.running = true;
    this.opts
      .run({
        stream: this.opts.stream,
        chunk,
        samples: samples.buffer as ArrayBuffer,
        format: this.opts.format,
        config: this.opts.config,
        state: this.state,
        end: last,
      })
      .then(
        (r) => {
          this.state = r.state;
          this.running = false;
          if (last && this.finished && this.lastDelivered >= chunk) this.finished.resolve();
          this.pump();
        },
        (err: Error) => {
          this.running = false;
          this.failed = err;
          this.finished?.reject(err);
        },
      );
  }
}

/** One contiguous, freshly allocated (so transferable) array of the pending chunks. */
function join(
  parts: (Int16Array | Float32Array)[],
  total: number,
  format: 'i16' | 'f32',
): Int16Array | Float32Array {
  const out = format === 'i16' ? new Int16Array(total) : new Float32Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
