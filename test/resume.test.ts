import { describe, expect, it } from 'vitest';
import type { HistoryEntry } from '../src/hub/history.js';
import { Hub } from '../src/hub/hub.js';
import { gapBefore, newEpoch, resumeStreams, resumeTopic, validEpoch } from '../src/hub/resume.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { lastEventId, parseLastEventId } from '../src/server/last-event-id.js';
import { encode } from '../src/wire/records.js';

/**
 * Resume semantics (src/hub/resume.ts) against a real hub and its history: which entries a
 * resume replays, and when it owes the client a `gap` record.
 */

const OLD = 'oldepoch';

/** A hub whose history keeps `perTopic` events per topic, and a publisher of numbered events. */
function hubWith(perTopic: number) {
  const hub = new Hub(new Set(['demo']), createMetrics(), perTopic);
  const publish = (topic: string, n: number) => {
    for (let i = 0; i < n; i++) hub.publishEvent(topic, { type: 'system', event: 'x' });
  };
  return { hub, publish };
}

const positions = (entries: HistoryEntry[]) => entries.map((e) => `${e.topic}:${e.seq}`);

describe('epoch', () => {
  it('is 8 base36 characters, different per hub, and a valid client epoch', () => {
    const a = newEpoch();
    expect(a).toMatch(/^[0-9a-z]{8}$/);
    const { hub } = hubWith(4);
    expect(hub.epoch).toMatch(/^[0-9a-z]{8}$/);
    expect(hubWith(4).hub.epoch).not.toBe(hub.epoch);
    expect(validEpoch(hub.epoch)).toBe(true);
  });

  it('refuses client epochs that are not short plain strings', () => {
    for (const bad of ['', 'a'.repeat(33), 'has space', 'a:b', 7, null, {}, ['x']])
      expect(validEpoch(bad)).toBe(false);
    expect(validEpoch('A_b-9')).toBe(true);
  });
});

describe('parseLastEventId', () => {
  it('reads the epoch form and the legacy form, and nothing else', () => {
    expect(parseLastEventId(lastEventId('cam/demo/vad', 17, 'k2x9a0qz'))).toEqual({
      topic: 'cam/demo/vad',
      seq: 17,
      epoch: 'k2x9a0qz',
    });
    expect(parseLastEventId('system:3')).toEqual({ topic: 'system', seq: 3 });
    expect(parseLastEventId('system:0')).toEqual({ topic: 'system', seq: 0 });
    for (const bad of ['', 'system', ':3', 'system:', 'system:-1', 'system: 3', 'system:0x3', 'system:1e3'])
      expect(parseLastEventId(bad), bad).toBeUndefined();
    for (const bad of ['system:3:', 'system:3:a b', 'system:3:k:x', `system:3:${'a'.repeat(33)}`])
      expect(parseLastEventId(bad), bad).toBeUndefined();
  });
});

