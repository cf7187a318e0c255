import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nowMs, sleep, withTimeout } from '../lib/clock.js';
import { Histogram, type LatencySummary } from '../lib/histogram.js';
import { fetchMetrics, metricDeltas } from '../lib/load-result.js';
import { machineBusy, sampleMachine, sampleProc } from '../lib/proc-stats.js';
import { split } from '../lib/swarm.js';
import type { TopicViewers, ViewersMsg, ViewersReport, ViewersSpec, WindowCmd } from './shared.js';

const viewersScript = fileURLToPath(new URL('./viewers-case.js', import.meta.url));

export interface ViewerWindowOptions {
  port: number;
  url: string;
  /** The daemon's pid: its own CPU (threads included, the camera's ffmpeg not) is read from /proc. */
  pid: number;
  topics: TopicViewers[];
  /** Viewer processes; each topic's viewers are split evenly between them. */
  procs: number;
  warmupSeconds: number;
  seconds: number;
}

/** One topic's figures over the window. */
export interface TopicFigures {
  topic: string;
  viewers: number;
  /** Records the daemon published on the topic with ts in the window (every seq any viewer saw). */
  published: number;
  delivered: number;
  /** delivered / (published × viewers); a `video` viewer waiting for a keyframe misses its skipped fragments. */
  deliveredFraction: number;
  worstViewerFraction: number;
  /** Client-side bytes (the WS messages) per second per viewer. */
  bytesPerSecondPerViewer: number;
  seqGaps: number;
  latencyMs: LatencySummary;
  serverCloses: Record<string, number>;
}

export interface ViewerWindowResult {
  topics: TopicFigures[];
  seconds: number;
  opened: number;
  failed: number;
  /** Seconds from fork to every viewer open. */
  openSeconds: number;
  /** The daemon process's CPU seconds per second of window (1 = one core). */
  serverCpuPerSecond: number;
  /** The whole machine, all tenants, %. */
  machineBusyPct: number;
  /** The viewer processes' CPU, % of one core, summed, and their highest event-loop utilisation. */
  clientCpuPct: number;
  clientMaxElu: number;
  /** A viewer process at ≥ 90% ELU could not keep up: delivery is then a floor. */
  clientBound: boolean;
  /** framehub_frames_dropped_total and framehub_bytes_sent_total over the window. */
  metricDeltas: Record<string, number>;
  errorSamples: string[];
}

interface Proc {
  child: ChildProcess;
  opened: Promise<Extract<ViewersMsg, { ev: 'opened' }>>;
  report: Promise<ViewersReport>;
}

function forkViewers(spec: ViewersSpec): Proc {
  const child = fork(viewersScript, [JSON.stringify(spec)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: ['--max-old-space-size=2048'],
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`viewer process exited (${signal ?? code})`))),
  );
  exited.catch(() => {});
  const next = <T extends ViewersMsg['ev']>(ev: T) =>
    Promise.race([
      new Promise<Extract<ViewersMsg, { ev: T }>>((resolve) => {
        const on = (msg: ViewersMsg) => {
          if (msg.ev !== ev) return;
          child.off('message', on);
          resolve(msg as Extract<ViewersMsg, { ev: T }>);
        };
        child.on('message', on);
      }),
      exited,
    ]);
  return { child, opened: next('opened'), report: next('report').then((m) => m.report) };
}

/**
 * One measured window of WS viewers against a running daemon: forks `procs` viewer processes
 * (bench/video/viewers-case.ts), waits until every viewer is open, lets `warmupSeconds` pass,
 * then counts the records stamped in the next `seconds` (plus a 1.5 s drain for those still in
 * flight), and reads the daemon's CPU from /proc and its drop and byte counters from /metrics at
 * the window's edges.
 *
 * @example
 *   const w = await viewerWindow({ port, url, pid, topics: [{ topic: 'cam/v/video', count: 1000 }],
 *     procs: 1, warmupSeconds: 3, seconds: 15 });
 *   w.topics[0].deliveredFraction; // 0.999
 */
