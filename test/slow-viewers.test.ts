import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  metricValue,
  noiseJpeg,
  pack,
  type RunningDaemon,
  rssBytes,
  startDaemon,
  Viewer,
} from './helpers.js';

const FPS = 30;
let daemon: RunningDaemon;
let publisher: Viewer;
let timer: NodeJS.Timeout;

const stall = (v: Viewer) => (v.ws as unknown as { _socket: net.Socket })._socket.pause();
const unstall = (v: Viewer) => (v.ws as unknown as { _socket: net.Socket })._socket.resume();

/** Publishes the same 640x360 noise JPEG (about 70 KB) at FPS, stamped with the send time. */
async function startPublishing(url: string, camera: string): Promise<void> {
  const jpeg = await noiseJpeg(640, 360);
  publisher = new Viewer(`${url.replace('http', 'ws')}/publish`);
  await publisher.opened;
  timer = setInterval(
    () => publisher.ws.send(pack({ type: 'frame', camera, ts: Date.now(), data: jpeg })),
    1000 / FPS,
  );
}

/** Frames the viewer got in a window, the fraction of published seqs it saw, and p99 latency. */
function delivery(v: Viewer, fromIndex: number) {
  const frames = v.of('frame').slice(fromIndex);
  const seqs = frames.map((f) => f.seq as number);
  const span = Math.max(...seqs) - Math.min(...seqs) + 1;
  const lat = frames.map((f) => (f.receivedAt as number) - (f.ts as number)).sort((a, b) => a - b);
  return { count: frames.length, fraction: frames.length / span, p99: lat[Math.floor(lat.length * 0.99)]! };
}

/** Stamps each record's arrival, and lets go of the JPEG: 70 KB x 30 fps kept for 30 s would put GC pauses into the latencies. */
function stampArrivals(v: Viewer): void {
  v.ws.on('message', () => {
    const last = v.records.at(-1);
    if (!last) return;
    last.receivedAt = Date.now();
    delete last.data;
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  clearInterval(timer);
  publisher?.close();
  await daemon?.stop();
});

describe('slow-viewer isolation', () => {
  beforeAll(async () => {
    daemon = await startDaemon({
      cameras: [{ id: 'wall', source: 'push', fps: FPS }],
      viewers: { softBufferBytes: 256 * 1024, hardBufferBytes: 8 * 1024 * 1024, slowCloseMs: 60_000 },
    });
    await startPublishing(daemon.url, 'wall');
  });

  it('1 healthy + 20 stalled viewers for 20 s at 30 fps: healthy ≥95% delivery, p99 ≤ 2× baseline, RSS growth < 64 MiB, drops in /metrics', async () => {
    const healthy = new Viewer(`${daemon.wsUrl}?topics=cam/wall/raw`);
    stampArrivals(healthy);
    await healthy.opened;
    // 10 s gives 300 samples, so the baseline p99 is not one lucky frame.
    await sleep(10_000);
    const baseline = delivery(healthy, 1);

    const rssBefore = rssBytes(daemon.proc.pid!);
    const stalled = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const v = new Viewer(`${daemon.wsUrl}?topics=cam/wall/raw`);
        await v.opened;
        stall(v);
        return v;
      }),
    );
    const from = healthy.of('frame').length;
    let rssPeak = rssBefore;
    for (let i = 0; i < 20; i++) {
      await sleep(1000);
      rssPeak = Math.max(rssPeak, rssBytes(daemon.proc.pid!));
    }
    const loaded = delivery(healthy, from);

    const { text } = await get(`${daemon.url}/metrics`);
    const slowDrops = metricValue(text, 'framehub_frames_dropped_total{reason="slow"}') ?? 0;
    console.log(
      `slow-viewer run: baseline p99 ${baseline.p99} ms; with 20 stalled: delivered ${(loaded.fraction * 100).toFixed(1)}% ` +
        `(${loaded.count} frames), p99 ${loaded.p99} ms; RSS +${((rssPeak - rssBefore) / 2 ** 20).toFixed(1)} MiB; slow drops ${slowDrops}`,
    );
    expect(loaded.count).toBeGreaterThan(FPS * 20 * 0.9);
    expect(loaded.fraction).toBeGreaterThanOrEqual(0.95);
    expect(loaded.p99).toBeLessThanOrEqual(Math.max(2 * baseline.p99, baseline.p99 + 5));
    expect(rssPeak - rssBefore).toBeLessThan(64 * 2 ** 20);
    expect(slowDrops).toBeGreaterThan(20 * FPS * 5);
    expect(metricValue(text, 'framehub_slow_viewers{transport="ws"}')).toBe(20);

    const census = JSON.parse((await get(`${daemon.url}/api/v1/status/connections`)).text);
    expect(census.byState).toEqual({ healthy: 1, slow: 20 });
    expect(census.byTransport.ws).toBe(21);

    // A stalled viewer that resumes reading gets the newest frame after the backlog.
    const one = stalled[0]!;
    stampArrivals(one);
    unstall(one);
    await one.until((r) => r.some((x) => x.type === 'frame' && Date.now() - (x.ts as number) < 1000), 10_000);
    for (const v of stalled) v.ws.terminate();
    healthy.close();
  }, 70_000);
});
