import { sleep } from '../lib/clock.js';
import { type BenchContext, launch, runOrder } from '../lib/context.js';
import { Publisher } from '../lib/frames.js';
import { Histogram } from '../lib/histogram.js';
import {
  check,
  conditionsOf,
  type Figures,
  fetchMetrics,
  figuresTable,
  finishResult,
  fmt,
  type LoadResult,
  type LoadRun,
  metricSum,
  newResult,
  paramsOf,
  summarize,
} from '../lib/load-result.js';
import { Monitor, round1, round3 } from '../lib/monitor.js';
import { sampleProc } from '../lib/proc-stats.js';
import { median } from '../lib/results.js';
import { Swarm, split } from '../lib/swarm.js';
import type { ChurnCmd, ChurnResult, WorkerReport } from '../lib/swarm-protocol.js';
import type { TargetName } from '../lib/target.js';
import { CLIENT_BOUND } from './fanout-figures.js';

const MiB = 2 ** 20;

async function settled(pid: number | undefined) {
  const rss: number[] = [];
  const fds: number[] = [];
  for (let i = 0; i < 5 && pid; i++) {
    const s = sampleProc(pid);
    if (s) {
      rss.push(s.rssBytes);
      fds.push(s.fds);
    }
    await sleep(200);
  }
  return { rss: rss.length ? median(rss) : null, fds: fds.length ? Math.min(...fds) : null };
}

/**
 * One churn run: loops that connect, wait for the first frame, and disconnect, for
 * `seconds`, after a warm-up churn. Leaks are server RSS and open descriptors after the
 * run (and a settle) against before it, both measured with no viewer connected.
 */
async function runChurn(ctx: BenchContext, name: TargetName, repeat: number): Promise<LoadRun> {
  const { opts } = ctx;
  const startedAt = new Date().toISOString();
  const target = await launch(ctx, name);
  const swarm = await Swarm.start(opts.procs);
  const publisher = new Publisher(target.wsBase, ctx.cameras, opts.fps, ctx.jpeg);
  const monitor = new Monitor(target.pid, swarm, {
    label: `churn ${name}`,
    totalSeconds: Math.round(opts.warmup + opts.seconds + 6),
    quiet: opts.quiet,
  });
  const transport = opts.transport === 'mix' ? 'ws' : opts.transport;
  // Time for closes to finish and the server to free them before RSS and fds are read.
  const settleMs = Math.min(2000, Math.max(500, opts.seconds * 250));
  const cmds = (seconds: number): ChurnCmd[] =>
    split(opts.concurrency, swarm.size).map((concurrency) => ({
      cmd: 'churn',
      port: target.port,
      camera: ctx.cameras[0]!,
      variant: 'raw',
      transport,
      concurrency,
      durationMs: seconds * 1000,
      maxCycles: Math.ceil(opts.maxCycles / swarm.size),
      firstFrameTimeoutMs: 5000,
    }));
  try {
    await publisher.connect();
    await publisher.prime();
    publisher.start();
    monitor.start();
    if (opts.warmup > 0) {
      monitor.setPhase('warmup');
      await swarm.each<ChurnResult>(cmds(opts.warmup), opts.warmup * 1000 + 30_000, 'warm-up churn');
    }
    monitor.setPhase('settle');
    await sleep(settleMs);
    const before = await settled(target.pid);
    const metricsBefore = target.hasMetrics ? await fetchMetrics(target.url) : undefined;
    monitor.setPhase('churn');
    const t = performance.now();
    const results = await swarm.each<ChurnResult>(cmds(opts.seconds), opts.seconds * 1000 + 30_000, 'churn');
    const wall = (performance.now() - t) / 1000;
    const reports = await swarm.all<WorkerReport>({ cmd: 'report' }, 30_000, 'collect reports');
    monitor.setPhase('settle');
    await sleep(settleMs);
    const after = await settled(target.pid);
    const metricsAfter = target.hasMetrics ? await fetchMetrics(target.url) : undefined;

    const connect = new Histogram();
    const first = new Histogram();
    for (const r of results) {
      connect.merge(r.connect);
      first.merge(r.firstFrame);
    }
    const cycles = results.reduce((a, r) => a + r.cycles, 0);
    const errors = results.reduce((a, r) => a + r.errors, 0);
    const c = connect.summary();
    const f = first.summary();
    const rssDelta = before.rss !== null && after.rss !== null ? after.rss - before.rss : null;
    const connGauge = metricsAfter ? metricSum(metricsAfter, 'framehub_connections') : null;
    const maxElu = Math.max(...reports.map((r) => r.elu));
    const figures: Figures = {
      cycles,
      errors,
      cyclesPerSec: round1(cycles / wall),
      connectP50Ms: c.p50,
      connectP99Ms: c.p99,
      firstFrameP50Ms: f.p50,
      firstFrameP99Ms: f.p99,
      serverRssBeforeMiB: before.rss === null ? null : round1(before.rss / MiB),
      serverRssAfterMiB: after.rss === null ? null : round1(after.rss / MiB),
      rssLeakMiB: rssDelta === null ? null : round1(rssDelta / MiB),
      rssLeakBytesPerCycle: rssDelta === null || cycles === 0 ? null : Math.round(rssDelta / cycles),
      serverFdsBefore: before.fds,
      serverFdsAfter: after.fds,
      fdLeak: before.fds !== null && after.fds !== null ? after.fds - before.fds : null,
      serverConnectionsAfter: connGauge,
      serverConnectionsBefore: metricsBefore ? metricSum(metricsBefore, 'framehub_connections') : null,
      clientMaxElu: round3(maxElu),
    };
    return {
      target: name,
      phase: 'main',
      repeat,
      startedAt,
      figures,
      clientBound: maxElu >= CLIENT_BOUND,
      histograms: { connect: connect.toSparse(), firstFrame: first.toSparse() },
      timeline: monitor.timeline,
      details: {
        url: target.url,
        serverPid: target.pid,
        errorSamples: [...new Set(results.flatMap((r) => r.errorSamples))].slice(0, 10),
      },
    };
  } catch (err) {
    throw new Error(`churn ${name}: ${(err as Error).message}\n${target.stderrTail()}`);
  } finally {
    monitor.stop();
    publisher.stop();
    await swarm.close();
    await publisher.close();
    await target.stop();
  }
}