describe('resumeTopic (WS hello.resume)', () => {
  it('same epoch, position covered: what followed, no gap', () => {
    const { hub, publish } = hubWith(4);
    publish('system', 5);
    const plan = resumeTopic(hub.history, hub.epoch, 'system', 3, hub.epoch);
    expect(plan.gaps).toEqual([]);
    expect(positions(plan.entries)).toEqual(['system:4', 'system:5']);
    // No epoch from the client: taken as this one.
    expect(resumeTopic(hub.history, hub.epoch, 'system', 3, undefined)).toEqual(plan);
    // Up to date, or ahead of history: nothing.
    expect(resumeTopic(hub.history, hub.epoch, 'system', 5, hub.epoch).entries).toEqual([]);
    expect(resumeTopic(hub.history, hub.epoch, 'system', 9, hub.epoch)).toEqual({ gaps: [], entries: [] });
  });

  it('seq 0 replays everything, with a gap only when history lost seq 1', () => {
    const { hub, publish } = hubWith(4);
    publish('system', 3);
    const intact = resumeTopic(hub.history, hub.epoch, 'system', 0, hub.epoch);
    expect(intact.gaps).toEqual([]);
    expect(positions(intact.entries)).toEqual(['system:1', 'system:2', 'system:3']);
    publish('system', 3);
    const lost = resumeTopic(hub.history, hub.epoch, 'system', 0, hub.epoch);
    expect(lost.gaps).toEqual([
      { type: 'gap', topic: 'system', epoch: hub.epoch, reason: 'evicted', after: 0, first: 3 },
    ]);
    expect(positions(lost.entries)).toEqual(['system:3', 'system:4', 'system:5', 'system:6']);
  });

  it('same epoch, position evicted: everything history has, and an evicted gap', () => {
    const { hub, publish } = hubWith(4);
    publish('system', 10);
    const plan = resumeTopic(hub.history, hub.epoch, 'system', 2, hub.epoch);
    expect(plan.gaps).toEqual([
      { type: 'gap', topic: 'system', epoch: hub.epoch, reason: 'evicted', after: 2, first: 7 },
    ]);
    expect(positions(plan.entries)).toEqual(['system:7', 'system:8', 'system:9', 'system:10']);
    // The last seen evicted but the next one kept: nothing was missed, so no gap.
    const edge = resumeTopic(hub.history, hub.epoch, 'system', 6, hub.epoch);
    expect(edge.gaps).toEqual([]);
    expect(positions(edge.entries)).toEqual(['system:7', 'system:8', 'system:9', 'system:10']);
  });

  it('another epoch: all of the topic, and an epoch gap', () => {
    const { hub, publish } = hubWith(4);
    publish('system', 2);
    const plan = resumeTopic(hub.history, hub.epoch, 'system', 3, OLD);
    expect(plan.gaps).toEqual([
      { type: 'gap', topic: 'system', epoch: hub.epoch, reason: 'epoch', after: 3, first: 1 },
    ]);
    expect(positions(plan.entries)).toEqual(['system:1', 'system:2']);
    // Nothing published yet on the topic: the gap names the next seq.
    const empty = resumeTopic(hub.history, hub.epoch, 'cam/demo/vad', 5, OLD);
    expect(empty.entries).toEqual([]);
    expect(empty.gaps).toEqual([
      { type: 'gap', topic: 'cam/demo/vad', epoch: hub.epoch, reason: 'epoch', after: 5, first: 1 },
    ]);
  });
});