export async function viewerWindow(o: ViewerWindowOptions): Promise<ViewerWindowResult> {
  const forkedAt = nowMs();
  const shares = o.topics.map((t) => split(t.count, o.procs));
  const procs = Array.from({ length: o.procs }, (_, i) =>
    forkViewers({
      port: o.port,
      topics: o.topics.map((t, j) => ({ topic: t.topic, count: shares[j]![i]! })),
      concurrency: 100,
      connectTimeoutMs: 20_000,
    }),
  );
  try {
    const opened = await withTimeout(Promise.all(procs.map((p) => p.opened)), 120_000, 'opening viewers');
    const openSeconds = (nowMs() - forkedAt) / 1000;
    const t0 = nowMs() + o.warmupSeconds * 1000;
    const t1 = t0 + o.seconds * 1000;
    const drainMs = 1500;
    for (const p of procs) p.child.send({ cmd: 'window', t0, t1, drainMs } satisfies WindowCmd);
    await sleep(t0 - nowMs());
    const [cpu0, machine0, metrics0] = [sampleProc(o.pid), sampleMachine(), fetchMetrics(o.url)];
    await sleep(t1 - nowMs());
    const [cpu1, machine1, metrics1] = [sampleProc(o.pid), sampleMachine(), fetchMetrics(o.url)];
    const reports = await withTimeout(
      Promise.all(procs.map((p) => p.report)),
      drainMs + 30_000,
      'viewer reports',
    );
    if (!cpu0 || !cpu1) throw new Error('the daemon exited during the window');
    const seconds = (t1 - t0) / 1000;
    const [before, after] = [await metrics0, await metrics1];
    return {
      topics: o.topics.map((t) => topicFigures(t.topic, reports, seconds)),
      seconds,
      opened: opened.reduce((a, m) => a + m.opened, 0),
      failed: opened.reduce((a, m) => a + m.failed, 0),
      openSeconds,
      serverCpuPerSecond: (cpu1.cpuSeconds - cpu0.cpuSeconds) / ((cpu1.at - cpu0.at) / 1000),
      machineBusyPct: 100 * machineBusy(machine0, machine1),
      clientCpuPct: reports.reduce((a, r) => a + (100 * r.cpuMs) / r.wallMs, 0),
      clientMaxElu: Math.max(...reports.map((r) => r.elu)),
      clientBound: reports.some((r) => r.elu >= 0.9 || r.cpuMs / r.wallMs >= 0.9),
      metricDeltas:
        before && after
          ? metricDeltas(before, after, ['framehub_frames_dropped_total', 'framehub_bytes_sent_total'])
          : {},
      errorSamples: [
        ...opened.flatMap((m) => m.errorSamples),
        ...reports.flatMap((r) => r.errorSamples),
      ].slice(0, 5),
    };
  } finally {
    for (const p of procs) {
      if (p.child.connected) p.child.disconnect();
      setTimeout(() => p.child.kill('SIGKILL'), 3000).unref();
    }
  }
}

function topicFigures(topic: string, reports: ViewersReport[], seconds: number): TopicFigures {
  const parts = reports.flatMap((r) => r.topics.filter((t) => t.topic === topic));
  const seqs = new Set(parts.flatMap((p) => p.seqs));
  const perViewer = parts.flatMap((p) => p.perViewerRecords);
  const published = seqs.size;
  const delivered = perViewer.reduce((a, n) => a + n, 0);
  const latency = new Histogram();
  const serverCloses: Record<string, number> = {};
  for (const p of parts) {
    latency.merge(p.latency);
    for (const [code, n] of Object.entries(p.serverCloses))
      serverCloses[code] = (serverCloses[code] ?? 0) + n;
  }
  const viewers = perViewer.length;
  return {
    topic,
    viewers,
    published,
    delivered,
    deliveredFraction: published && viewers ? delivered / (published * viewers) : 0,
    worstViewerFraction: published && viewers ? Math.min(...perViewer) / published : 0,
    bytesPerSecondPerViewer: viewers ? parts.reduce((a, p) => a + p.bytes, 0) / viewers / seconds : 0,
    seqGaps: parts.reduce((a, p) => a + p.seqGaps, 0),
    latencyMs: latency.summary(),
    serverCloses,
  };
}