/** `npm run bench -- churn`: connect latency, cycles/s and leaks. */
export async function churnScenario(ctx: BenchContext): Promise<LoadResult> {
  const { opts } = ctx;
  const result = newResult(
    'churn',
    `Load: churn, ${opts.concurrency} concurrent connect/first-frame/disconnect loops`,
    paramsOf(opts, [
      'concurrency',
      'transport',
      'seconds',
      'warmup',
      'fps',
      'frameKb',
      'repeat',
      'procs',
      'maxCycles',
    ]),
    ctx.environment,
  );
  for (const { target, repeat } of runOrder(opts.targets, opts.repeat)) {
    result.runs.push(await runChurn(ctx, target, repeat));
  }
  result.summary = summarize(result.runs);
  result.conditions = conditionsOf(result.params, ctx.environment);
  result.tables.push(
    figuresTable('Churn per target (medians)', result.summary, [
      ['cycles', 'cycles', 0],
      ['cyclesPerSec', 'cycles/s', 0],
      ['errors', 'errors', 0],
      ['connectP50Ms', 'connect p50 ms'],
      ['connectP99Ms', 'connect p99 ms'],
      ['firstFrameP50Ms', 'first frame p50 ms'],
      ['firstFrameP99Ms', 'first frame p99 ms'],
      ['serverRssBeforeMiB', 'RSS before MiB', 1],
      ['serverRssAfterMiB', 'RSS after MiB', 1],
      ['rssLeakMiB', 'RSS after − before MiB', 1],
      ['fdLeak', 'fds after − before', 0],
      ['serverConnectionsAfter', 'connections gauge after', 0],
    ]),
  );
  for (const [key, f] of Object.entries(result.summary)) {
    result.targets.push(
      check(
        `churn [${key}]: descriptors after the run`,
        'no more than before',
        f.fdLeak,
        (v) => v <= 0,
        (v) => `${v >= 0 ? '+' : ''}${fmt(v, 0)}`,
      ),
      check(
        `churn [${key}]: connect/first-frame cycles without error`,
        '0 errors',
        f.errors,
        (v) => v === 0,
        (v) => fmt(v, 0),
      ),
    );
  }
  finishResult(result, ctx.notes);
  return result;
}
