export interface SlowOptions {
  /** Buffered bytes above which a sampled viewer skips frames. */
  softBytes: number;
  /** Buffered bytes that, held for longer than slowCloseMs, close the viewer. */
  hardBytes: number;
  slowCloseMs: number;
  /**
   * The soft limit of a viewer of live video, on every transport: a keyframe, or the cached
   * GOP a new viewer is sent, is a burst far larger than one JPEG that a healthy link drains
   * in a moment. Judging it by `softBytes` (or by one refused HTTP write) would skip a healthy
   * viewer to the next keyframe again and again.
   */
  videoSoftBytes: number;
}

export type SlowChange = 'slow' | 'recovered' | 'close' | undefined;

/**
 * How a transport tells the session that it is behind.
 * - `sampled`: it can report its buffered bytes at any time (uWS `getBufferedAmount()` on a
 *   WebSocket); the sweep reads them, and the viewer is slow above `softBytes`.
 * - `signalled`: it only reports that a write had to be buffered, and later that it drained
 *   (uWS `res.write() === false`, then `onWritable` on an HTTP response); slow in between.
 */
export type Backpressure = 'sampled' | 'signalled';

/**
 * One viewer's slowness, for every transport. A sampled viewer enters slow above softBytes
 * and leaves at or below softBytes/2 (a gap, so a viewer on the edge does not toggle every
 * sample); a signalled one enters on a refused write and leaves when it drains. Either is
 * closed once its buffered bytes have stayed over hardBytes for slowCloseMs.
 *
 * @example
 *   const s = new SlowState({ softBytes: 1024, videoSoftBytes: 4096, hardBytes: 4096, slowCloseMs: 1000 }, 'sampled');
 *   s.observe(2000, 0) // 'slow'
 *   s.observe(5000, 100); s.observe(5000, 1100) // undefined, then 'close'
 */
export class SlowState {
  slow = false;
  /**
   * While slow: the seq of each frame topic's newest frame when the viewer went slow, so on
   * recovery it is sent only the topics that moved on. Kept by the session.
   */
  delivered: Map<string, number> | undefined;
  private overHardSince = 0;
  /** Set by the session while it receives live video: judged by bytes held against `videoSoftBytes`. */
  video = false;

  constructor(
    private readonly opts: SlowOptions,
    private readonly mode: Backpressure,
  ) {}

  /** One sample of the bytes the transport holds for this viewer. */
  observe(buffered: number, now: number): SlowChange {
    if (buffered > this.opts.hardBytes) {
      if (!this.overHardSince) this.overHardSince = now;
      else if (now - this.overHardSince >= this.opts.slowCloseMs) return 'close';
    } else {
      this.overHardSince = 0;
    }
    // A signalled transport's bytes only grow until it drains (drained() recovers it).
    if (this.mode === 'signalled' && !this.video) return undefined;
    const soft = this.video ? this.opts.videoSoftBytes : this.opts.softBytes;
    if (!this.slow && buffered > soft) {
      this.slow = true;
      return 'slow';
    }
    if (this.slow && this.mode === 'sampled' && buffered <= soft / 2) {
      this.slow = false;
      return 'recovered';
    }
    return undefined;
  }

  /** A signalled transport had to buffer a write. */
  refused(): SlowChange {
    if (this.mode === 'sampled' || this.slow || this.video) return undefined;
    this.slow = true;
    return 'slow';
  }

  /** A signalled transport can take more: whatever it held has gone out. */
  drained(): SlowChange {
    if (this.mode === 'sampled') return undefined;
    this.overHardSince = 0;
    if (!this.slow) return undefined;
    this.slow = false;
    return 'recovered';
  }
}
