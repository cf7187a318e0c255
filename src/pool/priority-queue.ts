/**
 * The pool's task queue and load balancer (piscina's `taskQueue` and `loadBalancer` options):
 * four priority tiers, each FIFO and bounded, aging so a low tier still progresses under
 * sustained load above it, and a cap on the job tasks running at once so live work always
 * finds a worker.
 *
 * Rule of shift(), at time `now`. A tier is *open* unless it is a job tier (`normal`, `low`)
 * while `maxRunningJobs` job tasks already run; closed tiers are invisible to piscina (`size`
 * leaves them out) and to both steps below.
 *   1. Take the head of the highest non-empty open tier ("the top"), unless 2 applies.
 *   2. Promotion: if no promotion happened in the last `agingMs` and the top tier is not
 *      protected, take instead the oldest head of a lower open tier that has waited at least
 *      `agingMs` and is older than the top's head. The scan down stops after a non-empty
 *      protected tier: an aged task never jumps a queued task of a protected tier (`high`,
 *      live frames, by default: under job saturation every job is aged, and without this a
 *      job would overtake a waiting frame every `agingMs`).
 *
 * At most one task per `agingMs` runs out of priority order, so the top tier loses at most one
 * worker run per `agingMs` to aging, and a burst of old `low` tasks cannot hold up an `urgent`
 * one behind all of them.
 *
 * The job cap. Without preemption, the only way a frame never waits behind a job is a worker
 * no job may take: the pool sets `maxRunningJobs` to threads − 1 (at least 1), so jobs get all
 * workers but one and frames, live VAD and previews always have that one. The cost: jobs use
 * one worker fewer even when no camera is live (half the pool on 2 threads), and with a single
 * thread a job and the frames share it. `urgent` tasks (upload previews: one small decode,
 * rate-limited per upload) are not capped: the tier order puts them ahead of frames anyway.
 *
 * The cap is counted at placement, in loadBalancer(), the one place piscina puts any task on a
 * worker (queued or not: piscina runs a task directly when the queue looks empty). A job task
 * counts until the worker it was placed on is idle or destroyed: piscina marks the worker idle
 * before it asks this queue for the next task, whereas run()'s promise settles only after that,
 * too late to reopen the job tiers for the task that worker should take next. Every placement
 * goes through loadBalancer(), which prunes first, so a worker recorded as running a job is
 * running that job. The same record tells whether a task runs (threadOf): a running job is
 * stopped by its worker (WorkerPool.runJob kills its job process); a queued one leaves with cancel().
 *
 * The bound. Let T enter at t0 with K tasks already queued (any tier), let R be the longest
 * run of one task (a job's timeout caps it), and let no protected tier stay non-empty at the
 * moments a promotion falls due. Then T leaves the queue by
 *
 *     t0 + agingMs + (K + 1) × (agingMs + R).
 *
 * Why: from t0 + agingMs on, T's tier head is at least as old as T and aged, so every
 * promotion serves a task queued before T (or T), and so does every non-promoted shift while
 * a promotion is due but the top's head is older still. There are at most K + 1 such tasks;
 * each waits at most agingMs for the promotion window to reopen plus R for a worker (and, for
 * a job, a job slot: every running job ends within R, and its worker asks for the next task at
 * that moment) to free. A `low` task that finds the queue empty (K = 0) leaves by
 * 2 × agingMs + R however many `urgent` tasks arrive after it: 4 s + R with the default 2 s.
 *
 * Piscina hands the queue its TaskInfo objects; a task's tier comes from the payload's
 * `[queueOptionsSymbol].priority` (see withPriority), which structured cloning leaves behind
 * so the worker never sees it. Piscina shifts one task more than it can place whenever tasks
 * are waiting and pushes it straight back; push() recognises that task and puts it back at the
 * head of its tier with its original age (see `leaving`).
 *
 * Tasks run with an AbortSignal bypass this queue (piscina 5.3.2): when no worker is free
 * piscina parks them in its own `skipQueue`, drained before this queue is asked, and reorders
 * them there (tried: an urgent task with a signal ran 4th of 7, behind lows). Submit
 * prioritised tasks without `signal`; stop them with cancel() and threadOf().
 */