describe('resumeStreams (SSE Last-Event-ID)', () => {
  const TOPICS = ['system', 'cam/demo/vad', 'cam/demo/low', 'cam/demo/auto'];

  /** system 1..3 and vad 1..3 interleaved: s1 v1 s2 v2 s3 v3. */
  function interleaved(perTopic: number) {
    const h = hubWith(perTopic);
    for (let i = 0; i < 3; i++) {
      h.publish('system', 1);
      h.publish('cam/demo/vad', 1);
    }
    return h;
  }

  it('no id: nothing, as a fresh connect', () => {
    const { hub } = interleaved(8);
    expect(resumeStreams(hub.history, hub.epoch, TOPICS, undefined)).toEqual({ gaps: [], entries: [] });
  });

  it('same epoch, known id: every requested event topic after it, in publish order; frames never', () => {
    const { hub } = interleaved(8);
    const plan = resumeStreams(hub.history, hub.epoch, TOPICS, { topic: 'system', seq: 2, epoch: hub.epoch });
    expect(plan.gaps).toEqual([]);
    expect(positions(plan.entries)).toEqual(['cam/demo/vad:2', 'system:3', 'cam/demo/vad:3']);
    // A legacy id (no epoch) is taken as this epoch's.
    expect(resumeStreams(hub.history, hub.epoch, TOPICS, { topic: 'system', seq: 2 })).toEqual(plan);
  });

  it('same epoch, known id, but a busier topic lost events after it: a gap for that topic', () => {
    // History keeps 4 per topic: system:1 is still held, vad 1..7 (published after it) are not.
    const { hub, publish } = hubWith(4);
    publish('system', 1);
    publish('cam/demo/vad', 11);
    const plan = resumeStreams(hub.history, hub.epoch, ['system', 'cam/demo/vad'], {
      topic: 'system',
      seq: 1,
      epoch: hub.epoch,
    });
    expect(positions(plan.entries)).toEqual([
      'cam/demo/vad:8',
      'cam/demo/vad:9',
      'cam/demo/vad:10',
      'cam/demo/vad:11',
    ]);
    expect(plan.gaps).toEqual([
      { type: 'gap', topic: 'cam/demo/vad', epoch: hub.epoch, reason: 'evicted', after: 0, first: 8 },
    ]);
  });

  it('<topic>:0 replays all history of the requested topics, like WS resume {topic: 0}', () => {
    const { hub } = interleaved(8);
    const plan = resumeStreams(hub.history, hub.epoch, TOPICS, { topic: 'system', seq: 0, epoch: hub.epoch });
    expect(plan.gaps).toEqual([]);
    expect(positions(plan.entries)).toEqual([
      'system:1',
      'cam/demo/vad:1',
      'system:2',
      'cam/demo/vad:2',
      'system:3',
      'cam/demo/vad:3',
    ]);
    // The same events WS replays for resume {system: 0, 'cam/demo/vad': 0}.
    const ws = ['system', 'cam/demo/vad'].flatMap(
      (t) => resumeTopic(hub.history, hub.epoch, t, 0, hub.epoch).entries,
    );
    expect(positions(plan.entries).sort()).toEqual(positions(ws).sort());
  });

  it('<topic>:0 after history lost seq 1 of a topic: a gap for that topic only', () => {
    const { hub, publish } = interleaved(4);
    publish('system', 2); // system keeps 2..5, vad still 1..3
    const plan = resumeStreams(hub.history, hub.epoch, TOPICS, { topic: 'cam/demo/vad', seq: 0 });
    expect(plan.gaps).toEqual([
      { type: 'gap', topic: 'system', epoch: hub.epoch, reason: 'evicted', after: 0, first: 2 },
    ]);
    expect(positions(plan.entries)).toEqual([
      'cam/demo/vad:1',
      'system:2',
      'cam/demo/vad:2',
      'system:3',
      'cam/demo/vad:3',
      'system:4',
      'system:5',
    ]);
  });

  it('another epoch: all history and one epoch gap per requested event topic', () => {
    const { hub } = interleaved(8);
    const plan = resumeStreams(hub.history, hub.epoch, TOPICS, { topic: 'system', seq: 3, epoch: OLD });
    expect(plan.gaps).toEqual([
      { type: 'gap', topic: 'system', epoch: hub.epoch, reason: 'epoch', after: 3, first: 1 },
      { type: 'gap', topic: 'cam/demo/vad', epoch: hub.epoch, reason: 'epoch', after: 0, first: 1 },
    ]);
    expect(positions(plan.entries)).toHaveLength(6);
    expect(positions(plan.entries)[0]).toBe('system:1');
  });

  it('same epoch, id evicted: all history, a gap for its topic', () => {
    const { hub, publish } = interleaved(3);
    publish('system', 3); // system keeps 4..6
    const plan = resumeStreams(hub.history, hub.epoch, TOPICS, { topic: 'system', seq: 1, epoch: hub.epoch });
    expect(plan.gaps).toEqual([
      { type: 'gap', topic: 'system', epoch: hub.epoch, reason: 'evicted', after: 1, first: 4 },
    ]);
    expect(positions(plan.entries)).toEqual([
      'cam/demo/vad:1',
      'cam/demo/vad:2',
      'cam/demo/vad:3',
      'system:4',
      'system:5',
      'system:6',
    ]);
  });

  it('same epoch, id ahead of history (made up, or a forgotten topic): nothing', () => {
    const { hub } = interleaved(8);
    expect(resumeStreams(hub.history, hub.epoch, TOPICS, { topic: 'system', seq: 9 })).toEqual({
      gaps: [],
      entries: [],
    });
    expect(resumeStreams(hub.history, hub.epoch, TOPICS, { topic: 'job/gone', seq: 2 })).toEqual({
      gaps: [],
      entries: [],
    });
  });

  it('only frame topics requested: nothing to replay, whatever the id', () => {
    const { hub } = interleaved(8);
    const frames = ['cam/demo/low', 'cam/demo/auto'];
    expect(resumeStreams(hub.history, hub.epoch, frames, { topic: 'system', seq: 0 })).toEqual({
      gaps: [],
      entries: [],
    });
    expect(resumeStreams(hub.history, hub.epoch, frames, { topic: 'system', seq: 1, epoch: OLD })).toEqual({
      gaps: [],
      entries: [],
    });
  });
});

