import { chartData, type LoadCharts } from './charts.js';
import type { SparseHistogram } from './histogram.js';
import type { TimelinePoint } from './monitor.js';
import {
  type BenchResult,
  benchSummary,
  gitCommit,
  machineLine,
  median,
  type ResultTable,
  type TargetCheck,
  writeResultFiles,
} from './results.js';
import type { TargetName } from './target.js';

/** Flat named figures of one run; flat so repeats can be summarised by median generically. */
export type Figures = Record<string, number | null>;

/** One run of one target (and phase) in a fresh server process. */
export interface LoadRun {
  target: TargetName;
  /** `control` / `slow` for the slow scenario, otherwise `main`. */
  phase: string;
  repeat: number;
  startedAt: string;
  figures: Figures;
  /** The load generator was saturated: figures limited by the client, not the server. */
  clientBound: boolean;
  histograms: Record<string, SparseHistogram>;
  timeline: TimelinePoint[];
  details: Record<string, unknown>;
}

/**
 * Everything one `npm run bench -- <scenario>` run measured, written whole to
 * bench/results/raw/load-<scenario>.json (not committed). It is a BenchResult, so
 * bench/report.ts renders its tables like any other bench.
 */
export interface LoadResult extends BenchResult {
  kind: 'load';
  scenario: string;
  params: Record<string, unknown>;
  environment: Record<string, unknown>;
  runs: LoadRun[];
  /** Median figures per `target` (or `target:phase`) over repeats. */
  summary: Record<string, Figures>;
  clientBound: boolean;
}

/**
 * The committed bench/results/load-<scenario>.json: the result without its runs (every
 * histogram, timeline and per-run detail), plus the chart points drawn from them.
 */
export interface LoadSummary extends Omit<LoadResult, 'runs'> {
  charts: LoadCharts;
}

export const isLoadResult = (r: object): r is LoadResult | LoadSummary =>
  (r as Partial<LoadResult>).kind === 'load';

/** The summary of a load result; a summary is returned as it is. */
export function loadSummary(result: LoadResult | LoadSummary): LoadSummary {
  if (!('runs' in result)) return result;
  const { runs: _runs, ...rest } = result;
  return { ...rest, charts: chartData(result) };
}

/** What bench/results/<bench>.json holds for any bench's result, raw or already summarised. */
export function summaryOf(result: BenchResult): BenchResult {
  return isLoadResult(result) ? loadSummary(result) : benchSummary(result);
}

export const runKey = (r: Pick<LoadRun, 'target' | 'phase'>) =>
  r.phase === 'main' ? r.target : `${r.target}:${r.phase}`;

export function summarize(runs: LoadRun[]): Record<string, Figures> {
  const groups = new Map<string, LoadRun[]>();
  for (const r of runs) groups.set(runKey(r), [...(groups.get(runKey(r)) ?? []), r]);
  const out: Record<string, Figures> = {};
  for (const [key, group] of groups) {
    const names = new Set(group.flatMap((r) => Object.keys(r.figures)));
    const figures: Figures = {};
    for (const name of names) {
      const values = group.map((r) => r.figures[name]).filter((v): v is number => typeof v === 'number');
      figures[name] = values.length ? median(values) : null;
    }
    out[key] = figures;
  }
  return out;
}

export function newResult(
  scenario: string,
  title: string,
  params: Record<string, unknown>,
  environment: Record<string, unknown>,
): LoadResult {
  return {
    bench: `load-${scenario}`,
    kind: 'load',
    title,
    machine: machineLine(),
    commit: gitCommit(),
    startedAt: new Date().toISOString(),
    scenario,
    conditions: {},
    params,
    environment,
    runs: [],
    summary: {},
    clientBound: false,
    tables: [],
    targets: [],
    notes: [],
  };
}

/** Writes the summary to `file` and the whole result, runs and all, next to it under raw/. */
export function writeLoadResult(file: string, result: LoadResult): void {
  writeResultFiles(file, result, loadSummary(result));
}

/** A table of selected figures, one row per summary key. */
export function figuresTable(
  caption: string,
  summary: Record<string, Figures>,
  columns: [name: string, label: string, digits?: number][],
): ResultTable {
  return {
    caption,
    columns: ['target', ...columns.map(([, label]) => label)],
    rows: Object.entries(summary).map(([key, f]) => [key, ...columns.map(([name, , d]) => fmt(f[name], d))]),
  };
}

