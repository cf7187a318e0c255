import { spawnSync } from 'node:child_process';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  mainJs,
  metricValue,
  noiseJpeg,
  pack,
  type RunningDaemon,
  startDaemon,
  testCamera,
  Viewer,
  writeConfig,
} from './helpers.js';

const secret = 'a-test-secret-that-is-at-least-32-bytes-long';
const key = new TextEncoder().encode(secret);
const sign = (claims: Record<string, unknown>, exp = '1h', k = key) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('tester')
    .setExpirationTime(exp)
    .sign(k);
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

let daemon: RunningDaemon;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  daemon = await startDaemon({
    cameras: [testCamera('lobby', 10), testCamera('vault', 10), { id: 'feed', source: 'push' }],
    auth: { hs256Secret: secret },
    ws: { authTimeoutMs: 500 },
  });
  tokens.lobby = await sign({ cams: ['lobby'] });
  tokens.all = await sign({ cams: ['*'] });
  tokens.admin = await sign({ cams: ['*'], role: 'admin' });
  tokens.expired = await sign({ cams: ['lobby'] }, '-1h');
  tokens.wrongSig = await sign(
    { cams: ['lobby'] },
    '1h',
    new TextEncoder().encode('another-secret-another-secret-xyz!'),
  );
  tokens.algNone = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'x', cams: ['*'], role: 'admin', exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
  tokens.camsString = await sign({ cams: '*' });
  tokens.publisher = await sign({ cams: ['feed'], role: 'publisher' });
});
afterAll(async () => {
  await daemon?.stop();
});

const sse = (query: string, headers: Record<string, string> = {}) =>
  get(`${daemon.url}/sse?${query}`, { headers });
const metricsText = async () => (await get(`${daemon.url}/metrics`)).text;
const code = (text: string) => (JSON.parse(text) as { error: { code: string } }).error.code;

