import type { Metrics } from '../metrics/metrics.js';
import { parseTopic, type Topic } from './topics.js';

/** Metadata the hub needs to route a record without looking inside its bytes again. */
export interface RecordMeta {
  topic: string;
  seq: number;
  /** Capture time, ms since epoch. */
  ts: number;
}

/** A transport that can deliver an encoded record to everyone subscribed to a topic. */
export interface RecordSink {
  publish(topic: string, record: Uint8Array, meta: RecordMeta): void;
}

interface TopicState {
  seq: number;
  latest: Uint8Array | undefined;
  latestMeta: RecordMeta | undefined;
}

export type TopicCheck =
  | { ok: true; topic: Topic }
  | { ok: false; code: 'BAD_TOPIC' | 'UNKNOWN_TOPIC'; message: string };

/**
 * Topics, their latest frame, and fan-out to the transports. A record is encoded once (by
 * the worker) and the same bytes go to every sink; nothing here runs per viewer.
 */
export class Hub {
  private readonly topics = new Map<string, TopicState>();
  private readonly sinks: RecordSink[] = [];
  private readonly staleDrops;
  private readonly latency;

  constructor(
    private readonly cameras: ReadonlySet<string>,
    metrics: Metrics,
  ) {
    this.staleDrops = metrics.framesDropped.labels('stale');
    this.latency = metrics.ingestToSend;
  }

  addSink(sink: RecordSink): void {
    this.sinks.push(sink);
  }

  /** Validates a topic a client asked for: well-formed, and naming a configured camera. */
  check(name: unknown): TopicCheck {
    const topic = typeof name === 'string' ? parseTopic(name) : undefined;
    if (!topic)
      return {
        ok: false,
        code: 'BAD_TOPIC',
        message: `"${String(name).slice(0, 100)}" is not a valid topic`,
      };
    if ((topic.kind === 'frame' || topic.kind === 'vad') && !this.cameras.has(topic.camera)) {
      return { ok: false, code: 'UNKNOWN_TOPIC', message: `no camera "${topic.camera}"` };
    }
    return { ok: true, topic };
  }

  /**
   * Publishes a frame record. Workers finish frames out of order when several run at once;
   * a frame older than the one already published is dropped, so seq only ever increases.
   */
  publishFrame(record: Uint8Array, meta: RecordMeta): void {
    const state = this.state(meta.topic);
    if (meta.seq <= state.seq) {
      this.staleDrops.inc();
      return;
    }
    state.seq = meta.seq;
    state.latest = record;
    state.latestMeta = meta;
    for (const sink of this.sinks) sink.publish(meta.topic, record, meta);
    this.latency.observe((Date.now() - meta.ts) / 1000);
  }

  /** The most recent frame record of a topic, for new subscribers and snapshots. */
  latest(topic: string): { record: Uint8Array; meta: RecordMeta } | undefined {
    const state = this.topics.get(topic);
    return state?.latest && state.latestMeta ? { record: state.latest, meta: state.latestMeta } : undefined;
  }

  private state(topic: string): TopicState {
    let state = this.topics.get(topic);
    if (!state) {
      state = { seq: -1, latest: undefined, latestMeta: undefined };
      this.topics.set(topic, state);
    }
    return state;
  }
}
