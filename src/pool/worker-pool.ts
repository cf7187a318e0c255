import { Piscina } from 'piscina';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { poolThreads } from '../threadpool.js';
import { createRing, RingReader, startDraining } from './ring-buffer.js';
import { type PoolWorkerData, releaseOrphanRings } from './ring-claim.js';
import type {
  ImageJobTask,
  ImageJobTaskResult,
  ImageTask,
  ImageTaskResult,
  VadPoolResult,
  VadPoolTask,
} from './tasks.js';
import { workerPath } from './worker-path.js';

export interface WorkerPoolOptions {
  /** 0 means one worker per core. */
  threads: number;
  ringBytes: number;
  /**
   * Frames the pool holds beyond one per worker (running or waiting); beyond that new frames
   * are dropped (counted as pool_busy).
   */
  maxQueuedFrames: number;
  /** How long a worker blocks on a full ring before it drops the record. */
  ringWaitMs?: number;
  log: Logger;
  metrics: Metrics;
  /** Receives every record a worker wrote to its ring, already copied out of shared memory. */
  onRecord: (record: Uint8Array) => void;
}

const REJECTION_LOG_INTERVAL_MS = 10_000;

/**
 * The piscina pool plus one SharedArrayBuffer result ring per worker. Task inputs go in by
 * transfer; results come back through the rings, drained on the main thread when a worker
 * rings the doorbell. The task promise only carries small counters.
 */
