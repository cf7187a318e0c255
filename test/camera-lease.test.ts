import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CameraLeases, type CameraSeqs } from '../src/cluster/camera-lease.js';
import type { Logger } from '../src/log.js';
import { pollUntil } from './helpers.js';
import { type RunningRedis, startRedis } from './support/redis.js';

// Camera leases against a real redis-server: two "nodes" (two CameraLeases on their own
// connections) compete for one camera. Period 600 ms: renewals every 200 ms.
const PERIOD = 600;
const quiet = { info() {}, warn() {}, debug() {} } as unknown as Logger;

let redis: RunningRedis;
const connections: Redis[] = [];
const running: CameraLeases[] = [];
const made: { id: string; n: Node }[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const l of running) await l.stop();
  for (const c of connections) c.disconnect();
  await redis?.stop();
});

interface Node {
  leases: CameraLeases;
  log: string[];
  seqs: CameraSeqs;
  taken: CameraSeqs[];
}

async function node(id: string): Promise<Node> {
  const conn = new Redis(redis.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
  conn.on('error', () => {});
  connections.push(conn);
  await pollUntil(() => conn.status === 'ready', 5000);
  const n: Node = {
    log: [],
    seqs: { frame: 0, vad: 0 },
    taken: [],
    leases: undefined as unknown as CameraLeases,
  };
  // As the daemon does (RedisBus onReconnect): after a reconnect, holders renew first.
  conn.on('ready', () => n.leases.reconnected());
  n.leases = new CameraLeases(
    conn,
    id,
    ['cam1'],
    PERIOD,
    {
      acquired: (camera, token, seqs) => {
        n.log.push(`acquired ${camera} ${token}`);
        n.taken.push(seqs);
      },
      retaken: (camera, token) => n.log.push(`retaken ${camera} ${token}`),
      lost: (camera) => n.log.push(`lost ${camera}`),
      seqs: () => n.seqs,
    },
    quiet,
  );
  running.push(n.leases);
  made.push({ id, n });
  return n;
}

describe('camera leases (SET NX PX, fencing token, Lua renewal)', () => {
  it('one holder; a renewal that finds another owner stops at once; a release hands over with the seqs', async () => {
    const admin = redis.client();
    const a = await node('a');
    a.leases.start();
    expect(await pollUntil(() => a.log.length === 1, 5000)).toBe(true);
    expect(a.log[0]).toMatch(/^acquired cam1 \d+$/);
    const firstToken = Number(a.log[0]!.split(' ')[2]);
    expect(await admin.get('fh:lease:{cam1}')).toMatch(/^a\/[0-9a-f]{8}$/);
    expect(Number(await admin.pttl('fh:lease:{cam1}'))).toBeGreaterThan(0);

    // b tries every 200 ms and never gets it while a renews.
    const b = await node('b');
    b.leases.start();
    a.seqs = { frame: 120, vad: 7 };
    await new Promise((r) => setTimeout(r, 3 * PERIOD));
    expect(b.log).toEqual([]);
    // Renewals record the seqs reached.
    expect(await admin.hgetall('fh:seq:{cam1}')).toEqual({ frame: '120', vad: '7' });

    // Someone else's value in the key: a's next renewal (within PERIOD / 3) stops it.
    const stolenAt = Date.now();
    await admin.set('fh:lease:{cam1}', 'x', 'PX', 2 * PERIOD);
    expect(await pollUntil(() => a.log.includes('lost cam1'), 2000)).toBe(true);
    expect(Date.now() - stolenAt).toBeLessThanOrEqual(PERIOD);
    expect(a.leases.holding().size).toBe(0);

    // x's lease expires; one of a and b takes it, with a new fencing token.
    expect(
      await pollUntil(() => [...a.log, ...b.log].filter((l) => l.startsWith('acquired')).length === 2, 5000),
    ).toBe(true);
    const holder = a.leases.holding().size ? a : b;
    const other = holder === a ? b : a;
    expect(holder.leases.holding().get('cam1')).toBeGreaterThan(firstToken);
    expect(other.leases.holding().size).toBe(0);

    // A graceful stop gives the lease back at once: the other takes it at its next try, and
    // learns where the seqs were.
    holder.seqs = { frame: 500, vad: 30 };
    const before = other.taken.length;
    await holder.leases.stop();
    expect(await pollUntil(() => other.taken.length === before + 1, PERIOD)).toBe(true);
    expect(other.taken.at(-1)).toEqual({ frame: 500, vad: 30 });
  });

  it('after Redis restarts empty, the holder takes its lease back at its next renewal', async () => {
    const owner = made.find((m) => m.n.leases.holding().size === 1)!;
    expect(owner).toBeDefined();
    const lost = owner.n.log.length;
    const tokenBefore = owner.n.leases.holding().get('cam1')!;
    await redis.stop();
    await redis.start();
    const admin = redis.client();
    expect(await pollUntil(async () => (await admin.get('fh:lease:{cam1}')) !== null, 10_000)).toBe(true);
    expect(await admin.get('fh:lease:{cam1}')).toMatch(new RegExp(`^${owner.id}/`));
    // Still its own a period later: renewed, never lost, nobody else took it.
    await new Promise((r) => setTimeout(r, PERIOD));
    expect(await admin.get('fh:lease:{cam1}')).toMatch(new RegExp(`^${owner.id}/`));
    // Taken again with a new token, above every earlier one although the fence counter was lost
    // with Redis's data (receivers take a new token as a new epoch of the camera's topics).
    expect(owner.n.log.slice(lost)).toHaveLength(1);
    expect(owner.n.log.at(-1)).toMatch(/^retaken cam1 \d+$/);
    const tokenAfter = owner.n.leases.holding().get('cam1')!;
    expect(tokenAfter).toBeGreaterThan(tokenBefore);
    expect(Number(owner.n.log.at(-1)!.split(' ')[2])).toBe(tokenAfter);
    expect(made.filter((m) => m !== owner).every((m) => m.n.leases.holding().size === 0)).toBe(true);
  });

  it('adopts a lease an ACQUIRE of its own took after it gave up waiting (a hung Redis answering late)', async () => {
    const admin = redis.client();
    for (const m of made) await m.n.leases.stop();
    await admin.del('fh:lease:{cam1}');
    const late = await node('late');
    // As Redis runs the timed-out ACQUIRE when it wakes: the lease names `late`, which never
    // heard back. Without adoption it would wait for its own lease to expire, nobody ingesting.
    await admin.set('fh:lease:{cam1}', late.leases.holderId, 'PX', 60_000);
    const fence = Number(await admin.get('fh:fence:{cam1}'));
    late.leases.start();
    expect(await pollUntil(() => late.log.length === 1, 2000)).toBe(true);
    expect(late.log[0]).toBe(`acquired cam1 ${fence}`);
    // Renewed as its own from then on.
    await new Promise((r) => setTimeout(r, PERIOD));
    expect(late.log).toHaveLength(1);
    expect(Number(await admin.pttl('fh:lease:{cam1}'))).toBeLessThanOrEqual(PERIOD);
  });

  it('after the fence is lost, no node acquires for a grace period: the owner retakes its lease first', async () => {
    const admin = redis.client();
    const owner = made.find((m) => m.n.leases.holding().size === 1)!;
    const other = await node('other');
    // Redis lost the camera's keys; `other` asks first.
    await admin.del('fh:lease:{cam1}', 'fh:fence:{cam1}');
    other.leases.start();
    expect(await pollUntil(async () => (await admin.get('fh:lease:{cam1}')) !== null, 5000)).toBe(true);
    expect(await admin.get('fh:lease:{cam1}')).toBe(owner.n.leases.holderId);
    await new Promise((r) => setTimeout(r, PERIOD));
    expect(other.log).toEqual([]);
    expect(owner.n.log.at(-1)).toMatch(/^retaken cam1 \d+$/);
    await other.leases.stop();
  });

  it('two processes with the same node id never both hold a camera (the lease names the process)', async () => {
    const owner = made.find((m) => m.n.leases.holding().size === 1)!;
    const twin = await node(owner.id);
    twin.leases.start();
    // The lease vanishes (as when the owner stalled past its period): whichever takes it next,
    // the other must not count it as its own at its next renewal, as a lease holding only the
    // node id would let it.
    await redis.client().del('fh:lease:{cam1}');
    expect(await pollUntil(async () => (await redis.client().get('fh:lease:{cam1}')) !== null, 5000)).toBe(
      true,
    );
    await new Promise((r) => setTimeout(r, 2 * PERIOD));
    const holders = [owner.n, twin].filter((n) => n.leases.holding().size === 1);
    expect(holders).toHaveLength(1);
  });
});
