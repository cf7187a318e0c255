import type { HttpResponse } from 'uWebSockets.js';
import type { HistoryEntry } from '../hub/history.js';
import type { Frame, RecordSink } from '../hub/hub.js';
import { parseTopic } from '../hub/topics.js';
import { ViewerTopics } from '../hub/viewer-state.js';
import type { ServerContext } from './context.js';
import { countVariant } from './http-util.js';

export type StreamTransport = 'sse' | 'mjpeg';

/** How one transport turns hub records into bytes; each result is cached per frame, not per viewer. */
export interface StreamFraming {
  /** `cached`: sent from the hub's cache (a new subscriber, or back from slow), not live. */
  frame(frame: Frame, viewer: StreamViewer, cached: boolean): Uint8Array;
  event(entry: HistoryEntry): Uint8Array | undefined;
  variant(requested: string, variant: string): Uint8Array | undefined;
  /** Bytes that keep an idle stream alive (SSE comment); undefined when the transport has none. */
  keepAlive(): Uint8Array | undefined;
}

/** A long-lived HTTP response (SSE or MJPEG) receiving records. */
export class StreamViewer {
  readonly topics: ViewerTopics;
  /** uWS had to buffer our last write: frames are skipped until it drains. */
  blocked = false;
  /** Bytes written since the viewer blocked (events are still written; frames are not). */
  blockedBytes = 0;
  overHardSince = 0;
  /** Concrete frame topics whose frames were skipped while blocked. */
  readonly missed = new Set<string>();
  closed = false;
  /** The token's expiry (Principal.expiresAtMs): the sweep ends the stream then. */
  expiresAtMs = Number.POSITIVE_INFINITY;

  constructor(
    readonly res: HttpResponse,
    readonly transport: StreamTransport,
    readonly framing: StreamFraming,
    readonly ip: string,
    ctx: ServerContext,
    /** `frames=ref` for SSE: frames as snapshot URLs instead of base64. */
    readonly framesByRef = false,
  ) {
    this.topics = new ViewerTopics(ctx.adaptive);
  }
}

/**
 * Fan-out to SSE and MJPEG viewers. A write that uWS has to buffer marks the viewer blocked;
 * while blocked it skips frames (counted) and gets the newest one when uWS reports it
 * writable again, so a slow viewer holds at most about one frame plus its events.
 */
export class HttpStreams implements RecordSink {
  private readonly byTopic = new Map<string, Set<StreamViewer>>();
  private readonly viewers = new Set<StreamViewer>();
  private readonly timer: NodeJS.Timeout;
  private lastKeepAlive = Date.now();

  constructor(private readonly ctx: ServerContext) {
    this.timer = setInterval(() => this.sweep(Date.now()), 100);
    this.timer.unref();
  }

  /** Registers a viewer whose headers are written, and sends it what it should see first. */
  open(v: StreamViewer, requested: string[], replay: HistoryEntry[]): void {
    this.viewers.add(v);
    this.ctx.metrics.connections.labels(v.transport).inc();
    v.res.onWritable(() => this.unblock(v));
    const now = Date.now();
    for (const name of requested) {
      const { concrete, attach } = v.topics.add(name, now);
      if (concrete !== name) this.write(v, v.framing.variant(name, concrete.split('/')[2]!));
      if (attach) this.attach(v, concrete);
    }
    for (const e of replay) this.write(v, v.framing.event(e));
  }

  /** Forgets a viewer; call from onAborted or after ending the response. */
  close(v: StreamViewer): void {
    if (v.closed) return;
    v.closed = true;
    if (!this.viewers.delete(v)) return;
    this.ctx.metrics.connections.labels(v.transport).dec();
    if (v.blocked) this.ctx.metrics.slowViewers.labels(v.transport).dec();
    for (const t of v.topics.concrete()) this.detach(v, t);
    this.ctx.limits.release(v.ip);
  }

  publishFrame(frame: Frame): void {
    const subs = this.byTopic.get(frame.topic);
    if (!subs?.size) return;
    let skipped = 0;
    for (const v of subs) {
      if (v.blocked) {
        skipped++;
        v.missed.add(frame.topic);
      } else {
        this.sendFrame(v, frame);
      }
    }
    if (skipped) this.ctx.metrics.framesDropped.labels('slow').inc(skipped);
  }

  publishEvent(entry: HistoryEntry): void {
    const subs = this.byTopic.get(entry.topic);
    if (!subs?.size) return;
    for (const v of subs) this.write(v, v.framing.event(entry));
  }

  subscribers(topic: string): number {
    return this.byTopic.get(topic)?.size ?? 0;
  }

