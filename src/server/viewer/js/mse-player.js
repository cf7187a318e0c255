// @ts-check
/**
 * Plays a live fMP4 H.264 stream in a <video> through Media Source Extensions: one
 * MediaSource per init segment, one SourceBuffer in `segments` mode (media times as the
 * fragments carry them, so a presented frame's `mediaTime` maps back to its capture time),
 * appends queued while the buffer is updating, a buffer trimmed to ~3 s behind playback, and
 * the live edge chased by playback rate or seek (live-edge.js decides). Each presented frame
 * is reported with its capture → display latency, from requestVideoFrameCallback.
 *
 * Failures restart the MediaSource from the same init segment and wait for the next keyframe
 * (a quota error, a decode error, a full queue); too many restarts in a row give up, and the
 * tile reconnects with backoff.
 */
import { CaptureClock, liveEdgeAction, mp4Type, trimRange } from './live-edge.js';

/** Fragments waiting for the SourceBuffer: past these the player is not keeping up (hidden tab, slow decoder). */
const MAX_QUEUE = 240;
const MAX_QUEUE_BYTES = 16 * 1024 * 1024;
/** Restarts tolerated within RESET_WINDOW_MS before the player gives up on the connection. */
const MAX_RESETS = 4;
const RESET_WINDOW_MS = 30_000;
/**
 * With a cached GOP appended and no live fragment yet, how long to wait for one before showing
 * the newest cached frame: the first live fragment comes within a frame interval, and seeking
 * once, next to it, makes the first picture a live one instead of a frame up to a GOP old.
 */
const START_WAIT_MS = 300;

/**
 * The MediaSource constructor this browser has: the standard one, or Safari's
 * ManagedMediaSource (iOS has only that one); undefined without MSE.
 * @returns {typeof MediaSource | undefined}
 */
export function mediaSourceClass() {
  const g = /** @type {{ MediaSource?: typeof MediaSource, ManagedMediaSource?: typeof MediaSource }} */ (
    /** @type {unknown} */ (globalThis)
  );
  return g.MediaSource ?? g.ManagedMediaSource;
}

/**
 * @typedef {object} Presented  one frame on screen
 * @property {number | undefined} latencyMs  capture → expected display time; undefined before the capture time is known
 * @property {number} sinceOpenMs  from the transport's open to this frame's display
 * @property {number} width
 * @property {number} height
 *
 * @typedef {object} PlayerEvents
 * @property {(p: Presented) => void} presented
 * @property {(reason: string) => void} reset  the player started over, and waits for a keyframe
 * @property {(reason: string) => void} fail  give up: the tile reconnects
 */

