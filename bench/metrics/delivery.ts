import { performance } from 'node:perf_hooks';
import { nowMs, sleep } from '../lib/clock.js';
import { Histogram, type LatencySummary } from '../lib/histogram.js';
import { type Swarm, split } from '../lib/swarm.js';
import type { ViewerGroup, WorkerReport } from '../lib/swarm-protocol.js';
import type { Transport } from '../lib/viewers.js';
import type { Scraper } from './scrape.js';

/**
 * The viewers of bench:metrics and the frame latency they see with and without scrapes.
 * The swarm (bench/lib/swarm.ts) counts from one `measure` onwards and its reports are
 * cumulative, so each window is the difference between the reports at its two ends.
 */

/** Of every 10 viewers of a camera, 8 are WS, 1 SSE and 1 MJPEG. */
const MIX: Transport[] = ['ws', 'ws', 'ws', 'ws', 'ws', 'ws', 'ws', 'ws', 'sse', 'mjpeg'];

/**
 * Viewer groups per swarm process: viewer g watches camera g % cameras, so every camera has
 * the same viewers, and the transport rotates over each camera's viewers (not over cameras, so
 * no camera is SSE-only).
 */
export function viewerPlan(viewers: number, procs: number, cameras: number): ViewerGroup[][] {
  let g = 0;
  return split(viewers, procs).map((n) => {
    const groups = new Map<string, ViewerGroup>();
    for (let j = 0; j < n; j++, g++) {
      const camera = g % cameras;
      const transport = MIX[Math.floor(g / cameras) % MIX.length]!;
      const key = `${transport}/${camera}`;
      const group = groups.get(key) ?? { count: 0, transport, camera };
      group.count++;
      groups.set(key, group);
    }
    return [...groups.values()];
  });
}

/** Viewers per transport in a plan, for the result's conditions. */
export function planMix(plan: ViewerGroup[][]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const g of plan.flat()) out[g.transport] = (out[g.transport] ?? 0) + g.count;
  return out;
}

export interface DeliveryWindow {
  scraping: boolean;
  seconds: number;
  /** Frames the viewers received in the window (by arrival). */
  frames: number;
  /** Frames the publishers sent in the window, all cameras. */
  sent: number;
  latency: Histogram;
  /** Client wall time of the window's scrapes, ms. */
  scrapeMs: number[];
}

interface Cumulative {
  frames: number;
  sent: number;
  latency: Histogram;
  reports: WorkerReport[];
}

/** Cuts the swarm's cumulative counts into windows. */
export class DeliveryMeter {
  private last: Cumulative = { frames: 0, sent: 0, latency: new Histogram(), reports: [] };

  /** `sent` reads the publishers' cumulative frame count. */
  constructor(
    private readonly swarm: Swarm,
    private readonly sent: () => number,
  ) {}

  /** Starts the swarm counting frames stamped from 300 ms from now, and waits until then. */
  async start(): Promise<void> {
    const t0 = nowMs() + 300;
    await this.swarm.all({ cmd: 'measure', t0 }, 5000, 'start measuring');
    await sleep(Math.max(0, t0 - nowMs()));
    this.last = await this.cumulative();
  }

  /** The swarm's last reports (client CPU and event-loop use since start). */
  get reports(): WorkerReport[] {
    return this.last.reports;
  }

  /**
   * One window of `seconds`: quiet, or with a scrape every second (half a second in, so the
   * scrapes are spread over the window rather than at its edges).
   */
  async window(seconds: number, scraper: Scraper | undefined): Promise<DeliveryWindow> {
    const start = performance.now();
    const until = (t: number) => sleep(Math.max(0, t - performance.now()));
    const scrapeMs: number[] = [];
    if (scraper) {
      for (let k = 0; k < seconds; k++) {
        await until(start + (k + 0.5) * 1000);
        scrapeMs.push((await scraper.scrape()).ms);
      }
    }
    await until(start + seconds * 1000);
    const now = await this.cumulative();
    const window: DeliveryWindow = {
      scraping: !!scraper,
      seconds,
      frames: now.frames - this.last.frames,
      sent: now.sent - this.last.sent,
      latency: subtract(now.latency, this.last.latency),
      scrapeMs,
    };
    this.last = now;
    return window;
  }

  private async cumulative(): Promise<Cumulative> {
    const sent = this.sent();
    const reports = await this.swarm.all<WorkerReport>({ cmd: 'report' }, 30_000, 'collect reports');
    const latency = new Histogram();
    for (const r of reports) latency.merge(r.healthy.latency);
    return { frames: reports.reduce((a, r) => a + r.healthy.frames, 0), sent, latency, reports };
  }
}

/** after − before, bucket by bucket (both are cumulative histograms of the same viewers). */
function subtract(after: Histogram, before: Histogram): Histogram {
  const earlier = new Map(before.toSparse());
  const out = new Histogram();
  out.merge(
    after
      .toSparse()
      .map(([ms, n]): [number, number] => [ms, n - (earlier.get(ms) ?? 0)])
      .filter(([, n]) => n > 0),
  );
  return out;
}

/** Windows of one kind merged, for the quiet-against-scraping comparison. */
export function mergeWindows(windows: DeliveryWindow[]): {
  frames: number;
  sent: number;
  latency: LatencySummary;
} {
  const h = new Histogram();
  for (const w of windows) h.merge(w.latency);
  const sum = (pick: (w: DeliveryWindow) => number) => windows.reduce((a, w) => a + pick(w), 0);
  return { frames: sum((w) => w.frames), sent: sum((w) => w.sent), latency: h.summary() };
}
