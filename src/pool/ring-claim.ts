import { threadId, workerData } from 'node:worker_threads';
import { RingWriter } from './ring-buffer.js';

/** What every pool worker receives as piscina `workerData`. */
export interface PoolWorkerData {
  rings: SharedArrayBuffer[];
  /** Int32 per ring: 0 when free, else the threadId of the worker that owns it. */
  claims: SharedArrayBuffer;
  /** How long a worker blocks on a full ring before it drops the record. */
  ringWaitMs: number;
}

/**
 * Claims a free ring for the calling worker thread. Each ring has exactly one writer (SPSC):
 * the compare-exchange makes two workers starting at once take different rings. The main
 * thread releases a dead worker's claim (piscina 'workerDestroy'), so a replacement finds it.
 */
export function claimRing(data: PoolWorkerData): { writer: RingWriter; index: number } {
  const claims = new Int32Array(data.claims);
  for (let i = 0; i < claims.length; i++) {
    if (Atomics.compareExchange(claims, i, 0, threadId) === 0) {
      return { writer: new RingWriter(data.rings[i]!), index: i };
    }
  }
  throw new Error(`no free result ring among ${claims.length} for worker thread ${threadId}`);
}

let mine: RingWriter | undefined;

/**
 * This worker thread's ring writer. Every task entry (image, vad) loaded into the same thread
 * shares it, so one thread stays one producer.
 */
export function workerRing(): RingWriter {
  mine ??= claimRing(workerData as PoolWorkerData).writer;
  return mine;
}

/** How long this worker blocks on a full ring before dropping a record. */
export function ringWaitMs(): number {
  return (workerData as PoolWorkerData).ringWaitMs;
}

/**
 * Main-thread side: frees every ring whose owner is not among the live worker threads. Called
 * when piscina reports a worker destroyed; by then the dead worker's threadId reads -1, so the
 * rings are matched against the threads still alive rather than against the dead one.
 */
export function releaseOrphanRings(claims: SharedArrayBuffer, liveThreadIds: ReadonlySet<number>): void {
  const slots = new Int32Array(claims);
  for (let i = 0; i < slots.length; i++) {
    const owner = Atomics.load(slots, i);
    if (owner !== 0 && !liveThreadIds.has(owner)) Atomics.compareExchange(slots, i, owner, 0);
  }
}
