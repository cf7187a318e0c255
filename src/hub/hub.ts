import type { Fmp4Piece } from '../media/fmp4.js';
import type { Metrics } from '../metrics/metrics.js';
import { encode } from '../wire/records.js';
import { EventHistory, type HistoryEntry } from './history.js';
import { newEpoch } from './resume.js';
import { describeInput, parseTopic, type Topic, videoTopic } from './topics.js';
import { type VideoItem, VideoTrack, type VideoTrackOptions } from './video-track.js';

/** A published frame: the encoded WS record plus the fields other transports re-frame. */
export interface Frame {
  topic: string;
  seq: number;
  /** Capture time, ms since epoch. */
  ts: number;
  width: number;
  height: number;
  mime: string;
  /** The JPEG itself. */
  data: Uint8Array;
  /** The msgpack frame record, encoded once by the worker, sent as-is over WS. */
  record: Uint8Array;
  /**
   * Other encodings of this frame (SSE text, MJPEG part), made on first use and shared by
   * every viewer of that transport: one encoding per topic per frame, never per viewer.
   */
  encodings: Map<string, Uint8Array>;
  /** Came from another node over the cluster bus (src/cluster/): not published back to it. */
  remote?: boolean;
}

/** A transport that can deliver to everyone subscribed to a topic. */
export interface RecordSink {
  publishFrame(frame: Frame): void;
  publishEvent(event: HistoryEntry): void;
  /** A live video init segment or fragment (`cam/<id>/video`). */
  publishVideo(item: VideoItem): void;
  /** A topic restarted (Hub.restartTopic): resume positions held on it no longer compare with its seqs. */
  restartTopic?(topic: string): void;
}

export type TopicCheck =
  | { ok: true; topic: Topic }
  | { ok: false; code: 'BAD_TOPIC' | 'UNKNOWN_TOPIC'; message: string };

/** Returns frame.encodings[key], computing it once. */
export function encodingOf(frame: Frame, key: string, make: (f: Frame) => Uint8Array): Uint8Array {
  let bytes = frame.encodings.get(key);
  if (!bytes) {
    bytes = make(frame);
    frame.encodings.set(key, bytes);
  }
  return bytes;
}

/**
 * The WS record of a frame sent from the cache (to a new subscriber, or a viewer back from
 * slow) rather than live: the same record plus `cached: true`, so a client does not count the
 * seq gap to the next live frame as drops. Encoded once per frame, on first use.
 */
export function cachedRecord(frame: Frame): Uint8Array {
  return encodingOf(frame, 'ws-cached', (f) =>
    encode({
      type: 'frame',
      topic: f.topic,
      seq: f.seq,
      ts: f.ts,
      mime: f.mime,
      width: f.width,
      height: f.height,
      data: f.data,
      cached: true,
    }),
  );
}

/**
 * Topics, their latest frame, event history, and fan-out to the transports. Records are
 * encoded once per topic and the same bytes go to every sink; nothing here runs per viewer.
 */
export class Hub {
  private readonly latestFrames = new Map<string, Frame>();
  private readonly eventSeq = new Map<string, number>();
  private readonly sinks: RecordSink[] = [];
  private order = 0;
  readonly history: EventHistory;
  /**
   * This process's event epoch: seq restarts at 1 with every process, so a position (topic,
   * seq) means something only together with the epoch it came from (see resume.ts).
   */
  readonly epoch = newEpoch();
  private readonly staleDrops;
  private readonly latency;
  /** Live video per camera that has it (`video` set), by topic. */
  private readonly videoTracks = new Map<string, VideoTrack>();
  /**
   * Set by the cluster bus: this node's event topics other than `system` may be numbered by
   * another node (see nextSeqUnknown).
   */
  clustered = false;
  /** Topics whose history is no longer known to reach the present (interruptTopic). */
  private readonly interrupted = new Set<string>();

  constructor(
    private readonly cameras: ReadonlySet<string>,
    metrics: Metrics,
    historyPerTopic = 256,
    /** The cameras with live video, and how each caches its GOP. */
    video: ReadonlyMap<string, VideoTrackOptions> = new Map(),
  ) {
    this.staleDrops = metrics.framesDropped.labels({ reason: 'stale' });
    this.latency = metrics.ingestToSend;
    this.history = new EventHistory(historyPerTopic);
    for (const [camera, opts] of video) {
      const topic = videoTopic(camera);
      this.videoTracks.set(topic, new VideoTrack(topic, opts));
    }
  }

