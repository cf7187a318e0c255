import { type BenchContext, runOrder } from '../lib/context.js';
import {
  beforeTable,
  check,
  conditionsOf,
  type Figures,
  figuresTable,
  finishResult,
  fmt,
  type LoadResult,
  ms,
  newResult,
  paramsOf,
  pct,
  ratio,
  summarize,
  times,
} from '../lib/load-result.js';
import { isFramehub } from '../lib/target.js';
import { runFanout } from './fanout-run.js';

/** `npm run bench -- fanout`: every target in fresh processes, then framehub against both baselines. */
export async function fanoutScenario(ctx: BenchContext): Promise<LoadResult> {
  const { opts } = ctx;
  const result = newResult(
    'fanout',
    `Load: fanout, ${opts.viewers} ${opts.transport} viewers`,
    paramsOf(opts, [
      'viewers',
      'cameras',
      'fps',
      'frameKb',
      'width',
      'height',
      'transport',
      'seconds',
      'warmup',
      'repeat',
      'procs',
      'probeIntervalMs',
    ]),
    ctx.environment,
  );
  let targets = opts.targets;
  if (opts.transport !== 'ws') {
    targets = targets.filter((t) => isFramehub(t));
    if (targets.length < opts.targets.length)
      ctx.notes.push('The baselines speak WS only; they were skipped for this transport.');
  }
  for (const { target, repeat } of runOrder(targets, opts.repeat)) {
    result.runs.push(await runFanout(ctx, target, repeat, 'main', 0));
  }
  result.summary = summarize(result.runs);
  const fh = result.summary.framehub ?? result.summary.external;
  const bare = result.summary['uws-bare'];
  const node = result.summary['ws-http'];
  result.conditions = conditionsOf(result.params, ctx.environment);
  result.tables.push(fanoutTable(result.summary));
  if (fh && (bare || node)) {
    result.tables.push({
      caption: 'framehub against the baselines (same run, medians)',
      columns: ['figure', 'framehub', 'uws-bare', 'ws-http', 'framehub / uws-bare', 'ws-http / framehub'],
      rows: [
        cmpRow('server CPU s per delivered GB', 'serverCpuSecondsPerGB', fh, bare, node),
        cmpRow('delivered GB per server CPU s', 'gbPerServerCpuSecond', fh, bare, node),
        cmpRow('p99 latency ms', 'latencyP99Ms', fh, bare, node),
        cmpRow('delivered fraction', 'deliveredFraction', fh, bare, node, 5),
        cmpRow('probe time to first frame p99 ms', 'probeTtffP99Ms', fh, bare, node),
      ],
    });
  }
  const before = result.summary['framehub-before'];
  if (fh && before) {
    result.tables.push(
      beforeTable(fh, before, [
        ['server CPU s per delivered GB', 'serverCpuSecondsPerGB'],
        ['delivered GB per server CPU s', 'gbPerServerCpuSecond'],
        ['delivered MB/s', 'deliveredMBPerSec', 1],
        ['p99 latency ms', 'latencyP99Ms'],
        ['delivered fraction', 'deliveredFraction', 5],
        ['probe time to first frame p99 ms', 'probeTtffP99Ms'],
      ]),
    );
  }
  if (fh) {
    const big = opts.viewers >= 1000 && opts.seconds >= 30 && opts.fps >= 30 && opts.frameKb >= 20;
    const suffix = big ? '' : ' (smaller run than the target conditions)';
    result.targets.push(
      check(
        `fanout: delivered to healthy viewers${suffix}`,
        '≥ 99.9%',
        fh.deliveredFraction,
        (v) => v >= 0.999,
        pct,
      ),
    );
    // The ratio targets need bare uWS in the same run; without it they are not claimed at all.
    if (bare) {
      const p99 = fh.latencyP99Ms;
      const bareP99 = bare.latencyP99Ms;
      result.targets.push(
        check(
          `fanout: server CPU per delivered GB vs bare uWS${suffix}`,
          '≤ 1.25×',
          ratio(fh.serverCpuSecondsPerGB, bare.serverCpuSecondsPerGB),
          (v) => v <= 1.25,
          times,
        ),
        check(
          `fanout: p99 latency vs bare uWS${suffix}`,
          '≤ bare + 10 ms',
          typeof p99 === 'number' && typeof bareP99 === 'number' ? p99 - bareP99 : null,
          (v) => v <= 10,
          (v) => `${v >= 0 ? '+' : ''}${fmt(v)} ms (${fmt(p99)} vs ${fmt(bareP99)})`,
        ),
      );
    }
    result.targets.push(
      check(
        `time to first frame p99 with ${opts.viewers} viewers connected${suffix}`,
        '≤ 20 ms',
        fh.probeTtffP99Ms,
        (v) => v <= 20,
        ms,
      ),
    );
  }
  finishResult(result, ctx.notes);
  return result;
}

export function fanoutTable(summary: Record<string, Figures>) {
  return figuresTable('Fanout per target (medians over repeats)', summary, [
    ['viewersOpened', 'viewers'],
    ['deliveredFraction', 'delivered', 5],
    ['deliveredFramesPerSec', 'frames/s', 0],
    ['deliveredMBPerSec', 'MB/s', 1],
    ['latencyP50Ms', 'p50 ms'],
    ['latencyP99Ms', 'p99 ms'],
    ['latencyP999Ms', 'p99.9 ms'],
    ['ttffP99Ms', 'TTFF p99 ms (ramp)'],
    ['probeTtffP99Ms', 'TTFF p99 ms (probes)'],
    ['drops', 'drops', 0],
    ['serverCpuPct', 'server CPU %', 0],
    ['serverCpuSecondsPerGB', 'server CPU s/GB', 3],
    ['serverRssMaxMiB', 'server RSS max MiB', 0],
    ['clientCpuPct', 'client CPU %', 0],
    ['machineBusyPct', 'machine busy %', 0],
  ]);
}

function cmpRow(
  label: string,
  name: string,
  fh: Figures,
  bare: Figures | undefined,
  node: Figures | undefined,
  digits = 3,
): string[] {
  return [
    label,
    fmt(fh[name], digits),
    fmt(bare?.[name], digits),
    fmt(node?.[name], digits),
    fmt(ratio(fh[name], bare?.[name]), 3),
    fmt(ratio(node?.[name], fh[name]), 3),
  ];
}
