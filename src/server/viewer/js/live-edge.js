// @ts-check
/**
 * The MSE player's decisions, without the DOM, so Node tests can run them: which H.264 codec
 * strings to offer the server, how a presented frame's media time maps back to the time its
 * camera captured it, and when to seek or speed up to stay near the live edge.
 *
 * Why chase the edge at all: a browser plays MSE at 1×, so every stall (a late fragment, a
 * busy main thread) adds to the latency for good; MSE players are known to drift seconds
 * behind live over an hour (go2rtc #1277, Frigate #13058). A few percent faster playback
 * removes a small lag without a visible jump; a large one is cheaper to seek over.
 */

/** avc1 profiles the server may send (x264's baseline, main and high, as `profile_idc` + constraint flags). */
const AVC_PROFILES = ['42e0', '4d40', '6400'];
/** H.264 levels 3.0–5.2 and 1.3 (`level_idc` in hex): 240p up to 4K. */
const AVC_LEVELS = ['1e', '1f', '28', '29', '2a', '32', '33', '34'];

/**
 * Every codec string the page may offer, lowercase as the server writes them (`avc1.64001e`);
 * the browser is asked about each one and the server picks from what it accepts.
 * @type {readonly string[]}
 */
export const AVC_CANDIDATES = AVC_PROFILES.flatMap((p) => AVC_LEVELS.map((l) => `avc1.${p}${l}`));

/**
 * The MIME type a SourceBuffer is created with for an fMP4 H.264 stream.
 * @param {string} codec
 * @example mp4Type('avc1.64001e') // 'video/mp4; codecs="avc1.64001e"'
 */
export const mp4Type = (codec) => `video/mp4; codecs="${codec}"`;

/**
 * The candidates this browser can play, to send with the subscription.
 * @param {(type: string) => boolean} isTypeSupported  `MediaSource.isTypeSupported` (or ManagedMediaSource's)
 * @param {readonly string[]} [candidates]
 * @returns {string[]}
 * @example supportedCodecs((t) => t.includes('42e0')) // ['avc1.42e01e', 'avc1.42e01f', …]
 */
export function supportedCodecs(isTypeSupported, candidates = AVC_CANDIDATES) {
  return candidates.filter((c) => {
    try {
      return isTypeSupported(mp4Type(c));
    } catch {
      return false; // a browser that throws on an odd string cannot play it either
    }
  });
}

/** Fragments remembered for the map: 20 s at 30 fps, far more than the ~3 s the buffer keeps. */
const CLOCK_CAPACITY = 600;

/**
 * Fragment media time → capture time. Each fragment brings its media time (`pts`, seconds)
 * and the daemon's wall clock when ffmpeg handed it over (`ts`, ms since the epoch); a frame
 * presented at `mediaTime` was captured at the `ts` of the fragment with the greatest
 * `pts ≤ mediaTime`, plus the media time elapsed since that fragment began (one fragment may
 * hold several frames). Bounded: the oldest fragments fall out.
 */
export class CaptureClock {
  constructor(capacity = CLOCK_CAPACITY) {
    this.capacity = capacity;
    /** Ascending media times, and the capture time of each. @type {number[]} */
    this.pts = [];
    /** @type {number[]} */
    this.ts = [];
  }

  /**
   * Remembers one fragment. A media time at or before the newest one means the stream
   * restarted (a new init segment, media time near 0 again): what came before is forgotten.
   * @param {number} pts  seconds
   * @param {number} ts   ms since the epoch
   */
  add(pts, ts) {
    if (!Number.isFinite(pts) || !Number.isFinite(ts)) return;
    const last = this.pts.length - 1;
    if (last >= 0 && pts <= (this.pts[last] ?? 0)) this.clear();
    this.pts.push(pts);
    this.ts.push(ts);
    if (this.pts.length > this.capacity) {
      // Drop a batch at once: one splice per `capacity / 4` fragments, not one per fragment.
      const n = this.pts.length - Math.floor((this.capacity * 3) / 4);
      this.pts.splice(0, n);
      this.ts.splice(0, n);
    }
  }

  clear() {
    this.pts.length = 0;
    this.ts.length = 0;
  }

