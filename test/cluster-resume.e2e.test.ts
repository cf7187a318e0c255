import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, type RunningDaemon, SseReader, startDaemon, testCamera, Viewer } from './helpers.js';
import { clusterOf, type RunningRedis, startRedis } from './support/redis.js';

// Resume on a node that does not number a topic (framehub issue 13): node 1 ingests the camera
// and numbers its VAD events; node 2 (--ingest=false) receives them over Redis only while a
// local viewer watches them. A client resuming on node 2 from a seq it saw there earlier, or
// elsewhere, must be told with a `gap` what node 2 never received, never skip it silently.
// The test tone is 2 s on, 2 s off: a VAD event at least every 2.3 s. Bounds are wide: 2 cores.
const VAD = 'cam/demo/vad';
const config = {
  cameras: [testCamera('demo', 8)],
  pool: { threads: 1 },
  cluster: { leaseMs: 3000 },
};

let redis: RunningRedis;
let client: Redis;
let owner: RunningDaemon;
let edge: RunningDaemon;
/** A viewer of the VAD topic on the owner: what was published, whoever watches elsewhere. */
let watcher: Viewer;
const closers: (() => void)[] = [];

const start = (id: string, ...extra: string[]) =>
  startDaemon(config, ['--redis-url', redis.url, '--node-id', id, ...extra]);

const ingesting = async (node: RunningDaemon) => (await clusterOf(node))?.ingesting ?? [];

/** The newest VAD seq the owner published, as its own viewer saw it. */
const published = () =>
  Math.max(0, ...watcher.records.filter((r) => r.topic === VAD).map((r) => r.seq as number));

/** Nodes subscribing the VAD channel: 0 once node 2's bus stopped receiving it (RedisBus.tick). */
async function receivers(): Promise<number> {
  const reply = (await client.call('PUBSUB', 'NUMSUB', `fh:t:${VAD}`)) as [string, number];
  return Number(reply[1]);
}

/**
 * Walks what a resumed client got, from the seq it resumed after: every event must follow the
 * one before, or come right after a gap that says where the stream picks up (`after` the last
 * seq the client has, `first` the next one it gets). Returns the gaps.
 */
function expectNoSilentSkip(after: number, records: Record<string, unknown>[]): Record<string, unknown>[] {
  let at = after;
  const gaps: Record<string, unknown>[] = [];
  let owed: number | undefined;
  for (const r of records) {
    if (r.type === 'gap') {
      expect(r, 'a gap names the last seq the client has').toMatchObject({ topic: VAD, after: at });
      owed = r.first as number;
      gaps.push(r);
      continue;
    }
    const seq = r.seq as number;
    expect(seq, `event after ${at}${owed ? ` (gap: first ${owed})` : ''}`).toBe(owed ?? at + 1);
    owed = undefined;
    at = seq;
  }
  return gaps;
}

beforeAll(async () => {
  redis = await startRedis();
  client = redis.client();
  owner = await start('n1');
  expect(
    await pollUntil(async () => (await ingesting(owner)).includes('demo'), 30_000),
    'node 1 ingests',
  ).toBe(true);
  edge = await start('n2', '--ingest=false');
  watcher = new Viewer(`${owner.wsUrl}?topics=${VAD}`);
  await watcher.opened;
  await watcher.until((r) => r.some((x) => x.topic === VAD), 30_000);
}, 90_000);

afterAll(async () => {
  watcher?.close();
  for (const close of closers) close();
  await Promise.all([owner?.stop(), edge?.stop()]);
  await redis?.stop();
}, 60_000);

describe('resume on a node that does not number the topic', () => {
  it('WS: a position from elsewhere, the topic never received here: a gap, then the events', async () => {
    // The client saw `seen` on node 1; two more are published while node 2 has no viewer of them.
    const seen = published();
    await watcher.until(() => published() >= seen + 2, 30_000);
    const v = new Viewer(edge.wsUrl);
    closers.push(() => v.close());
    await v.opened;
    // hello first, then sub: the resume is in place before the topic's first live event.
    v.send({ type: 'hello', resume: { [VAD]: seen } });
    await v.until((r) => r.some((x) => x.type === 'hello'), 10_000);
    v.send({ type: 'sub', topics: [VAD] });
    await v.until((r) => r.filter((x) => x.topic === VAD && x.type !== 'gap').length >= 2, 30_000);
    v.close();
    const got = v.records.filter((x) => x.topic === VAD);
    const gaps = expectNoSilentSkip(seen, got);
    expect(gaps).toHaveLength(1);
    expect(gaps[0]).toMatchObject({ reason: 'evicted', after: seen });
    expect(gaps[0]!.first as number).toBeGreaterThan(seen + 2);
    expect(got[0]!.type).toBe('gap');
  }, 90_000);

  it('SSE: the position came from this node, which stopped receiving the topic since: a gap, then the events', async () => {
    const first = new SseReader(`${edge.url}/sse?topics=${VAD}`);
    closers.push(() => first.close());
    await first.until(() => first.events.some((e) => e.id?.startsWith(`${VAD}:`)), 30_000);
    first.close();
    const lastId = first.events.filter((e) => e.id).at(-1)!.id!;
    const seqOf = (id: string) => Number(id.split(':')[1]);
    const lastSeq = seqOf(lastId);
    // Node 2 has no viewer of the topic left: its bus unsubscribes within a second or two.
    expect(await pollUntil(async () => (await receivers()) === 0, 15_000), 'node 2 stopped receiving').toBe(
      true,
    );
    const stoppedAt = published();
    await watcher.until(() => published() >= stoppedAt + 2, 30_000);

    // Reconnects to node 2 (an EventSource sends its last id): what node 2 holds ends before
    // the two events just published; a live one comes after them.
    const resumedAt = published();
    const again = new SseReader(`${edge.url}/sse?topics=${VAD}`, { 'Last-Event-ID': lastId });
    closers.push(() => again.close());
    await again.until(() => again.events.some((e) => e.id && seqOf(e.id) > resumedAt), 30_000);
    again.close();
    const got = again.events.map((e) => JSON.parse(e.data) as Record<string, unknown>);
    const gaps = expectNoSilentSkip(lastSeq, got);
    expect(gaps.length).toBeGreaterThanOrEqual(1);
    expect(gaps.at(-1)).toMatchObject({ reason: 'evicted' });
  }, 90_000);
});