  census() {
    const byTransport: Record<StreamTransport, number> = { sse: 0, mjpeg: 0 };
    const byVariant: Record<string, number> = {};
    let slow = 0;
    for (const v of this.viewers) {
      byTransport[v.transport]++;
      if (v.blocked) slow++;
      for (const [requested] of v.topics.requested()) countVariant(byVariant, requested);
    }
    return { byTransport, byVariant, slow };
  }

  /** Ends every stream (shutdown). */
  closeAll(): void {
    clearInterval(this.timer);
    for (const v of [...this.viewers]) {
      this.close(v);
      v.res.cork(() => v.res.end());
    }
  }

  private attach(v: StreamViewer, topic: string): void {
    let subs = this.byTopic.get(topic);
    if (!subs) {
      subs = new Set();
      this.byTopic.set(topic, subs);
    }
    subs.add(v);
    if (parseTopic(topic)?.kind !== 'frame') return;
    if (v.blocked) v.missed.add(topic);
    else {
      const latest = this.ctx.hub.latest(topic);
      if (latest) this.sendFrame(v, latest, true);
    }
  }

  /** Stops a viewer receiving a topic; a topic nobody receives is forgotten, since any client may name one. */
  private detach(v: StreamViewer, topic: string): void {
    const subs = this.byTopic.get(topic);
    v.missed.delete(topic);
    if (!subs) return;
    subs.delete(v);
    if (subs.size === 0) this.byTopic.delete(topic);
  }

  private sendFrame(v: StreamViewer, frame: Frame, cached = false): void {
    const bytes = v.framing.frame(frame, v, cached);
    const m = this.ctx.metrics;
    m.framesSent.labels(v.transport).inc();
    m.bytesSent.labels(v.transport).inc(bytes.byteLength);
    this.write(v, bytes);
  }

  private write(v: StreamViewer, bytes: Uint8Array | undefined): void {
    if (!bytes || v.closed) return;
    let ok = true;
    v.res.cork(() => {
      ok = v.res.write(bytes);
    });
    if (v.blocked) v.blockedBytes += bytes.byteLength;
    else if (!ok) {
      v.blocked = true;
      v.blockedBytes = 0;
      this.ctx.metrics.slowViewers.labels(v.transport).inc();
    }
  }

  /**
   * The socket can take more: deliver the newest frame of every topic that skipped some. uWS
   * does not drain its own buffer on a writable event while an onWritable handler is set; only
   * our next write does. So when there is no frame to send (an events-only stream, a camera
   * that is down) a keep-alive is written, or buffered events would wait for the heartbeat.
   * Returns whether everything went out, which is what uWS asks of the handler.
   */
  private unblock(v: StreamViewer): boolean {
    if (v.closed || !v.blocked) return true;
    v.blocked = false;
    v.blockedBytes = 0;
    v.overHardSince = 0;
    this.ctx.metrics.slowViewers.labels(v.transport).dec();
    const missed = [...v.missed];
    v.missed.clear();
    let wrote = false;
    for (const t of missed) {
      const latest = this.ctx.hub.latest(t);
      if (latest && !v.blocked) {
        this.sendFrame(v, latest, true);
        wrote = true;
      }
    }
    if (!wrote) this.write(v, v.framing.keepAlive());
    return !v.blocked;
  }

  private sweep(now: number): void {
    const { slow, metrics } = this.ctx;
    const keepAlive = now - this.lastKeepAlive >= this.ctx.sseHeartbeatMs;
    if (keepAlive) this.lastKeepAlive = now;
    for (const v of this.viewers) {
      if (v.expiresAtMs <= now) {
        // The token that opened the stream has expired: end it; the client reconnects with a new one.
        metrics.authFailures.labels(v.transport, 'expired').inc();
        this.close(v);
        v.res.cork(() => v.res.end());
        continue;
      }
      if (v.blockedBytes > slow.hardBytes) {
        v.overHardSince ||= now;
        if (now - v.overHardSince >= slow.slowCloseMs) {
          metrics.slowDisconnects.labels(v.transport).inc();
          this.close(v);
          v.res.cork(() => v.res.close());
          continue;
        }
      }
      if (keepAlive) this.write(v, v.framing.keepAlive());
      for (const sw of v.topics.adapt(v.blocked, now)) {
        metrics.variantSwitches.labels(v.transport).inc();
        if (sw.detach) this.detach(v, sw.detach);
        this.write(v, v.framing.variant(sw.requested, sw.variant));
        if (sw.attach) this.attach(v, sw.attach);
      }
    }
  }
}
