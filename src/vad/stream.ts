import { VadChunkError } from '../errors.js';
import type { RunVad, VadResultRecord } from '../pool/tasks.js';
import type { VadConfig } from './config.js';
import type { VadState } from './detector.js';

/** Why a stream dropped its state and started again at sample 0. */
export type VadRestart =
  | { reason: 'overrun'; droppedSamples: number }
  | { reason: 'chunk_failed'; droppedSamples: number; error: VadChunkError };

export interface VadStreamOptions {
  stream: string;
  config: VadConfig;
  format: 'i16' | 'f32';
  run: RunVad;
  /** Audio waiting for the worker beyond this is an overrun: the backlog is dropped and the stream restarts. */
  maxPendingSamples: number;
  /**
   * What a failed chunk does. `fail` (the default, for jobs): the stream stops, later audio is
   * ignored and `end()` rejects with a VadChunkError, since a job with a hole in its analysis
   * must not report a result. `restart` (live cameras): the stream restarts as after an overrun
   * and carries on with the next audio; one bad chunk costs a few seconds of VAD, not all of it.
   */
  onChunkFailure?: 'fail' | 'restart';
  /**
   * The stream restarted: results from here on count samples from 0 at the next pushed sample,
   * so a wall-clock anchor must be taken again. Open segments of the old stream never close.
   */
  onRestart?: (restart: VadRestart) => void;
}

/**
 * One audio stream (a camera, or a job) through the VAD. Chunks run strictly one after
 * another, since each needs the state the previous one returned; audio that arrives while one
 * runs is joined into the next task, so a slow pool means fewer, larger tasks, not a queue.
 * Results come back through the worker's ring; `deliver` is called with them in order.
 *
 * A restart (overrun, or a failed chunk of a live stream) is authoritative: the chunk running
 * at that moment belongs to the old stream, so its returned state and its ring record are
 * discarded, and the next chunk starts from a fresh state at sample 0.
 */
export class VadStream {
  private state: VadState | null = null;
  private pending: (Int16Array | Float32Array)[] = [];
  private pendingSamples = 0;
  private running = false;
  private ending = false;
  private nextChunk = 0;
  /** Chunks numbered below this ran before the last restart: their state and records are dropped. */
  private firstChunk = 0;
  private failed: VadChunkError | undefined;
  private finished: { resolve: () => void; reject: (e: Error) => void; lastChunk: number } | undefined;
  private ended: Promise<void> | undefined;
  private lastDelivered = -1;

  constructor(private readonly opts: VadStreamOptions) {}

  /** Samples submitted so far, including pending and dropped ones. */
  samplesIn = 0;

  push(samples: Int16Array | Float32Array): void {
    if (this.ending || this.failed || samples.length === 0) return;
    this.samplesIn += samples.length;
    this.pending.push(samples);
    this.pendingSamples += samples.length;
    this.pump();
    // Only audio left waiting behind a running chunk is backlog: a long message that finds the
    // stream idle is simply one larger task.
    if (this.pendingSamples > this.opts.maxPendingSamples) {
      this.restart({ reason: 'overrun', droppedSamples: this.pendingSamples });
    }
  }

  /**
   * Ends the stream: the last chunk closes any open segment. Resolves when its results arrived;
   * rejects with the VadChunkError if a chunk of a `fail` stream failed, before or after this call.
   */
  end(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    this.ending = true;
    this.ended ??= new Promise((resolve, reject) => {
      this.finished = { resolve, reject, lastChunk: -1 };
      this.pump();
    });
    return this.ended;
  }

  /** Called with each ring record of this stream. */
  deliver(record: VadResultRecord, onResult: (r: VadResultRecord) => void): void {
    // Positions in a record from before a restart count from the old stream's sample 0.
    if (record.chunk < this.firstChunk) return;
    this.lastDelivered = record.chunk;
    onResult(record);
    if (this.finished && record.chunk === this.finished.lastChunk) this.finished.resolve();
  }

  private restart(restart: VadRestart): void {
    this.pending = [];
    this.pendingSamples = 0;
    this.state = null;
    this.firstChunk = this.nextChunk;
    this.opts.onRestart?.(restart);
  }

  private pump(): void {
    if (this.running || this.failed) return;
    const last = this.ending;
    if (this.pendingSamples === 0 && !last) return;
    if (last && this.finished && this.finished.lastChunk >= 0) return;
    const samples = join(this.pending, this.pendingSamples, this.opts.format);
    const count = samples.length;
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
          this.running = false;
          if (chunk >= this.firstChunk) this.state = r.state;
          if (last && this.finished && this.lastDelivered >= chunk) this.finished.resolve();
          this.pump();
        },
        (err: Error) => {
          this.running = false;
          this.chunkFailed(new VadChunkError(this.opts.stream, chunk, err), count, last);
        },
      );
  }

  private chunkFailed(error: VadChunkError, count: number, last: boolean): void {
    if (this.opts.onChunkFailure === 'restart' && !last) {
      // Also when the chunk already belonged to a discarded stream: one rule, at the cost of
      // the (at most maxPendingSamples) audio that arrived since, in a rare double fault.
      this.restart({ reason: 'chunk_failed', droppedSamples: count + this.pendingSamples, error });
      return;
    }
    this.failed = error;
    this.pending = [];
    this.pendingSamples = 0;
    this.finished?.reject(error);
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
