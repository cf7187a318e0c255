// A push camera's publisher that moves to another node (a reconnect through a load balancer):
// viewers on both nodes go on getting its frames, seq increasing, instead of dropping the new
// node's frames as stale until its seq passes the old one (README "Scaling out").

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { noiseJpeg, pack, pollUntil, type RunningDaemon, startDaemon, Viewer } from './helpers.js';
import { type RunningRedis, startRedis } from './support/redis.js';

let redis: RunningRedis;
const nodes: RunningDaemon[] = [];
const config = { cameras: [{ id: 'p', source: 'push', fps: 30 }], pool: { threads: 1 } };

beforeAll(async () => {
  redis = await startRedis();
  for (const id of ['p1', 'p2']) {
    nodes.push(await startDaemon(config, ['--redis-url', redis.url, '--node-id', id]));
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
}, 60_000);

/** Publishes `count` frames to `node`, one every `everyMs`, then closes. */
async function publish(node: RunningDaemon, jpeg: Buffer, count: number, everyMs: number): Promise<void> {
  const ws = new WebSocket(`${node.url.replace(/^http/, 'ws')}/publish`);
  await new Promise((res, rej) => ws.once('open', res).once('error', rej));
  for (let i = 0; i < count; i++) {
    ws.send(pack({ type: 'frame', camera: 'p', data: jpeg }));
    await new Promise((r) => setTimeout(r, everyMs));
  }
  ws.close();
  await new Promise((res) => ws.once('close', res));
}

describe('a push camera whose publisher moves', () => {
  it('keeps every node delivering: the new node numbers after the old one, the others take it as the new owner', async () => {
    const [n1, n2] = nodes as [RunningDaemon, RunningDaemon];
    const viewers = [new Viewer(`${n1.wsUrl}?topics=cam/p/raw`), new Viewer(`${n2.wsUrl}?topics=cam/p/raw`)];
    await Promise.all(viewers.map((v) => v.opened));
    const first = await noiseJpeg(320, 240);
    const second = await noiseJpeg(640, 480);
    const frames = (v: Viewer, width: number) =>
      v.of('frame').filter((f) => f.width === width && f.cached !== true);

    // 60 frames on node 1, seen on both nodes (node 2 through Redis).
    await publish(n1, first, 60, 20);
    for (const v of viewers) {
      expect(await pollUntil(() => frames(v, 320).length >= 40, 15_000), 'first publisher seen').toBe(true);
    }
    // The publisher comes back on node 2, with fewer frames than node 1 numbered.
    await publish(n2, second, 30, 100);
    for (const [i, v] of viewers.entries()) {
      const got = await pollUntil(() => frames(v, 640).length >= 10, 15_000);
      expect(got, `viewer on node ${i + 1}: ${frames(v, 640).length} frames of the second publisher`).toBe(
        true,
      );
      const seqs = frames(v, 640).map((f) => f.seq as number);
      expect(
        seqs.every((s, k) => k === 0 || s > seqs[k - 1]!),
        `seq increasing: ${seqs.join(',')}`,
      ).toBe(true);
      v.close();
    }
  }, 60_000);
});
