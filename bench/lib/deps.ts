import { createRequire } from 'node:module';
import { join } from 'node:path';
import { benchDir } from './results.js';

/**
 * Loads a bench-only dependency from bench/node_modules. The harness runs from dist-bench/bench,
 * where Node's resolution would look in the daemon's node_modules instead; resolving from
 * bench/package.json keeps these packages out of the daemon's tree (as undici does with
 * benchmarks/) and out of its type-check, which sees only the small interfaces declared here.
 */
const requireFromBench = createRequire(join(benchDir, 'package.json'));

export function benchDependency<T>(name: string): T {
  try {
    return requireFromBench(name) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') {
      throw new Error(`bench dependency "${name}" is not installed: run \`npm --prefix bench ci\` first`);
    }
    throw err;
  }
}

/** The part of autocannon's API the http scenario uses. */
export interface AutocannonHistogram {
  average: number;
  mean: number;
  max: number;
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  total?: number;
}

export interface AutocannonResult {
  requests: AutocannonHistogram & { total: number; sent: number };
  latency: AutocannonHistogram;
  throughput: AutocannonHistogram;
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
}

export interface AutocannonInstance {
  on(event: 'tick', fn: (t: { counter: number; bytes: number }) => void): void;
  stop(): void;
}

export type Autocannon = (
  opts: {
    url: string;
    connections: number;
    pipelining: number;
    duration: number;
    workers?: number;
    timeout?: number;
  },
  cb: (err: Error | null, result: AutocannonResult) => void,
) => AutocannonInstance;