import { performance } from 'node:perf_hooks';
import { type Piscina, queueOptionsSymbol, type TaskQueue } from 'piscina';
import { RetryLaterError } from '../errors.js';

export const TIERS = ['urgent', 'high', 'normal', 'low'] as const;
export type Tier = (typeof TIERS)[number];

/** A piscina TaskInfo as the queue sees it: `taskId` is the one field it reads besides the options. */
type Task = Parameters<TaskQueue['push']>[0] & { readonly taskId: number };
type LoadBalancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer']>;
type PiscinaTaskView = Parameters<LoadBalancer>[0];
type PiscinaWorker = Parameters<LoadBalancer>[1][number];

/** Queued tasks per tier. `high` must hold every frame the pool may queue (threads + maxQueuedFrames). */
export const DEFAULT_MAX_PER_TIER: Readonly<Record<Tier, number>> = {
  urgent: 64,
  high: 1024,
  normal: 256,
  low: 1024,
};
export const DEFAULT_AGING_MS = 2000;
/** The job tiers: their tasks count against `maxRunningJobs` (`urgent` previews do not). */
export const CAPPED_TIERS: readonly Tier[] = ['normal', 'low'];

export interface PriorityQueueOptions {
  /** Merged over DEFAULT_MAX_PER_TIER. */
  maxPerTier?: Partial<Record<Tier, number>>;
  /** Wait after which a task may be promoted, and the minimum gap between promotions. */
  agingMs?: number;
  /** Tiers an aged task never jumps while they hold a task. Default `['high']`. */
  protectedTiers?: readonly Tier[];
  /** Tasks of the job tiers (`normal`, `low`) running at once; more wait queued. Default: no cap. */
  maxRunningJobs?: number;
  /**
   * Called once per task placed on a worker, by loadBalancer(): its tier, ms queued (0 for a
   * task piscina placed without queueing it), and whether aging promoted it.
   */
  onWait?: (tier: Tier, ms: number, promoted: boolean) => void;
  /** Retry-After of the error a full tier answers with. */
  retryAfterSeconds?: number;
  /** Monotonic ms clock, performance.now() unless a test injects one. */
  now?: () => number;
}

interface QueueOptions {
  readonly priority: Tier;
  /** Set on a tracked task's own options: called in a microtask once a worker takes the task. */
  readonly onStart?: () => void;
}
type Prioritised<T> = T & { [queueOptionsSymbol]: QueueOptions };

// One shared options object per tier: tagging a frame allocates nothing.
const OPTIONS = Object.fromEntries(TIERS.map((t) => [t, Object.freeze({ priority: t })])) as Record<
  Tier,
  QueueOptions
>;
const RANK: Record<Tier, number> = { urgent: 0, high: 1, normal: 2, low: 3 };

/**
 * Tags a task payload with its tier, in the property piscina forwards to the task queue. A
 * `tracked` task gets options of its own, so threadOf() can find the thread running it, and
 * `onStart` runs when a worker takes it; an untracked one shares its tier's options.
 *
 * @example
 *   pool.run(withPriority(task, 'high'), { transferList: [task.jpeg] });
 *   pool.run(withPriority(job, 'low', { onStart: () => startDeadline() }), { filename });
 */
export function withPriority<T extends object>(
  payload: T,
  tier: Tier,
  tracked?: { onStart?: () => void },
): Prioritised<T> {
  const tagged = payload as Prioritised<T>;
  tagged[queueOptionsSymbol] = tracked ? Object.freeze({ priority: tier, ...tracked }) : OPTIONS[tier];
  return tagged;
}

/**
 * The tier of a piscina task or of a payload: `[queueOptionsSymbol].priority`, `normal` when
 * absent. A value that is not a tier is a bug in the caller and throws.
 */
export function tierOf(task: unknown): Tier {
  const options = (task as { [queueOptionsSymbol]?: { priority?: unknown } } | null)?.[queueOptionsSymbol];
  const priority = options?.priority;
  if (priority === undefined) return 'normal';
  if (typeof priority === 'string' && Object.hasOwn(RANK, priority)) return priority as Tier;
  throw new TypeError(`task priority must be one of ${TIERS.join(', ')}, not ${String(priority)}`);
}

