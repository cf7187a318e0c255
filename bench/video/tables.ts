import { fmt } from '../lib/load-result.js';
import { quantile, type ResultTable, type TargetCheck } from '../lib/results.js';
import type { ChromiumResults } from './chromium-hook.js';
import type { JobResult } from './job-case.js';
import type { JoinSample } from './shared.js';
import type { ViewerWindowResult } from './viewer-window.js';

/** One stream's fan-out: a 1-viewer baseline window, then the N-viewer window. */
export interface FanoutRun {
  topic: string;
  baseline: ViewerWindowResult;
  window: ViewerWindowResult;
}

const kib = (bytes: number) => fmt(bytes / 1024, 1);
const kbit = (bytesPerSecond: number) => fmt((bytesPerSecond * 8) / 1000, 0);
const ratioText = (r: number) => (Number.isFinite(r) && r > 0 ? `${fmt(r, 3)} (1/${fmt(1 / r, 1)})` : 'n/a');

/** Case 1: video against medium JPEG, one viewer of each, same window. */
export function bytesTable(w: ViewerWindowResult): ResultTable {
  const [video, jpeg] = w.topics as [ViewerWindowResult['topics'][0], ViewerWindowResult['topics'][0]];
  const row = (label: string, t: typeof video) => [
    label,
    t.published,
    fmt(t.published / w.seconds, 1),
    kib(t.bytesPerSecondPerViewer),
    kbit(t.bytesPerSecondPerViewer),
    t.published ? kib((t.bytesPerSecondPerViewer * w.seconds) / t.published) : 'n/a',
    fmt(t.deliveredFraction * 100, 2),
  ];
  return {
    caption: `Bytes per second per viewer over ${fmt(w.seconds, 1)} s, at the client (one WS viewer of each, side by side)`,
    columns: ['stream', 'records', 'records/s', 'KiB/s', 'kbit/s', 'KiB/record', 'delivered %'],
    rows: [
      row(`video (${video.topic})`, video),
      row(`JPEG (${jpeg.topic})`, jpeg),
      [
        'video / JPEG',
        '',
        '',
        ratioText(video.bytesPerSecondPerViewer / jpeg.bytesPerSecondPerViewer),
        '',
        '',
        '',
      ],
    ],
  };
}

/** The figures of a fan-out window, one row each, one column per stream. */
export function fanoutTable(runs: FanoutRun[]): ResultTable {
  const per = (f: FanoutRun) => f.window.topics[0]!;
  const dropped = (f: FanoutRun, reason: string) =>
    Object.entries(f.window.metricDeltas)
      .filter(([k]) => k.startsWith('framehub_frames_dropped_total') && k.includes(`reason="${reason}"`))
      .reduce((a, [, v]) => a + v, 0);
  const cpuMsPerViewer = (f: FanoutRun) =>
    (1000 * f.window.serverCpuPerSecond) / Math.max(1, f.window.opened);
  const marginal = (f: FanoutRun) =>
    (1000 * (f.window.serverCpuPerSecond - f.baseline.serverCpuPerSecond)) / Math.max(1, f.window.opened - 1);
  const rows: [string, (f: FanoutRun) => string | number][] = [
    ['viewers open (failed)', (f) => `${f.window.opened} (${f.window.failed})`],
    ['records published in the window', (f) => per(f).published],
    ['delivered fraction', (f) => `${fmt(per(f).deliveredFraction * 100, 3)}%`],
    ['worst viewer', (f) => `${fmt(per(f).worstViewerFraction * 100, 2)}%`],
    ['records skipped (seq gaps)', (f) => per(f).seqGaps],
    ['server drops: keyframe_wait', (f) => dropped(f, 'keyframe_wait')],
    ['server drops: slow', (f) => dropped(f, 'slow')],
    ['closed by the server', (f) => Object.values(per(f).serverCloses).reduce((a, n) => a + n, 0)],
    ['delivered KiB/s per viewer', (f) => kib(per(f).bytesPerSecondPerViewer)],
    [
      'delivered MiB/s, all viewers',
      (f) => fmt((per(f).bytesPerSecondPerViewer * f.window.opened) / 2 ** 20, 1),
    ],
    [
      'latency ts → receipt p50 / p99 ms',
      (f) => `${fmt(per(f).latencyMs.p50, 1)} / ${fmt(per(f).latencyMs.p99, 1)}`,
    ],
    [
      'daemon CPU, % of a core (1 viewer)',
      (f) => `${fmt(100 * f.window.serverCpuPerSecond, 0)} (${fmt(100 * f.baseline.serverCpuPerSecond, 0)})`,
    ],
    ['daemon CPU ms/s per viewer', (f) => fmt(cpuMsPerViewer(f), 3)],
    ['… over the 1-viewer baseline', (f) => fmt(marginal(f), 3)],
    [
      'viewer processes: CPU % / max ELU',
      (f) => `${fmt(f.window.clientCpuPct, 0)} / ${fmt(f.window.clientMaxElu, 2)}`,
    ],
    ['machine busy (all tenants)', (f) => `${fmt(f.window.machineBusyPct, 0)}%`],
  ];
  const video = runs.find((r) => r.topic.endsWith('/video'));
  const jpeg = runs.find((r) => !r.topic.endsWith('/video'));
  const ordered = [video, jpeg].filter((r): r is FanoutRun => r !== undefined);
  const seconds = ordered[0]?.window.seconds ?? 0;
  return {
    caption: `Fan-out to ${ordered[0]?.window.opened ?? 0} WS viewers, ${fmt(seconds, 1)} s window each, the same camera`,
    columns: ['figure', ...ordered.map((r) => r.topic)],
    rows: rows.map(([label, get]) => [label, ...ordered.map(get)]),
  };
}

