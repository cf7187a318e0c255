import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One table of a bench result, rendered as-is into bench/RESULTS.md. */
export interface ResultTable {
  caption: string;
  columns: string[];
  rows: (string | number)[][];
}

/** A named target from an issue, with the measured figure and whether it was met. */
export interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  met: boolean;
}

/** The JSON every bench writes to bench/results/<bench>.json; bench/report.ts renders them all. */
export interface BenchResult {
  bench: string;
  title: string;
  machine: string;
  commit: string;
  startedAt: string;
  conditions: Record<string, string | number | boolean>;
  tables: ResultTable[];
  targets: TargetCheck[];
  notes?: string[];
  raw?: unknown;
}

const here = dirname(fileURLToPath(import.meta.url));
/** bench/ in the source tree, whether running from dist/bench/lib or bench/lib. */
export const benchDir = here.includes(`${join('dist', 'bench')}`)
  ? resolve(here, '../../../bench')
  : resolve(here, '..');
export const resultsDir = join(benchDir, 'results');

/** The `System:` line printed first by every bench and stored with its result. */
export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown cpu'} x${cpus.length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, node ${process.version}`;
}

export function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: benchDir,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    return 'uncommitted';
  }
}

export function writeResult(
  result: Omit<BenchResult, 'machine' | 'commit' | 'startedAt'> & { startedAt?: string },
): string {
  const full: BenchResult = {
    machine: machineLine(),
    commit: gitCommit(),
    startedAt: result.startedAt ?? new Date().toISOString(),
    ...result,
  };
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${result.bench}.json`);
  writeFileSync(file, `${JSON.stringify(full, null, 2)}\n`);
  return file;
}

/** Median of a non-empty list; benches report medians of alternating fresh-process runs. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Value at quantile q (0..1) of an unsorted sample. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