interface Entry {
  readonly task: Task;
  readonly rank: number;
  /** Order of arrival across all tiers: "older" means a smaller seq. */
  readonly seq: number;
  readonly enqueuedAt: number;
  /** Set by shift(), read when the task is placed (or undone when it comes back). */
  waitedMs: number;
  promoted: boolean;
  promotionBefore: number;
}

/** A task on a worker that the queue keeps track of: a job (for the cap) or a tracked task. */
interface Placed {
  readonly worker: PiscinaWorker;
  readonly options: QueueOptions | null;
  readonly job: boolean;
}

/**
 * Piscina's task queue and load balancer with tiers, aging, per-tier bounds and the job cap
 * (rule and bound: file header). Pass both to Piscina.
 *
 * @example
 *   const queue = new PriorityTaskQueue({ maxRunningJobs: threads - 1, onWait: (tier, ms) => wait.labels(tier).observe(ms / 1000) });
 *   const pool = new Piscina({ filename, taskQueue: queue, loadBalancer: queue.loadBalancer });
 *   if (!queue.canAccept('low')) throw queue.fullError('low');
 *   await pool.run(withPriority(payload, 'low'));
 */
export class PriorityTaskQueue implements TaskQueue {
  private readonly tiers = TIERS.map(() => new Deque<Entry>());
  private readonly max: number[];
  private readonly isProtected: boolean[];
  private readonly isJob = TIERS.map((t) => CAPPED_TIERS.includes(t));
  private readonly agingMs: number;
  readonly maxRunningJobs: number;
  private readonly onWait: PriorityQueueOptions['onWait'];
  private readonly retryAfterSeconds: number;
  private readonly now: () => number;
  private count = 0;
  private seq = 0;
  private lastPromotionAt = Number.NEGATIVE_INFINITY;
  /** Tasks shifted in this tick, by taskId: piscina places each one or pushes it back. */
  private readonly leaving = new Map<number, Entry>();
  private clearScheduled = false;
  /** Job and tracked tasks on workers, by taskId. */
  private readonly placed = new Map<number, Placed>();
  private jobsPlaced = 0;
  /** Set by release(): no tier is closed any more. */
  private uncapped = false;

