import { sleep } from '../lib/clock.js';
import { Publisher } from '../lib/frames.js';

/**
 * One publisher per push camera, started at staggered offsets over one frame period, as
 * independent cameras would send. A single Publisher sends every camera's frame in the same
 * tick: with 50 cameras that is a burst of 50 frames, more than the pool takes at once
 * (threads + pool.maxQueuedFrames), and most of them would be dropped as pool_busy (seen in
 * the first run of this bench: 8,112 drops in 40 s), which measures the burst, not the daemon.
 */
export class CameraFeeds {
  private readonly publishers: Publisher[];

  constructor(
    wsBase: string,
    cameras: string[],
    private readonly fps: number,
    jpeg: Uint8Array,
  ) {
    this.publishers = cameras.map((camera) => new Publisher(wsBase, [camera], fps, jpeg));
  }

  /** Connects and primes every publisher (a refusal fails here), then starts them staggered. */
  async start(): Promise<void> {
    await Promise.all(this.publishers.map((p) => p.connect()));
    await Promise.all(this.publishers.map((p) => p.prime()));
    const step = 1000 / this.fps / this.publishers.length;
    for (const p of this.publishers) {
      p.start();
      await sleep(step);
    }
  }

  /** Frames sent so far, all cameras. */
  get sent(): number {
    return this.publishers.reduce((a, p) => a + p.stats.sent, 0);
  }

  /** Frames a publisher could not send on time, or that the daemon refused. */
  get late(): number {
    return this.publishers.reduce((a, p) => a + p.stats.late, 0);
  }

  get errors(): number {
    return this.publishers.reduce((a, p) => a + p.stats.errors, 0);
  }

  async close(): Promise<void> {
    for (const p of this.publishers) p.stop();
    await Promise.all(this.publishers.map((p) => p.close()));
  }
}