describe('HTTP viewers with auth on', () => {
  // The client is told only the code and one generic text; the failing check is in the
  // metric's reason label (and the log), never in the body.
  const refused: [string, () => string | undefined, string][] = [
    ['a missing token', () => undefined, 'missing'],
    ['an expired token', () => tokens.expired, 'expired'],
    ['a token with a wrong signature', () => tokens.wrongSig, 'signature'],
    ['an alg:none token', () => tokens.algNone, 'algorithm'],
    ['cams:"*" as a string (widening)', () => tokens.camsString, 'claims'],
    ['garbage', () => 'not.a.jwt', 'malformed'],
  ];
  for (const [what, token, reason] of refused) {
    it(`refuses ${what} with 401 UNAUTHORIZED and counts reason ${reason}`, async () => {
      const t = token();
      const series = `framehub_auth_failures_total{transport="sse",reason="${reason}"}`;
      const before = metricValue(await metricsText(), series) ?? 0;
      const res = await sse(`topics=cam/lobby/low${t ? `&token=${t}` : ''}`);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.text)).toEqual({
        error: { code: 'UNAUTHORIZED', message: t ? 'missing or invalid token' : 'missing token' },
      });
      expect(metricValue(await metricsText(), series)).toBe(before + 1);
    });
  }

  it('refuses a camera outside the token with 403 FORBIDDEN (header and query tokens)', async () => {
    const viaQuery = await sse(`topics=cam/vault/low&token=${tokens.lobby}`);
    expect(viaQuery.status).toBe(403);
    expect(code(viaQuery.text)).toBe('FORBIDDEN');
    const viaHeader = await get(`${daemon.url}/cams/vault/low.jpg`, {
      headers: { authorization: `Bearer ${tokens.lobby}` },
    });
    expect(viaHeader.status).toBe(403);
  });

  it('serves a valid token from the header or ?token=', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${daemon.url}/cams/lobby/low.mjpeg?token=${tokens.lobby}`, {
      signal: ctl.signal,
    });
    expect(res.status).toBe(200);
    ctl.abort();
    const snap = await get(`${daemon.url}/cams/lobby/raw.jpg`, {
      headers: { authorization: `Bearer ${tokens.all}` },
    });
    expect([200, 503]).toContain(snap.status);
  });

  it('keeps the status API for admins', async () => {
    expect((await get(`${daemon.url}/api/v1/status`)).status).toBe(401);
    const viewer = await get(`${daemon.url}/api/v1/status`, {
      headers: { authorization: `Bearer ${tokens.all}` },
    });
    expect(viewer.status).toBe(403);
    expect(code(viewer.text)).toBe('FORBIDDEN');
    const admin = await get(`${daemon.url}/api/v1/status/connections`, {
      headers: { authorization: `Bearer ${tokens.admin}` },
    });
    expect(admin.status).toBe(200);
    expect(JSON.parse(admin.text)).toHaveProperty('byTransport');
  });
});

describe('WebSocket with auth on', () => {
  it('closes a connection that never says hello with 4001', async () => {
    const v = new Viewer(`${daemon.wsUrl}?topics=cam/lobby/low`);
    await v.opened;
    expect((await v.closed).code).toBe(4001);
    expect(v.of('frame')).toHaveLength(0);
  });

  it('closes with 4001 and the generic reason on an invalid token at connect', async () => {
    const v = new Viewer(`${daemon.wsUrl}?token=${tokens.expired}`);
    expect(await v.closed).toEqual({ code: 4001, reason: 'missing or invalid token' });
  });

  it('closes with 4001 and the generic reason on an invalid token in hello', async () => {
    const v = new Viewer(daemon.wsUrl);
    await v.opened;
    v.send({ type: 'hello', token: tokens.wrongSig });
    expect(await v.closed).toEqual({ code: 4001, reason: 'missing or invalid token' });
  });

  it('answers sub before hello with UNAUTHORIZED and works after hello', async () => {
    const v = new Viewer(daemon.wsUrl);
    await v.opened;
    v.send({ type: 'sub', topics: ['cam/lobby/low'] });
    await v.until((r) => r.some((x) => x.type === 'error'));
    expect(v.of('error')[0]!.code).toBe('UNAUTHORIZED');
    v.send({ type: 'hello', token: tokens.lobby });
    await v.until((r) => r.some((x) => x.type === 'hello'));
    expect(v.of('hello')[0]).toMatchObject({ sub: 'tester', role: 'viewer', cams: ['lobby'] });
    v.send({ type: 'sub', topics: ['cam/lobby/low'] });
    await v.until((r) => r.some((x) => x.type === 'frame'));
    v.close();
  });

  it('takes the token from the subprotocol and echoes a protocol back', async () => {
    const v = new Viewer(`${daemon.wsUrl}?topics=cam/lobby/low`, [
      'framehub',
      `framehub.bearer.${tokens.lobby}`,
    ]);
    await v.opened;
    expect(v.ws.protocol).toBe('framehub');
    await v.until((r) => r.some((x) => x.type === 'frame'));
    v.close();
  });

  it('forbids a camera outside cams and leaves the other subscriptions working', async () => {
    const v = new Viewer(`${daemon.wsUrl}?token=${tokens.lobby}`);
    await v.opened;
    v.send({ type: 'sub', topics: ['cam/vault/low', 'cam/lobby/low'] });
    await v.until(
      (r) => r.some((x) => x.type === 'error') && r.filter((x) => x.type === 'frame').length >= 3,
    );
    expect(v.of('error')).toEqual([expect.objectContaining({ code: 'FORBIDDEN', topic: 'cam/vault/low' })]);
    expect(new Set(v.of('frame').map((f) => f.topic))).toEqual(new Set(['cam/lobby/low']));
    v.close();
  });

  it('lets only publishers publish, and only to their cameras', async () => {
    const jpeg = await noiseJpeg(16, 16);
    // A viewer token is refused at the gate: 4003, the WebSocket's 403.
    const viewer = new Viewer(`${daemon.url.replace('http', 'ws')}/publish?token=${tokens.all}`);
    expect(await viewer.closed).toEqual({ code: 4003, reason: 'token does not allow this' });

    const anon = new Viewer(`${daemon.url.replace('http', 'ws')}/publish`);
    expect((await anon.closed).code).toBe(4001);

    const pub = new Viewer(`${daemon.url.replace('http', 'ws')}/publish?token=${tokens.publisher}`);
    await pub.opened;
    pub.ws.send(pack({ type: 'frame', camera: 'lobby', data: jpeg }));
    pub.ws.send(pack({ type: 'ping', id: 1 }));
    // Wide: it once took over 5 s in a full parallel run on 2 cores.
    await pub.until((r) => r.some((x) => x.type === 'pong'), 20_000);
    expect(pub.of('error').map((e) => e.code)).toEqual(['FORBIDDEN']);
    pub.close();
  });
});

describe('start-up rule', () => {
  it('refuses to bind a non-loopback address without an auth key', () => {
    const run = spawnSync(
      process.execPath,
      [mainJs, '--host', '0.0.0.0', '--port', '0', '--config', writeConfig({ cameras: [] })],
      {
        encoding: 'utf8',
        timeout: 10_000,
      },
    );
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/auth/);
  });
});
