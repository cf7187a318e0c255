import { nowMs, sleep } from '../lib/clock.js';
import { type BenchContext, checkFds, launch, runOrder } from '../lib/context.js';
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
  metricDeltas,
  metricSum,
  ms,
  newResult,
  paramsOf,
  pct,
  ratio,
  summarize,
  times,
} from '../lib/load-result.js';
import { Monitor, round1, round3 } from '../lib/monitor.js';
import type { ProcSample } from '../lib/proc-stats.js';
import { Swarm, split } from '../lib/swarm.js';
import type { OpenResult, ProbeCmd, ViewerGroup, WorkerReport } from '../lib/swarm-protocol.js';
import type { TargetName } from '../lib/target.js';
import type { Transport } from '../lib/viewers.js';

/** An event-loop utilisation or CPU share above this means a swarm process was the bottleneck. */
export const CLIENT_BOUND = 0.9;
const DRAIN_MS = 1500;
const MiB = 2 ** 20;

/**
 * Spreads viewers over swarm processes, cameras and transports, marking an evenly spread
 * `slowFraction` of them slow, and folds them into groups per process.
 */
export function planGroups(
  viewers: number,
  procs: number,
  cameras: number,
  transport: Transport | 'mix',
  slowFraction: number,
): ViewerGroup[][] {
  const transports: Transport[] = transport === 'mix' ? ['ws', 'sse', 'mjpeg'] : [transport];
  const counts = split(viewers, procs);
  let g = 0;
  return counts.map((n) => {
    const groups = new Map<string, ViewerGroup>();
    for (let j = 0; j < n; j++, g++) {
      const slow = Math.floor((g + 1) * slowFraction) > Math.floor(g * slowFraction);
      const t = transports[g % transports.length]!;
      const camera = g % cameras;
      const key = `${t}/${camera}/${slow}`;
      const group = groups.get(key) ?? {
        count: 0,
        transport: t,
        camera,
        ...(slow ? { slow: 'stall' as const } : {}),
      };
      group.count++;
      groups.set(key, group);
    }
    return [...groups.values()];
  });
}

function merge(reports: WorkerReport[], pick: (r: WorkerReport) => [number, number][]): Histogram {
  const h = new Histogram();
  for (const r of reports) h.merge(pick(r));
  return h;
}

/**
 * One fanout run against one target in a fresh server process: connect the viewers, warm
 * up, measure a window of `seconds` (frames stamped inside it), drain, report.
 */
