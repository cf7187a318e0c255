import { performance } from 'node:perf_hooks';
import { sleep, withTimeout } from '../lib/clock.js';
import { type BenchContext, launch, runOrder } from '../lib/context.js';
import { type Autocannon, type AutocannonResult, benchDependency } from '../lib/deps.js';
import { Publisher } from '../lib/frames.js';
import {
  check,
  conditionsOf,
  type Figures,
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
import { sampleProc } from '../lib/proc-stats.js';
import { isFramehub, type TargetName } from '../lib/target.js';
import { CLIENT_BOUND } from './fanout-figures.js';

/** Endpoint key → path; keys name the figures (`healthz.reqPerSec`). */
function endpoints(ctx: BenchContext, target: TargetName): Record<string, string> {
  const all: Record<string, string> = {
    healthz: '/healthz',
    status: '/api/v1/status',
    metrics: '/metrics',
    jpg: `/cams/${ctx.cameras[0]}/raw.jpg`,
  };
  // The reference servers only have what they need to be compared on.
  const keys = ctx.opts.endpoints ?? (isFramehub(target) ? Object.keys(all) : ['healthz', 'jpg']);
  return Object.fromEntries(
    keys.filter((k) => isFramehub(target) || k === 'healthz' || k === 'jpg').map((k) => [k, all[k] ?? k]),
  );
}

function cannon(
  run: Autocannon,
  url: string,
  seconds: number,
  ctx: BenchContext,
  onTick: (n: number) => void,
) {
  const { opts } = ctx;
  return withTimeout(
    new Promise<AutocannonResult>((resolve, reject) => {
      const instance = run(
        {
          url,
          connections: opts.connections,
          pipelining: opts.pipelining,
          duration: seconds,
          timeout: 10,
          ...(opts.autocannonWorkers > 0 ? { workers: opts.autocannonWorkers } : {}),
        },
        (err, result) => (err ? reject(err) : resolve(result)),
      );
      instance.on('tick', (t) => onTick(t.counter));
    }),
    seconds * 1000 + 30_000,
    `autocannon ${url}`,
  );
}

async function runHttp(
  ctx: BenchContext,
  name: TargetName,
  repeat: number,
  run: Autocannon,
): Promise<LoadRun> {
  const { opts } = ctx;
  const startedAt = new Date().toISOString();
  const target = await launch(ctx, name);
  const paths = endpoints(ctx, name);
  const publisher = new Publisher(target.wsBase, ctx.cameras, opts.fps, ctx.jpeg);
  const total = Object.keys(paths).length * (opts.seconds + opts.warmup);
  const monitor = new Monitor(target.pid, undefined, {
    label: `http ${name}`,
    totalSeconds: Math.round(total),
    quiet: opts.quiet,
  });
  const figures: Figures = {};
  const details: Record<string, unknown> = { url: target.url, serverPid: target.pid, endpoints: paths };
  let clientBound = false;
  try {
    // One frame so the latest-frame .jpg exists; the feed then stops so the server's CPU is the requests'.
    await publisher.connect();
    await publisher.prime();
    await sleep(300);
    monitor.start();
    for (const [key, path] of Object.entries(paths)) {
      const url = `${target.url}${path}`;
      if (opts.warmup > 0) {
        monitor.setPhase(`${key} warm-up`);
        await cannon(run, url, opts.warmup, ctx, () => {});
      }
      monitor.setPhase(key);
      const s0 = target.pid ? sampleProc(target.pid) : undefined;
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      const r = await cannon(run, url, opts.seconds, ctx, (n) => {
        monitor.extra = `${opts.connections} connections · ${n} req/s`;
      });
      const wall = (performance.now() - w0) / 1000;
      const c = process.cpuUsage(c0);
      const s1 = target.pid ? sampleProc(target.pid) : undefined;
      const cpu = s0 && s1 ? s1.cpuSeconds - s0.cpuSeconds : null;
      const clientShare = (c.user + c.system) / 1e6 / wall / Math.max(1, opts.autocannonWorkers);
      const total = r.requests.total;
      const bound = clientShare >= CLIENT_BOUND;
      clientBound ||= bound;
      Object.assign(figures, {
        [`${key}.requests`]: total,
        [`${key}.reqPerSec`]: Math.round(total / r.duration),
        [`${key}.latencyP50Ms`]: r.latency.p50,
        [`${key}.latencyP99Ms`]: r.latency.p99,
        [`${key}.errors`]: r.errors + r.timeouts + r.non2xx,
        [`${key}.non2xx`]: r.non2xx,
        [`${key}.serverCpuSeconds`]: cpu === null ? null : round3(cpu),
        [`${key}.serverCpuPct`]: cpu === null ? null : round1((cpu / wall) * 100),
        [`${key}.reqPerServerCpuSecond`]: cpu ? Math.round(total / cpu) : null,
        [`${key}.clientCpuPct`]: round1(clientShare * 100 * Math.max(1, opts.autocannonWorkers)),
        [`${key}.clientBound`]: bound ? 1 : 0,
        [`${key}.mbPerSec`]: round1(r.throughput.average / 1e6),
      });
      details[`${key}.statusCodes`] = r.statusCodeStats;
    }
    return {
      target: name,
      phase: 'main',
      repeat,
      startedAt,
      figures,
      clientBound,
      histograms: {},
      timeline: monitor.timeline,
      details,
    };
  } catch (err) {
    throw new Error(`http ${name}: ${(err as Error).message}\n${target.stderrTail()}`);
  } finally {
    monitor.stop();
    await publisher.close();
    await target.stop();
  }
}

/** `npm run bench -- http`: autocannon per endpoint, requests per server CPU-second against the baselines. */
export async function httpScenario(ctx: BenchContext): Promise<LoadResult> {
  const { opts } = ctx;
  const run = benchDependency<Autocannon>('autocannon');
  const result = newResult(
    'http',
    `Load: HTTP, autocannon with ${opts.connections} connections`,
    paramsOf(opts, [
      'connections',
      'pipelining',
      'seconds',
      'warmup',
      'autocannonWorkers',
      'repeat',
      'endpoints',
    ]),
    ctx.environment,
  );
  for (const { target, repeat } of runOrder(opts.targets, opts.repeat))
    result.runs.push(await runHttp(ctx, target, repeat, run));
  result.summary = summarize(result.runs);
  result.conditions = conditionsOf(result.params, ctx.environment);
  const keys = [...new Set(result.runs.flatMap((r) => Object.keys(r.figures).map((f) => f.split('.')[0]!)))];
  const rows: string[][] = [];
  for (const [target, f] of Object.entries(result.summary)) {
    for (const k of keys) {
      if (f[`${k}.requests`] === undefined) continue;
      rows.push([
        target,
        k,
        fmt(f[`${k}.reqPerSec`], 0),
        fmt(f[`${k}.latencyP50Ms`]),
        fmt(f[`${k}.latencyP99Ms`]),
        fmt(f[`${k}.errors`], 0),
        fmt(f[`${k}.serverCpuPct`], 0),
        fmt(f[`${k}.reqPerServerCpuSecond`], 0),
        fmt(f[`${k}.clientCpuPct`], 0),
        f[`${k}.clientBound`] ? 'client-bound' : '',
      ]);
    }
  }
  result.tables.push({
    caption: 'HTTP per target and endpoint (medians)',
    columns: [
      'target',
      'endpoint',
      'req/s',
      'p50 ms',
      'p99 ms',
      'errors',
      'server CPU %',
      'req per server CPU s',
      'client CPU %',
      '',
    ],
    rows,
  });
  const fh = result.summary.framehub ?? result.summary.external;
  const node = result.summary['ws-http'];
  const bare = result.summary['uws-bare'];
  if (fh) {
    const perCpu = 'healthz.reqPerServerCpuSecond';
    result.targets.push(
      check(
        'http: /healthz requests per server CPU-second vs node:http',
        '≥ 1.4×',
        ratio(fh[perCpu], node?.[perCpu]),
        (v) => v >= 1.4,
        times,
      ),
    );
    if (bare) {
      result.tables.push({
        caption: '/healthz requests per server CPU-second against the baselines',
        columns: ['framehub', 'uws-bare', 'ws-http', 'framehub / uws-bare', 'framehub / ws-http'],
        rows: [
          [
            fmt(fh[perCpu], 0),
            fmt(bare[perCpu], 0),
            fmt(node?.[perCpu], 0),
            fmt(ratio(fh[perCpu], bare[perCpu]), 3),
            fmt(ratio(fh[perCpu], node?.[perCpu]), 3),
          ],
        ],
      });
    }
  }
  finishResult(result, ctx.notes);
  return result;
}