export function fmt(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return 'n/a';
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/**
 * This checkout against `--before` (the same daemon at an older commit), same run, medians:
 * one row per figure, `[label, figure name, digits]`.
 */
export function beforeTable(
  now: Figures,
  before: Figures,
  figures: [string, string, number?][],
): ResultTable {
  return {
    caption: 'framehub against framehub-before (same run, medians)',
    columns: ['figure', 'framehub-before', 'framehub', 'framehub / before'],
    rows: figures.map(([label, name, digits = 3]) => [
      label,
      fmt(before[name], digits),
      fmt(now[name], digits),
      fmt(ratio(now[name], before[name]), 3),
    ]),
  };
}

/** A target check; a figure that could not be measured is reported as not met. */
export function check(
  name: string,
  target: string,
  value: number | null | undefined,
  ok: (v: number) => boolean,
  show: (v: number) => string = (v) => fmt(v),
): TargetCheck {
  const measurable = typeof value === 'number' && Number.isFinite(value);
  return { name, target, measured: measurable ? show(value) : 'not measured', met: measurable && ok(value) };
}

/** a / b, or null when either is missing or b is zero. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return typeof a === 'number' && typeof b === 'number' && b !== 0 && Number.isFinite(a / b) ? a / b : null;
}

/** Sums every sample of a Prometheus metric (all label sets) in a /metrics text. */
export function metricSum(text: string, name: string): number | null {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) {
      sum += v;
      seen = true;
    }
  }
  // A labelled counter has no samples until first used; declared (# TYPE) means zero.
  return seen ? sum : text.includes(`# TYPE ${name} `) ? 0 : null;
}

/** Every series of a metric by its label set (`{reason="slow"}`), for per-reason deltas. */
export function metricSeries(text: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    const cut = line.lastIndexOf(' ');
    out[line.slice(name.length, cut) || '{}'] = Number(line.slice(cut + 1));
  }
  return out;
}

/** after − before for every series of the named metrics. */
export function metricDeltas(before: string, after: string, names: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of names) {
    const a = metricSeries(before, name);
    for (const [labels, v] of Object.entries(metricSeries(after, name))) {
      const d = v - (a[labels] ?? 0);
      if (d) out[`${name}${labels}`] = d;
    }
  }
  return out;
}

/** GET /metrics from a framehub; undefined when the target has none or it fails. */
export async function fetchMetrics(url: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
    return res.ok ? await res.text() : undefined;
  } catch (err) {
    process.stderr.write(`metrics: ${(err as Error).message}\n`);
    return undefined;
  }
}

export const pct = (v: number) => `${fmt(v * 100, 3)}%`;
export const times = (v: number) => `${fmt(v, 3)}×`;
export const ms = (v: number) => `${fmt(v, 2)} ms`;

/** The options a scenario used, as stored in `params`. */
export function paramsOf<T extends object>(opts: T, keys: (keyof T & string)[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = opts[k];
  return out;
}

/** The conditions printed with every table in RESULTS.md: the exact command and the setup. */
export function conditionsOf(
  params: Record<string, unknown>,
  environment: Record<string, unknown>,
): Record<string, string | number | boolean> {
  return {
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
    ...Object.fromEntries(
      Object.entries(params)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : (v as string)]),
    ),
    'swarm processes': environment.swarmProcs as number,
    'JPEG bytes': environment.jpegBytes as number,
  };
}

/** Closes a result: client-bound flag and notes, so a saturated client is never mistaken for the server. */
export function finishResult(result: LoadResult, notes: string[]): void {
  result.clientBound = result.runs.some((r) => r.clientBound);
  const bound = result.runs.filter((r) => r.clientBound).map((r) => runKey(r));
  if (bound.length) {
    result.notes!.push(
      `client-bound: the load generator was saturated (event loop or CPU ≥ 90%) in ${[...new Set(bound)].join(', ')}; ` +
        'throughput there is a floor for the server, and per-CPU-second figures are the fair comparison.',
    );
  }
  const busy = result.runs
    .map((r) => r.figures.machineBusyPct)
    .filter((v): v is number => typeof v === 'number' && v >= 95);
  if (busy.length)
    result.notes!.push('The machine was ≥ 95% busy during some runs: server and clients competed for CPU.');
  result.notes!.push(...new Set(notes));
}
