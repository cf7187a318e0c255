// @ts-check
/**
 * One camera on the wall: its connection (through a transport module), reconnects with
 * capped exponential backoff plus jitter, stall and dead-connection detection, frame
 * statistics, malformed-record accounting and the voice dot. The DOM is TileView's.
 *
 * An `mse` tile plays `cam/<id>/video` in its <video> instead of drawing JPEGs: its fragments
 * count as frames (fps, drops, stall), and its latency is capture → display of the presented
 * frames (VideoStats), not capture → arrival.
 */
import { fmtMs } from './format.js';
import { FrameStats } from './frame-stats.js';
import { pick, TRANSPORTS, VARIANTS } from './lists.js';
import { MalformedCount } from './malformed.js';
import { backoffDelay, explainFailure } from './net.js';
import { TileView } from './tile-view.js';
import { OPEN_TRANSPORT } from './transports.js';
import { VideoStats } from './video-stats.js';

/** A connection that delivered something and then stayed up this long resets the backoff. */
const STABLE_MS = 5_000;
/** Connected but no frame for this long: the tile shows "stalled". */
const STALL_MS = 3_000;
/** Quiet for this long: ask for a sign of life, where the transport can (WS ping). */
const PING_AFTER_MS = 8_000;
/**
 * Connected but nothing at all for this long: reconnect. SSE sends a heartbeat every 15 s
 * that EventSource does not surface, so it gets longer; MJPEG has no keep-alive at all.
 * @type {Record<import('./lists.js').TransportName, number>}
 */
const DEAD_MS = { ws: 20_000, sse: 40_000, mjpeg: 20_000, mse: 20_000 };
/** Sliding window for fps and latency. */
const WINDOW_MS = 2_000;

/**
 * @typedef {object} TileContext  what every tile of a wall shares
 * @property {HTMLTemplateElement} template
 * @property {(path: string, query?: Record<string, string>) => URL} url
 * @property {string} token
 * @property {import('./event-socket.js').EventSocket} events
 */

export class Tile {
  /**
   * @param {TileContext} ctx
   * @param {string} camera
   * @param {import('./lists.js').TransportName} transport
   * @param {import('./lists.js').Variant} variant
   */
  constructor(ctx, camera, transport, variant) {
    this.ctx = ctx;
    this.camera = camera;
    this.transport = transport;
    this.variant = variant;
    this.view = new TileView(ctx.template, camera, (c) => this.set(c.transport, c.variant));
    this.el = this.view.el;

    /** Bumped on every (re)connect and disconnect; a host of an older connection goes quiet. */
    this.gen = 0;
    /** @type {import('./transport.js').Connection | undefined} */
    this.conn = undefined;
    this.attempt = 0;
    /** Retries scheduled since the page loaded (data-retries). */
    this.retries = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    this.retryAt = 0;
    this.state = 'idle';
    this.error = '';
    /**
     * seq of the last cam/<id>/vad event seen, to resume events missed while reconnecting.
     * @type {number | undefined}
     */
    this.vadSeq = undefined;
    /** @type {string | undefined} */
    this.vadEpoch = undefined;
    this.vadEvents = 0;
    /** Frames drawn on the canvas since the page loaded (data-painted): the picture is moving. */
    this.painted = 0;
    /** @type {(rec: import('./records.js').VadRecord) => void} */
    this.vadHandler = (rec) => this.onVad(rec);
    /** Off-screen tiles (big walls) and hidden pages keep their stats but skip decoding. */
    this.visible = true;
    /** Since the page loaded, across transports. */
    this.malformed = new MalformedCount(() => `tile ${this.camera} (${this.transport})`);
    this.stats = new FrameStats(WINDOW_MS);
    this.video = new VideoStats(WINDOW_MS);
    this.width = 0;
    this.height = 0;
    this.activeVariant = '';
    this.connectedAt = 0;
    this.lastMessageAt = 0;
  }

  /** A new transport or variant: numbers from the old one would mislead. */
  resetStats() {
    this.stats = new FrameStats(WINDOW_MS);
    /** Presented video frames and their latency (mse only). */
    this.video = new VideoStats(WINDOW_MS);
    this.width = 0;
    this.height = 0;
    /** What `auto` is showing right now: the variant of the last frame's concrete topic. */
    this.activeVariant = '';
    this.connectedAt = 0;
    this.lastMessageAt = 0;
  }

  /**
   * Picks a transport and variant (unknown values keep the current one) and reconnects.
   * @param {string} transport
   * @param {string} variant
   */
  set(transport, variant) {
    const t = pick(transport, TRANSPORTS, this.transport);
    const v = pick(variant, VARIANTS, this.variant);
    this.view.showChoice(t, v);
    // An MSE tile plays `video` whatever the variant: a new variant (the bulk select) is kept
    // for a later switch back to JPEG, without a reconnect.
    const same = t === this.transport && (v === this.variant || t === 'mse');
    if (same && this.state !== 'idle') {
      this.variant = v;
      return;
    }
    this.transport = t;
    this.variant = v;
    this.attempt = 0;
    this.resetStats();
    this.connect();
    this.tick(Date.now());
  }