export async function runFanout(
  ctx: BenchContext,
  name: TargetName,
  repeat: number,
  phase: 'main' | 'control' | 'slow',
  slowFraction: number,
): Promise<LoadRun> {
  const { opts } = ctx;
  const startedAt = new Date().toISOString();
  const target = await launch(ctx, name);
  // One extra process only probes time to first frame: in a viewer process that is busy
  // receiving, a probe would time that process's event-loop lag as well as the server.
  const swarm = await Swarm.start(opts.procs + 1);
  const publisher = new Publisher(target.wsBase, ctx.cameras, opts.fps, ctx.jpeg);
  const label = `${opts.scenario} ${runLabel(name, phase)}`;
  const monitor = new Monitor(target.pid, swarm, {
    label,
    totalSeconds: Math.round(opts.warmup + opts.seconds + DRAIN_MS / 1000),
    quiet: opts.quiet,
  });
  const details: Record<string, unknown> = { url: target.url, serverPid: target.pid, swarmPids: swarm.pids };
  try {
    const perProc = Math.ceil(opts.viewers / opts.procs);
    const fdNote = checkFds('swarm process', swarm.fdLimits(), perProc + 64);
    if (fdNote) ctx.notes.push(fdNote);

    await publisher.connect();
    publisher.sendAll(); // primes the latest-frame cache so every viewer's first frame is immediate
    publisher.start();
    monitor.start();
    monitor.setPhase('connect');
    const slowKind = opts.slowMode;
    const groups = [
      ...planGroups(opts.viewers, opts.procs, ctx.cameras.length, opts.transport, slowFraction).map((gs) =>
        gs.map((g) => (g.slow ? { ...g, slow: slowKind } : g)),
      ),
      [],
    ];
    const opened = await swarm.each<OpenResult>(
      groups.map((gs) => ({
        cmd: 'open',
        port: target.port,
        cameras: ctx.cameras,
        variant: 'raw',
        groups: gs,
        concurrency: Math.max(1, Math.round(opts.connectConcurrency / opts.procs)),
        connectTimeoutMs: 10_000,
        throttleKiBps: slowKind === 'throttle' ? opts.throttleKiBps : 0,
      })),
      60_000 + opts.viewers * 20,
      'open viewers',
    );
    const connectedAt = monitor.elapsed();

    monitor.setPhase('warmup');
    await sleep(opts.warmup * 1000);

    const metricsBefore = target.hasMetrics ? await fetchMetrics(target.url) : undefined;
    const t0 = nowMs() + 300;
    publisher.markWindow(t0);
    await swarm.all({ cmd: 'measure', t0 }, 5000, 'start measuring');
    await sleep(Math.max(0, t0 - nowMs()));
    const serverAtT0 = monitor.server();
    monitor.setPhase('measure');
    const probeCount = Math.floor((opts.seconds * 1000) / opts.probeIntervalMs);
    await swarm.each(
      swarm.pids.map(
        (_, i): ProbeCmd => ({
          cmd: 'probe',
          port: target.port,
          camera: ctx.cameras[0]!,
          variant: 'raw',
          transport: opts.transport === 'mix' ? 'ws' : opts.transport,
          intervalMs: opts.probeIntervalMs,
          count: i === swarm.size - 1 ? probeCount : 0,
        }),
      ),
      5000,
      'start probes',
    );
    await sleep(opts.seconds * 1000);
    publisher.stop();
    const t1 = nowMs();
    monitor.setPhase('drain');
    await sleep(DRAIN_MS);
    const serverAtEnd = monitor.server();
    const reports = await swarm.all<WorkerReport>({ cmd: 'report' }, 30_000, 'collect reports');
    const metricsAfter = target.hasMetrics ? await fetchMetrics(target.url) : undefined;
    monitor.setPhase('close');

    const windowSeconds = (t1 - t0) / 1000;
    const sentPerCamera = publisher.stats.sentInWindow / ctx.cameras.length;
    const figures = fanoutFigures(
      reports,
      sentPerCamera,
      windowSeconds,
      serverAtT0,
      serverAtEnd,
      monitor,
      opts.procs,
    );
    figures.viewersOpened = opened.reduce((a, o) => a + o.opened, 0);
    figures.viewersFailed = opened.reduce((a, o) => a + o.failed, 0);
    figures.connectSeconds = round3(connectedAt);
    figures.publisherLate = publisher.stats.late;
    figures.publisherErrors = publisher.stats.errors;
    if (metricsBefore && metricsAfter) {
      details.serverMetricDeltas = metricDeltas(metricsBefore, metricsAfter, [
        'framehub_frames_dropped_total',
        'framehub_slow_disconnects_total',
        'framehub_camera_frames_in_total',
        'framehub_ring_full_total',
        'framehub_ws_errors_total',
      ]);
      for (const [key, metric] of [
        ['serverFramesDropped', 'framehub_frames_dropped_total'],
        ['serverSlowDisconnects', 'framehub_slow_disconnects_total'],
        ['serverFramesSent', 'framehub_frames_sent_total'],
      ] as const) {
        const a = metricSum(metricsBefore, metric);
        const b = metricSum(metricsAfter, metric);
        figures[key] = a !== null && b !== null ? b - a : null;
      }
    }
    const clientBound =
      (figures.clientMaxElu ?? 0) >= CLIENT_BOUND || (figures.clientMaxCpuShare ?? 0) >= CLIENT_BOUND;
    details.errorSamples = [...new Set(reports.flatMap((r) => r.errorSamples))].slice(0, 10);
    details.openErrors = [...new Set(opened.flatMap((o) => o.errorSamples))].slice(0, 10);
    details.serverCloses = {
      healthy: sumCloses(reports.map((r) => r.healthy.serverCloses)),
      slow: sumCloses(reports.map((r) => r.slow.serverCloses)),
    };
    details.clients = reports.map((r) => ({
      pid: r.pid,
      cpuPct: round1((r.cpuMs / r.wallMs) * 100),
      elu: round3(r.elu),
      eventLoopDelayP99Ms: round3(r.eventLoopDelayP99Ms),
      rssMiB: round1(r.rssBytes / MiB),
    }));
    details.publisher = publisher.stats;
    return {
      target: name,
      phase,
      repeat,
      startedAt,
      figures,
      clientBound,
      histograms: {
        latency: merge(reports, (r) => r.healthy.latency).toSparse(),
        slowLatency: merge(reports, (r) => r.slow.latency).toSparse(),
        ttff: merge(reports, (r) => r.ttff).toSparse(),
        probeTtff: merge(reports, (r) => r.probeTtff).toSparse(),
      },
      timeline: monitor.timeline,
      details,
    };
  } catch (err) {
    throw new Error(`${label}: ${(err as Error).message}\n${target.stderrTail()}`);
  } finally {
    monitor.stop();
    publisher.stop();
    await swarm.close();
    await publisher.close();
    await target.stop();
  }
}