describe('a topic another node numbers (cluster: Hub.nextSeqUnknown)', () => {
  const VAD = 'cam/demo/vad';

  /** A cluster node's hub, and events of `topic` as the bus delivers them from their owner. */
  function clusterHub(perTopic = 8) {
    const hub = new Hub(new Set(['demo']), createMetrics(), perTopic);
    hub.clustered = true;
    const remote = (topic: string, ...seqs: number[]) => {
      for (const seq of seqs) {
        const body = { type: 'vad', topic, seq, ts: 1, speaking: true };
        hub.publishRemoteEvent(topic, seq, encode(body), body);
      }
    };
    const unknown = (t: string) => hub.nextSeqUnknown(t);
    return { hub, remote, unknown };
  }

  it('no history here: the position is held, no gap yet; the first live event says whether one is owed', () => {
    const { hub, unknown } = clusterHub();
    // The node never received the topic: 31..56 may have been published elsewhere, or nothing.
    const plan = resumeTopic(hub.history, hub.epoch, VAD, 30, undefined, unknown);
    expect(plan).toEqual({ gaps: [], entries: [], pending: new Map([[VAD, { after: 30 }]]) });
    const held = plan.pending!.get(VAD)!;
    expect(gapBefore(held, VAD, 57, hub.epoch)).toEqual({
      type: 'gap',
      topic: VAD,
      epoch: hub.epoch,
      reason: 'evicted',
      after: 30,
      first: 57,
    });
    expect(gapBefore(held, VAD, 31, hub.epoch)).toBeUndefined();
    // Not above the position: another numbering (a new owner that numbers lower), never a duplicate.
    expect(gapBefore(held, VAD, 12, hub.epoch)).toMatchObject({ reason: 'epoch', after: 30, first: 12 });
    // `system` is numbered by each node itself; one node alone numbers everything.
    expect(resumeTopic(hub.history, hub.epoch, 'system', 3, undefined, unknown)).toEqual({
      gaps: [],
      entries: [],
    });
    const { hub: alone } = hubWith(8);
    expect(alone.nextSeqUnknown(VAD)).toBe(false);
    expect(
      resumeTopic(alone.history, alone.epoch, VAD, 30, undefined, (t) => alone.nextSeqUnknown(t)),
    ).toEqual({ gaps: [], entries: [] });
  });

  it('from another epoch with no history here: the epoch gap goes now (the topic may never publish again)', () => {
    const { hub, unknown } = clusterHub();
    const plan = resumeTopic(hub.history, hub.epoch, VAD, 30, OLD, unknown);
    expect(plan).toEqual({
      gaps: [{ type: 'gap', topic: VAD, epoch: hub.epoch, reason: 'epoch', after: 30, first: 1 }],
      entries: [],
    });
    // A position held on a topic that restarted is owed an epoch gap whatever comes next.
    expect(gapBefore({ after: 30, owed: 'epoch' }, VAD, 31, hub.epoch)).toMatchObject({
      reason: 'epoch',
      after: 30,
      first: 31,
    });
  });

  it('a run the bus stopped receiving: replayed, then its newest held; a later event after a break starts a new run', () => {
    const { hub, remote, unknown } = clusterHub();
    remote(VAD, 1, 2, 3, 4, 5);
    // Received live: history reaches the present, a resume is decided now.
    expect(hub.nextSeqUnknown(VAD)).toBe(false);
    expect(resumeTopic(hub.history, hub.epoch, VAD, 3, undefined, unknown)).toMatchObject({ gaps: [] });
    expect(resumeTopic(hub.history, hub.epoch, VAD, 3, undefined, unknown).pending).toBeUndefined();
    // The last local viewer left: the owner goes on numbering, nothing reaches this node.
    hub.interruptTopic(VAD);
    const plan = resumeTopic(hub.history, hub.epoch, VAD, 3, undefined, unknown);
    expect(positions(plan.entries)).toEqual([`${VAD}:4`, `${VAD}:5`]);
    expect(plan.pending).toEqual(new Map([[VAD, { after: 5 }]]));
    // Received again from seq 9: 6..8 never came here, so the old run is not kept beside it.
    remote(VAD, 9, 10);
    expect(hub.nextSeqUnknown(VAD)).toBe(false);
    expect(positions(hub.history.entries(VAD))).toEqual([`${VAD}:9`, `${VAD}:10`]);
    expect(resumeTopic(hub.history, hub.epoch, VAD, 5, undefined, unknown).gaps).toEqual([
      { type: 'gap', topic: VAD, epoch: hub.epoch, reason: 'evicted', after: 5, first: 9 },
    ]);
    // Received again with nothing missed: the run goes on.
    hub.interruptTopic(VAD);
    remote(VAD, 11);
    expect(positions(hub.history.entries(VAD))).toEqual([`${VAD}:9`, `${VAD}:10`, `${VAD}:11`]);
  });

  it('restartTopic (a new owner) forgets the history, so a resume never mixes two numberings', () => {
    const { hub, remote, unknown } = clusterHub();
    remote(VAD, 1, 2, 3, 4, 5);
    hub.restartTopic(VAD);
    expect(hub.history.entries(VAD)).toEqual([]);
    // Before the new owner's first event: held, and its first event (seq 1: it numbers lower) owes a gap.
    const plan = resumeTopic(hub.history, hub.epoch, VAD, 3, undefined, unknown);
    expect(plan).toEqual({ gaps: [], entries: [], pending: new Map([[VAD, { after: 3 }]]) });
    expect(gapBefore(plan.pending!.get(VAD)!, VAD, 1, hub.epoch)).toMatchObject({
      reason: 'epoch',
      first: 1,
    });
    remote(VAD, 1, 2);
    expect(positions(hub.history.entries(VAD))).toEqual([`${VAD}:1`, `${VAD}:2`]);
  });

  it('resumeStreams (SSE): the id’s topic holds its seq, other such topics 0; frames and `system` never', () => {
    const { hub, unknown } = clusterHub();
    for (let i = 0; i < 3; i++) hub.publishEvent('system', { type: 'system' });
    const topics = ['system', VAD, 'cam/demo/low'];
    expect(
      resumeStreams(hub.history, hub.epoch, topics, { topic: VAD, seq: 30, epoch: hub.epoch }, unknown),
    ).toEqual({
      gaps: [],
      entries: [],
      pending: new Map([[VAD, { after: 30 }]]),
    });
    const held = resumeStreams(hub.history, hub.epoch, topics, { topic: 'system', seq: 2 }, unknown);
    expect(positions(held.entries)).toEqual(['system:3']);
    expect(held.gaps).toEqual([]);
    expect(held.pending).toEqual(new Map([[VAD, { after: 0 }]]));
    // Another epoch: a gap per event topic now, nothing held.
    const other = resumeStreams(hub.history, hub.epoch, topics, { topic: VAD, seq: 30, epoch: OLD }, unknown);
    expect(other.gaps.map((g) => g.topic)).toEqual(['system', VAD]);
    expect(other.pending).toBeUndefined();
    // No id: a fresh connect starts live, nothing is held.
    expect(resumeStreams(hub.history, hub.epoch, topics, undefined, unknown)).toEqual({
      gaps: [],
      entries: [],
    });
  });
});
