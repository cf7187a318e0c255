import { nowMs, sleep } from '../lib/clock.js';
import { type BenchContext, checkFds, launch } from '../lib/context.js';
import { Publisher } from '../lib/frames.js';
import { fetchMetrics, type LoadRun, metricDeltas, metricSum } from '../lib/load-result.js';
import { Monitor, round1, round3 } from '../lib/monitor.js';
import { Swarm } from '../lib/swarm.js';
import type { OpenResult, ProbeCmd, WorkerReport } from '../lib/swarm-protocol.js';
import type { TargetName } from '../lib/target.js';
import { CLIENT_BOUND, DRAIN_MS, fanoutFigures, merge, planGroups, sumCloses } from './fanout-figures.js';

const MiB = 2 ** 20;

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
    await publisher.prime(); // fills the latest-frame cache so every viewer's first frame is immediate
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
