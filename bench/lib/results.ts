import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
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

/**
 * What a bench measured. The whole of it, raw samples included, goes to
 * bench/results/raw/<bench>.json (not committed); its summary (`summaryOf` in
 * load-result.ts), which is all bench/report.ts needs, goes to bench/results/<bench>.json
 * and is committed.
 */
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
  /** Per-run samples; kept in the raw file only. */
  raw?: unknown;
}

const here = dirname(fileURLToPath(import.meta.url));
/**
 * bench/ in the source tree: this module runs from bench/lib under vitest and from
 * dist-bench/bench/lib once bench/tsconfig.json has compiled it.
 */
export const benchDir =
  basename(resolve(here, '../..')) === 'dist-bench' ? resolve(here, '../../../bench') : resolve(here, '..');
export const resultsDir = join(benchDir, 'results');

/** Where the raw companion of a committed result file lives: `<dir>/raw/<name>`. */
export const rawFileFor = (file: string) => join(dirname(file), 'raw', basename(file));

/**
 * JSON as `JSON.stringify(value, null, 2)`, except that an array of scalars, or of number
 * tuples, stays on one line: a table row or a chart line's points is one line in a diff, not
 * one line per value.
 */
export function formatJson(value: unknown, indent = ''): string {
  const scalar = (v: unknown) => v === null || typeof v !== 'object';
  const numbers = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'number' || x === null);
  if (Array.isArray(value)) {
    if (value.every(scalar) || value.every(numbers)) return JSON.stringify(value);
    const inner = `${indent}  `;
    return `[\n${value.map((v) => inner + formatJson(v ?? null, inner)).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (!entries.length) return '{}';
    const inner = `${indent}  `;
    const lines = entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJson(v, inner)}`);
    return `{\n${lines.join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Writes a result twice: the summary to `file` (committed) and the whole result to
 * `rawFileFor(file)` (ignored by git), so the summary can be derived again later
 * (`npm run bench:summarize`) without rerunning the bench.
 */
export function writeResultFiles(file: string, full: object, summary: object): void {
  const raw = rawFileFor(file);
  mkdirSync(dirname(raw), { recursive: true });
  writeFileSync(raw, `${JSON.stringify(full, null, 1)}\n`);
  writeSummary(file, summary);
}

export function writeSummary(file: string, summary: object): void {
  writeFileSync(file, `${formatJson(summary)}\n`);
}

/** The `System:` line printed first by every bench and stored with its result. */
export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown cpu'} x${cpus.length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, node ${process.version}`;
}

/** The short commit of a checkout (this one by default). */
export function gitCommit(cwd = benchDir): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd,
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
  const file = join(resultsDir, `${result.bench}.json`);
  writeResultFiles(file, full, benchSummary(full));
  return file;
}

/** A result without its raw samples: what the report reads and git keeps. */
export function benchSummary(result: BenchResult): BenchResult {
  const { raw: _raw, ...summary } = result;
  return summary;
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
