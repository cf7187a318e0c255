import type { BenchContext } from '../lib/context.js';
import {
  check,
  conditionsOf,
  figuresTable,
  finishResult,
  fmt,
  type LoadResult,
  newResult,
  paramsOf,
  pct,
  ratio,
  summarize,
  times,
} from '../lib/load-result.js';
import { runFanout } from './fanout-run.js';

/**
 * `npm run bench -- slow`: the fanout with a fraction of viewers stalled (or throttled) from
 * the start of the window, against a control run without them, each in a fresh server.
 * The control and slow runs alternate order on each repeat.
 */
export async function slowScenario(ctx: BenchContext): Promise<LoadResult> {
  const { opts } = ctx;
  const result = newResult(
    'slow',
    `Load: slow viewers, ${Math.round(opts.slowFraction * 100)}% of ${opts.viewers} ${opts.transport} viewers ${opts.slowMode === 'stall' ? 'stalled' : `throttled to ${opts.throttleKiBps} KiB/s`}`,
    paramsOf(opts, [
      'viewers',
      'slowFraction',
      'slowMode',
      'throttleKiBps',
      'cameras',
      'fps',
      'frameKb',
      'transport',
      'seconds',
      'warmup',
      'repeat',
      'procs',
    ]),
    ctx.environment,
  );
  for (const target of opts.targets) {
    for (let repeat = 0; repeat < opts.repeat; repeat++) {
      const phases = repeat % 2 === 0 ? (['control', 'slow'] as const) : (['slow', 'control'] as const);
      for (const phase of phases) {
        result.runs.push(
          await runFanout(ctx, target, repeat, phase, phase === 'slow' ? opts.slowFraction : 0),
        );
      }
    }
  }
  result.summary = summarize(result.runs);
  result.conditions = conditionsOf(result.params, ctx.environment);
  result.tables.push(
    figuresTable('Healthy viewers without and with slow viewers (medians)', result.summary, [
      ['healthyViewers', 'healthy viewers', 0],
      ['slowViewers', 'slow viewers', 0],
      ['deliveredFraction', 'healthy delivered', 5],
      ['worstViewerFraction', 'worst healthy viewer', 4],
      ['latencyP50Ms', 'healthy p50 ms'],
      ['latencyP99Ms', 'healthy p99 ms'],
      ['latencyP999Ms', 'healthy p99.9 ms'],
      ['slowDeliveredFrames', 'frames to slow viewers', 0],
      ['slowServerCloses', 'slow viewers closed by server', 0],
      ['serverSlowDisconnects', 'framehub_slow_disconnects_total', 0],
      ['serverFramesDropped', 'framehub_frames_dropped_total', 0],
      ['serverRssAtStartMiB', 'RSS at window start MiB', 0],
      ['serverRssMaxMiB', 'RSS max MiB', 0],
      ['serverRssGrowthMiB', 'RSS growth MiB', 1],
      ['serverCpuPct', 'server CPU %', 0],
      ['clientCpuPct', 'client CPU %', 0],
    ]),
  );
  const big = opts.viewers >= 1000 && opts.slowFraction >= 0.1 && opts.seconds >= 20;
  const suffix = big ? '' : ' (smaller run than the target conditions)';
  for (const target of opts.targets) {
    const control = result.summary[`${target}:control`];
    const slow = result.summary[`${target}:slow`];
    if (!control || !slow) continue;
    const who = target === 'framehub' || target === 'external' ? '' : ` [${target}]`;
    result.targets.push(
      check(
        `slow${who}: healthy p99 with slow viewers / without${suffix}`,
        '≤ 1.10×',
        ratio(slow.latencyP99Ms, control.latencyP99Ms),
        (v) => v <= 1.1,
        (v) => `${times(v)} (${fmt(control.latencyP99Ms)} → ${fmt(slow.latencyP99Ms)} ms)`,
      ),
      check(
        `slow${who}: server RSS growth during the window${suffix}`,
        '< 64 MiB',
        slow.serverRssGrowthMiB,
        (v) => v < 64,
        (v) => `${fmt(v, 1)} MiB`,
      ),
      check(
        `slow${who}: delivered to healthy viewers${suffix}`,
        '≥ 99.9%',
        slow.deliveredFraction,
        (v) => v >= 0.999,
        pct,
      ),
    );
  }
  finishResult(result, ctx.notes);
  return result;
}