  constructor(opts: PriorityQueueOptions = {}) {
    const max = { ...DEFAULT_MAX_PER_TIER, ...opts.maxPerTier };
    this.max = TIERS.map((t) => max[t]);
    for (const [i, m] of this.max.entries()) {
      if (!Number.isInteger(m) || m < 1)
        throw new RangeError(`maxPerTier.${TIERS[i]} must be an integer >= 1`);
    }
    this.agingMs = opts.agingMs ?? DEFAULT_AGING_MS;
    if (!(this.agingMs > 0)) throw new RangeError('agingMs must be > 0 (Infinity turns aging off)');
    this.maxRunningJobs = opts.maxRunningJobs ?? Number.POSITIVE_INFINITY;
    if (!(this.maxRunningJobs >= 1)) throw new RangeError('maxRunningJobs must be >= 1');
    const protectedTiers = new Set(opts.protectedTiers ?? ['high']);
    this.isProtected = TIERS.map((t) => protectedTiers.has(t));
    this.onWait = opts.onWait;
    this.retryAfterSeconds = opts.retryAfterSeconds ?? 1;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Tasks piscina may shift now: closed job tiers are left out, so shift() never answers null below it. */
  get size(): number {
    if (!this.jobTiersClosed()) return this.count;
    let closed = 0;
    for (const [rank, tier] of this.tiers.entries()) if (this.isJob[rank]) closed += tier.length;
    return this.count - closed;
  }

  /** Tasks queued in a tier, open or not. */
  depth(tier: Tier): number {
    return this.tiers[RANK[tier]]!.length;
  }

  /** The most tasks a tier may hold (maxPerTier). */
  limit(tier: Tier): number {
    return this.max[RANK[tier]]!;
  }

  /** Job-tier tasks on workers now (at most maxRunningJobs). */
  get runningJobs(): number {
    this.prune();
    return this.jobsPlaced;
  }

  /** False when a task of this tier would be refused: check before reading a request body. */
  canAccept(tier: Tier): boolean {
    return this.depth(tier) < this.max[RANK[tier]]!;
  }

  /** The 429 a full tier answers with, for a caller refusing early on canAccept(). */
  fullError(tier: Tier): RetryLaterError {
    return new RetryLaterError(
      'RATE_LIMITED',
      `the ${tier} queue is full (${this.max[RANK[tier]]} tasks waiting); retry later`,
      429,
      this.retryAfterSeconds,
    );
  }

  /**
   * Queues a task at the tail of its tier. Throws fullError() when the tier is full: piscina
   * calls this inside `run()`, so `run()` throws it synchronously. Callers check canAccept()
   * first and still catch, since the tier may fill while a body is read.
   */
  push(task: Task): void {
    const back = this.leaving.get(task.taskId);
    if (back) {
      this.leaving.delete(task.taskId);
      if (back.promoted) this.lastPromotionAt = back.promotionBefore;
      this.tiers[back.rank]!.pushFront(back);
      this.count++;
      return;
    }
    const tier = tierOf(task);
    const rank = RANK[tier];
    if (this.tiers[rank]!.length >= this.max[rank]!) throw this.fullError(tier);
    this.tiers[rank]!.pushBack({
      task,
      rank,
      seq: this.seq++,
      enqueuedAt: this.now(),
      waitedMs: 0,
      promoted: false,
      promotionBefore: 0,
    });
    this.count++;
  }

  shift(): Task | null {
    const closed = this.jobTiersClosed();
    const top = this.tiers.findIndex((t, rank) => t.length > 0 && !(closed && this.isJob[rank]));
    if (top < 0) return null;
    const now = this.now();
    const entry = this.promotable(top, now, closed) ?? this.tiers[top]!.peek()!;
    this.tiers[entry.rank]!.popFront();
    this.count--;
    entry.waitedMs = now - entry.enqueuedAt;
    entry.promoted = entry.rank !== top;
    if (entry.promoted) {
      entry.promotionBefore = this.lastPromotionAt;
      this.lastPromotionAt = now;
    }
    this.leaving.set(entry.task.taskId, entry);
    // Piscina places or returns a shifted task at once; only destroy() shifts tasks that go
    // neither way, and those entries are dropped here.
    if (!this.clearScheduled) {
      this.clearScheduled = true;
      queueMicrotask(() => {
        this.clearScheduled = false;
        this.leaving.clear();
      });
    }
    return entry.task;
  }

  /**
   * O(n) over every tier: piscina calls it for an aborted task, queued here or not (its tier
   * may never have been read), and only then.
   */
  remove(task: Task): void {
    for (const tier of this.tiers) {
      if (tier.removeFirst((e) => e.task === task)) {
        this.count--;
        return;
      }
    }
  }

  /**
   * Drops the queued task whose payload is `payload` and rejects its `run()` promise with
   * `reason`, through the TaskInfo's done(), the call piscina's own destroy() makes for queued
   * tasks. Returns false when the task is not queued (running, finished, or never submitted):
   * then only its worker can stop it (see WorkerPool.runJob).
   */
  cancel(payload: object, reason: unknown): boolean {
    const removed = this.tiers[RANK[tierOf(payload)]]!.removeFirst(
      (e) => (e.task as unknown as { task: unknown }).task === payload,
    );
    if (!removed) return false;
    this.count--;
    (removed.task as unknown as { done(err: unknown): void }).done(reason);
    return true;
  }

  /**
   * The threadId of the worker running a tracked payload (see withPriority), or undefined when
   * it is not on a worker: still queued, finished, or its worker already gone.
   */
  threadOf(payload: object): number | undefined {
    const options = (payload as Partial<Prioritised<object>>)[queueOptionsSymbol];
    if (!options || options === OPTIONS[options.priority]) {
      throw new TypeError('threadOf needs a payload tagged by withPriority(payload, tier, { ... })');
    }
    this.prune();
    for (const p of this.placed.values()) if (p.options === options) return p.worker.id;
    return undefined;
  }

  /**
   * piscina's `loadBalancer`: the first idle worker, except for a job task while
   * `maxRunningJobs` run (then null: piscina queues the task, or pushes it back). Reports the
   * task's wait (onWait) and records job and tracked tasks with their worker.
   */
  readonly loadBalancer = (task: PiscinaTaskView, workers: PiscinaWorker[]): PiscinaWorker | null => {
    this.prune();
    const worker = workers.find((w) => w.currentUsage === 0 && !w.terminating && !w.destroyed);
    if (!worker) return null;
    const tier = tierOf(task);
    const rank = RANK[tier];
    const job = this.isJob[rank]!;
    if (job && this.jobsAtCap()) return null;
    const options = task[queueOptionsSymbol] as QueueOptions | null;
    const tracked = options !== null && options !== OPTIONS[tier];
    if (job || tracked) {
      this.placed.set(task.taskId, { worker, options, job });
      if (job) this.jobsPlaced++;
    }
    if (options?.onStart) queueMicrotask(options.onStart);
    const entry = this.leaving.get(task.taskId);
    this.leaving.delete(task.taskId);
    this.onWait?.(tier, entry?.waitedMs ?? 0, entry?.promoted ?? false);
    return worker;
  };

  /** Opens every tier for good, so piscina's destroy(), which shifts while `size` > 0, rejects every queued task. */
  release(): void {
    this.uncapped = true;
  }

  private jobsAtCap(): boolean {
    return !this.uncapped && this.jobsPlaced >= this.maxRunningJobs;
  }

  /** Closed while the cap is reached; pruning first, since only a finished job reopens them. */
  private jobTiersClosed(): boolean {
    if (!this.jobsAtCap()) return false;
    this.prune();
    return this.jobsAtCap();
  }

  /** Forgets placed tasks whose worker is idle or gone: they have finished (file header). */
  private prune(): void {
    for (const [taskId, p] of this.placed) {
      if (p.worker.currentUsage !== 0 && !p.worker.destroyed) continue;
      this.placed.delete(taskId);
      if (p.job) this.jobsPlaced--;
    }
  }

  /** The aged head to serve ahead of the top tier, if aging allows one now. */
  private promotable(top: number, now: number, closed: boolean): Entry | undefined {
    if (now - this.lastPromotionAt < this.agingMs || this.isProtected[top]) return undefined;
    let best = this.tiers[top]!.peek()!;
    let found: Entry | undefined;
    for (let rank = top + 1; rank < this.tiers.length; rank++) {
      const head = this.tiers[rank]!.peek();
      if (!head || (closed && this.isJob[rank])) continue;
      if (now - head.enqueuedAt >= this.agingMs && head.seq < best.seq) found = best = head;
      if (this.isProtected[rank]) break;
    }
    return found;
  }
}

/**
 * A ring of slots that doubles when full: O(1) at both ends, never shrinks (a tier's ring
 * stays at the size of its deepest backlog, at most its bound rounded up to a power of two).
 */
class Deque<T> {
  private slots: (T | undefined)[] = new Array(16);
  private head = 0;
  length = 0;

