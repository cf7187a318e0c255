import type { HistoryEntry } from '../hub/history.js';
import type { Frame, Hub, RecordSink } from '../hub/hub.js';
import { gapBefore, type PendingResume } from '../hub/resume.js';
import { parseTopic } from '../hub/topics.js';
import type { VideoItem } from '../hub/video-track.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { AutoVariantOptions } from './auto-variant.js';
import type { SlowOptions } from './slow-state.js';
import type { ViewerTransport } from './transport.js';
import { TransportMetrics } from './transport-metrics.js';
import type { ViewerSession } from './viewer-session.js';

/** What the viewer core needs from the daemon; the server's context is a superset. */
export interface ViewerContext {
  hub: Hub;
  metrics: Metrics;
  log: Logger;
  slow: SlowOptions;
  adaptive: AutoVariantOptions;
  maxTopicsPerConnection: number;
  /**
   * Told each time a session starts receiving a concrete topic (the cluster bus subscribes a
   * remote camera's channel on the first one). Absent: nobody needs to know.
   */
  demand?: (topic: string) => void;
}

export interface ViewerGroupOptions {
  /** How often every session is swept: buffered bytes sampled, token expiry, `auto` steps. */
  sweepIntervalMs: number;
  /** A transport that needs keep-alive bytes on an idle stream (SSE): how often, and the bytes. */
  heartbeat?: { everyMs: number; bytes(now: number): Uint8Array };
  /** Subscribers of a topic reached by the transport's native publish (uWS `numSubscribers`). */
  nativeSubscribers?(topic: string): number;
}

/** `TOO_MANY_TOPICS`, the same for a WS `sub`, a WS subscription and an SSE request. */
export interface TopicLimitError {
  code: 'TOO_MANY_TOPICS';
  message: string;
}

/**
 * The sessions of one transport, and what they share: bound metrics, the 100 ms sweep, the
 * topic limit, the count of slow viewers per frame topic (whose skipped frames are counted
 * once per publish), and, for transports without native pub/sub, the fan-out itself.
 */
export class ViewerGroup<C> implements RecordSink {
  readonly sessions = new Set<ViewerSession<C>>();
  readonly metrics: TransportMetrics;
  /** Concrete frame topic → sessions that receive it but are skipped while slow. */
  private readonly slowPerTopic = new Map<string, number>();
  /** JS fan-out: concrete topic → sessions whose transport has no native subscribe. */
  private readonly byTopic = new Map<string, Set<ViewerSession<C>>>();
  /**
   * Video topic → sessions that receive it but get no fragment until the next keyframe: slow
   * ones, ones back from slow, and new ones when no GOP is cached. Each fragment they miss is
   * counted (framehub_frames_dropped_total{reason="keyframe_wait",transport}).
   */
  private readonly videoWaiting = new Map<string, Set<ViewerSession<C>>>();
  /**
   * Event topic → sessions that resumed on it while its next seq was unknown here
   * (ResumePlan.pending), and the position each holds: they receive the topic from its next
   * event on, after the gap that event shows is owed. At most one entry per position a client sent.
   */
  private readonly eventWaiting = new Map<string, Map<ViewerSession<C>, PendingResume>>();
  private readonly topicLimit: TopicLimitError;
  private readonly timer: NodeJS.Timeout;
  private lastHeartbeat: number;
  /** The newest heartbeat bytes: also what a drained stream with nothing else to send gets. */
  keepAlive: Uint8Array | undefined;

  constructor(
    readonly ctx: ViewerContext,
    readonly transport: ViewerTransport<C>,
    readonly opts: ViewerGroupOptions,
  ) {
    this.metrics = new TransportMetrics(ctx.metrics, transport.name);
    this.topicLimit = {
      code: 'TOO_MANY_TOPICS',
      message: `at most ${ctx.maxTopicsPerConnection} topics per connection`,
    };
    this.lastHeartbeat = Date.now();
    this.keepAlive = opts.heartbeat?.bytes(this.lastHeartbeat);
    this.timer = setInterval(() => this.sweep(Date.now()), opts.sweepIntervalMs);
    this.timer.unref();
  }

  /**
   * The topic limit: undefined when a viewer may hold `count` topics, else the error to send
   * (counted under framehub_limit_rejections_total{limit="topics_per_connection"}).
   */
  tooManyTopics(count: number): TopicLimitError | undefined {
    if (count <= this.ctx.maxTopicsPerConnection) return undefined;
    this.metrics.topicLimit.inc();
    return this.topicLimit;
  }

