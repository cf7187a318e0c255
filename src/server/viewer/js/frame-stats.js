// @ts-check
/**
 * A tile's frame statistics: frames, drops, fps and latency. DOM-free, so the drop rule is
 * unit-tested in Node (test/viewer-lists.test.ts).
 *
 * Drops are seq gaps between live frames of one concrete topic. The first frame a
 * subscriber gets is the server's cached one (marked `cached`; for MJPEG, which has no flag,
 * the transport marks the first part of each topic), and it can be up to about 1 s old when
 * nobody was watching that variant: the gap from it to the next live frame is frames the
 * viewer was never sent, not frames it lost. The gap *into* a cached frame still counts: a
 * viewer that was skipped as slow gets the newest frame back as a cached one, and the
 * frames in between were dropped for it.
 */

/** Frames kept for fps and latency: 2 s at up to 128 fps; older ones fall out. */
const CAPACITY = 256;

export class FrameStats {
  /** @param {number} windowMs  sliding window for fps and latency */
  constructor(windowMs) {
    this.windowMs = windowMs;
    this.frames = 0;
    this.drops = 0;
    /** seq of the newest frame, kept across reconnects (data-seq). @type {number | undefined} */
    this.seq = undefined;
    /** Drop baseline: the topic and seq the next frame is compared with. */
    /** @type {string | undefined} */
    this.topic = undefined;
    /** @type {number | undefined} */
    this.prevSeq = undefined;
    this.lastWasCached = false;
    this.lastFrameAt = 0;
    // A ring of arrival times and latencies (NaN: not measured); `head` is the oldest entry.
    this.times = new Float64Array(CAPACITY);
    this.latencies = new Float64Array(CAPACITY);
    this.head = 0;
    this.size = 0;
  }

  /**
   * Counts one frame.
   * @param {{topic: string, seq: number, ts: number, cached: boolean}} frame
   * @param {number} now  Date.now() at arrival
   */
  add(frame, now) {
    // Frames of another concrete topic (auto switched): seq restarts its comparison there.
    if (frame.topic !== this.topic) {
      this.topic = frame.topic;
      this.prevSeq = undefined;
    }
    const prev = this.prevSeq;
    if (prev !== undefined && frame.seq <= prev) return; // a repeat or an older frame: not new
    if (prev !== undefined && !this.lastWasCached) this.drops += frame.seq - prev - 1;
    this.prevSeq = frame.seq;
    this.seq = frame.seq;
    this.lastWasCached = frame.cached;
    this.frames++;
    this.lastFrameAt = now;
    // A cached frame's age says how long ago the camera captured it, not how late it came.
    this.push(now, frame.cached ? Number.NaN : now - frame.ts);
  }

  /**
   * The next frame starts a new baseline: a new connection, or a `variant` record (a new
   * concrete topic is coming, whose first frame is a cached one).
   */
  resetSeq() {
    this.topic = undefined;
    this.prevSeq = undefined;
  }

  /** @param {number} t @param {number} latency */
  push(t, latency) {
    if (this.size === CAPACITY) {
      this.head = (this.head + 1) % CAPACITY;
      this.size--;
    }
    const at = (this.head + this.size) % CAPACITY;
    this.times[at] = t;
    this.latencies[at] = latency;
    this.size++;
  }

  /** @param {number} now */
  expire(now) {
    const cutoff = now - this.windowMs;
    while (this.size > 0 && (this.times[this.head] ?? 0) < cutoff) {
      this.head = (this.head + 1) % CAPACITY;
      this.size--;
    }
  }

  /** Frames per second over the window, 0 with fewer than two frames. @param {number} now */
  fps(now) {
    this.expire(now);
    if (this.size < 2) return 0;
    const first = this.times[this.head] ?? 0;
    const last = this.times[(this.head + this.size - 1) % CAPACITY] ?? 0;
    return ((this.size - 1) * 1000) / Math.max(1, last - first);
  }

  /** Mean capture → arrival latency over the window, in ms; undefined when none was measured. @param {number} now */
  latency(now) {
    this.expire(now);
    let sum = 0;
    let n = 0;
    for (let i = 0; i < this.size; i++) {
      const l = this.latencies[(this.head + i) % CAPACITY] ?? Number.NaN;
      if (!Number.isNaN(l)) {
        sum += l;
        n++;
      }
    }
    return n ? sum / n : undefined;
  }
}