  /** What the transport subscribes: `mse` plays `video` whatever the variant select says. */
  get frameTopic() {
    return `cam/${this.camera}/${this.transport === 'mse' ? 'video' : this.variant}`;
  }

  get vadTopic() {
    return `cam/${this.camera}/vad`;
  }

  // --- connection lifecycle ---------------------------------------------------------------

  connect() {
    this.disconnect();
    const gen = this.gen;
    this.setState('connecting');
    this.connectedAt = Date.now();
    this.lastMessageAt = Date.now();
    this.stats.resetSeq();
    // Time to first picture is per connection: a reconnect (or a bench's rejoin) measures anew.
    this.video.firstPictureMs = undefined;
    this.video.restart();
    // WS and SSE carry cam/<id>/vad themselves; MJPEG tiles share the page's event socket.
    if (this.transport === 'mjpeg') this.ctx.events.add(this.vadTopic, this.vadHandler);
    else this.ctx.events.remove(this.vadTopic, this.vadHandler);
    this.conn = OPEN_TRANSPORT[this.transport](this.hostFor(gen));
  }

  disconnect() {
    this.gen++;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.conn?.close();
    this.conn = undefined;
    this.view.clearPending();
  }

  /**
   * The transport's view of this tile, for one connection: once the tile has moved on,
   * every call is ignored.
   * @param {number} gen
   * @returns {import('./transport.js').TransportHost}
   */
  hostFor(gen) {
    const current = () => gen === this.gen;
    return {
      camera: this.camera,
      variant: this.variant,
      frameTopic: this.frameTopic,
      vadTopic: this.vadTopic,
      vadSeq: this.vadSeq,
      vadEpoch: this.vadEpoch,
      token: this.ctx.token,
      url: this.ctx.url,
      alive: () => {
        if (current()) this.alive();
      },
      frame: (frame) => {
        if (current()) this.onFrame(frame, gen);
      },
      vad: (rec) => {
        if (current()) this.onVad(rec);
      },
      epoch: (epoch) => {
        if (current()) this.vadEpoch = epoch;
      },
      variantChanged: (rec) => {
        if (!current()) return;
        this.activeVariant = rec.variant;
        this.stats.resetSeq();
      },
      serverError: (rec) => {
        if (!current()) return;
        this.error = `${rec.code}: ${rec.message}`;
        // No video for this camera (or none this browser can play): say so instead of "stalled".
        if (this.transport === 'mse' && rec.topic === this.frameTopic) this.setState('error');
      },
      malformed: (kind, detail) => {
        if (current()) this.malformed.add(kind, detail);
      },
      fail: (reason, explainUrl) => {
        if (current()) this.retry(reason, explainUrl);
      },
      video: {
        element: this.view.ui.video,
        init: (rec) => {
          if (!current()) return;
          this.width = rec.width;
          this.height = rec.height;
          // A new stream may restart its seq: no drop or skip across it.
          this.stats.resetSeq();
          this.video.restart();
        },
        fragment: (rec) => {
          if (current()) this.onVideoFragment(rec);
        },
        presented: (p) => {
          if (!current()) return;
          this.video.present(Date.now(), p.latencyMs, p.sinceOpenMs);
          if (p.width > 0) {
            this.width = p.width;
            this.height = p.height;
          }
        },
        reset: (reason) => {
          if (!current()) return;
          this.video.resets++;
          console.warn(`framehub wall: tile ${this.camera}: video player restarted: ${reason}`);
        },
      },
    };
  }

