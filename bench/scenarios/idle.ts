import { sleep } from '../lib/clock.js';
import { type BenchContext, checkFds, launch, runOrder } from '../lib/context.js';
import { Histogram } from '../lib/histogram.js';
import {
  beforeTable,
  check,
  conditionsOf,
  type Figures,
  figuresTable,
  finishResult,
  fmt,
  type LoadResult,
  type LoadRun,
  newResult,
  paramsOf,
  ratio,
  summarize,
  times,
} from '../lib/load-result.js';
import { Monitor, round1, round3 } from '../lib/monitor.js';
import { fdLimits, sampleProc } from '../lib/proc-stats.js';
import { median } from '../lib/results.js';
import { Swarm } from '../lib/swarm.js';
import type { OpenResult, WorkerReport } from '../lib/swarm-protocol.js';
import { isFramehub, type TargetName } from '../lib/target.js';
import { CLIENT_BOUND, planGroups } from './fanout-figures.js';

const MiB = 2 ** 20;

/** Median RSS (and last fd count) of the server over a few samples, to smooth GC noise. */
async function settledRss(pid: number | undefined, samples = 5, gapMs = 300) {
  const rss: number[] = [];
  let fds = Number.NaN;
  for (let i = 0; i < samples && pid; i++) {
    const s = sampleProc(pid);
    if (s) {
      rss.push(s.rssBytes);
      fds = s.fds;
    }
    if (i < samples - 1) await sleep(gapMs);
  }
  return { rss: rss.length ? median(rss) : null, fds };
}

/**
 * One idle run: C viewers connect (subscribed to a camera that sends nothing) and hold.
 * RSS per connection is (settled RSS with them − settled RSS before) / connections.
 */
async function runIdle(ctx: BenchContext, name: TargetName, repeat: number): Promise<LoadRun> {
  const { opts } = ctx;
  const startedAt = new Date().toISOString();
  const target = await launch(ctx, name);
  const procs = Math.max(opts.procs, Math.ceil(opts.conns / 15_000));
  const swarm = await Swarm.start(procs);
  const monitor = new Monitor(target.pid, swarm, {
    label: `idle ${name}`,
    totalSeconds: Math.round(opts.hold + 6),
    quiet: opts.quiet,
  });
  try {
    const fdNote =
      checkFds('swarm process', swarm.fdLimits(), Math.ceil(opts.conns / procs) + 64) ??
      (target.pid ? checkFds(`${name} server`, fdLimits(target.pid), opts.conns + 256) : undefined);
    if (fdNote) ctx.notes.push(fdNote);
    monitor.start();
    monitor.setPhase('settle');
    await sleep(500);
    const before = await settledRss(target.pid);
    monitor.setPhase('connect');
    const t = performance.now();
    const opened = await swarm.each<OpenResult>(
      planGroups(opts.conns, procs, ctx.cameras.length, opts.transport, 0).map((groups) => ({
        cmd: 'open',
        port: target.port,
        cameras: ctx.cameras,
        variant: 'raw',
        groups,
        concurrency: Math.max(1, Math.round(opts.connectConcurrency / procs)),
        connectTimeoutMs: 15_000,
        throttleKiBps: 0,
      })),
      60_000 + opts.conns * 10,
      'open idle viewers',
    );
    const connectWall = (performance.now() - t) / 1000;
    monitor.setPhase('hold');
    await sleep(opts.hold * 1000);
    const after = await settledRss(target.pid);
    const reports = await swarm.all<WorkerReport>({ cmd: 'report' }, 30_000, 'collect reports');
    monitor.setPhase('close');

    const n = opened.reduce((a, o) => a + o.opened, 0);
    const failed = opened.reduce((a, o) => a + o.failed, 0);
    const first = Math.min(...opened.map((o) => o.firstStart));
    const last = Math.max(...opened.map((o) => o.lastOpen));
    const connect = new Histogram();
    for (const r of reports) connect.merge(r.connect);
    const c = connect.summary();
    const open = reports.reduce((a, r) => a + r.open, 0);
    const clientRss = reports.reduce((a, r) => a + r.rssBytes, 0);
    // Per connection still open when RSS was read: ones the server closed cost it nothing.
    const perConn =
      before.rss !== null && after.rss !== null && open > 0 ? (after.rss - before.rss) / open : null;
    const maxElu = Math.max(...reports.map((r) => r.elu));
    const closes: Record<string, number> = {};
    for (const r of reports) {
      for (const [code, k] of Object.entries(r.healthy.serverCloses)) closes[code] = (closes[code] ?? 0) + k;
    }
    const figures: Figures = {
      connections: n,
      failed,
      openAtEnd: open,
      closedByServer: n - open,
      connectPerSec: n > 0 && last > first ? Math.round(n / ((last - first) / 1000)) : null,
      connectWallSeconds: round3(connectWall),
      connectP50Ms: c.p50,
      connectP99Ms: c.p99,
      serverRssBeforeMiB: before.rss === null ? null : round1(before.rss / MiB),
      serverRssAfterMiB: after.rss === null ? null : round1(after.rss / MiB),
      rssPerConnKiB: perConn === null ? null : round3(perConn / 1024),
      serverFdsBefore: before.fds,
      serverFdsAfter: after.fds,
      clientRssPerConnKiB: n > 0 ? round3(clientRss / n / 1024) : null,
      clientErrors: reports.reduce((a, r) => a + r.errors, 0),
      clientMaxElu: round3(maxElu),
    };
    return {
      target: name,
      phase: 'main',
      repeat,
      startedAt,
      figures,
      // Connecting is the only work here; a saturated client lowers the connect rate only.
      clientBound: maxElu >= CLIENT_BOUND,
      histograms: { connect: connect.toSparse() },
      timeline: monitor.timeline,
      details: {
        url: target.url,
        serverPid: target.pid,
        openErrors: [...new Set(opened.flatMap((o) => o.errorSamples))].slice(0, 10),
        serverCloses: closes,
      },
    };
  } catch (err) {
    throw new Error(`idle ${name}: ${(err as Error).message}\n${target.stderrTail()}`);
  } finally {
    monitor.stop();
    await swarm.close();
    await target.stop();
  }
}

