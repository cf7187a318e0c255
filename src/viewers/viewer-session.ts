import type { Frame } from '../hub/hub.js';
import { type ResumePlan, resumeTopic } from '../hub/resume.js';
import { isFrameTopic, isVideoTopic } from '../hub/topics.js';
import type { VideoItem } from '../hub/video-track.js';
import { SlowState } from './slow-state.js';
import type { CloseReason, Framing } from './transport.js';
import type { TopicLimitError, ViewerGroup } from './viewer-group.js';
import { type VariantSwitch, ViewerTopics } from './viewer-topics.js';

/** Event positions a client asked to resume from (WS `hello.resume`), and the epoch they came from. */
export interface ResumePositions {
  after: Map<string, number>;
  epoch: string | undefined;
}

export type AddResult = 'added' | 'duplicate' | TopicLimitError;

/**
 * One viewer, whatever its transport: the topics it asked for and the concrete ones it
 * receives, `auto` switching, slow/recover/close decisions, token expiry, and its counters.
 *
 * - **Frames: the latest wins.** A healthy session receives its frame topics (native publish
 *   or the group's JS fan-out). A slow one is taken out of them, so it costs nothing per
 *   frame, and the frames it skips are counted per publish by its group. When it recovers it
 *   is put back and gets, marked cached, the newest frame of each topic that moved on meanwhile.
 * - **Events are never dropped** while connected; a viewer held over the hard limit is closed.
 * - **Idle costs nothing.** Until a viewer subscribes, turns slow or asks for `auto`, it holds
 *   a few fields: no maps, no slow state, and its sweep allocates nothing.
 *
 * @example
 *   const session = new ViewerSession(group, ws, wsFraming); // group: the transport's ViewerGroup
 *   session.open();
 *   session.add('cam/door/auto', Date.now()); // variant record, then the cached medium frame
 */
export class ViewerSession<C> {
  /** The token's expiry (Principal.expiresAtMs; undefined: never): the sweep ends the session then. */
  expiresAtMs: number | undefined = undefined;
  closed = false;
  private topics: ViewerTopics | undefined;
  /** Made when the transport first holds bytes for this viewer (most idle viewers never do). */
  private backpressure: SlowState | undefined;
  private resume: ResumePositions | undefined;
  /** Video topics received: while any, slowness is judged by `videoSoftBytes` (see SlowOptions). */
  private videoTopicCount = 0;

  constructor(
    readonly group: ViewerGroup<C>,
    /** The connection, as the group's transport adapter knows it (a uWS socket, an HTTP response). */
    readonly conn: C,
    readonly framing: Framing,
  ) {}

  get slow(): boolean {
    return this.backpressure?.slow ?? false;
  }

  /** Joins the group: counted, swept, and reachable by its fan-out. */
  open(): void {
    this.group.add(this);
  }

  /**
   * Adds a requested topic (checked for access by the caller): sends the variant record of an
   * `auto` topic, then starts receiving its concrete topic, with the cached frame at once.
   */
  add(requested: string, now: number): AddResult {
    this.topics ??= new ViewerTopics(this.group.ctx.adaptive);
    const topics = this.topics;
    if (topics.has(requested)) return 'duplicate';
    const limit = this.group.tooManyTopics(topics.size + 1);
    if (limit) return limit;
    const { concrete, attach } = topics.add(requested, now);
    // Subscriptions first, writes after: a signalled transport can turn slow inside any write,
    // and enterSlow must then find every concrete topic already joined (or it counts it twice).
    if (attach) this.join(concrete);
    if (concrete !== requested)
      this.write(this.framing.variant(requested, concrete.slice(concrete.lastIndexOf('/') + 1)));
    if (attach) this.catchUp(concrete);
    return 'added';
  }

  remove(requested: string): void {
    const concrete = this.topics?.remove(requested);
    if (concrete) this.detach(concrete);
  }

  requestedTopics(): string[] {
    return this.topics?.requested().map(([requested]) => requested) ?? [];
  }

  /**
   * Positions to resume from when their event topic is attached. Replaces earlier positions,
   * so what is kept stays within what the client sent.
   */
  setResume(positions: ResumePositions): void {
    this.resume = positions;
  }

  /** Replays, from the resume positions, the event topics already received. */
  replaySubscribed(): void {
    if (this.resume) for (const t of this.topics?.concrete() ?? []) this.replayTopic(t);
  }

