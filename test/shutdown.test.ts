import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { get, type LogLine, pack, type RunningDaemon, startDaemon, Viewer } from './helpers.js';

/**
 * Finding 12: SIGTERM with a worker stuck in a long native call. Node's process.exit() joins
 * worker threads, and a worker inside libvips only ends when the call returns, so before the
 * fix the daemon outlived its "timed out" line for as long as the decode ran.
 */

/**
 * A valid baseline CMYK JPEG of `width`×`height` that costs almost nothing to build: one
 * quantisation table, one single-code Huffman table per class, and a scan of zero bytes in
 * which every 8×8 block decodes to "no change". libvips still has to decode every pixel and
 * convert CMYK to sRGB through lcms, which is what makes it slow to resize: 2550×65500
 * (167 MP) takes about 13 s for the `high` variant on one core. 2550 px wide, 1280 px wide
 * `high` gets no shrink-on-load; 2.6 MB on the wire.
 */
function slowCmykJpeg(width: number, height: number): Buffer {
  const segment = (marker: number, body: number[]) => [
    0xff,
    marker,
    (body.length + 2) >> 8,
    (body.length + 2) & 0xff,
    ...body,
  ];
  const oneCode = (tableClass: number) => [tableClass << 4, 1, ...new Array<number>(15).fill(0), 0];
  const components = [1, 2, 3, 4];
  const header = Buffer.from([
    0xff,
    0xd8,
    ...segment(0xdb, [0, ...new Array<number>(64).fill(1)]),
    ...segment(0xc0, [
      8,
      height >> 8,
      height & 0xff,
      width >> 8,
      width & 0xff,
      4,
      ...components.flatMap((c) => [c, 0x11, 0]),
    ]),
    ...segment(0xc4, [...oneCode(0), ...oneCode(1)]),
    ...segment(0xda, [4, ...components.flatMap((c) => [c, 0]), 0, 63, 0]),
  ]);
  // Two bits per block (DC "no difference", AC end-of-block), four components.
  const blocks = Math.ceil(width / 8) * Math.ceil(height / 8) * components.length;
  return Buffer.concat([header, Buffer.alloc(Math.ceil(blocks / 4) + 16), Buffer.from([0xff, 0xd9])]);
}

/** A pid that is still a process: exists and is not a zombie waiting to be reaped. */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The camera's ffmpeg pid, once /api/v1/status reports it up. */
const ffmpegPid = (d: RunningDaemon, camera: string) =>
  until(async () => {
    const status = JSON.parse((await get(`${d.url}/api/v1/status`)).text) as {
      cameras: { id: string; up: boolean; pid?: number }[];
    };
    const cam = status.cameras.find((c) => c.id === camera);
    return cam?.up && cam.pid ? cam.pid : undefined;
  }, `camera ${camera} up`);

const exited = (d: RunningDaemon) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) => {
    const started = Date.now();
    d.proc.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - started }));
  });

const DEADLINE_MS = 1500;
const camera = { id: 'cam', source: 'test', fps: 5, width: 320, height: 180, audio: false };
let daemon: RunningDaemon | undefined;

afterEach(() => {
  if (daemon && daemon.proc.exitCode === null && daemon.proc.signalCode === null) daemon.proc.kill('SIGKILL');
  daemon = undefined;
});

describe('shutdown deadline', () => {
  it('exits 0 well within the deadline when nothing is busy, its ffmpeg gone', async () => {
    daemon = await startDaemon({
      cameras: [camera],
      pool: { threads: 1 },
      shutdown: { deadlineMs: DEADLINE_MS },
    });
    const pid = await ffmpegPid(daemon, 'cam');
    const exit = exited(daemon);
    daemon.proc.kill('SIGTERM');
    const { code, ms } = await exit;
    expect(code).toBe(0);
    expect(ms).toBeLessThan(DEADLINE_MS);
    expect(daemon.logs.some((l) => l.msg === 'stopped')).toBe(true);
    expect(running(pid)).toBe(false);
  });

  it('with a worker kept busy in libvips: exits by the deadline, logs why, kills ffmpeg', async () => {
    const frame = slowCmykJpeg(2550, 65500);
    daemon = await startDaemon({
      cameras: [camera, { id: 'bulk', source: 'push' }],
      pool: { threads: 1 },
      // The heaviest frame the config allows: 167 MP is under this limit (the default is 40 MP).
      images: { maxPixels: 200_000_000 },
      shutdown: { deadlineMs: DEADLINE_MS },
    });
    const d = daemon;
    const pid = await ffmpegPid(d, 'cam');

    // `raw` is relayed by the worker the moment before it starts the resizes, so once a viewer
    // has it, the worker is inside libvips for seconds.
    const viewer = new Viewer(`${d.wsUrl}?topics=cam/bulk/raw`);
    await viewer.opened;
    const publisher = new WebSocket(`${d.url.replace(/^http/, 'ws')}/publish`);
    await once(publisher, 'open');
    publisher.send(pack({ type: 'frame', camera: 'bulk', data: frame }));
    await viewer.until((records) => records.some((r) => r.topic === 'cam/bulk/raw'), 15_000);
    publisher.close();
    viewer.close();

    const exit = exited(d);
    d.proc.kill('SIGTERM');
    const { code, signal, ms } = await exit;
    // The deadline, plus room for a loaded machine; before the fix: the whole resize, ~13 s.
    expect(ms).toBeLessThan(DEADLINE_MS + 2500);
    expect(signal === 'SIGKILL' || (code ?? 0) !== 0).toBe(true);
    const forced = d.logs.find((l: LogLine) => typeof l.msg === 'string' && l.msg.startsWith('forced exit'));
    expect(forced?.reason).toMatch(/worker thread was still inside a native call|deadline/);
    expect(running(pid)).toBe(false);
  }, 30_000);
});
