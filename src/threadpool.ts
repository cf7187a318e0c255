import { availableParallelism } from 'node:os';
import type { Logger } from './log.js';

/**
 * libuv's thread pool runs every sharp pipeline (and fs, dns.lookup and async crypto). It is
 * one pool per process, shared by all worker threads, sized once from UV_THREADPOOL_SIZE at its
 * first use: 4 threads unless the variable says otherwise. With fewer pool threads than image
 * workers, the workers queue for it and no more than that many frames resize at once.
 */

/** libuv's size when UV_THREADPOOL_SIZE is unset (`default_threads` in libuv's threadpool.c). */
export const LIBUV_DEFAULT_THREADS = 4;
/** libuv's ceiling (MAX_THREADPOOL_SIZE). */
const LIBUV_MAX_THREADS = 1024;

/** Worker threads for `pool.threads`: 0 means one per core. */
export function poolThreads(configured: number): number {
  return configured > 0 ? configured : availableParallelism();
}

/**
 * The UV_THREADPOOL_SIZE framehub asks for: one libuv thread per image worker, so every
 * worker's resize can run at once, and never fewer than libuv's own 4, which fs and crypto
 * work has always had.
 *
 * @example
 *   wantedThreadpoolSize(0) // on 16 cores: 16; on 2 cores: 4
 */
export function wantedThreadpoolSize(configuredPoolThreads: number): number {
  return Math.max(LIBUV_DEFAULT_THREADS, poolThreads(configuredPoolThreads));
}

/**
 * The size libuv takes from this environment, read as libuv reads it: atoi, 0 becomes 1, and
 * the result is an unsigned int clamped to 1024 (so "-1" means 1024).
 */
export function threadpoolSize(env: Record<string, string | undefined>): number {
  const raw = env.UV_THREADPOOL_SIZE;
  if (raw === undefined) return LIBUV_DEFAULT_THREADS;
  const n = Number.parseInt(raw.trimStart(), 10) || 0;
  if (n < 0 || n > LIBUV_MAX_THREADS) return LIBUV_MAX_THREADS;
  return Math.max(1, n);
}

/**
 * Says at start-up when the image workers outnumber libuv's threads: resizing then runs at
 * most `threadpool` frames at once, whatever the core count. Happens when UV_THREADPOOL_SIZE is
 * set lower by hand, or when the daemon was started without the preload that sizes it.
 */
export function warnIfThreadpoolSmall(
  configuredPoolThreads: number,
  env: Record<string, string | undefined>,
  log: Logger,
): void {
  const workers = poolThreads(configuredPoolThreads);
  const threadpool = threadpoolSize(env);
  if (workers <= threadpool) return;
  log.warn(
    {
      poolThreads: workers,
      uvThreadpoolSize: threadpool,
      UV_THREADPOOL_SIZE: env.UV_THREADPOOL_SIZE ?? null,
    },
    `the worker pool has more threads than libuv's thread pool: at most ${threadpool} frames resize at once. Start with \`npm start\` (node --require ./dist/src/threadpool-preload.cjs dist/src/main.js), or set UV_THREADPOOL_SIZE=${workers}`,
  );
}
