import { basename } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { RetryLaterError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { poolThreads } from '../threadpool.js';
import { DEFAULT_MAX_PER_TIER, PriorityTaskQueue, TIERS, type Tier, withPriority } from './priority-queue.js';
import { createRing, RingReader, startDraining } from './ring-buffer.js';
import { type PoolWorkerData, releaseOrphanRings } from './ring-claim.js';
import type {
  ImageJobTask,
  ImageJobTaskResult,
  ImageTask,
  ImageTaskResult,
  JobProcessFields,
  PreviewTask,
  PreviewTaskResult,
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
  /** Whether any camera is configured: without one no live frame ever comes, so jobs may use every worker. */
  liveCameras?: boolean;
  /** jobs.nice: how far below the daemon's priority job processes run (default 10). */
  jobNice?: number;
  /** `pool.queue`: see priority-queue.ts. */
  queue?: {
    agingMs?: number;
    maxPerTier?: Partial<Record<Tier, number>>;
    /** Default threads − 1, at least 1, so one worker stays free of jobs for live frames; every worker without cameras. */
    maxRunningJobs?: number;
  };
}

/** What moves into a worker with its task. */
type Transfers = (ArrayBuffer | MessagePort)[];

/** The tiers a job task may ask for: `high` is live work (frames, live VAD), submitted by the pool itself. */
export type JobTier = Exclude<Tier, 'high'>;

/** How a job's caller follows and stops it. */
export interface JobControl {
  /** Stops the job: it leaves the queue, or its job process is killed. */
  signal?: AbortSignal;
  /** Called once a worker takes the job (a job's deadline runs from here, not from its wait). */
  onStart?: () => void;
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
  private readonly queue: PriorityTaskQueue;
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
  private readonly previewFile = workerPath('preview');
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
    this.maxInFlightFrames = this.threads + opts.maxQueuedFrames;
    this.queue = this.createQueue();
    this.image = new Piscina({
      filename: workerPath('image'),
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: 2 ** 31 - 1,
      workerData,
      taskQueue: this.queue,
      loadBalancer: this.queue.loadBalancer,
    });
    // A dead worker's ring goes back to the free list, or the next replacement finds none.
    this.image.on('workerDestroy', () =>
      releaseOrphanRings(claims, new Set(this.image.threads.map((t) => t.threadId))),
    );
    this.image.on('error', (err: unknown) => opts.log.error({ err }, 'image worker error'));
    this.drops = {
      poolBusy: opts.metrics.framesDropped.labels({ reason: 'pool_busy' }),
      superseded: opts.metrics.framesDropped.labels({ reason: 'superseded' }),
    };
    this.registerCollectors();
  }

  /** The priority queue, its job cap, and its wait and promotion metrics bound once per tier. */
  private createQueue(): PriorityTaskQueue {
    const { metrics, queue = {} } = this.opts;
    const wait = Object.fromEntries(TIERS.map((t) => [t, metrics.poolQueueWait.labels(t)]));
    const promoted = Object.fromEntries(TIERS.map((t) => [t, metrics.poolPromotions.labels(t)]));
    // Frames are refused by maxInFlightFrames first; a smaller `high` bound would drop them as errors.
    const high = queue.maxPerTier?.high ?? DEFAULT_MAX_PER_TIER.high;
    if (high < this.maxInFlightFrames) {
      throw new RangeError(
        `pool.queue.maxPerTier.high (${high}) must be at least threads + pool.maxQueuedFrames (${this.maxInFlightFrames})`,
      );
    }
    return new PriorityTaskQueue({
      agingMs: queue.agingMs,
      maxPerTier: queue.maxPerTier,
      maxRunningJobs:
        queue.maxRunningJobs ??
        (this.opts.liveCameras === false ? this.threads : Math.max(1, this.threads - 1)),
      onWait: (tier, ms, wasPromoted) => {
        wait[tier]!.observe(ms / 1000);
        if (wasPromoted) promoted[tier]!.inc();
      },
    });
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
    this.submit<ImageTaskResult>(withPriority(task, 'high'), { transferList: [task.jpeg] })
      .then((result) => {
        metrics.taskDuration.labels('image').observe(result.ms / 1000);
        if (result.encodeMs > 0) metrics.imageEncode.observe(result.encodeMs / 1000);
        metrics.imageBytesOut.inc(result.bytesOut);
        if (result.dropped) metrics.framesDropped.labels({ reason: 'ring_full' }).inc(result.dropped);
        if (result.tooLarge) metrics.framesDropped.labels({ reason: 'too_large' }).inc(result.tooLarge);
        if (result.rejected) this.frameRejected(task, result.rejected);
      })
      .catch((err: unknown) => {
        // A full `high` tier (only with live VAD chunks queued beside the frames) is the pool being busy.
        const reason = err instanceof RetryLaterError ? 'pool_busy' : 'worker_error';
        metrics.framesDropped.labels({ reason }).inc(task.variants.length);
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
    this.opts.metrics.framesDropped.labels({ reason: rejected.reason }).inc();
    const now = Date.now();
    if (now - (this.rejectionLoggedAt.get(task.camera) ?? 0) < REJECTION_LOG_INTERVAL_MS) return;
    this.rejectionLoggedAt.set(task.camera, now);
    this.opts.log.warn(
      { camera: task.camera, reason: rejected.reason, detail: rejected.message },
      'frame dropped by the image worker (logged at most every 10 s per camera)',
    );
  }

  /**
   * Runs one VAD chunk; its transitions and segments arrive through the ring as a vad_result
   * record. Live chunks (`cam/…`) run in the `high` tier beside frames, job chunks (`job/…`) in
   * `normal`, under the job cap.
   */
  async runVad(task: VadPoolTask): Promise<VadPoolResult> {
    const priority = task.stream.startsWith('job/') ? 'job' : 'live';
    this.pending[priority]++;
    try {
      const result = await this.submit<VadPoolResult>(
        withPriority(task, priority === 'job' ? 'normal' : 'high'),
        { filename: this.vadFile, transferList: [task.samples] },
      );
      this.opts.metrics.taskDuration.labels('vad').observe(result.ms / 1000);
      return result;
    } finally {
      this.pending[priority]--;
    }
  }

  /** Runs one image job in its options' tier (`normal` or `low`), or in `tier` when given. */
  runImageJob(task: ImageJobTask, control: JobControl = {}, tier: JobTier = task.options.priority) {
    return this.runJob<ImageJobTaskResult>(task, tier, this.imageJobFile, [task.input], control);
  }

  /** Decodes a preview of an upload still arriving, in the `urgent` tier. */
  runPreview(task: PreviewTask, control: JobControl = {}): Promise<PreviewTaskResult> {
    return this.runJob(task, 'urgent', this.previewFile, [], control);
  }

  /**
   * Runs a job task: `filename` is the worker entry, which hands the work to its job process
   * (workers/job-process-client.ts); `transferList` is what moves into the worker. `normal` and
   * `low` count against the job cap; `urgent` does not (see priority-queue.ts). Throws
   * synchronously, before anything is queued, when `control.signal` has already fired or the
   * tier is full (the 429 of admitJob), so a caller can refuse before it creates a job.
   * `control.signal` stops the job wherever it is, and the promise rejects at once with the
   * signal's reason: a queued job leaves the queue unrun; a running one has its job process
   * killed through the `cancel` port moved in with the task, and counts against the cap until
   * that process has exited. The worker thread itself is never terminated for a job: a child
   * process whose parent thread is gone stays a zombie until the daemon exits (libuv reaps a
   * child on the loop that started it).
   */
  runJob<R>(
    task: object,
    tier: JobTier,
    filename: string,
    transferList: ArrayBuffer[],
    control: JobControl = {},
  ): Promise<R> {
    control.signal?.throwIfAborted();
    this.admitJob(tier);
    const cancel = new MessageChannel();
    const fields: JobProcessFields = { nice: this.opts.jobNice ?? 10, cancel: cancel.port2 };
    const stopRunning = () => cancel.port1.postMessage('cancel');
    return this.runAdmitted<R>({ ...task, ...fields }, tier, filename, [...transferList, cancel.port2], {
      ...control,
      stopRunning,
    });
  }

  private async runAdmitted<R>(
    task: object,
    tier: JobTier,
    filename: string,
    transferList: Transfers,
    { signal, onStart, stopRunning }: JobControl & { stopRunning: () => void },
  ): Promise<R> {
    let startedAt = 0;
    const tagged = withPriority(task, tier, {
      onStart: () => {
        startedAt = performance.now();
        onStart?.();
      },
    });
    this.pending.job++;
    try {
      const running = this.submit<R>(tagged, { filename, transferList });
      const result = signal ? await this.stoppable(running, tagged, signal, stopRunning) : await running;
      const label = basename(filename, '.js').replaceAll('-', '_');
      this.opts.metrics.taskDuration.labels(label).observe((performance.now() - startedAt) / 1000);
      return result;
    } finally {
      this.pending.job--;
    }
  }

  /** False when a job of this tier would be refused now: the route checks it before reading a body. */
  canAcceptJob(tier: JobTier): boolean {
    return this.queue.canAccept(tier);
  }

  /** Throws the 429 (with Retry-After) a full tier answers with, counted as limit `pool_queue`. */
  admitJob(tier: JobTier): void {
    if (this.queue.canAccept(tier)) return;
    this.opts.metrics.limitRejections.labels('pool_queue').inc();
    throw this.queue.fullError(tier);
  }

  /** piscina's run(), with a synchronous refusal (a full tier) turned into a rejection. */
  private submit<R>(payload: object, options: { filename?: string; transferList: Transfers }): Promise<R> {
    try {
      return this.image.run(payload, options) as Promise<R>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** `running`, or signal.reason as soon as the signal fires, the job being stopped meanwhile. */
  private stoppable<R>(
    running: Promise<R>,
    tagged: object,
    signal: AbortSignal,
    stopRunning: () => void,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const onAbort = () => {
        reject(signal.reason);
        this.stop(tagged, signal.reason, stopRunning);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      // After an abort, `running` still settles (the termination error): resolve/reject are no-ops then.
      running.then(
        (result) => {
          signal.removeEventListener('abort', onAbort);
          resolve(result);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }

  /** Takes a job out of the queue, or has the worker running it kill its job process. */
  private stop(tagged: object, reason: unknown, stopRunning: () => void): void {
    if (this.queue.cancel(tagged, reason)) return;
    if (this.queue.threadOf(tagged) === undefined) return; // finished meanwhile: its result is ignored
    this.opts.metrics.poolJobTerminations.inc();
    stopRunning();
  }

  stats() {
    return {
      threads: this.threads,
      queued: Object.fromEntries(TIERS.map((t) => [t, this.queue.depth(t)])),
      runningJobs: this.queue.runningJobs,
      maxRunningJobs: this.queue.maxRunningJobs,
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
    // Job tiers closed by the cap would be invisible to destroy(), their run() never settling.
    this.queue.release();
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
    const queueLimits = Object.fromEntries(TIERS.map((t) => [t, this.queue.limit(t)]));
    this.opts.metrics.samplePool(() => {
      const { threads, queued, runningJobs, pending, rings } = this.stats();
      return { threads, queued, runningJobs, pending, rings, queueLimits };
    });
  }
}