  peek(): T | undefined {
    return this.length === 0 ? undefined : this.slots[this.head];
  }

  pushBack(item: T): void {
    if (this.length === this.slots.length) this.grow();
    this.slots[(this.head + this.length) & (this.slots.length - 1)] = item;
    this.length++;
  }

  pushFront(item: T): void {
    if (this.length === this.slots.length) this.grow();
    this.head = (this.head - 1) & (this.slots.length - 1);
    this.slots[this.head] = item;
    this.length++;
  }

  popFront(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) & (this.slots.length - 1);
    this.length--;
    return item;
  }

  /** O(n): closes the gap by moving the later items one slot towards the head. */
  removeFirst(match: (item: T) => boolean): T | undefined {
    const mask = this.slots.length - 1;
    for (let i = 0; i < this.length; i++) {
      const item = this.slots[(this.head + i) & mask]!;
      if (!match(item)) continue;
      for (let j = i; j < this.length - 1; j++) {
        this.slots[(this.head + j) & mask] = this.slots[(this.head + j + 1) & mask];
      }
      this.slots[(this.head + this.length - 1) & mask] = undefined;
      this.length--;
      return item;
    }
    return undefined;
  }

  private grow(): void {
    const bigger: (T | undefined)[] = new Array(this.slots.length * 2);
    for (let i = 0; i < this.length; i++) bigger[i] = this.slots[(this.head + i) & (this.slots.length - 1)];
    this.slots = bigger;
    this.head = 0;
  }
}
