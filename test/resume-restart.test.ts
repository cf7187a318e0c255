import { afterAll, describe, expect, it } from 'vitest';
import {
  postNotice,
  type RunningDaemon,
  type SseEvent,
  SseReader,
  startDaemon,
  testCamera,
  Viewer,
} from './helpers.js';

/**
 * Issue 9's restart scenario, end to end: seq restarts at 1 in a new process, so a client
 * resuming with its old position must be told (a `gap` record) and given what the new process
 * has, not silently handed only the seqs above its old one.
 */

const config = { cameras: [testCamera('demo', 5)] };
const daemons: RunningDaemon[] = [];
afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
});

/** A daemon whose camera is up, so `system` seq 1 is its camera_up event. */
async function upDaemon(): Promise<RunningDaemon> {
  const d = await startDaemon(config);
  daemons.push(d);
  await d.waitForLog((l) => l.msg === 'camera up', 30_000);
  return d;
}

const body = (e: SseEvent) => JSON.parse(e.data) as Record<string, unknown>;
/** An SSE id's parts: `<topic>:<seq>:<epoch>`. */
const idParts = (id: string | undefined) => {
  const [topic, seq, epoch] = (id ?? '').split(':');
  return { topic, seq: Number(seq), epoch };
};

describe('resume across a daemon restart', () => {
  it('SSE and WS clients resuming from the old process get a gap record, then camera_up and every event since', async () => {
    // First process: a client sees camera_up's successors up to system:3.
    const first = await upDaemon();
    const sse = new SseReader(`${first.url}/sse?topics=system`);
    const ws = new Viewer(first.wsUrl);
    await Promise.all([sse.response, ws.opened]);
    // Resuming from 0 replays camera_up, which also shows the subscription is in place.
    ws.send({ type: 'hello', resume: { system: 0 } });
    ws.send({ type: 'sub', topics: ['system'] });
    await ws.until((r) => r.some((x) => x.type === 'system'), 10_000);
    const seen = [await postNotice(first.url, 'before one'), await postNotice(first.url, 'before two')];
    expect(seen).toEqual([2, 3]);
    await sse.until(() => sse.of('system').length >= 2, 10_000);
    await ws.until((r) => r.filter((x) => x.type === 'system').length >= 3, 10_000);
    sse.close();
    ws.close();
    const lastId = sse.of('system').at(-1)!.id;
    const oldEpoch = idParts(lastId).epoch;
    expect(idParts(lastId)).toMatchObject({ topic: 'system', seq: 3 });
    expect(oldEpoch).toMatch(/^[0-9a-z]{8}$/);
    const oldHello = ws.of('hello')[0]!;
    expect(oldHello.epoch).toBe(oldEpoch);
    await first.stop();

    // Second process: camera_up is system:1 again, then four notices (2..5). Before epochs a
    // resume from system:3 got 4 and 5 only.
    const second = await upDaemon();
    const since = [];
    for (const m of ['after one', 'after two', 'after three', 'after four'])
      since.push(await postNotice(second.url, m));
    expect(since).toEqual([2, 3, 4, 5]);

    const again = new SseReader(`${second.url}/sse?topics=system`, { 'Last-Event-ID': lastId! });
    await again.until(() => again.of('system').length >= 5, 10_000);
    again.close();
    const gap = again.events[0]!;
    expect(gap.event).toBe('gap');
    const newEpoch = idParts(again.of('system')[0]!.id).epoch;
    expect(newEpoch).toMatch(/^[0-9a-z]{8}$/);
    expect(newEpoch).not.toBe(oldEpoch);
    expect(body(gap)).toEqual({
      type: 'gap',
      topic: 'system',
      epoch: newEpoch,
      reason: 'epoch',
      after: 3,
      first: 1,
    });
    const replayed = again.of('system').map(body);
    expect(replayed.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(replayed[0]).toMatchObject({ kind: 'camera_up', camera: 'demo' });
    expect(again.of('system').map((e) => e.id)).toEqual(
      [1, 2, 3, 4, 5].map((s) => `system:${s}:${newEpoch}`),
    );

    const back = new Viewer(second.wsUrl);
    await back.opened;
    back.send({ type: 'hello', resume: { system: 3 }, epoch: oldEpoch });
    back.send({ type: 'sub', topics: ['system'] });
    await back.until((r) => r.filter((x) => x.type === 'system').length >= 5, 10_000);
    back.close();
    const types = back.records.map((r) => r.type);
    expect(types.slice(0, 2)).toEqual(['hello', 'gap']);
    expect(back.of('hello')[0]!.epoch).toBe(newEpoch);
    expect(back.of('gap')).toEqual([
      { type: 'gap', topic: 'system', epoch: newEpoch, reason: 'epoch', after: 3, first: 1 },
    ]);
    const wsReplayed = back.of('system');
    expect(wsReplayed.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(wsReplayed[0]).toMatchObject({ kind: 'camera_up', camera: 'demo' });
  }, 90_000);

  it('SSE Last-Event-ID <topic>:0 replays what WS resume {topic: 0} does: all history, no gap', async () => {
    const d = await upDaemon();
    expect(await postNotice(d.url, 'one')).toBe(2);
    const sse = new SseReader(`${d.url}/sse?topics=system`, { 'Last-Event-ID': 'system:0' });
    const ws = new Viewer(d.wsUrl);
    await ws.opened;
    ws.send({ type: 'hello', resume: { system: 0 } });
    ws.send({ type: 'sub', topics: ['system'] });
    await ws.until((r) => r.filter((x) => x.type === 'system').length >= 2, 10_000);
    await sse.until(() => sse.of('system').length >= 2, 10_000);
    sse.close();
    ws.close();
    expect(ws.of('system').map((r) => r.seq)).toEqual([1, 2]);
    expect(sse.of('system').map((e) => body(e).seq)).toEqual([1, 2]);
    expect(body(sse.of('system')[0]!)).toMatchObject({ kind: 'camera_up', camera: 'demo' });
    expect(sse.of('gap')).toEqual([]);
    expect(ws.of('gap')).toEqual([]);
  }, 60_000);
});
