import { randomBytes } from 'node:crypto';
import type { EventHistory, HistoryEntry } from './history.js';
import { isEventTopic } from './topics.js';

/**
 * Resume across restarts. An event position is (topic, seq, epoch): seq restarts at 1 with
 * every process, so a position means something only in the epoch it came from. A resume from
 * another epoch, or from a position history has evicted, replays what history has and says so
 * with a `gap` record, instead of silently skipping what the client missed (the way Centrifugo
 * pairs a stream offset with an epoch).
 */

/**
 * Tells a client that events it may not have seen are gone: `after` is the last seq it said it
 * saw (0 when it named none on this topic), `first` the first seq it is given now (the topic's
 * next seq when history holds nothing). `epoch` is the server's, for the positions that follow.
 */
export interface GapRecord {
  type: 'gap';
  topic: string;
  epoch: string;
  reason: 'epoch' | 'evicted';
  after: number;
  first: number;
}

/** What a resume sends: the gap records first, then the entries in publish order. */
export interface ResumePlan {
  gaps: GapRecord[];
  entries: HistoryEntry[];
}

/** A parsed SSE `Last-Event-ID`; no `epoch` means a legacy id, taken as the current epoch's. */
export interface LastEventId {
  topic: string;
  seq: number;
  epoch?: string;
}

/** Epochs are ours (8 base36 chars), but a client's is only checked for shape and size. */
const EPOCH = /^[0-9A-Za-z_-]{1,32}$/;

/** The per-process epoch: 40 random bits as 8 base36 characters. */
export function newEpoch(): string {
  return randomBytes(5).readUIntBE(0, 5).toString(36).padStart(8, '0');
}

/** Whether a client value can be an epoch (hello's `epoch`, an SSE id's third part). */
export function validEpoch(value: unknown): value is string {
  return typeof value === 'string' && EPOCH.test(value);
}

export const BAD_EPOCH = '"epoch" must be a string of 1 to 32 letters, digits, "_" or "-"';

function gap(
  history: EventHistory,
  epoch: string,
  topic: string,
  reason: GapRecord['reason'],
  after: number,
): GapRecord {
  const { first } = history.span(topic);
  return { type: 'gap', topic, epoch, reason, after, first };
}

/**
 * One event topic's resume (WS `hello.resume`): `after` is the last seq the client saw (0:
 * none), `clientEpoch` the epoch it came from (undefined: this one).
 *
 * @example
 *   resumeTopic(hub.history, hub.epoch, 'system', 3, 'k2x9a0qz') // old epoch: gap + all of system
 */
export function resumeTopic(
  history: EventHistory,
  epoch: string,
  topic: string,
  after: number,
  clientEpoch: string | undefined,
): ResumePlan {
  if (clientEpoch !== undefined && clientEpoch !== epoch) {
    return { gaps: [gap(history, epoch, topic, 'epoch', after)], entries: history.entries(topic) };
  }
  if (history.span(topic).first > after + 1) {
    return { gaps: [gap(history, epoch, topic, 'evicted', after)], entries: history.entries(topic) };
  }
  return { gaps: [], entries: history.after(topic, after) };
}

/**
 * An SSE stream's resume: one `Last-Event-ID` position for all the requested topics, replayed
 * merged in publish order. No id: nothing (a fresh connect starts live). `<topic>:0`: all
 * history, as WS `resume:{topic:0}`. An id from another epoch: all history and a gap per event
 * topic. An id history still holds: what followed it. An id history has evicted: all history.
 * A gap goes to every topic where history lost events the client may not have seen: for the
 * id's topic those after its seq, for the others (whose position the id does not say, so
 * `after` is 0) any before the first retained. Frame topics never replay.
 */
export function resumeStreams(
  history: EventHistory,
  epoch: string,
  topics: string[],
  last: LastEventId | undefined,
): ResumePlan {
  if (!last) return { gaps: [], entries: [] };
  const events = [...new Set(topics)].filter(isEventTopic);
  const afterOf = (topic: string) => (topic === last.topic ? last.seq : 0);
  if (last.epoch !== undefined && last.epoch !== epoch) {
    return {
      gaps: events.map((t) => gap(history, epoch, t, 'epoch', afterOf(t))),
      entries: history.since(events, 0),
    };
  }
  const afterOrder = last.seq === 0 ? 0 : history.orderOf(last.topic, last.seq);
  if (afterOrder !== undefined && afterOrder > 0) {
    // The id is still held, but another, busier topic may have lost events published after it.
    return {
      gaps: events
        .filter((t) => history.evictedSince(t, afterOrder))
        .map((t) => gap(history, epoch, t, 'evicted', afterOf(t))),
      entries: history.since(events, afterOrder),
    };
  }
  // seq 0, or a position no longer (or never) in history: evicted only if history has moved
  // past it; a position ahead of history (a forgotten job topic, a made-up id) replays nothing.
  if (afterOrder === undefined && history.span(last.topic).first <= last.seq)
    return { gaps: [], entries: [] };
  return {
    gaps: events
      .filter((t) => history.span(t).first > afterOf(t) + 1)
      .map((t) => gap(history, epoch, t, 'evicted', afterOf(t))),
    entries: history.since(events, 0),
  };
}