  addSink(sink: RecordSink): void {
    this.sinks.push(sink);
  }

  hasCamera(camera: string): boolean {
    return this.cameras.has(camera);
  }

  /** Validates a topic a client asked for: well-formed, and naming a configured camera. */
  check(name: unknown): TopicCheck {
    const topic = typeof name === 'string' ? parseTopic(name) : undefined;
    if (!topic)
      return {
        ok: false,
        code: 'BAD_TOPIC',
        message: `${describeInput(name)} is not a valid topic`,
      };
    if ('camera' in topic && !this.cameras.has(topic.camera)) {
      return { ok: false, code: 'UNKNOWN_TOPIC', message: `no camera "${topic.camera}"` };
    }
    if (topic.kind === 'video' && !this.videoTracks.has(name as string)) {
      return {
        ok: false,
        code: 'UNKNOWN_TOPIC',
        message: `camera "${topic.camera}" has no live video (its config sets no "video")`,
      };
    }
    return { ok: true, topic };
  }

  /**
   * Publishes a piece of a camera's live H.264: a new init segment (sent to every subscriber,
   * who must start over from the next keyframe) or a fragment. Ignored for a camera without
   * video, and for fragments before the first init.
   */
  publishVideo(camera: string, piece: Fmp4Piece, receivedAt: number): void {
    const track = this.videoTracks.get(videoTopic(camera));
    if (!track) return;
    const item =
      piece.kind === 'init' ? track.setInit(piece, receivedAt) : track.addFragment(piece, receivedAt);
    if (!item) return;
    for (const sink of this.sinks) sink.publishVideo(item);
  }

  /** Publishes an init or fragment another node's track made (the cluster bus), with its seq. */
  publishRemoteVideo(item: VideoItem): void {
    const accepted = this.videoTracks.get(item.topic)?.acceptRemote(item);
    if (!accepted) return;
    for (const sink of this.sinks) sink.publishVideo(accepted);
  }

  /** A camera's live video by its topic (`cam/<id>/video`), for a new subscriber's catch-up. */
  videoTrack(topic: string): VideoTrack | undefined {
    return this.videoTracks.get(topic);
  }

  /** A camera's ffmpeg stopped: its video has no init or GOP to offer until the next run's. */
  stopVideo(camera: string): void {
    this.videoTracks.get(videoTopic(camera))?.stop();
  }

  /**
   * Publishes a frame. Workers finish frames out of order when several run at once; a frame
   * older than the one already published is dropped, so seq only ever increases per topic.
   */
  publishFrame(frame: Omit<Frame, 'encodings'>): void {
    const previous = this.latestFrames.get(frame.topic);
    if (previous && frame.seq <= previous.seq) {
      this.staleDrops.inc();
      return;
    }
    const published: Frame = { ...frame, encodings: new Map() };
    this.latestFrames.set(frame.topic, published);
    for (const sink of this.sinks) sink.publishFrame(published);
    this.latency.observe((Date.now() - frame.ts) / 1000);
  }

  /**
   * Publishes an event (vad, job, system): stamps topic, seq and ts, encodes it once for
   * msgpack and once for JSON, keeps it in history for resume, and hands it to every sink.
   */
  publishEvent(topic: string, body: { type: string; ts?: number } & Record<string, unknown>): HistoryEntry {
    const seq = (this.eventSeq.get(topic) ?? 0) + 1;
    this.eventSeq.set(topic, seq);
    const record = { ...body, topic, seq, ts: body.ts ?? Date.now() };
    const entry: HistoryEntry = {
      topic,
      seq,
      order: ++this.order,
      type: body.type,
      msgpack: encode(record),
      json: JSON.stringify(record),
    };
    this.record(entry);
    for (const sink of this.sinks) sink.publishEvent(entry);
    return entry;
  }