  /**
   * Drops the current connection and schedules the next try.
   * @param {string} reason
   * @param {string} [explainUrl]  ask this URL for the server's reason (EventSource cannot)
   */
  retry(reason, explainUrl) {
    this.disconnect();
    this.error = reason;
    const delay = backoffDelay(this.attempt++);
    this.retries++;
    this.retryAt = Date.now() + delay;
    this.setState('retrying');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delay);
    if (explainUrl) {
      const gen = this.gen;
      const label = this.transport;
      explainFailure(explainUrl).then((why) => {
        if (why && gen === this.gen) this.error = `${label}: ${why}`;
      });
    }
    this.tick(Date.now());
  }

  /** Something arrived; the first message after a stable period resets the backoff. */
  alive() {
    const now = Date.now();
    this.lastMessageAt = now;
    if (this.attempt && now - this.connectedAt > STABLE_MS) this.attempt = 0;
    if (this.state === 'connecting') this.setState('live');
  }

  // --- records ------------------------------------------------------------------------------

  /**
   * @param {import('./records.js').FrameIn} frame
   * @param {number} gen
   */
  onFrame(frame, gen) {
    const now = Date.now();
    this.lastMessageAt = now;
    this.stats.add(frame, now);
    // Frames arrive on the concrete topic, so this is what `auto` is showing right now.
    this.activeVariant = frame.topic.slice(frame.topic.lastIndexOf('/') + 1);
    if (this.state !== 'live') this.setState('live');
    if (frame.width > 0) {
      this.width = frame.width;
      this.height = frame.height;
    }
    if (!this.visible || document.hidden) return;
    this.view.draw(
      frame.bytes,
      frame.mime,
      (width, height) => {
        if (gen !== this.gen) return;
        this.painted++;
        this.width = width;
        this.height = height;
      },
      (message) => this.malformed.add('undecodable jpeg', message),
    );
  }

  /**
   * A video fragment: counted like a frame (fps, drops, stall); the player shows it.
   * @param {import('./video-records.js').VideoFragment} rec
   */
  onVideoFragment(rec) {
    const now = Date.now();
    this.lastMessageAt = now;
    this.stats.add(rec, now);
    this.video.fragment(rec.seq);
    this.activeVariant = 'video';
    if (this.state !== 'live') this.setState('live');
  }

  /**
   * Voice dot: `cam/<id>/vad` events `{state: 'speech'|'silence', dbfs, floor}`.
   * @param {import('./records.js').VadRecord} rec
   */
  onVad(rec) {
    if (rec.topic !== this.vadTopic) return;
    this.vadSeq = rec.seq;
    this.vadEvents++;
    this.view.setVad(rec.state, rec.dbfs);
  }

  // --- periodic upkeep ------------------------------------------------------------------------

  /** @param {number} now */
  tick(now) {
    if (this.conn && this.state !== 'retrying') {
      const quiet = now - this.lastMessageAt;
      if (quiet > DEAD_MS[this.transport]) {
        this.retry(`no data for ${fmtMs(quiet)}`);
        return; // retry() ticked already
      }
      if (quiet > PING_AFTER_MS) this.conn.ping?.();
      const since = this.stats.lastFrameAt || this.connectedAt;
      const stalled = now - since > STALL_MS;
      if (stalled && this.state === 'live') this.setState('stalled');
      else if (!stalled && this.state === 'stalled') this.setState('live');
    }
    this.view.render(this.snapshot(now));
  }

  /** @param {number} now @returns {import('./tile-view.js').TileSnapshot} */
  snapshot(now) {
    const s = this.stats;
    const v = this.video;
    const mse = this.transport === 'mse';
    // MSE: capture → display of presented frames; the others: capture → arrival.
    const latency = mse ? v.meanLatency(now) : s.latency(now);
    /** @type {string} */
    let shownVariant = this.variant;
    if (mse) shownVariant = 'video';
    else if (this.variant === 'auto')
      shownVariant = this.activeVariant ? `auto→${this.activeVariant}` : 'auto';
    let overlay = this.state;
    if (this.state === 'retrying')
      overlay = `retrying in ${fmtMs(Math.max(0, this.retryAt - now))} (attempt ${this.attempt})`;
    else if (this.state === 'stalled')
      overlay = `stalled: no frame for ${fmtMs(now - (s.lastFrameAt || this.connectedAt))}`;
    else if (this.state === 'error') overlay = this.error;
    return {
      state: this.state,
      overlay,
      fps: s.frames ? s.fps(now).toFixed(1) : '–',
      latency: latency === undefined ? '–' : fmtMs(latency),
      drops: s.frames ? String(s.drops) : '–',
      size: this.width ? `${this.width}×${this.height} ${shownVariant}` : shownVariant,
      error: this.state === 'live' ? '' : this.error,
      malformed: this.malformed.total ? `${this.malformed.total} malformed` : '',
      malformedDetail: this.malformed.last,
      data: {
        transport: this.transport,
        variant: this.variant,
        frames: String(s.frames),
        seq: s.seq === undefined ? '' : String(s.seq),
        drops: String(s.drops),
        retries: String(this.retries),
        vadEvents: String(this.vadEvents),
        painted: String(this.painted),
        width: String(this.width),
        height: String(this.height),
        activeVariant: this.activeVariant,
        malformed: String(this.malformed.total),
        malformedKinds: this.malformed.summary(),
        videoFrames: String(v.presented),
        latencyMs: v.latencyMs === undefined ? '' : String(Math.round(v.latencyMs)),
        firstPictureMs: v.firstPictureMs === undefined ? '' : String(Math.round(v.firstPictureMs)),
        videoSkips: String(v.skips),
        videoResets: String(v.resets),
      },
    };
  }

  /** @param {string} state */
  setState(state) {
    this.state = state;
    this.view.setState(state);
  }

  /** @param {boolean} up */
  setUp(up) {
    this.view.setUp(up);
  }
}