  add(session: ViewerSession<C>): void {
    this.sessions.add(session);
    this.metrics.connections.inc();
    this.metrics.connects.inc();
  }

  /** Forgets a session; false if it was not here (never opened, or already gone). */
  remove(session: ViewerSession<C>): boolean {
    if (!this.sessions.delete(session)) return false;
    this.metrics.connections.dec();
    this.metrics.disconnects.inc();
    return true;
  }

  subscribe(session: ViewerSession<C>, topic: string): void {
    if (this.transport.subscribe) {
      this.transport.subscribe(session.conn, topic);
      return;
    }
    let subs = this.byTopic.get(topic);
    if (!subs) {
      subs = new Set();
      this.byTopic.set(topic, subs);
    }
    subs.add(session);
  }

  /** Stops a session receiving a topic; a JS topic nobody receives is forgotten, since any client may name one. */
  unsubscribe(session: ViewerSession<C>, topic: string): void {
    if (this.transport.unsubscribe) {
      this.transport.unsubscribe(session.conn, topic);
      return;
    }
    const subs = this.byTopic.get(topic);
    if (!subs) return;
    subs.delete(session);
    if (subs.size === 0) this.byTopic.delete(topic);
  }

  /** A closed session's topics: native pub/sub forgets a closed socket itself. */
  release(session: ViewerSession<C>, topics: string[]): void {
    if (this.eventWaiting.size) for (const t of topics) this.stopHolding(session, t);
    if (this.transport.subscribe) return;
    for (const t of topics) this.unsubscribe(session, t);
  }

  addSlow(topic: string, delta: number): void {
    const n = (this.slowPerTopic.get(topic) ?? 0) + delta;
    if (n > 0) this.slowPerTopic.set(topic, n);
    else this.slowPerTopic.delete(topic);
  }

  waitForKeyframe(session: ViewerSession<C>, topic: string): void {
    let waiting = this.videoWaiting.get(topic);
    if (!waiting) {
      waiting = new Set();
      this.videoWaiting.set(topic, waiting);
    }
    waiting.add(session);
  }

  /** Stops a session waiting for a keyframe; false if it was not waiting. */
  stopWaiting(session: ViewerSession<C>, topic: string): boolean {
    const waiting = this.videoWaiting.get(topic);
    if (!waiting?.delete(session)) return false;
    if (waiting.size === 0) this.videoWaiting.delete(topic);
    return true;
  }

  isWaiting(session: ViewerSession<C>, topic: string): boolean {
    return this.videoWaiting.get(topic)?.has(session) ?? false;
  }

  /** A session holds a resume position on `topic` instead of receiving it (replaces an earlier one). */
  holdForEvent(session: ViewerSession<C>, topic: string, held: PendingResume): void {
    let waiting = this.eventWaiting.get(topic);
    if (!waiting) {
      waiting = new Map();
      this.eventWaiting.set(topic, waiting);
    }
    waiting.set(session, held);
  }

  /** Forgets a session's held position on `topic`; false if it held none. */
  stopHolding(session: ViewerSession<C>, topic: string): boolean {
    const waiting = this.eventWaiting.get(topic);
    if (!waiting?.delete(session)) return false;
    if (waiting.size === 0) this.eventWaiting.delete(topic);
    return true;
  }

  /**
   * Before an event's fan-out: the sessions holding a position on its topic learn the seq that
   * follows it. Each gets the gap it is owed, if any, and is subscribed, so the fan-out (native
   * or JS) delivers the event itself right after.
   */
  beforeEvent(entry: HistoryEntry): void {
    const waiting = this.eventWaiting.get(entry.topic);
    if (!waiting) return;
    this.eventWaiting.delete(entry.topic);
    const { epoch } = this.ctx.hub;
    for (const [s, held] of waiting) {
      const gap = gapBefore(held, entry.topic, entry.seq, epoch);
      if (gap) s.write(s.framing.gap(gap));
      if (!s.closed) this.subscribe(s, entry.topic);
    }
  }

  /** A topic restarted (Hub.restartTopic): positions held on it are of the old numbering, owed a gap. */
  restartTopic(topic: string): void {
    const waiting = this.eventWaiting.get(topic);
    if (waiting) for (const [s, held] of waiting) waiting.set(s, { after: held.after, owed: 'epoch' });
  }