  /**
   * Publishes an event another node numbered (the cluster bus): its seq and bytes are kept as
   * they are, so viewers on every node see the owner's seq. One not newer than the topic's last
   * is dropped (a duplicate, or one from before an owner change). Returns whether it was taken.
   */
  publishRemoteEvent(topic: string, seq: number, msgpack: Uint8Array, body: { type: string }): boolean {
    if (seq <= (this.eventSeq.get(topic) ?? 0)) return false;
    this.eventSeq.set(topic, seq);
    const entry: HistoryEntry = {
      topic,
      seq,
      order: ++this.order,
      type: body.type,
      msgpack,
      json: JSON.stringify(body),
      remote: true,
    };
    this.record(entry);
    for (const sink of this.sinks) sink.publishEvent(entry);
    return true;
  }

  /**
   * Keeps an event in history. A topic's history is one unbroken run of seqs, as resume needs (a
   * position below its first is owed a gap, one within it gets what followed): an event that
   * does not follow the newest (a topic received again after the bus stopped receiving it, a
   * camera taken over with seqs skipped) starts a new run. One node alone never skips a seq.
   */
  private record(entry: HistoryEntry): void {
    const { next } = this.history.span(entry.topic);
    if (next > 1 && entry.seq !== next) this.history.forget(entry.topic);
    this.interrupted.delete(entry.topic);
    this.history.add(entry);
  }

  /**
   * Whether a resume on event topic `topic` cannot know yet what the client missed, and must
   * hold its position until the topic's next event (resume.ts `gapBefore`). One node alone
   * numbers every topic itself: its history runs unbroken to the present, and an empty one
   * means nothing was published. In a cluster a camera's VAD and a job's events are numbered by
   * the node that owns them, and reach this one only while it has a viewer of them: an empty
   * history (never received, forgotten, restarted) or an interrupted one does not say which
   * seq comes next. An empty one may also be a topic this node numbers and has not published
   * yet: the next event tells, and a topic that never publishes owes no gap. `system` is
   * numbered by each node itself.
   */
  nextSeqUnknown(topic: string): boolean {
    if (!this.clustered || topic === 'system') return false;
    return this.interrupted.has(topic) || this.history.span(topic).next === 1;
  }

  /**
   * The cluster bus stopped receiving a topic another node numbers (its last local viewer left,
   * Redis went away), or its camera changed owner: its history is no longer known to reach the
   * present, until the topic's next event.
   */
  interruptTopic(topic: string): void {
    if (this.history.span(topic).next > 1) this.interrupted.add(topic);
  }

  /**
   * A topic's publisher changed and may number lower than before (a camera taken over by a node
   * that could not learn the last seq: see README "Scaling out"): its next frame or event is
   * taken whatever its seq. The client sees seq go down: a new epoch of that topic. Its history
   * goes too, so a resume never mixes two numberings, and a position a viewer holds on it is
   * owed a gap (ViewerGroup.restartTopic).
   */
  restartTopic(topic: string): void {
    this.latestFrames.delete(topic);
    this.eventSeq.delete(topic);
    this.history.forget(topic);
    this.interrupted.delete(topic);
    this.videoTracks.get(topic)?.restart();
    for (const sink of this.sinks) sink.restartTopic?.(topic);
  }

  /** The last seq an event topic used (0: none). */
  eventSeqOf(topic: string): number {
    return this.eventSeq.get(topic) ?? 0;
  }

  /**
   * Makes an event topic's next seq at least `seq + 1`: a node taking a camera over continues
   * the numbers the previous owner's viewers saw, so seq keeps increasing across the change.
   */
  seedEventSeq(topic: string, seq: number): void {
    if (seq > (this.eventSeq.get(topic) ?? 0)) this.eventSeq.set(topic, seq);
  }

  /**
   * Forgets an event topic that will never publish again (an expired job): its history and
   * its seq counter. Without this every finished job would keep up to `historyPerTopic`
   * events forever. A resume on the topic afterwards replays nothing.
   */
  forgetTopic(topic: string): void {
    this.history.forget(topic);
    this.interrupted.delete(topic);
    this.eventSeq.delete(topic);
  }

  /** The most recent frame of a topic, for new subscribers and snapshots. */
  latest(topic: string): Frame | undefined {
    return this.latestFrames.get(topic);
  }
}
