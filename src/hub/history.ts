/** One event kept for resume: its topic seq, a hub-wide order, and both wire encodings. */
export interface HistoryEntry {
  topic: string;
  seq: number;
  /** Hub-wide publish order, so a resume from one topic's id can replay every topic in order. */
  order: number;
  type: string;
  msgpack: Uint8Array;
  json: string;
  /** Came from another node over the cluster bus (src/cluster/): not published back to it. */
  remote?: boolean;
}

/**
 * Bounded per-topic history of events (vad, job, system) for Last-Event-ID and WS resume.
 * Each topic keeps at most `perTopic` entries in a fixed ring, so memory is bounded by the
 * number of topics × perTopic whatever the event rate.
 */
export class EventHistory {
  private readonly rings = new Map<
    string,
    /** `evictedOrder`: hub order of the newest entry pushed out of the ring (0: none yet). */
    { entries: (HistoryEntry | undefined)[]; next: number; evictedOrder: number }
  >();

  constructor(private readonly perTopic: number) {}

  add(entry: HistoryEntry): void {
    let ring = this.rings.get(entry.topic);
    if (!ring) {
      ring = { entries: new Array(this.perTopic), next: 0, evictedOrder: 0 };
      this.rings.set(entry.topic, ring);
    }
    const evicted = ring.entries[ring.next % this.perTopic];
    if (evicted) ring.evictedOrder = evicted.order;
    ring.entries[ring.next % this.perTopic] = entry;
    ring.next++;
  }

  /** Drops a topic's ring, for a topic that will never publish again. */
  forget(topic: string): void {
    this.rings.delete(topic);
  }

  /** Entries of `topic` in publish order (oldest first). */
  entries(topic: string): HistoryEntry[] {
    const ring = this.rings.get(topic);
    if (!ring) return [];
    const out: HistoryEntry[] = [];
    for (let i = Math.max(0, ring.next - this.perTopic); i < ring.next; i++)
      out.push(ring.entries[i % this.perTopic]!);
    return out;
  }

  /**
   * The first seq history still holds for `topic`, and the seq its next event will get (the
   * newest entry is always kept, so an empty ring means the topic has published nothing yet,
   * or was forgotten and starts again at 1). A client that saw `after` missed events history
   * cannot give back exactly when `first > after + 1`.
   */
  span(topic: string): { first: number; next: number } {
    const ring = this.rings.get(topic);
    if (!ring || ring.next === 0) return { first: 1, next: 1 };
    const newest = ring.entries[(ring.next - 1) % this.perTopic]!;
    const oldest = ring.entries[Math.max(0, ring.next - this.perTopic) % this.perTopic]!;
    return { first: oldest.seq, next: newest.seq + 1 };
  }

  /**
   * Whether `topic` has lost an event published after hub order `afterOrder`: a resume from
   * that order cannot give it back.
   */
  evictedSince(topic: string, afterOrder: number): boolean {
    return (this.rings.get(topic)?.evictedOrder ?? 0) > afterOrder;
  }

  /** Hub-wide order of `topic`'s event `seq`, if still in history. */
  orderOf(topic: string, seq: number): number | undefined {
    return this.entries(topic).find((e) => e.seq === seq)?.order;
  }

  /** Events of `topics` published after hub order `afterOrder`, merged in publish order. */
  since(topics: Iterable<string>, afterOrder: number): HistoryEntry[] {
    const out: HistoryEntry[] = [];
    for (const t of topics) for (const e of this.entries(t)) if (e.order > afterOrder) out.push(e);
    return out.sort((a, b) => a.order - b.order);
  }

  /** Events of one topic with seq greater than `afterSeq`. */
  after(topic: string, afterSeq: number): HistoryEntry[] {
    return this.entries(topic).filter((e) => e.seq > afterSeq);
  }
}
