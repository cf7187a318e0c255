/**
 * HEAD works wherever GET does: the same status and headers, no body, and the keep-alive
 * connection still usable. Each exchange runs on one raw socket (KeepAliveHttp), so a single stray
 * body byte after a HEAD answer makes the next response on it fail to parse.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, metricValue, type RunningDaemon, startDaemon, testCamera } from './helpers.js';
import { signToken, TEST_SECRET } from './support/auth.js';
import { KeepAliveHttp } from './support/keep-alive-http.js';

let daemon: RunningDaemon;
let admin = '';
let viewer = '';

beforeAll(async () => {
  daemon = await startDaemon({
    cameras: [testCamera('lobby', 10)],
    auth: { hs256Secret: TEST_SECRET },
    // Fewer than the HEAD streams below: each must give its slot back.
    viewers: { maxConnectionsPerIp: 2 },
  });
  admin = await signToken({ cams: ['*'], role: 'admin' });
  viewer = await signToken({ cams: ['lobby'] });
  // The snapshot answers 503 until the first frame; HEAD is compared with a 200.
  const deadline = Date.now() + 20_000;
  while ((await get(`${daemon.url}/cams/lobby/low.jpg?token=${viewer}`)).status !== 200) {
    if (Date.now() > deadline) throw new Error('no snapshot of cam/lobby/low in 20 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});
afterAll(async () => {
  await daemon?.stop();
});

/** Paths whose body is the same on every GET, so HEAD's Content-Length must equal GET's. */
const stable = new Set(['/healthz', '/readyz', '/']);

describe('HEAD mirrors GET without a body', () => {
  const paths: [string, () => Record<string, string>][] = [
    ['/healthz', () => ({})],
    ['/readyz', () => ({})],
    ['/metrics', () => ({})],
    ['/', () => ({})],
    ['/viewer.js', () => ({})],
    ['/cams/lobby/low.jpg', () => ({ authorization: `Bearer ${viewer}` })],
    ['/api/v1/status', () => ({ authorization: `Bearer ${admin}` })],
    ['/api/v1/status', () => ({})],
    ['/no/such/route', () => ({})],
  ];
  for (const [path, headers] of paths) {
    const auth = headers().authorization ? ' with a token' : '';
    it(`HEAD ${path}${auth}`, async () => {
      const conn = await KeepAliveHttp.open(daemon.url);
      const getRes = await conn.request('GET', path, headers());
      const head = await conn.request('HEAD', path, headers());
      expect(head.status).toBe(getRes.status);
      expect(head.headers['content-type']).toBe(getRes.headers['content-type']);
      expect(head.headerCounts['content-length']).toBe(1);
      if (stable.has(path)) expect(head.headers['content-length']).toBe(getRes.headers['content-length']);
      else expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
      // No byte of a body followed the HEAD answer: the next answer on the socket parses.
      const after = await conn.request('GET', '/healthz');
      expect([after.status, JSON.parse(after.body.toString()).status]).toEqual([200, 'ok']);
      expect(conn.unread).toBe(0);
      conn.close();
    });
  }

  it('HEAD of an unknown path is 404 with no body, and the connection goes on', async () => {
    const conn = await KeepAliveHttp.open(daemon.url);
    const head = await conn.request('HEAD', '/nothing-here');
    expect(head.status).toBe(404);
    expect((await conn.request('GET', '/healthz')).status).toBe(200);
    conn.close();
  });
});

describe('HEAD of a stream', () => {
  const streams: [string, string][] = [
    ['/sse?topics=cam/lobby/low', 'text/event-stream'],
    ['/cams/lobby/low.mjpeg', 'multipart/x-mixed-replace; boundary=framehubframe'],
  ];
  for (const [path, type] of streams) {
    it(`HEAD ${path} answers the stream's headers and registers no viewer`, async () => {
      const transport = path.startsWith('/sse') ? 'sse' : 'mjpeg';
      const conn = await KeepAliveHttp.open(daemon.url);
      // More than viewers.maxConnectionsPerIp: a HEAD must give its connection slot back.
      for (let i = 0; i < 4; i++) {
        const head = await conn.request('HEAD', `${path}${path.includes('?') ? '&' : '?'}token=${viewer}`);
        expect([head.status, head.headers['content-type']]).toEqual([200, type]);
        expect(head.headers['content-length']).toBeUndefined();
      }
      expect((await conn.request('GET', '/healthz')).status).toBe(200);
      // The gauge counts the one GET stream opened now, and none of the HEADs before it.
      const stream = new AbortController();
      const opened = await fetch(`${daemon.url}${path}`, {
        headers: { authorization: `Bearer ${viewer}` },
        signal: stream.signal,
      });
      expect(opened.status).toBe(200);
      const metrics = (await get(`${daemon.url}/metrics`)).text;
      stream.abort();
      expect(metricValue(metrics, `framehub_connections{transport="${transport}"}`)).toBe(1);
      // Refused like GET, still without a body.
      const refused = await conn.request('HEAD', path);
      expect(refused.status).toBe(401);
      expect((await conn.request('GET', '/healthz')).status).toBe(200);
      conn.close();
    });
  }
});
