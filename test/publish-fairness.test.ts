import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
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
import { craftJpeg } from './jpeg-craft.js';

// Finding 8 (second half) of issue #8: one publisher flooding a push camera filled the shared
// pool queue, and another camera lost about 45% of its frames (pool_busy); six image bombs
// starved every camera for 23 s. The pool now holds one frame per camera in flight and one
// waiting (latest wins), so a flooded camera can only ever use its own slot.

const FLOOD_MS = 5000;
const MB = 1024 * 1024;
let daemon: RunningDaemon;
let healthy: Viewer;
let floodWatcher: Viewer;

const scrape = async () => (await get(`${daemon.url}/metrics`)).text;
const framesIn = async () =>
  metricValue(await scrape(), 'framehub_camera_frames_in_total{camera="yard"}') ?? 0;

beforeAll(async () => {
  daemon = await startDaemon({
    cameras: [
      { id: 'yard', source: 'test', fps: 15, width: 320, height: 180, audio: false },
      { id: 'edge', source: 'push', fps: 15 },
    ],
    pool: { threads: 2 },
  });
  healthy = new Viewer(`${daemon.wsUrl}?topics=cam/yard/low`);
  // Someone watching the flooded camera's `low` makes every flood frame cost a resize.
  floodWatcher = new Viewer(`${daemon.wsUrl}?topics=cam/edge/low`);
  await Promise.all([healthy.opened, floodWatcher.opened]);
  await healthy.until((rs) => rs.some((r) => r.type === 'frame'), 20_000);
});

afterAll(async () => {
  healthy?.close();
  floodWatcher?.close();
  if (!daemon) return;
  // Finding 12: after bombs the old daemon could ignore SIGTERM; never let that hang the suite.
  const killer = setTimeout(() => daemon.proc.kill('SIGKILL'), 15_000);
  await daemon.stop();
  clearTimeout(killer);
});

/**
 * Sends `frame` records for `ms`, as fast as the socket drains (kept under 4 MiB buffered so
 * the client, not the daemon, is never the bottleneck), with the bombs spread over the first half.
 */
async function flood(ms: number, jpeg: Buffer, bombs: Buffer[]): Promise<number> {
  const ws = new WebSocket(`${daemon.url.replace(/^http/, 'ws')}/publish`);
  await new Promise((res, rej) => ws.once('open', res).once('error', rej));
  const frame = pack({ type: 'frame', camera: 'edge', data: jpeg });
  const started = Date.now();
  let sent = 0;
  const queue = [...bombs];
  const bombDue = (i: number) => (i * ms) / (2 * bombs.length);
  await new Promise<void>((done) => {
    const pump = () => {
      const elapsed = Date.now() - started;
      while (queue.length && (elapsed >= bombDue(bombs.length - queue.length) || elapsed >= ms)) {
        ws.send(pack({ type: 'frame', camera: 'edge', data: queue.shift() }));
      }
      if (elapsed >= ms) return done();
      // Bounded per turn, so the timers (and the bombs) keep their schedule on a loaded machine.
      for (let n = 0; n < 64 && ws.bufferedAmount < 4 * MB; n++) {
        ws.send(frame);
        sent++;
      }
      setTimeout(pump, 1);
    };
    pump();
  });
  ws.close();
  return sent;
}

describe('a publisher flooding one push camera', () => {
  it('leaves another camera at least 90% of its frames, while six image bombs are refused', async () => {
    const jpeg = await noiseJpeg(640, 360);
    const bombs = Array.from({ length: 6 }, (_, i) =>
      craftJpeg({ width: 16383, height: 16383, progressive: true, sampling: i % 2 ? '444' : '420' }),
    );
    const pid = daemon.proc.pid!;
    const rssStart = rssBytes(pid);
    let rssPeak = rssStart;
    const rssTimer = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssBytes(pid));
    }, 50);

    // Seqs of a camera's frames are its frames_in count, so the window is a range of seqs.
    const firstSeq = (await framesIn()) + 1;
    const sent = await flood(FLOOD_MS, jpeg, bombs);
    const lastSeq = await framesIn();
    // The last frames of the window may still be in a worker: wait for them (or a later one).
    await healthy
      .until((rs) => rs.some((r) => r.type === 'frame' && (r.seq as number) >= lastSeq), 20_000)
      .catch(() => {}); // a timeout shows below, as frames missing from the window

    const produced = lastSeq - firstSeq + 1;
    const delivered = new Set(
      healthy
        .of('frame')
        .map((r) => r.seq as number)
        .filter((seq) => seq >= firstSeq && seq <= lastSeq),
    ).size;
    // The daemon may still be reading the flood's tail (and the last bombs) from the socket.
    const refusedCount = async () =>
      metricValue(await scrape(), 'framehub_frames_dropped_total{reason="refused"}') ?? 0;
    const refusedBy = Date.now() + 20_000;
    while ((await refusedCount()) < bombs.length && Date.now() < refusedBy) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const refused = await refusedCount();
    clearInterval(rssTimer);
    const floodFrames = floodWatcher.of('frame').length;
    const summary = {
      sent,
      produced,
      delivered,
      refused,
      floodFrames,
      rssGrowthMb: (rssPeak - rssStart) / MB,
    };

    console.log("FAIRMEASURE", JSON.stringify(summary), (await scrape()).split("\n").filter((l) => l.startsWith("framehub_frames_dropped")).join(" | "));
    { const got = new Set(healthy.of("frame").map((r) => r.seq)); const miss = []; for (let q = firstSeq; q <= lastSeq; q++) if (!got.has(q)) miss.push(q); console.log("MISSING", firstSeq, lastSeq, miss.join(","), JSON.stringify(healthy.of("frame").filter(r=>miss.includes((r.seq as number)-1)).map(r=>r.seq))); }
    // The flood was real: many frames sent, and the flooded camera itself still got through.
    expect(sent, JSON.stringify(summary)).toBeGreaterThan(100);
    expect(produced, JSON.stringify(summary)).toBeGreaterThan(20);
    expect.soft(delivered / produced, JSON.stringify(summary)).toBeGreaterThanOrEqual(0.9);
    expect.soft(refused, JSON.stringify(summary)).toBeGreaterThanOrEqual(6);
    expect.soft(floodFrames, JSON.stringify(summary)).toBeGreaterThan(0);
    expect.soft(summary.rssGrowthMb, JSON.stringify(summary)).toBeLessThan(512);
  }, 90_000);
});
