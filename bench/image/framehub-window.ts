import { mkdtempSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { startTarget } from '../lib/target.js';
import { jobQuery } from './bare.js';
import { JobClient, type JobSample } from './job-client.js';
import { closedLoop, coreSharePct, cpuEdge, machineBusyPct } from './load.js';
import type { ImageOp, LoadWindow, WindowResult } from './shared.js';

/** A framehub window: the figures bare sharp has, and where a job's time went (mean ms). */
export interface FramehubWindow extends WindowResult {
  breakdown: Record<keyof Omit<JobSample, 'bytes'>, number> & {
    /** framehub_pool_queue_wait_seconds{tier="normal"}: waiting for a worker (and for the job cap). */
    queueWaitMs: number;
    /** framehub_pool_task_duration_seconds{task="image_job"}: the worker's run and the copy back. */
    poolTaskMs: number;
  };
}

/** A histogram's sum (s) and count at one moment. */
interface Totals {
  sum: number;
  count: number;
}

/**
 * The pool's histograms this bench reads from /metrics: image_job task time (from the moment a
 * worker takes the task, in builds with the priority queue), and the `normal` tier's queue wait
 * (absent from builds without one: then 0).
 */
async function poolTotals(url: string): Promise<{ task: Totals; queueWait: Totals }> {
  const lines = (await (await fetch(`${url}/metrics`)).text()).split('\n');
  const read = (series: string): Totals => {
    const value = (suffix: string) =>
      Number(
        lines
          .find((l) => l.startsWith(`${series.replace('{', `_${suffix}{`)} `))
          ?.split(' ')
          .at(-1) ?? 0,
      );
    return { sum: value('sum'), count: value('count') };
  };
  return {
    task: read('framehub_pool_task_duration_seconds{task="image_job"}'),
    queueWait: read('framehub_pool_queue_wait_seconds{tier="normal"}'),
  };
}

/** Mean ms per observation between two readings of a histogram; 0 with none. */
const meanMs = (a: Totals, b: Totals) =>
  b.count > a.count ? ((b.sum - a.sum) * 1000) / (b.count - a.count) : 0;

/**
 * One window of image jobs against a fresh daemon (the product build, `dist/src/main.js`, on an
 * ephemeral 127.0.0.1 port): no cameras, so the pool's workers serve only the jobs; job slots
 * and the WS subscription rate raised so the clients are never refused (each job costs a `sub`
 * and an `unsub`); results on disk under `dataRoot`, kept 10 s. `extraConfig` (the pool's) is
 * merged over that, top-level keys replacing.
 */
export async function framehubWindow(
  files: string[],
  op: ImageOp,
  window: LoadWindow,
  dataRoot: string,
  extraConfig: Record<string, unknown> = {},
): Promise<FramehubWindow> {
  const target = await startTarget('framehub', {
    cameras: [],
    fps: 1,
    width: 0,
    height: 0,
    framehubConfig: {
      jobs: { dataDir: mkdtempSync(join(dataRoot, 'jobs-')), maxActive: 8, ttlSeconds: 10 },
      ws: { subscribeRatePerSecond: 10_000, subscribeBurst: 10_000 },
      ...extraConfig,
    },
  });
  const clients: JobClient[] = [];
  try {
    for (let i = 0; i < window.clients; i++) clients.push(await JobClient.open(target.url, target.wsBase));
    const bodies = files.map((f) => readFileSync(f));
    const query = jobQuery(op);
    let next = 0;
    const outcome = await closedLoop(
      window,
      (client) => clients[client]!.run(bodies[next++ % bodies.length]!, query),
      () => ({
        server: cpuEdge(target.pid!),
        client: process.cpuUsage(),
        // Scraped while the load runs (one request); awaited once the window is over.
        pool: poolTotals(target.url),
      }),
    );
    const [from, to] = outcome.edges;
    const [poolFrom, poolTo] = [await from.pool, await to.pool];
    const samples = outcome.inWindow;
    const images = samples.length;
    const mean = (key: keyof JobSample) => samples.reduce((sum, s) => sum + s[key], 0) / images;
    const serverCpuMs = to.server.totalMs - from.server.totalMs;
    const clientCpuMs = (to.client.user - from.client.user + to.client.system - from.client.system) / 1000;
    const taskSeconds = poolTo.task.sum - poolFrom.task.sum;
    return {
      images,
      imagesPerSecond: images / outcome.seconds,
      latencyMs: samples.map((s) => s.endMs - s.startMs),
      outputBytes: mean('bytes'),
      cpuMsPerImage: serverCpuMs / images,
      mainThreadCpuMsPerImage: (to.server.mainThreadMs - from.server.mainThreadMs) / images,
      clientCpuMsPerImage: clientCpuMs / images,
      // At most one job per core runs at once, whatever the pool's size.
      workersBusyPct: (100 * taskSeconds) / (availableParallelism() * outcome.seconds),
      machineBusyPct: machineBusyPct(from.server, to.server),
      ownBusyPct: coreSharePct(serverCpuMs + clientCpuMs, outcome.seconds),
      breakdown: {
        postMs: mean('postMs'),
        waitMs: mean('waitMs'),
        resultMs: mean('resultMs'),
        serverJobMs: mean('serverJobMs'),
        computeMs: mean('computeMs'),
        eventMs: mean('eventMs'),
        queueWaitMs: meanMs(poolFrom.queueWait, poolTo.queueWait),
        poolTaskMs: meanMs(poolFrom.task, poolTo.task),
      },
    };
  } finally {
    for (const c of clients) c.close();
    await target.stop();
  }
}