export class WorkerPool {
  readonly threads: number;
  private readonly image: Piscina;
  private readonly readers: RingReader[];
  private readonly drainers: { stop(): void }[];
  /** Frames held by the pool: in a worker or waiting for their camera's turn. */
  private inFlightFrames = 0;
  /** Cameras with a frame in a worker (or in piscina's queue for one). */
  private readonly busyCameras = new Set<string>();
  /** The newest frame of each busy camera, run when that camera's current one finishes. */
  private readonly waitingFrames = new Map<string, ImageTask>();
  /** Last time a worker's rejection of a camera's frame was logged, to keep a bad publisher off the logs. */
  private readonly rejectionLoggedAt = new Map<string, number>();
  private closing = false;
  private readonly drops;
  /** Tasks submitted and not finished, by priority (live camera work vs. jobs). */
  private readonly pending = { live: 0, job: 0 };
  private readonly vadFile = workerPath('vad');
  private readonly imageJobFile = workerPath('image-job');
  private readonly maxInFlightFrames: number;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.threads = poolThreads(opts.threads);
    // One spare ring: piscina may start a replacement before it reports the dead worker destroyed.
    const rings = Array.from({ length: this.threads + 1 }, () => createRing(opts.ringBytes));
    const claims = new SharedArrayBuffer(4 * rings.length);
    const workerData: PoolWorkerData = { rings, claims, ringWaitMs: opts.ringWaitMs ?? 20 };
    this.readers = rings.map((sab) => new RingReader(sab));
    this.drainers = this.readers.map((reader) =>
      startDraining(reader, opts.onRecord, (err: unknown) =>
        opts.log.error({ err }, 'ring record handler failed'),
      ),
    );
    this.image = new Piscina({
      filename: workerPath('image'),
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: 2 ** 31 - 1,
      workerData,
    });
    // A dead worker's ring goes back to the free list, or the next replacement finds none.
    this.image.on('workerDestroy', () =>
      releaseOrphanRings(claims, new Set(this.image.threads.map((t) => t.threadId))),
    );
    this.image.on('error', (err: unknown) => opts.log.error({ err }, 'image worker error'));
    this.maxInFlightFrames = this.threads + opts.maxQueuedFrames;
    this.drops = {
      poolBusy: opts.metrics.framesDropped.labels('pool_busy'),
      superseded: opts.metrics.framesDropped.labels('superseded'),
    };
    this.registerCollectors();
  }

  /**
   * Queues one frame for resizing, fairly: each camera has at most one frame in a worker and
   * one waiting, and a newer frame replaces the waiting one (counted as superseded). A
   * publisher flooding one camera so only ever occupies that camera's turn, never the queue
   * other cameras need, and a camera's frames finish in order. The cost: one camera's frames
   * never run on two workers at once, so a camera whose frames take longer than its frame
   * interval to resize loses frames here rather than using a second core.
   * Returns false, without queueing, when the pool already holds threads + maxQueuedFrames
   * frames: for live video a newer frame is always coming.
   */
  submitFrame(task: ImageTask): boolean {
    if (this.busyCameras.has(task.camera)) {
      const older = this.waitingFrames.get(task.camera);
      if (older) {
        this.drops.superseded.inc(older.variants.length);
        // The newer frame takes over any variant the older one was refreshing (about once a
        // second every variant is made, watched or not): under a flood it would never happen.
        if (older.variants.some((v) => !task.variants.includes(v))) {
          task.variants = [...new Set([...task.variants, ...older.variants])];
        }
        this.waitingFrames.set(task.camera, task);
        return true;
      }
    }
    if (this.inFlightFrames >= this.maxInFlightFrames) {
      this.drops.poolBusy.inc(task.variants.length);
      return false;
    }
    this.inFlightFrames++;
    if (this.busyCameras.has(task.camera)) this.waitingFrames.set(task.camera, task);
    else this.runFrame(task);
    return true;
  }

  /** Runs one frame (counted in inFlightFrames already) and, when it settles, that camera's next. */
  private runFrame(task: ImageTask): void {
    const { metrics } = this.opts;
    this.busyCameras.add(task.camera);
    metrics.imageBytesIn.inc(task.jpeg.byteLength);
    this.image
      .run(task, { transferList: [task.jpeg] })
      .then((result: ImageTaskResult) => {
        metrics.taskDuration.labels('image').observe(result.ms / 1000);
        metrics.imageBytesOut.inc(result.bytesOut);
        if (result.dropped) metrics.framesDropped.labels('ring_full').inc(result.dropped);
        if (result.tooLarge) metrics.framesDropped.labels('too_large').inc(result.tooLarge);
        if (result.rejected) this.frameRejected(task, result.rejected);
      })
      .catch((err: unknown) => {
        metrics.framesDropped.labels('worker_error').inc(task.variants.length);
        this.opts.log.warn({ err: (err as Error).message, camera: task.camera }, 'image task failed');
      })
      .finally(() => {
        this.inFlightFrames--;
        this.busyCameras.delete(task.camera);
        const next = this.waitingFrames.get(task.camera);
        if (!next) return;
        this.waitingFrames.delete(task.camera);
        // Moves from waiting to running: it stays counted in inFlightFrames.
        if (this.closing) this.inFlightFrames--;
        else this.runFrame(next);
      });
  }

  /** A frame the worker would not relay (header disagreed or unreadable): counted once, logged at most every 10 s per camera. */
  private frameRejected(task: ImageTask, rejected: NonNullable<ImageTaskResult['rejected']>): void {
    this.opts.metrics.framesDropped.labels(rejected.reason).inc();
    const now = Date.now();
    if (now - (this.rejectionLoggedAt.get(task.camera) ?? 0) < REJECTION_LOG_INTERVAL_MS) return;
    this.rejectionLoggedAt.set(task.camera, now);
    this.opts.log.warn(
      { camera: task.camera, reason: rejected.reason, detail: rejected.message },
      'frame dropped by the image worker (logged at most every 10 s per camera)',
    );
  }

  /** Runs one VAD chunk; its transitions and segments arrive through the ring as a vad_result record. */
  async runVad(task: VadPoolTask): Promise<VadPoolResult> {
    const priority = task.stream.startsWith('job/') ? 'job' : 'live';
    this.pending[priority]++;
    try {
      const result = (await this.image.run(task, {
        filename: this.vadFile,
        transferList: [task.samples],
      })) as VadPoolResult;
      this.opts.metrics.taskDuration.labels('vad').observe(result.ms / 1000);
      return result;
    } finally {
      this.pending[priority]--;
    }
  }

  /**
   * Runs one image job. `signal` cancels it: piscina drops it from the queue, or terminates the
   * worker running it and starts a replacement (a job deep in libvips stops when the call returns).
   */
  async runImageJob(task: ImageJobTask, signal: AbortSignal): Promise<ImageJobTaskResult> {
    this.pending.job++;
    const started = performance.now();
    try {
      const result = (await this.image.run(task, {
        filename: this.imageJobFile,
        transferList: [task.input],
        signal,
      })) as ImageJobTaskResult;
      this.opts.metrics.taskDuration.labels('image_job').observe((performance.now() - started) / 1000);
      return result;
    } finally {
      this.pending.job--;
    }
  }

  stats() {
    return {
      threads: this.threads,
      queued: this.image.queueSize,
      pending: { live: this.pending.live + this.inFlightFrames, job: this.pending.job },
      inFlightFrames: this.inFlightFrames,
      waitingFrames: this.waitingFrames.size,
      rings: this.readers.map((r) => r.stats()),
    };
  }

  /**
   * Rejects queued tasks and terminates every worker at once. Resolves true when all of them
   * have exited, or false after `graceMs` when one has not: a worker inside a native call
   * (libvips decoding a huge frame) only exits when the call returns, maybe minutes later, and
   * until then Node cannot exit normally either, since process.exit() joins every worker
   * thread. The caller decides what to do about it (see src/shutdown.ts).
   */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    this.closing = true;
    const exited = this.image.destroy().then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => {
      if (Number.isFinite(graceMs)) timer = setTimeout(() => resolve(false), graceMs);
    });
    const allExited = await Promise.race([exited, late]);
    clearTimeout(timer);
    for (const d of this.drainers) d.stop();
    return allExited;
  }

  private registerCollectors(): void {
    this.opts.metrics.samplePool(() => ({
      pending: { live: this.pending.live + this.inFlightFrames, job: this.pending.job },
      rings: this.readers.map((r) => r.stats()),
    }));
  }
}
