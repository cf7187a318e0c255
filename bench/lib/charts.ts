import { benchDependency } from './deps.js';
import type { SparseHistogram } from './histogram.js';
import type { LoadResult, LoadRun, LoadSummary } from './load-result.js';
import type { TimelinePoint } from './monitor.js';

/**
 * SVG charts for bench/RESULTS.md, drawn by vega-lite and rendered headless by vega's
 * `view.toSVG()` (no browser, no canvas). chartData() reduces a run's raw samples to the
 * points the charts draw, once, when the summary is written; each *Spec function builds a
 * vega-lite spec from a summary alone, and render() turns any of them into SVG text.
 */
interface VegaLite {
  compile(spec: unknown): { spec: unknown };
}
interface VegaView {
  toSVG(): Promise<string>;
  finalize(): void;
}
interface Vega {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, opts: { renderer: 'none' }) => VegaView;
}

export async function render(spec: unknown): Promise<string> {
  const vl = benchDependency<VegaLite>('vega-lite');
  const vega = benchDependency<Vega>('vega');
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';
const WIDTH = 620;
const MAX_POINTS = 400;

const label = (r: LoadRun, many: boolean) =>
  `${r.phase === 'main' ? r.target : `${r.target} (${r.phase})`}${many ? ` #${r.repeat + 1}` : ''}`;

/** Cumulative fraction at each bucket of a histogram, thinned to at most MAX_POINTS. */
export function cdfPoints(h: SparseHistogram): { ms: number; p: number }[] {
  const total = h.reduce((a, [, n]) => a + n, 0);
  if (total === 0) return [];
  const step = Math.max(1, Math.ceil(h.length / MAX_POINTS));
  const out: { ms: number; p: number }[] = [];
  let seen = 0;
  h.forEach(([ms, n], i) => {
    seen += n;
    if (i % step === 0 || i === h.length - 1) out.push({ ms: Math.max(ms, 0.001), p: seen / total });
  });
  return out;
}

/** Which histograms a scenario's CDF chart shows, and what they measure. */
const CDF_HISTOGRAMS: Record<string, [key: string, what: string][]> = {
  fanout: [
    ['latency', 'frame latency (ts → receipt)'],
    ['probeTtff', 'time to first frame (probes)'],
  ],
  slow: [['latency', 'healthy viewers’ frame latency']],
  idle: [['connect', 'connect (→ 101)']],
  churn: [
    ['connect', 'connect (→ 101)'],
    ['firstFrame', 'connect → first frame'],
  ],
};

export function latencyCdfSpec(result: LoadSummary): unknown | undefined {
  if (!CDF_HISTOGRAMS[result.scenario]) return undefined;
  const values = result.charts.cdf.flatMap(({ run, what, points }) =>
    points.map(([ms, p]) => ({ ms, p, run, what })),
  );
  if (!values.length) return undefined;
  return {
    $schema: SCHEMA,
    title: `${result.title}: latency CDF`,
    data: { values },
    facet: { row: { field: 'what', type: 'nominal', title: null } },
    spec: {
      width: WIDTH,
      height: 220,
      mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.5 },
      encoding: {
        x: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'milliseconds (log scale)' },
        y: { field: 'p', type: 'quantitative', scale: { domain: [0, 1] }, title: 'fraction ≤ x' },
        color: { field: 'run', type: 'nominal', title: 'run' },
      },
    },
    resolve: { scale: { x: 'independent' } },
  };
}

/** Which timeline series a scenario plots over time. */
type SeriesField = Exclude<keyof TimelinePoint, 't' | 'phase'>;
const TIMELINE_SERIES: Record<string, [field: SeriesField, title: string][]> = {
  fanout: [
    ['mbPerSec', 'delivered MB/s'],
    ['serverRssMiB', 'server RSS MiB'],
    ['serverCpuPct', 'server CPU %'],
  ],
  slow: [
    ['mbPerSec', 'delivered MB/s'],
    ['serverRssMiB', 'server RSS MiB'],
    ['conns', 'open viewers'],
  ],
  idle: [
    ['conns', 'open connections'],
    ['serverRssMiB', 'server RSS MiB'],
  ],
  churn: [
    ['serverRssMiB', 'server RSS MiB'],
    ['serverFds', 'server open fds'],
    ['serverCpuPct', 'server CPU %'],
  ],
  http: [
    ['serverCpuPct', 'server CPU %'],
    ['serverRssMiB', 'server RSS MiB'],
  ],
};

