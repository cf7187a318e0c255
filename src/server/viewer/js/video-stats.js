// @ts-check
/**
 * What an MSE tile knows about its video, for the stats line, the data attributes and the
 * benches: frames presented, the latest capture → display latency and its mean over a
 * window, the time from opening the transport to the first picture, and seq skips (a slow
 * viewer resumed at a keyframe). DOM-free, so it is unit-tested in Node.
 */

/** Latencies kept for a bench to read (`drainLatencies`): 5 min at 30 fps; older ones are dropped. */
const LOG_CAPACITY = 9_000;

export class VideoStats {
  /** @param {number} windowMs  sliding window for the mean latency */
  constructor(windowMs) {
    this.windowMs = windowMs;
    /** Frames the browser presented (requestVideoFrameCallback). */
    this.presented = 0;
    /** @type {number | undefined} ms, the newest frame's */
    this.latencyMs = undefined;
    /** @type {number | undefined} ms from the transport's open to the first presented frame */
    this.firstPictureMs = undefined;
    /** Fragments whose seq jumped: the server skipped this viewer to a later keyframe. */
    this.skips = 0;
    /** The player started over (a new init segment, a quota or decode error). */
    this.resets = 0;
    /** @type {number | undefined} */
    this.lastSeq = undefined;
    /** (time, latency) within the window, oldest first. @type {{ at: number, ms: number }[]} */
    this.recent = [];
    /** Every latency since the last drain, for a bench's percentiles. @type {number[]} */
    this.log = [];
    this.logDropped = 0;
  }

  /**
   * A fragment arrived: counts a skip when its seq jumps past the next one.
   * @param {number} seq
   */
  fragment(seq) {
    if (this.lastSeq !== undefined && seq > this.lastSeq + 1) this.skips++;
    if (this.lastSeq === undefined || seq > this.lastSeq) this.lastSeq = seq;
  }

  /**
   * The stream restarted (new init: its seq and media time may start over), or a new connection.
   */
  restart() {
    this.lastSeq = undefined;
  }

  /**
   * A frame reached the screen.
   * @param {number} now  Date.now()
   * @param {number | undefined} latencyMs  capture → display; undefined when its capture time is unknown
   * @param {number | undefined} sinceOpenMs  ms since the transport opened, for the first picture
   */
  present(now, latencyMs, sinceOpenMs) {
    this.presented++;
    if (this.firstPictureMs === undefined && sinceOpenMs !== undefined) this.firstPictureMs = sinceOpenMs;
    if (latencyMs === undefined || !Number.isFinite(latencyMs)) return;
    this.latencyMs = latencyMs;
    this.recent.push({ at: now, ms: latencyMs });
    if (this.log.length < LOG_CAPACITY) this.log.push(latencyMs);
    else this.logDropped++;
    this.expire(now);
  }

  /** @param {number} now */
  expire(now) {
    const cutoff = now - this.windowMs;
    let n = 0;
    while (n < this.recent.length && (this.recent[n]?.at ?? 0) < cutoff) n++;
    if (n) this.recent.splice(0, n);
  }

  /** Mean latency over the window, ms; undefined when none. @param {number} now */
  meanLatency(now) {
    this.expire(now);
    if (!this.recent.length) return undefined;
    return this.recent.reduce((s, r) => s + r.ms, 0) / this.recent.length;
  }

  /**
   * Every latency measured since the last call, and how many did not fit the log.
   * @returns {{ latencies: number[], dropped: number }}
   * @example const { latencies } = stats.drainLatencies(); // a bench's 60 s of samples
   */
  drainLatencies() {
    const out = { latencies: this.log, dropped: this.logDropped };
    this.log = [];
    this.logDropped = 0;
    return out;
  }
}