/** `npm run bench -- idle`: RSS per idle connection and the connect rate, per target. */
export async function idleScenario(ctx: BenchContext): Promise<LoadResult> {
  const { opts } = ctx;
  const result = newResult(
    'idle',
    `Load: ${opts.conns} idle ${opts.transport} connections`,
    paramsOf(opts, ['conns', 'transport', 'hold', 'connectConcurrency', 'repeat', 'procs']),
    ctx.environment,
  );
  let targets = opts.targets;
  if (opts.transport !== 'ws') targets = targets.filter((t) => isFramehub(t));
  for (const { target, repeat } of runOrder(targets, opts.repeat))
    result.runs.push(await runIdle(ctx, target, repeat));
  result.summary = summarize(result.runs);
  result.conditions = conditionsOf(result.params, ctx.environment);
  result.tables.push(
    figuresTable('Idle connections per target (medians)', result.summary, [
      ['connections', 'connections', 0],
      ['failed', 'failed', 0],
      ['openAtEnd', 'open at end', 0],
      ['rssPerConnKiB', 'server RSS per connection KiB', 2],
      ['serverRssBeforeMiB', 'RSS before MiB', 1],
      ['serverRssAfterMiB', 'RSS after MiB', 1],
      ['connectPerSec', 'connects/s', 0],
      ['connectP50Ms', 'connect p50 ms'],
      ['connectP99Ms', 'connect p99 ms'],
      ['serverFdsAfter', 'server fds', 0],
      ['clientRssPerConnKiB', 'client RSS per connection KiB', 1],
    ]),
  );
  const fh = result.summary.framehub ?? result.summary.external;
  const node = result.summary['ws-http'];
  const bare = result.summary['uws-bare'];
  const before = result.summary['framehub-before'];
  if (fh && before) {
    result.tables.push(
      beforeTable(fh, before, [
        ['server RSS per connection KiB', 'rssPerConnKiB', 2],
        ['server RSS after MiB', 'serverRssAfterMiB', 1],
        ['connects/s', 'connectPerSec', 0],
        ['connect p99 ms', 'connectP99Ms'],
      ]),
    );
  }
  if (fh) {
    const suffix = opts.conns >= 10_000 ? '' : ` (${opts.conns} connections, target is 10,000)`;
    // Issue 9: per-socket state is a few small fields until a viewer asks for more (bare uWS ~1 KiB).
    result.targets.push(
      check(
        `idle: server RSS per connection${suffix}`,
        '≤ 2 KiB',
        fh.rssPerConnKiB,
        (v) => v <= 2,
        (v) => `${fmt(v)} KiB`,
      ),
    );
    if (node || bare) {
      result.tables.push({
        caption: 'RSS per idle connection against the baselines',
        columns: ['framehub KiB', 'uws-bare KiB', 'ws-http KiB', 'framehub / uws-bare', 'ws-http / framehub'],
        rows: [
          [
            fmt(fh.rssPerConnKiB),
            fmt(bare?.rssPerConnKiB),
            fmt(node?.rssPerConnKiB),
            times(ratio(fh.rssPerConnKiB, bare?.rssPerConnKiB) ?? Number.NaN),
            times(ratio(node?.rssPerConnKiB, fh.rssPerConnKiB) ?? Number.NaN),
          ],
        ],
      });
    }
  }
  finishResult(result, ctx.notes);
  return result;
}