  /**
   * Sends a resume: its gap records, then the events, in publish order. A topic whose next seq
   * is not known yet is not received live until its next event: the group then sends the gap
   * that event shows is owed, if any, before it (ViewerGroup.beforeEvent).
   */
  replay(plan: ResumePlan): void {
    for (const g of plan.gaps) this.write(this.framing.gap(g));
    for (const e of plan.entries) this.write(this.framing.event(e));
    if (!plan.pending || this.closed) return;
    for (const [topic, held] of plan.pending) {
      this.group.unsubscribe(this, topic);
      this.group.holdForEvent(this, topic, held);
    }
  }

  /**
   * Writes bytes to the viewer. A `signalled` transport that had to buffer them turns the
   * session slow at once: it skips frames until the transport drains.
   */
  write(bytes: Uint8Array | undefined): void {
    if (!bytes || this.closed) return;
    const transport = this.group.transport;
    if (transport.write(this.conn, bytes) || transport.backpressure === 'sampled') return;
    if (this.slowState().refused() === 'slow') this.enterSlow();
  }

  /** Sends one frame outside the fan-out (a cached one), counted on its own. */
  sendFrame(frame: Frame, cached: boolean): void {
    const bytes = this.framing.frame(frame, cached);
    this.group.metrics.sent(1, bytes.byteLength);
    this.write(bytes);
  }

  /**
   * A signalled transport can take more. A recovered session gets the newest frames it
   * missed; with none to send, a keep-alive goes out (uWS drains its buffer of an HTTP
   * response only on our next write, so buffered events would otherwise wait for one).
   */
  drained(): void {
    if (this.closed || this.backpressure?.drained() !== 'recovered') return;
    if (!this.leaveSlow()) this.write(this.group.keepAlive);
  }

  /**
   * One sample (every sweep; on WS also on uWS's drain event): token expiry, slow/recover/close,
   * the heartbeat, and `auto` steps. Allocates only when something changes: an idle viewer
   * with no `auto` topic costs a buffered-amount read.
   */
  sweep(now: number, heartbeat: Uint8Array | undefined): void {
    if (this.expiresAtMs !== undefined && this.expiresAtMs <= now) {
      this.end('expired');
      return;
    }
    const transport = this.group.transport;
    const buffered = transport.bufferedAmount(this.conn);
    if (buffered > 0 || this.backpressure) {
      const change = this.slowState().observe(buffered, now);
      if (change === 'close') {
        this.end('slow');
        return;
      }
      if (change === 'slow') transport.cork(this.conn, () => this.enterSlow());
      else if (change === 'recovered') transport.cork(this.conn, () => this.leaveSlow());
    }
    if (heartbeat) this.write(heartbeat);
    if (this.topics?.adaptive) {
      const switches = this.topics.adapt(this.slow, now);
      if (switches.length) transport.cork(this.conn, () => this.switchVariants(switches));
    }
  }

  /** Ends the connection for `reason`, counted, after forgetting it. */
  end(reason: CloseReason): void {
    if (this.closed) return;
    const m = this.group.metrics;
    if (reason === 'slow') m.slowDisconnects.inc();
    else if (reason === 'expired') m.expired.inc();
    this.close();
    this.group.transport.close(this.conn, reason);
  }

  /** Forgets the session; call when its connection is gone (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.group.remove(this)) return;
    if (this.slow) {
      this.group.metrics.slowViewers.dec();
      for (const t of this.frameTopics()) this.group.addSlow(t, -1);
    }
    if (this.videoTopicCount) for (const t of this.videoTopics()) this.group.stopWaiting(this, t);
    if (this.topics) this.group.release(this, this.topics.concrete());
  }

  private slowState(): SlowState {
    if (!this.backpressure) {
      this.backpressure = new SlowState(this.group.ctx.slow, this.group.transport.backpressure);
      this.backpressure.video = this.videoTopicCount > 0;
    }
    return this.backpressure;
  }

  private setVideoCount(n: number): void {
    this.videoTopicCount = n;
    if (this.backpressure) this.backpressure.video = n > 0;
  }

  private frameTopics(): string[] {
    return this.topics?.concrete().filter(isFrameTopic) ?? [];
  }

  private videoTopics(): string[] {
    return this.topics?.concrete().filter(isVideoTopic) ?? [];
  }

  /** Starts receiving a concrete topic; a slow session's frame topic is only counted until it recovers. Writes nothing. */
  private join(topic: string): void {
    this.group.ctx.demand?.(topic);
    if (isVideoTopic(topic)) this.joinVideo(topic);
    else if (this.slow && isFrameTopic(topic)) this.group.addSlow(topic, 1);
    else this.group.subscribe(this, topic);
  }

