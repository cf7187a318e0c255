import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { Piscina, queueOptionsSymbol } from 'piscina';
import { afterEach, describe, expect, it } from 'vitest';
import { RetryLaterError } from '../src/errors.js';
import {
  CAPPED_TIERS,
  type PriorityQueueOptions,
  PriorityTaskQueue,
  TIERS,
  type Tier,
  tierOf,
  withPriority,
} from '../src/pool/priority-queue.js';
import { catchError } from './helpers.js';

type Task = Parameters<PriorityTaskQueue['push']>[0];
type Balancer = PriorityTaskQueue['loadBalancer'];
type TaskView = Parameters<Balancer>[0];
type WorkerView = Parameters<Balancer>[1][number];

const SEED = 20_260_101;

let nextTaskId = 0;
/** A stand-in for piscina's TaskInfo: an id, the payload, and the payload's queue options. */
function taskOf(payload: object): Task {
  return {
    taskId: nextTaskId++,
    task: payload,
    [queueOptionsSymbol]: (payload as { [queueOptionsSymbol]?: object })[queueOptionsSymbol] ?? null,
  } as unknown as Task;
}
const tagged = (id: unknown, tier: Tier) => taskOf(withPriority({ id }, tier));
/** What piscina hands the load balancer for a task (TaskInfo.interface). */
const viewOf = (task: Task) =>
  ({ taskId: task.taskId, [queueOptionsSymbol]: task[queueOptionsSymbol] }) as unknown as TaskView;
/** A piscina worker as the balancer sees it; the test sets currentUsage as postTask and a result would. */
const fakeWorker = (id = 1) =>
  ({ id, currentUsage: 0, terminating: false, destroyed: false }) as unknown as WorkerView & {
    currentUsage: number;
    destroyed: boolean;
  };

/** The rule of shift(), stated over plain arrays (see the header of priority-queue.ts). */
interface ModelTask {
  task: Task;
  tier: number;
  seq: number;
  at: number;
}
function expectedPick(
  tiers: ModelTask[][],
  now: number,
  lastPromotion: number,
  agingMs: number,
  isProtected: (rank: number) => boolean,
  isOpen: (rank: number) => boolean,
): ModelTask | undefined {
  const top = tiers.findIndex((t, rank) => t.length > 0 && isOpen(rank));
  if (top < 0) return undefined;
  const topHead = tiers[top]![0]!;
  if (now - lastPromotion < agingMs || isProtected(top)) return topHead;
  // Heads of open tiers below the top, down to and including the first protected one that holds a task.
  const below: ModelTask[] = [];
  for (let rank = top + 1; rank < tiers.length; rank++) {
    const head = tiers[rank]![0];
    if (!head || !isOpen(rank)) continue;
    below.push(head);
    if (isProtected(rank)) break;
  }
  const eligible = below.filter((h) => now - h.at >= agingMs && h.seq < topHead.seq);
  return eligible.sort((a, b) => a.seq - b.seq)[0] ?? topHead;
}

/** Piscina's calls, abstracted: run() (with or without a free worker), a worker asking for the next task, a job ending. */
type Op =
  | { kind: 'run'; tier: Tier; tagged: boolean; idle: boolean }
  | { kind: 'shift'; place: boolean }
  | { kind: 'finish'; pick: number }
  | { kind: 'remove'; pick: number }
  | { kind: 'advance'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('run' as const),
      tier: fc.constantFrom(...TIERS),
      tagged: fc.boolean(),
      idle: fc.boolean(),
    }),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('shift' as const), place: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('finish' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40 }) }),
  },
);

const configArb = fc.record({
  agingMs: fc.integer({ min: 1, max: 60 }),
  // Small bounds to hit "full" often, large ones to make a tier's ring grow past its first 16 slots.
  max: fc.tuple(
    ...TIERS.map(() => fc.oneof(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 17, max: 60 }))),
  ),
  protectedTiers: fc.subarray([...TIERS]),
  maxRunningJobs: fc.oneof(fc.constant(Number.POSITIVE_INFINITY), fc.integer({ min: 1, max: 3 })),
});

