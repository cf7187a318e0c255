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

/**
 * A resume position on a topic whose next seq this hub cannot know yet (Hub.nextSeqUnknown),
 * held until that topic's first live event: `after` is the last seq the client has once the
 * plan is sent; `owed` says a gap is due whatever that event's seq (see gapBefore).
 */
export interface PendingResume {
  after: number;
  owed?: 'epoch';
}

/**
 * What a resume sends: the gap records first, then the entries in publish order; `pending`, the
 * positions the viewer holds until each topic's next live event (topic → position).
 */
export interface ResumePlan {
  gaps: GapRecord[];
  entries: HistoryEntry[];
  pending?: Map<string, PendingResume>;
}

/** Whether a topic's next seq is unknown here (Hub.nextSeqUnknown); the default: never (one node). */
export type NextSeqUnknown = (topic: string) => boolean;
const known: NextSeqUnknown = () => false;

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

/**
 * Hands the topics whose next seq this hub does not know (`unknown`) to their first live event.
 * With no history the client's own position (from this epoch) is held, and no gap is sent now:
 * none may be owed (the topic may not have published anywhere yet), and where one is, only that
 * event gives its `first`. A position from another epoch keeps its immediate `epoch` gap. With history (a run received before the bus stopped receiving the topic) the plan
 * brings the client to the newest entry, and that position is held.
 */
function holdUnknown(
  plan: ResumePlan,
  history: EventHistory,
  topics: string[],
  afterOf: (topic: string) => number,
  otherEpoch: boolean,
  unknown: NextSeqUnknown,
): ResumePlan {
  for (const topic of topics) {
    if (!unknown(topic)) continue;
    const newest = history.span(topic).next - 1;
    let held: PendingResume;
    if (newest === 0) {
      // From another epoch a gap is owed whatever comes next, and is sent now: the topic may
      // never publish again (a finished job), and the client must still learn it missed events.
      if (otherEpoch) continue;
      held = { after: afterOf(topic) };
    } else {
      // From another epoch the whole run was replayed; else what followed the client's position.
      held = { after: otherEpoch ? newest : Math.max(afterOf(topic), newest) };
    }
    plan.pending ??= new Map();
    plan.pending.set(topic, held);
  }
  return plan;
}

/**
 * The gap a held position owes before its topic's first live event, `seq`: none when the event
 * follows it; `evicted` when the events between never reached this node; `epoch` when the two
 * cannot be compared: owed (another epoch; the topic restarted since), or `seq` is not above
 * the position. The first live event after a resume is published after it, so it cannot be one
 * the client saw: a seq at or below its position is another numbering (a new owner that numbers
 * lower, see Hub.restartTopic), and skipping it as a duplicate would lose events silently.
 */
export function gapBefore(
  held: PendingResume,
  topic: string,
  seq: number,
  epoch: string,
): GapRecord | undefined {
  if (held.owed === undefined && seq === held.after + 1) return undefined;
  const reason = held.owed ?? (seq > held.after ? 'evicted' : 'epoch');
  return { type: 'gap', topic, epoch, reason, after: held.after, first: seq };
}

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
 * none), `clientEpoch` the epoch it came from (undefined: this one). A topic whose next seq is
 * `unknown` here is also held (`pending`) until its next event.
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
  unknown = known,
): ResumePlan {
  const otherEpoch = clientEpoch !== undefined && clientEpoch !== epoch;
  let plan: ResumePlan;
  if (otherEpoch) {
    plan = { gaps: [gap(history, epoch, topic, 'epoch', after)], entries: history.entries(topic) };
  } else if (history.span(topic).first > after + 1) {
    plan = { gaps: [gap(history, epoch, topic, 'evicted', after)], entries: history.entries(topic) };
  } else {
    plan = { gaps: [], entries: history.after(topic, after) };
  }
  return holdUnknown(plan, history, [topic], () => after, otherEpoch, unknown);
}

/**
 * An SSE stream's resume: one `Last-Event-ID` position for all the requested topics, replayed
 * merged in publish order. No id: nothing (a fresh connect starts live). `<topic>:0`: all
 * history, as WS `resume:{topic:0}`. An id from another epoch: all history and a gap per event
 * topic. An id history still holds: what followed it. An id history has evicted: all history.
 * A gap goes to every topic where history lost events the client may not have seen: for the
 * id's topic those after its seq, for the others (whose position the id does not say, so
 * `after` is 0) any before the first retained. Frame topics never replay. Topics whose next seq
 * is `unknown` here are also held (`pending`) until their next event.
 */
export function resumeStreams(
  history: EventHistory,
  epoch: string,
  topics: string[],
  last: LastEventId | undefined,
  unknown = known,
): ResumePlan {
  if (!last) return { gaps: [], entries: [] };
  const events = [...new Set(topics)].filter(isEventTopic);
  const afterOf = (topic: string) => (topic === last.topic ? last.seq : 0);
  const otherEpoch = last.epoch !== undefined && last.epoch !== epoch;
  const plan = streamsPlan(history, epoch, events, last, afterOf, otherEpoch);
  return holdUnknown(plan, history, events, afterOf, otherEpoch, unknown);
}

function streamsPlan(
  history: EventHistory,
  epoch: string,
  events: string[],
  last: LastEventId,
  afterOf: (topic: string) => number,
  otherEpoch: boolean,
): ResumePlan {
  if (otherEpoch) {
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