export function timelineSpec(result: LoadSummary): unknown | undefined {
  const series = TIMELINE_SERIES[result.scenario];
  if (!series) return undefined;
  // Point by point, then series by series: the order the data had when the charts were first drawn.
  const values = result.charts.timeline.flatMap(({ run, t, series: columns }) =>
    t.flatMap((at, i) =>
      series.map(([field, title]) => ({ t: at, value: columns[field]?.[i], series: title, run })),
    ),
  );
  if (!values.length) return undefined;
  return {
    $schema: SCHEMA,
    title: `${result.title}: over time`,
    data: { values },
    facet: { row: { field: 'series', type: 'nominal', title: null, sort: series.map(([, t]) => t) } },
    spec: {
      width: WIDTH,
      height: 150,
      mark: { type: 'line', point: false, strokeWidth: 1.5 },
      encoding: {
        x: { field: 't', type: 'quantitative', title: 'seconds since the run started' },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'run', type: 'nominal', title: 'run' },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/** http: requests per server CPU-second per endpoint and target, the figure the ratios use. */
export function httpEfficiencySpec(result: LoadSummary): unknown | undefined {
  if (result.scenario !== 'http') return undefined;
  const values = Object.entries(result.summary).flatMap(([target, f]) =>
    Object.entries(f)
      .filter(([k, v]) => k.endsWith('.reqPerServerCpuSecond') && typeof v === 'number')
      .map(([k, v]) => ({ target, endpoint: k.split('.')[0], value: v })),
  );
  if (!values.length) return undefined;
  return {
    $schema: SCHEMA,
    title: `${result.title}: requests per server CPU-second`,
    data: { values },
    width: WIDTH,
    height: 220,
    mark: 'bar',
    encoding: {
      y: { field: 'endpoint', type: 'nominal', title: null },
      yOffset: { field: 'target' },
      x: { field: 'value', type: 'quantitative', title: 'requests per server CPU-second' },
      color: { field: 'target', type: 'nominal' },
    },
  };
}

/** The points a load summary keeps for its charts: a few KB per run instead of every sample. */
export interface LoadCharts {
  /** One latency CDF line per run and histogram: `[ms, fraction ≤ ms]`, thinned to MAX_POINTS. */
  cdf: { run: string; what: string; points: [number, number][] }[];
  /** Each run's once-a-second samples of the series its scenario plots, one column per field. */
  timeline: { run: string; t: number[]; series: Partial<Record<SeriesField, (number | null)[]>> }[];
}

/** Reduces a load result's runs to the chart points; the specs above draw from these only. */
export function chartData(result: LoadResult): LoadCharts {
  const many = result.runs.some((r) => r.repeat > 0);
  const kinds = CDF_HISTOGRAMS[result.scenario] ?? [];
  const fields = TIMELINE_SERIES[result.scenario] ?? [];
  const cdf = result.runs.flatMap((r) =>
    kinds
      .map(([key, what]) => ({
        run: label(r, many),
        what,
        points: cdfPoints(r.histograms[key] ?? []).map((pt): [number, number] => [pt.ms, pt.p]),
      }))
      .filter((line) => line.points.length > 0),
  );
  const timeline = fields.length
    ? result.runs
        .filter((r) => r.timeline.length > 0)
        .map((r) => ({
          run: label(r, many),
          t: r.timeline.map((pt) => pt.t),
          series: Object.fromEntries(fields.map(([field]) => [field, r.timeline.map((pt) => pt[field])])),
        }))
    : [];
  return { cdf, timeline };
}