const summary = (values: number[]) => {
  const ok = values.filter((v) => Number.isFinite(v));
  return {
    n: ok.length,
    p50: ok.length ? quantile(ok, 0.5) : Number.NaN,
    p99: ok.length ? quantile(ok, 0.99) : Number.NaN,
    max: ok.length ? Math.max(...ok) : Number.NaN,
  };
};

/** Case 3: time to first picture, WS level (here) and Chromium (chromium.ts). */
export function joinsTable(
  joins: JoinSample[],
  topics: { cache: string; noCache: string },
  chromium: ChromiumResults['firstPicture'] | undefined,
): ResultTable {
  const ws = (topic: string) => joins.filter((j) => j.topic === topic);
  const wsRow = (label: string, topic: string) => {
    const mine = ws(topic);
    const s = summary(mine.map((j) => j.firstPictureMs));
    const cached = mine.reduce((a, j) => a + j.cachedFragments, 0) / Math.max(1, mine.length);
    return [label, 'WS', s.n, mine.length - s.n, fmt(s.p50, 1), fmt(s.p99, 1), fmt(s.max, 1), fmt(cached, 1)];
  };
  const rows = [wsRow('GOP cache', topics.cache), wsRow('no GOP cache', topics.noCache)];
  if (chromium) {
    for (const [label, samples] of [
      ['GOP cache', chromium.cache],
      ['no GOP cache', chromium.noCache],
    ] as const) {
      const s = summary(samples);
      rows.push([
        label,
        'Chromium',
        s.n,
        samples.length - s.n,
        fmt(s.p50, 1),
        fmt(s.p99, 1),
        fmt(s.max, 1),
        '',
      ]);
    }
  }
  return {
    caption: 'Time to first picture for a new viewer, joins at random points of a 2 s GOP (ms)',
    columns: ['camera', 'level', 'joins', 'failed', 'p50', 'p99', 'max', 'cached fragments (mean)'],
    rows,
  };
}

/** Case 4: live latency in Chromium. */
export function latencyTable(latency: ChromiumResults['latency']): ResultTable {
  const s = summary(latency.samples);
  return {
    caption: `Live latency in Chromium, capture (fragment ts) → presented frame, over ${fmt(latency.seconds, 0)} s`,
    columns: [
      'frames presented',
      'samples',
      'p50 ms',
      'p99 ms',
      'max ms',
      'skips to a keyframe',
      'player restarts',
    ],
    rows: [
      [
        latency.frames,
        s.n,
        fmt(s.p50, 1),
        fmt(s.p99, 1),
        fmt(s.max, 1),
        latency.skips ?? 'n/a',
        latency.resets ?? 'n/a',
      ],
    ],
  };
}

