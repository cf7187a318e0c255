import { randomBytes } from 'node:crypto';
import { Packr } from 'msgpackr';
import sharp from 'sharp';
import WebSocket from 'ws';
import { nowMs, sleep, withTimeout } from './clock.js';

const packr = new Packr({ useRecords: false });

/**
 * A real JPEG of about `targetBytes`: rows of random noise over a flat grey, with the number
 * of noisy rows found by bisection (JPEG size grows almost linearly with them). Servers never
 * look inside, but a real JPEG keeps snapshot and MJPEG paths honest.
 */
export async function makeJpeg(width: number, height: number, targetBytes: number): Promise<Uint8Array> {
  const noise = randomBytes(width * height * 3);
  const encode = async (rows: number) => {
    const pixels = Buffer.alloc(width * height * 3, 128);
    noise.copy(pixels, 0, 0, rows * width * 3);
    return sharp(pixels, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 75 })
      .toBuffer();
  };
  let lo = 0;
  let hi = height;
  let best = await encode(hi);
  if (best.length <= targetBytes) return new Uint8Array(best);
  for (let i = 0; i < 16 && hi - lo > 1; i++) {
    const mid = (lo + hi) >> 1;
    const jpeg = await encode(mid);
    if (Math.abs(jpeg.length - targetBytes) < Math.abs(best.length - targetBytes)) best = jpeg;
    if (jpeg.length < targetBytes) lo = mid;
    else hi = mid;
  }
  return new Uint8Array(best);
}

export interface PublisherStats {
  /** Frames sent per camera, by capture ts; the ground truth the swarm's counts are checked against. */
  sent: number;
  /** Frames sent with ts >= the measurement start. */
  sentInWindow: number;
  /** The publisher could not keep to the frame period (its own CPU or the socket was late). */
  late: number;
  errors: number;
}

/**
 * Feeds frames to `/publish` at a fixed rate for each camera over one WebSocket, stamping
 * `ts` at send. Frames are scheduled against absolute deadlines so timer drift does not
 * lower the rate; a frame that is more than a period late is skipped and counted.
 */
export class Publisher {
  private ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private windowStart = Number.POSITIVE_INFINITY;
  private lastError = '';
  private onPong: (() => void) | undefined;
  readonly stats: PublisherStats = { sent: 0, sentInWindow: 0, late: 0, errors: 0 };

  constructor(
    private readonly wsBase: string,
    private readonly cameras: string[],
    private readonly fps: number,
    private readonly jpeg: Uint8Array,
  ) {}

  async connect(timeoutMs = 5000): Promise<void> {
    const ws = new WebSocket(`${this.wsBase}/publish`, { perMessageDeflate: false });
    this.ws = ws;
    ws.on('error', () => {
      this.stats.errors++;
    });
    ws.on('message', (data: Buffer) => {
      // framehub answers a bad record with an error record; count it, never ignore it.
      const r = packr.unpack(data) as { type?: string; code?: string; message?: string };
      if (r?.type === 'pong') this.onPong?.();
      if (r?.type === 'error') {
        this.stats.errors++;
        this.lastError = `${r.code} ${r.message}`;
        if (this.stats.errors <= 3) process.stderr.write(`publish error: ${this.lastError}\n`);
      }
    });
    await withTimeout(
      new Promise<void>((res, rej) => {
        ws.once('open', () => res());
        ws.once('error', rej);
        ws.once('unexpected-response', (_req, resp) => rej(new Error(`/publish: HTTP ${resp.statusCode}`)));
      }),
      timeoutMs,
      'connect to /publish',
    );
  }

  /**
   * Sends one frame to every camera, to fill the latest-frame cache, then a ping. The server
   * handles a connection's records in order, so by the pong any refusal has arrived: a daemon
   * given by --url without push cameras bench0… fails here, not after a run of zero frames.
   */
  async prime(timeoutMs = 5000): Promise<void> {
    const errorsBefore = this.stats.errors;
    this.sendAll();
    const pong = new Promise<void>((resolve) => {
      this.onPong = resolve;
    });
    this.ws?.send(packr.pack({ type: 'ping', id: 'prime' }), { binary: true });
    await withTimeout(pong, timeoutMs, 'pong from /publish');
    this.onPong = undefined;
    if (this.stats.errors > errorsBefore) {
      throw new Error(
        `/publish refused the priming frames (${this.lastError}); the server needs push cameras ${this.cameras.join(', ')}`,
      );
    }
  }

  private sendAll(): void {
    for (const camera of this.cameras) this.send(camera);
  }

  private send(camera: string): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      this.stats.errors++;
      return;
    }
    const ts = nowMs();
    ws.send(packr.pack({ type: 'frame', camera, ts, data: this.jpeg }), { binary: true });
    this.stats.sent++;
    if (ts >= this.windowStart) this.stats.sentInWindow++;
  }

  /** Counts frames stamped at or after t (ms epoch) as inside the measurement window. */
  markWindow(t: number): void {
    this.windowStart = t;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const period = 1000 / this.fps;
    const t0 = performance.now();
    let k = 0;
    const tick = () => {
      if (!this.running) return;
      const now = performance.now();
      const due = Math.floor((now - t0) / period);
      if (due - k >= 2) {
        this.stats.late += (due - k) * this.cameras.length;
        k = due;
      }
      if (due >= k) {
        this.sendAll();
        k++;
      }
      this.timer = setTimeout(tick, Math.max(0, t0 + k * period - performance.now()));
    };
    tick();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  async close(): Promise<void> {
    this.stop();
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    ws.close();
    await Promise.race([closed, sleep(1000)]);
    ws.terminate();
  }
}