export const runLabel = (name: string, phase: string) => (phase === 'main' ? name : `${name}/${phase}`);

function sumCloses(list: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of list) for (const [k, v] of Object.entries(m)) out[k] = (out[k] ?? 0) + v;
  return out;
}

function fanoutFigures(
  reports: WorkerReport[],
  sentPerCamera: number,
  windowSeconds: number,
  serverAtT0: ProcSample | undefined,
  serverAtEnd: ProcSample | undefined,
  monitor: Monitor,
  procs: number,
): Figures {
  const healthy = reports.map((r) => r.healthy);
  const slow = reports.map((r) => r.slow);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const expected = (cs: typeof healthy) => sum(cs.flatMap((c) => c.viewersPerCamera)) * sentPerCamera;
  const hExpected = expected(healthy);
  const hDelivered = sum(healthy.map((c) => c.frames));
  const sDelivered = sum(slow.map((c) => c.frames));
  const bytes = sum(healthy.map((c) => c.bytes)) + sum(slow.map((c) => c.bytes));
  const perViewer = healthy.flatMap((c) => c.perViewerFrames);
  const lat = merge(reports, (r) => r.healthy.latency).summary();
  const slowLat = merge(reports, (r) => r.slow.latency).summary();
  const ttff = merge(reports, (r) => r.ttff).summary();
  const probe = merge(reports, (r) => r.probeTtff).summary();
  const cpuSeconds = serverAtT0 && serverAtEnd ? serverAtEnd.cpuSeconds - serverAtT0.cpuSeconds : null;
  const gb = bytes / 1e9;
  const measure = monitor.timeline.filter((p) => p.phase === 'measure' || p.phase === 'drain');
  const rssSeries = measure.map((p) => p.serverRssMiB).filter((v): v is number => v !== null);
  const rssAtT0 = serverAtT0 ? serverAtT0.rssBytes / MiB : null;
  const rssMax = rssSeries.length ? Math.max(...rssSeries, rssAtT0 ?? 0) : rssAtT0;
  const busy = measure.map((p) => p.machineBusyPct);
  const closes = (cs: typeof healthy) => sum(cs.map((c) => sum(Object.values(c.serverCloses))));
  const wallSeconds = windowSeconds + DRAIN_MS / 1000;
  return {
    windowSeconds: round3(windowSeconds),
    sentPerCamera,
    healthyViewers: sum(healthy.map((c) => c.viewers)),
    slowViewers: sum(slow.map((c) => c.viewers)),
    expectedFrames: hExpected,
    deliveredFrames: hDelivered,
    deliveredFraction: hExpected > 0 ? hDelivered / hExpected : null,
    worstViewerFraction:
      perViewer.length && sentPerCamera > 0 ? Math.min(...perViewer) / sentPerCamera : null,
    drops: Math.max(0, hExpected - hDelivered),
    seqGaps: sum(healthy.map((c) => c.seqGaps)),
    slowDeliveredFrames: sDelivered,
    deliveredFramesPerSec: round1((hDelivered + sDelivered) / windowSeconds),
    deliveredMBPerSec: round1(bytes / 1e6 / windowSeconds),
    latencyP50Ms: lat.p50,
    latencyP99Ms: lat.p99,
    latencyP999Ms: lat.p999,
    latencyMaxMs: lat.max,
    slowLatencyP99Ms: slowLat.p99,
    ttffP50Ms: ttff.p50,
    ttffP99Ms: ttff.p99,
    probeTtffCount: probe.count,
    probeTtffP50Ms: probe.p50,
    probeTtffP99Ms: probe.p99,
    probeErrors: sum(reports.map((r) => r.probeErrors)),
    healthyServerCloses: closes(healthy),
    slowServerCloses: closes(slow),
    clientErrors: sum(reports.map((r) => r.errors)),
    serverCpuSeconds: cpuSeconds === null ? null : round3(cpuSeconds),
    serverCpuPct: cpuSeconds === null ? null : round1((cpuSeconds / wallSeconds) * 100),
    deliveredGB: round3(gb),
    gbPerServerCpuSecond: cpuSeconds ? round3(gb / cpuSeconds) : null,
    serverCpuSecondsPerGB: gb > 0 && cpuSeconds !== null ? round3(cpuSeconds / gb) : null,
    serverRssAtStartMiB: rssAtT0 === null ? null : round1(rssAtT0),
    serverRssMaxMiB: rssMax === null ? null : round1(rssMax),
    serverRssGrowthMiB: rssMax !== null && rssAtT0 !== null ? round1(rssMax - rssAtT0) : null,
    serverRssEndMiB: serverAtEnd ? round1(serverAtEnd.rssBytes / MiB) : null,
    clientProcs: procs,
    clientCpuPct: round1(
      (sum(reports.map((r) => r.cpuMs)) / Math.max(1, sum(reports.map((r) => r.wallMs)))) *
        100 *
        reports.length,
    ),
    clientMaxCpuShare: round3(Math.max(...reports.map((r) => r.cpuMs / r.wallMs))),
    clientMaxElu: round3(Math.max(...reports.map((r) => r.elu))),
    machineBusyPct: busy.length ? round1(sum(busy) / busy.length) : null,
  };
}

/** Fanout or slow needs this many seconds per run, roughly, for the progress line and docs. */
export const fanoutRunSeconds = (warmup: number, seconds: number) => warmup + seconds + DRAIN_MS / 1000 + 3;

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
    targets = targets.filter((t) => t === 'framehub' || t === 'external');
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
      check(
        `fanout: server CPU per delivered GB vs bare uWS${suffix}`,
        '≤ 1.25×',
        ratio(fh.serverCpuSecondsPerGB, bare?.serverCpuSecondsPerGB),
        (v) => v <= 1.25,
        times,
      ),
      check(
        `fanout: p99 latency vs bare uWS${suffix}`,
        '≤ bare + 10 ms',
        typeof fh.latencyP99Ms === 'number' && typeof bare?.latencyP99Ms === 'number'
          ? fh.latencyP99Ms - bare.latencyP99Ms
          : null,
        (v) => v <= 10,
        (v) => `${v >= 0 ? '+' : ''}${fmt(v)} ms`,
      ),
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