  /**
   * When the frame at `mediaTime` was captured, in ms since the epoch; undefined before the
   * first fragment the clock knows.
   * @param {number} mediaTime  seconds
   * @returns {number | undefined}
   * @example
   *   const c = new CaptureClock(); c.add(10, 1_000); c.add(10.5, 1_500);
   *   c.captureAt(10.25) // 1250
   */
  captureAt(mediaTime) {
    // Binary search for the last pts ≤ mediaTime.
    let lo = 0;
    let hi = this.pts.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.pts[mid] ?? 0) <= mediaTime + 1e-6) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (at < 0) return undefined;
    return (this.ts[at] ?? 0) + (mediaTime - (this.pts[at] ?? 0)) * 1000;
  }
}

/**
 * How the player chases the live edge, in seconds of buffered media ahead of `currentTime`.
 * @typedef {object} LiveEdgeTuning
 * @property {number} margin     where a seek lands, behind the newest buffered media: room for
 *   one late fragment before playback would stall (at 15 fps a fragment is 0.067 s)
 * @property {number} target     a lag this small needs nothing
 * @property {number} catchUp    above this lag, play faster until back at `target`
 * @property {number} seek       above this lag, seek instead (a rate would take too long)
 * @property {number} startSeek  before the first live fragment (a camera that sent only its
 *   cached GOP): seek over any lag above this, so the GOP is not played at speed
 * @property {number} minRate
 * @property {number} maxRate
 * @property {number} gain       extra rate per second of lag above `target`
 */

/**
 * Measured in Chromium on a 15 fps stream: playback at 1× only ever loses ground (each late
 * fragment stalls it, nothing wins it back), so the lag settles just under `catchUp`, and
 * `catchUp` is most of the player's share of the latency: 0.5 s gave a steady 0.45 s, 0.3 s
 * 0.1–0.25 s.
 * @type {LiveEdgeTuning}
 */
export const LIVE_EDGE = {
  margin: 0.1,
  target: 0.12,
  catchUp: 0.2,
  seek: 1.5,
  startSeek: 0.3,
  minRate: 1.05,
  maxRate: 1.25,
  gain: 0.5,
};

/**
 * @typedef {object} PlaybackState
 * @property {number} currentTime
 * @property {number} start  start of the last buffered range (the one being appended to)
 * @property {number} end    end of the last buffered range: the live edge
 * @property {number} rate   the playbackRate now
 * @property {boolean} starting  no live (non-cached) fragment appended yet
 */

/**
 * What to do now: seek somewhere, and/or which playback rate to use.
 *
 * - Outside the last buffered range (before the first seek, after a trim, or when a slow
 *   viewer's skip left a gap the browser will not jump): seek into it.
 * - Starting: seek close to the edge whenever the cached GOP put us behind.
 * - More than `seek` behind: seek. More than `catchUp` behind: speed up, in proportion to
 *   the lag, and keep it up until back at `target` (hysteresis, so the rate does not flap).
 *
 * @param {PlaybackState} s
 * @param {LiveEdgeTuning} [t]
 * @returns {{ seekTo?: number, rate: number }}
 * @example liveEdgeAction({ currentTime: 0, start: 12, end: 14, rate: 1, starting: true }) // { seekTo: 13.9, rate: 1 }
 */
export function liveEdgeAction(s, t = LIVE_EDGE) {
  const landing = Math.max(s.start, s.end - t.margin);
  const lag = s.end - s.currentTime;
  if (s.currentTime < s.start || s.currentTime > s.end + t.seek) return { seekTo: landing, rate: 1 };
  if (lag > (s.starting ? t.startSeek : t.seek)) return { seekTo: landing, rate: 1 };
  const catchingUp = s.rate > 1 ? lag > t.target : lag > t.catchUp;
  if (!catchingUp) return { rate: 1 };
  const rate = Math.min(t.maxRate, Math.max(t.minRate, 1 + (lag - t.target) * t.gain));
  return { rate: Math.round(rate * 100) / 100 };
}

/**
 * The range to remove so the buffer keeps at most `keep` seconds behind `currentTime`
 * (a browser otherwise holds minutes of a live stream, and a small quota fails appends).
 * Removes only in steps of at least `step` seconds, so it is not one remove per fragment.
 * @param {number} bufferedStart  start of the first buffered range
 * @param {number} currentTime
 * @param {number} [keep]
 * @param {number} [step]
 * @returns {[number, number] | undefined}
 * @example trimRange(0, 10) // [0, 7]; trimRange(6.5, 10) // undefined
 */
export function trimRange(bufferedStart, currentTime, keep = 3, step = 1) {
  const upTo = currentTime - keep;
  return upTo - bufferedStart >= step ? [bufferedStart, upTo] : undefined;
}