describe('PriorityTaskQueue against a reference model', () => {
  it('keeps FIFO per tier, priority across tiers, aging, bounds, the job cap, size, remove and wait reports', () => {
    fc.assert(
      fc.property(configArb, fc.array(opArb, { maxLength: 200, size: 'max' }), (config, ops) => {
        let now = 0;
        const waits: [Tier, number, boolean][] = [];
        const maxPerTier = Object.fromEntries(TIERS.map((t, i) => [t, config.max[i]!])) as Record<
          Tier,
          number
        >;
        const queue = new PriorityTaskQueue({
          agingMs: config.agingMs,
          maxPerTier,
          protectedTiers: config.protectedTiers,
          maxRunningJobs: config.maxRunningJobs,
          onWait: (tier, ms, promoted) => waits.push([tier, ms, promoted]),
          now: () => now,
        });
        const isProtected = (rank: number) => config.protectedTiers.includes(TIERS[rank]!);
        const isJob = (rank: number) => CAPPED_TIERS.includes(TIERS[rank]!);
        const tiers: ModelTask[][] = TIERS.map(() => []);
        const running: { worker: ReturnType<typeof fakeWorker>; job: boolean }[] = [];
        const runningJobs = () => running.filter((r) => r.job).length;
        const isOpen = (rank: number) => !isJob(rank) || runningJobs() < config.maxRunningJobs;
        const visible = () => tiers.reduce((n, t, rank) => n + (isOpen(rank) ? t.length : 0), 0);
        const expectedWaits: [Tier, number, boolean][] = [];
        let seq = 0;
        let lastPromotion = Number.NEGATIVE_INFINITY;

        /** Piscina's push of a new task: the tail of its tier, or the 429 when the tier is full. */
        const push = (task: Task, rank: number) => {
          const tier = TIERS[rank]!;
          if (tiers[rank]!.length >= config.max[rank]!) {
            expect(queue.canAccept(tier)).toBe(false);
            const err = catchError(() => queue.push(task));
            expect(err).toBeInstanceOf(RetryLaterError);
            expect(err).toMatchObject({ code: 'RATE_LIMITED', status: 429, retryAfterSeconds: 1 });
          } else {
            expect(queue.canAccept(tier)).toBe(true);
            queue.push(task);
            tiers[rank]!.push({ task, tier: rank, seq: seq++, at: now });
          }
        };
        /** The balancer is offered one idle worker and takes it: the model records what runs there. */
        const place = (task: Task, rank: number, waited: number, promoted: boolean) => {
          const worker = fakeWorker();
          expect(queue.loadBalancer(viewOf(task), [worker])).toBe(worker);
          worker.currentUsage = 1; // piscina's postTask
          running.push({ worker, job: isJob(rank) });
          expectedWaits.push([TIERS[rank]!, waited, promoted]);
        };

        for (const op of ops) {
          if (op.kind === 'advance') now += op.ms;
          else if (op.kind === 'run') {
            if (!op.tagged && op.tier !== 'normal') continue; // untagged tasks are `normal`
            const rank = TIERS.indexOf(op.tier);
            const task = op.tagged ? tagged(seq, op.tier) : taskOf({ id: seq });
            // Piscina's run(): straight to the balancer only while the queue looks empty.
            if (visible() > 0) push(task, rank);
            else if (op.idle && isOpen(rank)) place(task, rank, 0, false);
            else {
              expect(queue.loadBalancer(viewOf(task), op.idle ? [fakeWorker()] : [])).toBeNull();
              push(task, rank);
            }
          } else if (op.kind === 'shift') {
            const m = expectedPick(tiers, now, lastPromotion, config.agingMs, isProtected, isOpen);
            if (!m) {
              expect(queue.shift()).toBeNull();
              continue;
            }
            const promoted = m.tier !== tiers.findIndex((t, rank) => t.length > 0 && isOpen(rank));
            expect(queue.shift()).toBe(m.task);
            expect(tiers[m.tier]!.shift()).toBe(m); // it was the head of its tier: FIFO
            if (op.place) {
              if (promoted) lastPromotion = now;
              place(m.task, m.tier, now - m.at, promoted);
            } else {
              // No idle worker: piscina pushes it straight back, and it keeps its place and age.
              expect(queue.loadBalancer(viewOf(m.task), [])).toBeNull();
              queue.push(m.task);
              tiers[m.tier]!.unshift(m);
            }
          } else if (op.kind === 'finish') {
            const [done] = running.splice(op.pick % (running.length + 1), 1);
            if (done) done.worker.currentUsage = 0;
          } else {
            const queued = tiers.flat();
            const victim = queued[op.pick % (queued.length + 1)];
            if (victim) {
              queue.remove(victim.task);
              tiers[victim.tier]!.splice(tiers[victim.tier]!.indexOf(victim), 1);
            } else queue.remove(tagged(-1, 'low')); // never queued: no-op
          }
          // size, running jobs and every depth, in one comparison (expect() per field makes the run slow).
          const depths = TIERS.map((tier) => queue.depth(tier)).join();
          const model = tiers.map((t) => t.length).join();
          if (queue.size !== visible() || queue.runningJobs !== runningJobs() || depths !== model) {
            expect({ size: queue.size, running: queue.runningJobs, depths }).toEqual({
              size: visible(),
              running: runningJobs(),
              depths: model,
            });
          }
        }
        expect(waits).toEqual(expectedWaits);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it("keeps FIFO when a tier's ring wraps around and grows", () => {
    const queue = new PriorityTaskQueue({ now: () => 0 });
    const tasks = Array.from({ length: 60 }, (_, id) => tagged(id, 'low'));
    const out: Task[] = [];
    for (const t of tasks.slice(0, 12)) queue.push(t);
    for (let i = 0; i < 8; i++) out.push(queue.shift()!); // the head is now mid-ring
    for (const t of tasks.slice(12)) queue.push(t); // wraps, then grows twice
    queue.remove(tasks[30]!);
    queue.push(out.pop()!); // the task shifted last, pushed straight back as piscina does
    for (let t = queue.shift(); t; t = queue.shift()) out.push(t);
    expect(out).toEqual(tasks.filter((_, i) => i !== 30));
  });

  it('closes the job tiers while maxRunningJobs run: piscina sees only live work, and a finished job reopens them', () => {
    const queue = new PriorityTaskQueue({ maxRunningJobs: 1, now: () => 0 });
    const job = tagged('job', 'low');
    const worker = fakeWorker(1);
    expect(queue.loadBalancer(viewOf(job), [worker])).toBe(worker);
    worker.currentUsage = 1;
    const waiting = tagged('waiting', 'normal');
    const frame = tagged('frame', 'high');
    // A second job finds an idle worker and is still refused: piscina queues it.
    expect(queue.loadBalancer(viewOf(waiting), [fakeWorker(2)])).toBeNull();
    queue.push(waiting);
    expect(queue.size).toBe(0); // so piscina runs the next frame directly, never behind it
    expect(queue.loadBalancer(viewOf(frame), [fakeWorker(2)])).not.toBeNull();
    expect(queue.shift()).toBeNull();
    expect(queue.runningJobs).toBe(1);
    worker.currentUsage = 0; // the job's result came back
    expect(queue.size).toBe(1);
    expect(queue.shift()).toBe(waiting);
    // A worker being torn down (terminated, crashed) frees the slot too.
    expect(queue.loadBalancer(viewOf(waiting), [worker])).toBe(worker);
    worker.currentUsage = 1;
    expect(queue.runningJobs).toBe(1);
    worker.destroyed = true;
    expect(queue.runningJobs).toBe(0);
  });

  it('tells which thread runs a tracked task, calls its onStart once placed, and refuses untracked ones', async () => {
    const queue = new PriorityTaskQueue();
    let started = 0;
    const payload = withPriority({ id: 'job' }, 'urgent', { onStart: () => started++ });
    const task = taskOf(payload);
    queue.push(task);
    expect(queue.threadOf(payload)).toBeUndefined(); // queued
    const busy = fakeWorker(41);
    busy.currentUsage = 1;
    const worker = fakeWorker(42);
    expect(queue.shift()).toBe(task);
    expect(queue.loadBalancer(viewOf(task), [busy, worker])).toBe(worker); // the first idle one
    worker.currentUsage = 1;
    expect(queue.threadOf(payload)).toBe(42);
    expect(started).toBe(0);
    await Promise.resolve();
    expect(started).toBe(1);
    worker.currentUsage = 0;
    expect(queue.threadOf(payload)).toBeUndefined(); // finished
    expect(() => queue.threadOf(withPriority({ id: 'frame' }, 'high'))).toThrow(TypeError);
  });

  it('release() opens every tier for good, so destroy() finds every queued task', () => {
    const queue = new PriorityTaskQueue({ maxRunningJobs: 1 });
    const worker = fakeWorker();
    queue.loadBalancer(viewOf(tagged('running', 'normal')), [worker]);
    worker.currentUsage = 1;
    const queued = tagged('queued', 'low');
    queue.push(queued);
    expect(queue.size).toBe(0);
    queue.release();
    expect(queue.size).toBe(1);
    expect(queue.shift()).toBe(queued);
  });
});

describe('aging bound', () => {
  /**
   * A pool of `workers` threads served by the queue and its balancer on an injected clock:
   * every task runs for the next of `runs` ms (each at most R), at most `cap` jobs at once, and
   * the `urgent` tier is never empty after the `low` task T arrives. Returns how long T waited,
   * or null if it was still queued at `horizon`.
   */
  function simulate(p: {
    agingMs: number;
    workers: number;
    cap: number;
    runs: number[];
    before: { tier: Tier; gap: number }[];
    horizon: number;
  }): { waited: number | null; k: number } {
    let now = 0;
    let run = 0;
    const queue = new PriorityTaskQueue({ agingMs: p.agingMs, maxRunningJobs: p.cap, now: () => now });
    // Each worker starts busy with something that is not a job.
    const workers = Array.from({ length: p.workers }, (_, id) => {
      const view = fakeWorker(id);
      view.currentUsage = 1;
      return { view, freeAt: p.runs[run++ % p.runs.length]! };
    });
    const t = tagged('T', 'low');
    let urgentSeq = 0;
    const keepUrgentQueued = () => {
      if (queue.depth('urgent') === 0) queue.push(tagged(urgentSeq++, 'urgent'));
    };
    const serveUntil = (until: number): boolean => {
      for (;;) {
        const w = workers.reduce((a, b) => (b.freeAt < a.freeAt ? b : a));
        if (w.freeAt > until) return false;
        now = Math.max(now, w.freeAt);
        w.view.currentUsage = 0;
        if (streaming) keepUrgentQueued();
        const next = queue.size > 0 ? queue.shift() : null;
        if (next) {
          // What shift() hands out, the balancer places: the two agree on the cap.
          if (queue.loadBalancer(viewOf(next), [w.view]) !== w.view)
            throw new Error('balancer refused a shifted task');
          w.view.currentUsage = 1;
        }
        if (next === t) return true;
        w.freeAt = now + (next ? p.runs[run++ % p.runs.length]! : 0.5);
      }
    };
    let streaming = false;
    for (const b of p.before) {
      const at = now + b.gap;
      serveUntil(at);
      now = at;
      queue.push(tagged(`before-${b.tier}`, b.tier));
    }
    const k = TIERS.reduce((n, tier) => n + queue.depth(tier), 0);
    const t0 = now;
    queue.push(t);
    streaming = true;
    keepUrgentQueued();
    return { waited: serveUntil(t0 + p.horizon) ? now - t0 : null, k };
  }

  const scenario = fc.record({
    agingMs: fc.integer({ min: 5, max: 200 }),
    workers: fc.integer({ min: 1, max: 4 }),
    cap: fc.oneof(fc.constant(Number.POSITIVE_INFINITY), fc.integer({ min: 1, max: 3 })),
    runs: fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
    before: fc.array(
      fc.record({
        tier: fc.constantFrom<Tier>('urgent', 'normal', 'low'),
        gap: fc.integer({ min: 0, max: 30 }),
      }),
      { maxLength: 12 },
    ),
  });

  /** The documented bound: agingMs + (K + 1) × (agingMs + R), R the longest run. */
  const bound = (s: { agingMs: number; runs: number[] }, k: number) =>
    s.agingMs + (k + 1) * (s.agingMs + Math.max(...s.runs));

  it('lets a low task through a sustained urgent stream within agingMs + (K + 1)(agingMs + R), with or without a job cap', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const { waited, k } = simulate({ ...s, horizon: 2 * bound(s, s.before.length) });
        expect(waited).not.toBeNull();
        expect(waited!).toBeLessThanOrEqual(bound(s, k));
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('starves the low task without aging, so the bound above is aging at work', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const horizon = 2 * bound(s, s.before.length);
        expect(simulate({ ...s, agingMs: Number.POSITIVE_INFINITY, horizon }).waited).toBeNull();
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('promotes at most one task per agingMs, so urgent work is not held behind a backlog of old lows', () => {
    let now = 0;
    const queue = new PriorityTaskQueue({ agingMs: 100, now: () => now });
    const lows = Array.from({ length: 5 }, (_, i) => tagged(`low${i}`, 'low'));
    for (const low of lows) queue.push(low);
    now = 1000; // every low is long aged
    const urgent = Array.from({ length: 3 }, (_, i) => tagged(`u${i}`, 'urgent'));
    for (const u of urgent) queue.push(u);
    expect(queue.shift()).toBe(lows[0]); // one promotion
    expect(queue.shift()).toBe(urgent[0]);
    now = 1099;
    expect(queue.shift()).toBe(urgent[1]);
    now = 1100; // the window reopened
    expect(queue.shift()).toBe(lows[1]);
    expect(queue.shift()).toBe(urgent[2]);
  });

  it('never lets an aged job jump a queued live frame (protected tier), unless high is unprotected', () => {
    const order = (protectedTiers?: Tier[]) => {
      let now = 0;
      const queue = new PriorityTaskQueue({ agingMs: 10, now: () => now, protectedTiers });
      queue.push(tagged('job', 'normal'));
      now = 10_000;
      queue.push(tagged('frame', 'high'));
      queue.push(tagged('urgent', 'urgent'));
      return [1, 2, 3].map(() => (queue.shift() as unknown as { task: { id: string } }).task.id);
    };
    expect(order()).toEqual(['urgent', 'frame', 'job']);
    expect(order([])).toEqual(['job', 'urgent', 'frame']);
  });
});

describe('tierOf and withPriority', () => {
  it('reads the tier piscina forwards from the payload, normal by default, and refuses nonsense', () => {
    expect(tierOf({ id: 1 })).toBe('normal');
    expect(tierOf(null)).toBe('normal');
    expect(tierOf(withPriority({ id: 1 }, 'high'))).toBe('high');
    // Piscina's TaskInfo exposes the payload's options through a getter of the same symbol.
    const taskInfo = {
      task: withPriority({}, 'low'),
      get [queueOptionsSymbol]() {
        return this.task[queueOptionsSymbol];
      },
    };
    expect(tierOf(taskInfo)).toBe('low');
    expect(() => tierOf({ [queueOptionsSymbol]: { priority: 'asap' } })).toThrow(TypeError);
    expect(() => tierOf({ [queueOptionsSymbol]: { priority: 'constructor' } })).toThrow(TypeError);
  });

  it('leaves the tier behind when the payload is cloned for the worker', () => {
    const clone = structuredClone(withPriority({ id: 1 }, 'urgent'));
    expect(clone).toEqual({ id: 1 });
    expect(tierOf(clone)).toBe('normal');
  });

  it('refuses a nonsense configuration', () => {
    expect(() => new PriorityTaskQueue({ maxPerTier: { low: 0 } })).toThrow(RangeError);
    expect(() => new PriorityTaskQueue({ agingMs: 0 })).toThrow(RangeError);
    expect(() => new PriorityTaskQueue({ maxRunningJobs: 0 })).toThrow(RangeError);
  });
});

/** A shared cell a test task blocks on (test/support/priority-worker.mjs) until the test opens it. */
function gate() {
  const sab = new SharedArrayBuffer(4);
  return {
    sab,
    open() {
      Atomics.store(new Int32Array(sab), 0, 1);
      Atomics.notify(new Int32Array(sab), 0);
    },
  };
}

describe('with a real piscina pool', () => {
  const filename = fileURLToPath(new URL('./support/priority-worker.mjs', import.meta.url));
  let pool: Piscina | undefined;
  afterEach(async () => {
    await pool?.destroy();
    pool = undefined;
  });

  function start(opts: PriorityQueueOptions, threads = 1) {
    const queue = new PriorityTaskQueue(opts);
    pool = new Piscina({
      filename,
      minThreads: threads,
      maxThreads: threads,
      taskQueue: queue,
      loadBalancer: queue.loadBalancer,
    });
    const run = (id: string, tier: Tier, ms: number): Promise<string> =>
      pool!.run(withPriority({ id, ms }, tier));
    /** A tracked task held on its worker until its gate opens; `started` settles when a worker takes it. */
    const runHeld = (id: string, tier: Tier) => {
      const held = gate();
      let onStart!: () => void;
      const started = new Promise<void>((resolve) => {
        onStart = resolve;
      });
      const payload = withPriority({ id, gate: held.sab }, tier, { onStart });
      return { payload, done: pool!.run(payload) as Promise<string>, started, open: held.open };
    };
    return { queue, run, runHeld };
  }

  it('runs an urgent task ahead of queued lows, then frames, then the lows in order', async () => {
    const waits: [Tier, boolean][] = [];
    const { run } = start({ agingMs: 60_000, onWait: (tier, _ms, promoted) => waits.push([tier, promoted]) });
    await run('warm-up', 'normal', 1);
    waits.length = 0;
    const done: string[] = [];
    const track = (p: Promise<string>) => p.then((id) => done.push(id));
    // The worker is idle, so `busy` starts at once; everything after it queues behind it.
    const all = [track(run('busy', 'low', 100))];
    for (let i = 1; i <= 4; i++) all.push(track(run(`low${i}`, 'low', 5)));
    all.push(track(run('frame', 'high', 5)), track(run('urgent', 'urgent', 5)));
    await Promise.all(all);
    expect(done).toEqual(['busy', 'urgent', 'frame', 'low1', 'low2', 'low3', 'low4']);
    // Piscina shifted and pushed back a task after each completion; each wait is reported once.
    expect(waits.map(([tier]) => tier).sort()).toEqual(['high', 'low', 'low', 'low', 'low', 'low', 'urgent']);
    expect(waits.some(([, promoted]) => promoted)).toBe(false);
  });

  it('finishes a low task under a sustained urgent stream within the aging bound (counted in urgent runs)', async () => {
    const agingMs = 300;
    const urgentMs = 20;
    const queued = 2;
    let lowWait: { ms: number; promoted: boolean } | undefined;
    const { queue, run } = start({
      agingMs,
      onWait: (tier, ms, promoted) => {
        if (tier === 'low') lowWait = { ms, promoted };
      },
    });
    await run('warm-up', 'normal', 1);
    let urgentDone = 0;
    let lowDone = false;
    let urgentBeforeLow = -1;
    let streamRunning: () => void;
    const fiveDone = new Promise<void>((resolve) => {
      streamRunning = resolve;
    });
    const stream: Promise<unknown>[] = [];
    // Every finished urgent task is replaced, so `queued` urgent tasks always wait: the tier
    // above `low` never empties until the low task is through (or 400 urgent runs, 8+ s).
    const feed = () => {
      if (lowDone || urgentDone >= 400) return;
      stream.push(
        run(`u${urgentDone}`, 'urgent', urgentMs).then(() => {
          if (++urgentDone === 5) streamRunning();
          feed();
        }),
      );
    };
    for (let i = 0; i < queued + 1; i++) feed();
    await fiveDone;
    expect(queue.depth('urgent')).toBe(queued);
    const startedAt = urgentDone;
    await run('low', 'low', 1).then(() => {
      urgentBeforeLow = urgentDone - startedAt;
      lowDone = true;
    });
    await Promise.all(stream);
    // Each urgent run takes at least urgentMs, so while the low task ages at most
    // agingMs / urgentMs + 1 urgent runs start; then at most `queued` older urgent tasks and
    // the one running when it arrived go first (the bound with K = queued, counted in runs).
    const bound = agingMs / urgentMs + 1 + queued + 1;
    expect(lowWait?.promoted).toBe(true);
    expect(lowWait!.ms).toBeGreaterThanOrEqual(agingMs);
    expect(urgentBeforeLow).toBeGreaterThanOrEqual(1);
    expect(urgentBeforeLow).toBeLessThanOrEqual(2 * bound);
  });

  it('refuses a task over its tier bound inside run(), and cancel() rejects a queued task unrun', async () => {
    const { queue, run } = start({ agingMs: 60_000, maxPerTier: { low: 2 } });
    await run('warm-up', 'normal', 1);
    const done: string[] = [];
    const busy = run('busy', 'normal', 100).then((id) => done.push(id));
    const low1 = withPriority({ id: 'low1', ms: 1 }, 'low');
    const first = pool!.run(low1);
    const second = run('low2', 'low', 1).then((id) => done.push(id));
    expect(queue.canAccept('low')).toBe(false);
    const err = catchError(() => run('low3', 'low', 1));
    expect(err).toMatchObject({ code: 'RATE_LIMITED', status: 429 });

    const reason = new Error('job cancelled');
    expect(queue.cancel(low1, reason)).toBe(true);
    await expect(first).rejects.toBe(reason);
    expect(queue.canAccept('low')).toBe(true);
    expect(queue.cancel(low1, reason)).toBe(false);
    await Promise.all([busy, second]);
    expect(done).toEqual(['busy', 'low2']);
  });

  it('keeps a job waiting beside an idle worker at the cap, while a frame runs at once (2 threads, 1 job)', async () => {
    const { queue, run, runHeld } = start({ maxRunningJobs: 1 }, 2);
    const first = runHeld('first', 'low');
    await first.started;
    const second = run('second', 'normal', 1);
    expect([queue.depth('normal'), queue.size, queue.runningJobs]).toEqual([1, 0, 1]);
    // The frame finishes while the job still holds its worker: it never waited behind it.
    await expect(run('frame', 'high', 1)).resolves.toBe('frame');
    expect([queue.depth('normal'), queue.runningJobs]).toEqual([1, 1]);
    first.open();
    await expect(Promise.all([first.done, second])).resolves.toEqual(['first', 'second']);
  });

  it('stops a running tracked task by terminating the thread threadOf() names; the replacement runs what waited', async () => {
    const { queue, run, runHeld } = start({});
    const stuck = runHeld('stuck', 'normal');
    await stuck.started;
    const next = run('next', 'low', 1);
    const threadId = queue.threadOf(stuck.payload);
    const worker = pool!.threads.find((t) => t.threadId === threadId);
    expect(worker).toBeDefined();
    await worker!.terminate();
    await expect(stuck.done).rejects.toThrow();
    await expect(next).resolves.toBe('next');
    expect(queue.threadOf(stuck.payload)).toBeUndefined();
    expect(pool!.threads.map((t) => t.threadId)).not.toContain(threadId);
  });
});