  /**
   * Before a video item's fan-out. A keyframe fragment subscribes every waiting session that is
   * not slow, so it receives this fragment and the GOP after it; the fragments the others miss
   * are counted. A new init segment goes to waiting sessions too, directly: they must have it
   * before the keyframe that admits them.
   */
  beforeVideo(item: VideoItem): void {
    const waiting = this.videoWaiting.get(item.topic);
    if (!waiting) return;
    if (item.kind === 'init') {
      for (const s of waiting) s.sendVideo(item, false);
      return;
    }
    if (item.keyframe) {
      for (const s of waiting) {
        if (s.slow) continue;
        waiting.delete(s);
        this.subscribe(s, item.topic);
      }
      if (waiting.size === 0) this.videoWaiting.delete(item.topic);
    }
    if (waiting.size) this.metrics.keyframeWaits.inc(waiting.size);
  }

  /** JS fan-out of a video item (transports without native pub/sub). */
  publishVideo(item: VideoItem): void {
    this.beforeVideo(item);
    const subs = this.byTopic.get(item.topic);
    if (!subs?.size) return;
    let bytes = 0;
    for (const s of subs) {
      const encoded = s.framing.video(item, false);
      if (!encoded) continue;
      s.write(encoded);
      bytes += encoded.byteLength;
    }
    this.metrics.sent(subs.size, bytes);
  }

  /** A frame was published on `topic`: every slow session receiving it skipped it. */
  countSlowDrops(topic: string): void {
    const skipped = this.slowPerTopic.get(topic);
    if (skipped) this.metrics.slowDrops.inc(skipped);
  }

  /**
   * Sessions receiving `topic`, slow ones and ones holding a resume position on it included
   * (drives which variants workers make, and which topics the cluster bus receives).
   */
  subscribers(topic: string): number {
    return (
      (this.opts.nativeSubscribers?.(topic) ?? 0) +
      (this.byTopic.get(topic)?.size ?? 0) +
      (this.slowPerTopic.get(topic) ?? 0) +
      (this.eventWaiting.get(topic)?.size ?? 0)
    );
  }

  /** JS fan-out of a frame: one framing per transport framing, cached on the frame; counted once. */
  publishFrame(frame: Frame): void {
    // Before the fan-out: a session that turns slow during it did get this frame.
    this.countSlowDrops(frame.topic);
    const subs = this.byTopic.get(frame.topic);
    if (subs?.size) {
      let frames = 0;
      let bytes = 0;
      for (const s of subs) {
        const encoded = s.framing.frame(frame, false);
        s.write(encoded);
        frames++;
        bytes += encoded.byteLength;
      }
      this.metrics.sent(frames, bytes);
    }
  }

  publishEvent(entry: HistoryEntry): void {
    this.beforeEvent(entry);
    const subs = this.byTopic.get(entry.topic);
    if (!subs) return;
    for (const s of subs) s.write(s.framing.event(entry));
  }

  /**
   * Samples every session. The heartbeat, when due, is built here once and the same bytes go
   * to every session. One session's failure is counted, logged and ends that session only.
   */
  sweep(now: number): void {
    let heartbeat: Uint8Array | undefined;
    const hb = this.opts.heartbeat;
    if (hb && now - this.lastHeartbeat >= hb.everyMs) {
      this.lastHeartbeat = now;
      heartbeat = this.keepAlive = hb.bytes(now);
    }
    for (const s of this.sessions) {
      try {
        s.sweep(now, heartbeat);
      } catch (err) {
        this.failed(s, err);
      }
    }
  }

  /** Per-session counts for the status API (not a hot path). */
  census(): { total: number; slow: number; byVariant: Record<string, number> } {
    const byVariant: Record<string, number> = {};
    let slow = 0;
    for (const s of this.sessions) {
      if (s.slow) slow++;
      for (const requested of s.requestedTopics()) {
        const t = parseTopic(requested);
        const key = t?.kind === 'auto' ? 'auto' : t?.kind === 'frame' ? t.variant : undefined;
        if (key) byVariant[key] = (byVariant[key] ?? 0) + 1;
      }
    }
    return { total: this.sessions.size, slow, byVariant };
  }

  /** Stops the sweep and ends every session (shutdown). */
  closeAll(): void {
    clearInterval(this.timer);
    for (const s of this.sessions) s.end('shutdown');
  }

  private failed(session: ViewerSession<C>, err: unknown): void {
    this.metrics.sweepErrors.inc();
    const handler = `${this.transport.name}.sweep`;
    this.ctx.log.error({ err, handler }, 'handler failed; answered with an error');
    try {
      session.end('error');
    } catch (closeErr) {
      this.ctx.log.warn({ err: closeErr, handler }, 'could not answer a failed handler');
    }
  }
}
