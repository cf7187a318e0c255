import { randomUUID } from 'node:crypto';
import { FramehubError, isClientError } from '../errors.js';
import type { Hub } from '../hub/hub.js';
import type { Metrics } from '../metrics/metrics.js';

export type JobKind = 'audio' | 'image' | 'video';
export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface JobError {
  code: string;
  message: string;
}

/** What GET /api/v1/jobs/<id> answers. */
export interface JobView {
  id: string;
  kind: JobKind;
  state: JobState;
  progress: number;
  error?: JobError;
  result?: unknown;
  createdAt: string;
  finishedAt?: string;
}

export interface Job extends JobView {
  /** Aborted on DELETE; running work listens and stops. */
  abort: AbortController;
  /** An upload's job: its events also say the stage (`optimizing`, then `complete`). */
  stages?: boolean;
}

const FINAL: readonly JobState[] = ['done', 'failed', 'cancelled'];

/**
 * What a failed job tells its client. A client error's message was written for the client; any
 * other failure (a worker crash, a full disk) names internals, so it keeps its documented code
 * (or INTERNAL), gets a fixed message, and `internal` says the caller should log it.
 */
export function jobError(err: unknown): { error: JobError; internal: boolean } {
  if (isClientError(err)) return { error: { code: err.code, message: err.message }, internal: false };
  const code = err instanceof FramehubError ? err.code : 'INTERNAL';
  return { error: { code, message: 'internal error; see the daemon log' }, internal: true };
}

/** A claim on one of the `maxActive` slots, held from before the upload is read until a job exists. */
export interface JobSlot {
  /** Gives the slot back; idempotent. Call it on every path, success included. */
  release(): void;
}

/**
 * Jobs in memory: their state, progress events on `job/<id>` (queued → running(progress) →
 * done | failed | cancelled), and expiry `ttlMs` after they finish, when the job's event
 * history goes too. Progress events are published at most every 5 % so a long job does not
 * flood its subscribers.
 */
export class JobStore {
  private readonly jobs = new Map<string, Job>();
  private readonly lastProgress = new Map<string, number>();
  /** performance.now() at create, per unfinished job: its duration, safe from clock steps. */
  private readonly startedAt = new Map<string, number>();
  private unfinished = 0;
  private claimed = 0;
  /** Told each change of a job with its view (cluster/job-directory.ts, so other nodes can answer GET). */
  onChange: ((view: JobView, final: boolean) => void) | undefined;

  constructor(
    private readonly hub: Hub,
    private readonly metrics: Metrics,
    private readonly ttlMs: number,
    /** Called when a finished job is forgotten, to remove what it left (an image job's files). */
    private readonly onExpire: (job: Job) => void = () => {},
  ) {}

  /** Jobs not yet done, failed or cancelled. */
  get active(): number {
    return this.unfinished;
  }

  /**
   * Claims a slot for an upload before its body is read, so `max` bounds every upload being
   * received or decoded as well as the jobs that exist; undefined when all are taken. The
   * caller releases the slot once `create` has run (the job then counts in `active` until it
   * finishes) or once the upload has failed. Counted synchronously, so concurrent requests
   * can never all see a free slot.
   *
   * @example
   *   const slot = store.claim(4);
   *   if (!slot) return reply429();
   *   try { await startJob(); } finally { slot.release(); }
   */
  claim(max: number): JobSlot | undefined {
    if (this.unfinished + this.claimed >= max) return undefined;
    this.claimed++;
    this.countSlots();
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.claimed--;
        this.countSlots();
      },
    };
  }

  create(kind: JobKind, id: string = randomUUID(), stages = false): Job {
    const job: Job = {
      id,
      kind,
      state: 'queued',
      progress: 0,
      createdAt: new Date().toISOString(),
      abort: new AbortController(),
      ...(stages && { stages }),
    };
    this.jobs.set(job.id, job);
    this.startedAt.set(job.id, performance.now());
    this.unfinished++;
    this.countSlots();
    this.emit(job);
    return job;
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  progress(job: Job, progress: number): void {
    if (FINAL.includes(job.state)) return;
    job.state = 'running';
    job.progress = Math.min(1, Math.max(0, progress));
    const last = this.lastProgress.get(job.id) ?? -1;
    if (job.progress - last >= 0.05 || last < 0) {
      this.lastProgress.set(job.id, job.progress);
      this.emit(job);
    }
  }

  finish(job: Job, outcome: { result: unknown } | { error: JobError } | 'cancelled'): void {
    if (FINAL.includes(job.state)) return;
    if (outcome === 'cancelled') job.state = 'cancelled';
    else if ('error' in outcome) {
      job.state = 'failed';
      job.error = outcome.error;
    } else {
      job.state = 'done';
      job.progress = 1;
      job.result = outcome.result;
    }
    job.finishedAt = new Date().toISOString();
    this.unfinished--;
    this.countSlots();
    this.lastProgress.delete(job.id);
    this.metrics.jobs.labels(job.kind, job.state).inc();
    const seconds = (performance.now() - (this.startedAt.get(job.id) ?? performance.now())) / 1000;
    this.startedAt.delete(job.id);
    this.metrics.jobDuration.labels(job.kind).observe(seconds);
    this.emit(job);
    // Until expiry a client can still fetch the job and resume its topic; after it, nothing is kept.
    setTimeout(() => {
      this.jobs.delete(job.id);
      this.hub.forgetTopic(`job/${job.id}`);
      this.onExpire(job);
    }, this.ttlMs).unref();
  }

  /** Cancels a job that has not finished; false when it already had. */
  cancel(job: Job): boolean {
    if (FINAL.includes(job.state)) return false;
    job.abort.abort();
    this.finish(job, 'cancelled');
    return true;
  }

  view(job: Job): JobView {
    const { abort: _abort, stages: _stages, ...view } = job;
    return view;
  }

  private countSlots(): void {
    this.metrics.jobSlots.set(this.unfinished + this.claimed);
  }

  /**
   * A job event. The last one (done, failed, cancelled) carries the whole job view, result and
   * times included, so a client that waited for it needs no GET before fetching the outputs.
   */
  private emit(job: Job): void {
    const { id, kind, state, progress, error } = job;
    const final = FINAL.includes(state);
    this.onChange?.(this.view(job), final);
    this.hub.publishEvent(`job/${id}`, {
      type: 'job',
      ...(final ? this.view(job) : { id, kind, state, progress, ...(error && { error }) }),
      ...(job.stages && { stage: final ? 'complete' : 'optimizing' }),
    });
  }
}
