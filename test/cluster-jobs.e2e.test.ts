// Jobs on several nodes (README "Scaling out"): a job runs on the node that took its upload, and
// any node answers GET /api/v1/jobs/<id> and carries its event topic, so a client behind a load
// balancer can poll or subscribe wherever its next request lands.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noiseJpeg, pollUntil, type RunningDaemon, startDaemon, Viewer } from './helpers.js';
import { type RunningRedis, startRedis } from './support/redis.js';

let redis: RunningRedis;
const nodes: RunningDaemon[] = [];

beforeAll(async () => {
  redis = await startRedis();
  for (const id of ['j1', 'j2']) {
    nodes.push(
      await startDaemon({ cameras: [], pool: { threads: 1 } }, ['--redis-url', redis.url, '--node-id', id]),
    );
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
}, 60_000);

interface JobAnswer {
  id?: string;
  state?: string;
  node?: string;
  result?: unknown;
  error?: { code: string; message: string };
}

const getJob = async (node: RunningDaemon, id: string) => {
  const res = await fetch(`${node.url}/api/v1/jobs/${id}`);
  return { status: res.status, body: (await res.json()) as JobAnswer };
};

describe('jobs on two nodes', () => {
  it('a job posted to node 1 is answered by node 2 (state, result, its node), and its events reach node 2 viewers', async () => {
    const [n1, n2] = nodes as [RunningDaemon, RunningDaemon];
    const body = await noiseJpeg(800, 600);
    const posted = (await (await fetch(`${n1.url}/api/v1/jobs/image`, { method: 'POST', body })).json()) as {
      id: string;
      topic: string;
    };
    expect(posted.id).toMatch(/^[0-9a-f-]{36}$/);

    // Node 2's viewer of the job topic: the job's events cross from node 1.
    const viewer = new Viewer(`${n2.wsUrl}?topics=${posted.topic}`);
    await viewer.opened;

    let last: { status: number; body: JobAnswer } | undefined;
    const done = await pollUntil(async () => {
      last = await getJob(n2, posted.id);
      return last.status === 200 && last.body.state === 'done';
    }, 60_000);
    expect(done, `node 2 answer: ${JSON.stringify(last)}`).toBe(true);
    const local = await getJob(n1, posted.id);
    expect(local.body.state).toBe('done');
    // The same view the running node gives, plus the node that runs it.
    expect(last!.body).toEqual({ ...local.body, node: 'j1' });

    const events = await pollUntil(
      () => viewer.of('job').some((r) => r.state === 'done' && r.id === posted.id),
      30_000,
    );
    expect(events, `job events on node 2: ${JSON.stringify(viewer.of('job'))}`).toBe(true);
    viewer.close();
  }, 120_000);

  it('a DELETE that reaches the other node says where the job runs (409 NOT_HERE); an unknown id is 404', async () => {
    const [n1, n2] = nodes as [RunningDaemon, RunningDaemon];
    const body = await noiseJpeg(640, 480);
    const posted = (await (await fetch(`${n1.url}/api/v1/jobs/image`, { method: 'POST', body })).json()) as {
      id: string;
    };
    expect(await pollUntil(async () => (await getJob(n2, posted.id)).status === 200, 30_000)).toBe(true);
    const del = await fetch(`${n2.url}/api/v1/jobs/${posted.id}`, { method: 'DELETE' });
    expect(del.status).toBe(409);
    const answer = (await del.json()) as JobAnswer;
    expect(answer.error?.code).toBe('NOT_HERE');
    expect(answer.error?.message).toContain('j1');

    const unknown = await getJob(n2, '00000000-0000-4000-8000-000000000000');
    expect(unknown.status).toBe(404);
    expect((await getJob(n2, 'not-a-uuid')).status).toBe(404);
  }, 60_000);
});