export class MsePlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {PlayerEvents} on
   * @param {number} openedAt  performance.now() when the transport opened
   */
  constructor(video, on, openedAt) {
    this.video = video;
    this.on = on;
    this.openedAt = openedAt;
    this.clock = new CaptureClock();
    /** @type {import('./video-records.js').VideoInit | undefined} */
    this.init = undefined;
    /** @type {MediaSource | undefined} */
    this.ms = undefined;
    /** @type {SourceBuffer | undefined} */
    this.sb = undefined;
    /** @type {string | undefined} */
    this.objectUrl = undefined;
    /** @type {import('./video-records.js').VideoFragment[]} */
    this.queue = [];
    this.queueBytes = 0;
    /** Fragments before the first keyframe cannot be decoded: dropped until one comes. */
    this.waitKey = true;
    /** No live (non-cached) fragment appended yet: seek over the cached GOP instead of playing it fast. */
    this.starting = true;
    /** Whether the fragment being appended is live. */
    this.appendingLive = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} while starting: gives up waiting for a live fragment */
    this.startTimer = undefined;
    this.startWaitOver = false;
    /** @type {number[]} Date.now() of recent restarts */
    this.resetTimes = [];
    this.seeks = 0;
    this.closed = false;
    /** Listeners on the video element, removed on close. */
    this.listening = new AbortController();
    /** A MediaSource has opened on this element: the page may load blob: media. */
    this.everOpened = false;
    video.addEventListener('error', () => this.onMediaError(), { signal: this.listening.signal });
    this.watchFrames();
  }

  /**
   * A new stream: a new MediaSource, since media time restarts near 0 with a new init
   * segment. The same init again (a resubscribe) changes nothing.
   * @param {import('./video-records.js').VideoInit} init
   */
  start(init) {
    if (this.closed) return;
    if (this.init && this.ms && sameBytes(this.init.data, init.data)) return;
    this.init = init;
    this.open();
  }

  /** (Re)creates the MediaSource for the current init segment. */
  open() {
    const init = this.init;
    const MS = mediaSourceClass();
    if (!init || !MS) return;
    this.detach();
    this.clock.clear();
    this.waitKey = true;
    this.starting = true;
    this.startWaitOver = false;
    const ms = new MS();
    this.ms = ms;
    // ManagedMediaSource plays only with remote playback (AirPlay) off or given its own source.
    if (MS !== globalThis.MediaSource) this.video.disableRemotePlayback = true;
    this.objectUrl = URL.createObjectURL(ms);
    ms.addEventListener(
      'sourceopen',
      () => {
        if (ms !== this.ms || this.closed) return;
        this.onSourceOpen(ms, init);
      },
      { once: true },
    );
    this.video.src = this.objectUrl;
  }

  onMediaError() {
    const code = this.video.error?.code;
    // Refused before any MediaSource opened: restarting cannot help. The usual cause is a
    // Content-Security-Policy whose media-src does not allow blob: URLs.
    if (code === MediaError.MEDIA_ERR_SRC_NOT_SUPPORTED && !this.everOpened) {
      this.on.fail(
        'the browser would not load the MediaSource (does the page policy allow media-src blob:?)',
      );
      return;
    }
    this.reset(`media error ${code ?? '?'}: ${this.video.error?.message || 'no detail'}`);
  }

  /** @param {MediaSource} ms @param {import('./video-records.js').VideoInit} init */
  onSourceOpen(ms, init) {
    this.everOpened = true;
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = undefined;
    let sb;
    try {
      sb = ms.addSourceBuffer(mp4Type(init.codec));
    } catch (err) {
      // The server picked from the codecs this page offered, so this is a browser that lied.
      this.on.fail(`cannot play ${init.codec}: ${err instanceof Error ? err.message : err}`);
      return;
    }
    sb.mode = 'segments';
    this.sb = sb;
    sb.addEventListener('updateend', () => {
      if (sb !== this.sb) return;
      if (this.appendingLive) {
        this.starting = false;
        clearTimeout(this.startTimer);
        this.startTimer = undefined;
      }
      this.chase();
      this.pump();
    });
    sb.addEventListener('error', () => {
      if (sb === this.sb) this.reset('append failed');
    });
    this.append(init.data, false);
    // Muted, so autoplay is allowed; a refusal is shown rather than retried.
    this.video.play().catch((/** @type {unknown} */ err) => {
      if (!this.closed && err instanceof Error && err.name === 'NotAllowedError')
        this.on.fail(`the browser refused to play: ${err.message}`);
    });
  }

  /** @param {import('./video-records.js').VideoFragment} f */
  fragment(f) {
    if (this.closed || !this.ms) return;
    if (this.waitKey) {
      if (!f.keyframe) return;
      this.waitKey = false;
    }
    if (this.queue.length >= MAX_QUEUE || this.queueBytes + f.data.length > MAX_QUEUE_BYTES) {
      this.reset(`${this.queue.length} fragments waiting for the SourceBuffer`);
      return;
    }
    this.clock.add(f.pts, f.ts);
    this.queue.push(f);
    this.queueBytes += f.data.length;
    this.pump();
  }

  /** Appends the next fragment, or trims the buffer first, when the SourceBuffer is free. */
  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || this.ms?.readyState !== 'open') return;
    const b = sb.buffered;
    const trim = b.length ? trimRange(b.start(0), this.video.currentTime) : undefined;
    if (trim) {
      sb.remove(trim[0], trim[1]);
      return; // updateend pumps again
    }
    const next = this.queue.shift();
    if (!next) return;
    this.queueBytes -= next.data.length;
    this.append(next.data, !next.cached);
  }

  /** @param {Uint8Array} data @param {boolean} live */
  append(data, live) {
    const sb = this.sb;
    if (!sb) return;
    this.appendingLive = live;
    try {
      sb.appendBuffer(/** @type {Uint8Array<ArrayBuffer>} */ (data));
    } catch (err) {
      // QuotaExceededError: the buffer is full even after trimming. Anything else: the
      // MediaSource broke. Both start over from the init segment.
      this.reset(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    }
  }

  /** Seeks or changes the playback rate to stay near the newest buffered media. */
  chase() {
    const sb = this.sb;
    const v = this.video;
    if (!sb || v.seeking) return;
    const b = sb.buffered;
    if (!b.length) return;
    // Only the cached GOP so far: wait for the first live fragment (or START_WAIT_MS) and then
    // seek once, to the edge; seeking into the GOP first would show an old frame.
    if (this.starting && !this.startWaitOver) {
      this.startTimer ??= setTimeout(() => {
        this.startTimer = undefined;
        this.startWaitOver = true;
        this.chase();
        this.pump();
      }, START_WAIT_MS);
      return;
    }
    const last = b.length - 1;
    const act = liveEdgeAction({
      currentTime: v.currentTime,
      start: b.start(last),
      end: b.end(last),
      rate: v.playbackRate,
      starting: this.starting,
    });
    if (act.seekTo !== undefined) {
      v.currentTime = act.seekTo;
      this.seeks++;
    }
    if (v.playbackRate !== act.rate) v.playbackRate = act.rate;
  }

  /**
   * Starts over from the init segment and waits for a keyframe; gives up (the tile
   * reconnects) after MAX_RESETS in RESET_WINDOW_MS.
   * @param {string} reason
   */
  reset(reason) {
    if (this.closed) return;
    const now = Date.now();
    this.resetTimes = this.resetTimes.filter((t) => now - t < RESET_WINDOW_MS);
    this.resetTimes.push(now);
    if (this.resetTimes.length > MAX_RESETS) {
      this.on.fail(
        `video player: ${reason} (${this.resetTimes.length} restarts in ${RESET_WINDOW_MS / 1000} s)`,
      );
      return;
    }
    this.on.reset(reason);
    this.open();
  }

  /** Reports every presented frame, with its latency, from requestVideoFrameCallback. */
  watchFrames() {
    const v = this.video;
    if (typeof v.requestVideoFrameCallback !== 'function') {
      // Without it (older Firefox): one report per timeupdate, with the current time's latency.
      v.addEventListener(
        'timeupdate',
        () => this.report(v.currentTime, performance.now(), v.videoWidth, v.videoHeight),
        {
          signal: this.listening.signal,
        },
      );
      return;
    }
    /** @type {VideoFrameRequestCallback} */
    const onFrame = (_now, md) => {
      if (this.closed) return;
      this.rvfc = v.requestVideoFrameCallback(onFrame);
      this.report(md.mediaTime, md.expectedDisplayTime, md.width, md.height);
    };
    /** @type {number | undefined} */
    this.rvfc = v.requestVideoFrameCallback(onFrame);
  }

  /**
   * @param {number} mediaTime  seconds
   * @param {number} shownAt  performance.now() time of display
   * @param {number} width
   * @param {number} height
   */
  report(mediaTime, shownAt, width, height) {
    const capture = this.clock.captureAt(mediaTime);
    this.on.presented({
      latencyMs: capture === undefined ? undefined : performance.timeOrigin + shownAt - capture,
      sinceOpenMs: shownAt - this.openedAt,
      width,
      height,
    });
  }

  /** Drops the MediaSource and anything queued for it. */
  detach() {
    clearTimeout(this.startTimer);
    this.startTimer = undefined;
    this.sb = undefined;
    this.ms = undefined;
    this.queue = [];
    this.queueBytes = 0;
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = undefined;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.listening.abort();
    if (this.rvfc !== undefined) this.video.cancelVideoFrameCallback(this.rvfc);
    this.detach();
    const v = this.video;
    v.playbackRate = 1;
    // Without a source the element lets go of the MediaSource and its decoder.
    v.removeAttribute('src');
    v.load();
  }
}

/** @param {Uint8Array} a @param {Uint8Array} b */
function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