  /**
   * Live video: received at once when a GOP is cached (catchUp sends it), else from the next
   * keyframe; a slow session waits for the first keyframe after it drains. Never mid-GOP.
   */
  private joinVideo(topic: string): void {
    this.setVideoCount(this.videoTopicCount + 1);
    const track = this.group.ctx.hub.videoTrack(topic);
    if (!this.slow && (!track?.init || track.cachedGop().length > 0)) this.group.subscribe(this, topic);
    else this.group.waitForKeyframe(this, topic);
  }

  /** What a newly joined topic owes the viewer: a frame topic its cached frame (unless slow: at recovery), an event topic its resume. */
  private catchUp(topic: string): void {
    if (this.closed) return;
    if (isVideoTopic(topic)) {
      this.catchUpVideo(topic);
      return;
    }
    if (!isFrameTopic(topic)) {
      this.replayTopic(topic);
      return;
    }
    if (this.slow) return;
    const latest = this.group.ctx.hub.latest(topic);
    if (latest) this.sendFrame(latest, true);
  }

  /** The init segment, then (unless it waits for a keyframe) the cached GOP, marked cached. */
  private catchUpVideo(topic: string): void {
    const track = this.group.ctx.hub.videoTrack(topic);
    if (!track?.init) return;
    this.sendVideo(track.init, true);
    if (this.group.isWaiting(this, topic)) return;
    for (const fragment of track.cachedGop()) this.sendVideo(fragment, true);
  }

  /** Sends one video record outside the fan-out (the init, the cached GOP), counted on its own. */
  sendVideo(item: VideoItem, cached: boolean): void {
    const bytes = this.framing.video(item, cached);
    if (!bytes) return;
    this.group.metrics.sent(1, bytes.byteLength);
    this.write(bytes);
  }

  private detach(topic: string): void {
    if (isVideoTopic(topic)) {
      this.setVideoCount(this.videoTopicCount - 1);
      if (!this.group.stopWaiting(this, topic)) this.group.unsubscribe(this, topic);
      return;
    }
    if (this.slow && isFrameTopic(topic)) {
      this.group.addSlow(topic, -1);
      this.backpressure!.delivered?.delete(topic);
    } else if (!this.group.stopHolding(this, topic)) {
      this.group.unsubscribe(this, topic);
    }
  }

  private replayTopic(topic: string): void {
    const after = this.resume?.after.get(topic);
    if (after === undefined) return;
    const { hub } = this.group.ctx;
    const unknown = (t: string) => hub.nextSeqUnknown(t);
    this.replay(resumeTopic(hub.history, hub.epoch, topic, after, this.resume!.epoch, unknown));
  }

  private enterSlow(): void {
    this.group.metrics.slowViewers.inc();
    const { hub } = this.group.ctx;
    let delivered: Map<string, number> | undefined;
    for (const t of this.frameTopics()) {
      this.group.unsubscribe(this, t);
      this.group.addSlow(t, 1);
      const latest = hub.latest(t);
      if (!latest) continue;
      delivered ??= new Map();
      delivered.set(t, latest.seq);
    }
    this.backpressure!.delivered = delivered;
    // Video stops here and resumes at the first keyframe after the session drains.
    if (this.videoTopicCount === 0) return;
    for (const t of this.videoTopics()) {
      if (this.group.isWaiting(this, t)) continue;
      this.group.unsubscribe(this, t);
      this.group.waitForKeyframe(this, t);
    }
  }

  /** Puts a recovered session back into its frame topics; returns whether it was sent a frame. */
  private leaveSlow(): boolean {
    this.group.metrics.slowViewers.dec();
    const { hub } = this.group.ctx;
    const delivered = this.backpressure!.delivered;
    this.backpressure!.delivered = undefined;
    const topics = this.frameTopics();
    for (const t of topics) {
      this.group.addSlow(t, -1);
      this.group.subscribe(this, t);
    }
    let sent = false;
    for (const t of topics) {
      // A write below can turn a signalled session slow again: it then waits for the next drain.
      if (this.slow || this.closed) break;
      const latest = hub.latest(t);
      if (latest && latest.seq > (delivered?.get(t) ?? -1)) {
        this.sendFrame(latest, true);
        sent = true;
      }
    }
    return sent;
  }

  private switchVariants(switches: readonly VariantSwitch[]): void {
    this.group.metrics.variantSwitches.inc(switches.length);
    // All subscription changes before any write (see add).
    for (const sw of switches) {
      if (sw.detach) this.detach(sw.detach);
      if (sw.attach) this.join(sw.attach);
    }
    for (const sw of switches) this.write(this.framing.variant(sw.requested, sw.variant));
    for (const sw of switches) if (sw.attach) this.catchUp(sw.attach);
  }
}