/** Case 5: the job path against its ffmpeg commands run directly. */
export function jobTable(j: JobResult): ResultTable {
  const row = (
    label: string,
    p: {
      chunks: number;
      firstChunkSeconds: number;
      totalSeconds: number;
      cpuSeconds: number;
      daemonCpuSeconds?: number;
      machineBusyPct: number;
    },
    encodeSeconds: number | undefined,
  ) => [
    label,
    p.chunks,
    fmt(p.firstChunkSeconds, 2),
    encodeSeconds === undefined ? '' : fmt(encodeSeconds, 2),
    fmt(p.totalSeconds, 2),
    fmt(j.clipSeconds / p.totalSeconds, 2),
    fmt((100 * j.direct.totalSeconds) / p.totalSeconds, 1),
    p.daemonCpuSeconds === undefined
      ? fmt(p.cpuSeconds, 1)
      : `${fmt(p.cpuSeconds, 1)} (${fmt(p.daemonCpuSeconds, 1)})`,
    fmt((100 * j.direct.cpuSeconds) / p.cpuSeconds, 1),
    `${fmt(p.machineBusyPct, 0)}%`,
  ];
  return {
    caption: `Video job (${j.clip}) against the same ffmpeg commands run directly`,
    columns: [
      'path',
      'chunks',
      'first chunk s',
      'encode s',
      'total s',
      'clip s per s',
      '% of direct (wall)',
      'CPU s (daemon itself)',
      '% of direct (CPU)',
      'machine busy',
    ],
    rows: [
      row('job: POST → complete', j.job, undefined),
      row('direct: the chunk encode, then the concat', j.direct, j.direct.encodeSeconds),
    ],
  };
}

/** The targets, each with what this run measured. */
export function targetsOf(r: {
  bytes: ViewerWindowResult;
  joins: JoinSample[];
  joinTopics: { cache: string; noCache: string };
  chromium: ChromiumResults | undefined;
  job: JobResult | undefined;
}): TargetCheck[] {
  const check = (
    name: string,
    target: string,
    value: number | undefined,
    ok: (v: number) => boolean,
    show: (v: number) => string,
  ): TargetCheck => {
    const measurable = value !== undefined && Number.isFinite(value);
    return {
      name,
      target,
      measured: measurable ? show(value) : 'not measured',
      met: measurable && ok(value),
    };
  };
  const [video, jpeg] = r.bytes.topics;
  const bytesRatio = video && jpeg ? video.bytesPerSecondPerViewer / jpeg.bytesPerSecondPerViewer : undefined;
  const wsCache = summary(r.joins.filter((j) => j.topic === r.joinTopics.cache).map((j) => j.firstPictureMs));
  const chromeCache = r.chromium ? summary(r.chromium.firstPicture.cache) : undefined;
  const latency = r.chromium ? summary(r.chromium.latency.samples) : undefined;
  const msText = (v: number) => `${fmt(v, 1)} ms`;
  return [
    check('video bytes/s per viewer vs medium JPEG', '≤ 1/5', bytesRatio, (v) => v <= 0.2, ratioText),
    check(
      'time to first picture p99, GOP cache (Chromium)',
      '≤ 500 ms',
      chromeCache?.p99,
      (v) => v <= 500,
      msText,
    ),
    check(
      'time to first picture p99, GOP cache (WS level)',
      '≤ 500 ms',
      wsCache.p99,
      (v) => v <= 500,
      msText,
    ),
    check('live latency p50 (Chromium)', '≤ 500 ms', latency?.p50, (v) => v <= 500, msText),
    check(
      'video job throughput vs direct ffmpeg',
      '≥ 90%',
      r.job ? r.job.direct.totalSeconds / r.job.job.totalSeconds : undefined,
      (v) => v >= 0.9,
      (v) => `${fmt(100 * v, 1)}%`,
    ),
    check(
      'time to first chunk (60 s clip)',
      '≤ 3 s',
      r.job?.job.firstChunkSeconds,
      (v) => v <= 3,
      (v) => `${fmt(v, 2)} s`,
    ),
  ];
}
