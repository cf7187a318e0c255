import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  mainJs,
  metricValue,
  noiseJpeg,
  pollUntil,
  type RunningDaemon,
  readMjpeg,
  root,
  SseReader,
  startDaemon,
  testCamera,
  Viewer,
  writeConfig,
} from './helpers.js';
import { NGINX_CONF, type RunningNginx, startNginx } from './support/nginx.js';

/**
 * Deployment behind a reverse proxy (README "Behind a reverse proxy"): Debian's nginx with the
 * documented config in front of the daemon, `trustProxy`, and auth off behind a proxy.
 */

const PUSH = { id: 'pushcam', source: 'push' };
/** Daemons here need no more than one worker thread. */
const small = { pool: { threads: 1 } };

const wsOf = (url: string) => url.replace(/^http/, 'ws');
const xff = (address: string) => ({ 'X-Forwarded-For': address });

/** Opens an SSE stream and gives its status once the headers came; `close` ends it. */
async function openSse(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  return {
    status: res.status,
    body: res.status === 200 ? '' : await res.text(),
    close: () => controller.abort(),
  };
}

const postNotice = (url: string, headers: Record<string, string> = {}) =>
  get(`${url}/api/v1/notices`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ message: 'maintenance at 02:00' }),
  });

const errorCode = (text: string) => (JSON.parse(text) as { error: { code: string } }).error.code;

describe('auth off behind a proxy: headers sent straight to the daemon', () => {
  let plain: RunningDaemon;
  let vouched: RunningDaemon;
  beforeAll(async () => {
    [plain, vouched] = await Promise.all([
      startDaemon({ ...small, cameras: [PUSH] }),
      startDaemon({ ...small, cameras: [PUSH], trustProxy: ['127.0.0.1'], authOffTrustsProxy: true }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([plain?.stop(), vouched?.stop()]);
  });

  it('refuses admin endpoints to a request naming a proxy (X-Forwarded-For, Forwarded or Via): 403 FORBIDDEN', async () => {
    const relayed: Record<string, string>[] = [
      xff('203.0.113.9'),
      { Forwarded: 'for=203.0.113.9' },
      { Via: '1.1 nginx' },
    ];
    for (const headers of relayed) {
      const status = await get(`${plain.url}/api/v1/status`, { headers });
      expect(status.status, JSON.stringify(headers)).toBe(403);
      expect(JSON.parse(status.text)).toEqual({
        error: { code: 'FORBIDDEN', message: 'auth is off: not allowed through a proxy' },
      });
    }
    const notice = await postNotice(plain.url, xff('203.0.113.9'));
    expect(notice.status).toBe(403);
    expect(errorCode(notice.text)).toBe('FORBIDDEN');
    // Publishing over HTTP (a job) is refused the same way, before its body is read.
    const job = await get(`${plain.url}/api/v1/jobs/image`, {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg', ...xff('203.0.113.9') },
      body: await noiseJpeg(32, 32),
    });
    expect(job.status).toBe(403);
    const metrics = (await get(`${plain.url}/metrics`)).text;
    const refused = (transport: string) =>
      metricValue(
        metrics,
        `framehub_auth_failures_total{transport="${transport}",reason="proxied_anonymous"}`,
      );
    expect(refused('status')).toBe(3);
    expect(refused('notices')).toBe(1);
    expect(refused('jobs')).toBe(1);
  });

  it('refuses a /publish WebSocket that names a proxy with close 4003, and lets one without publish', async () => {
    const relayed = new Viewer(`${wsOf(plain.url)}/publish`, undefined, { headers: xff('203.0.113.9') });
    expect(await relayed.closed).toEqual({ code: 4003, reason: 'auth is off: not allowed through a proxy' });

    const direct = new Viewer(`${wsOf(plain.url)}/publish`);
    await direct.opened;
    direct.send({ type: 'frame', camera: 'pushcam', data: await noiseJpeg(32, 32) });
    direct.send({ type: 'ping', id: 7 });
    await direct.until((r) => r.some((x) => x.type === 'pong'), 20_000);
    expect(direct.of('error')).toEqual([]);
    direct.close();
    const metrics = (await get(`${plain.url}/metrics`)).text;
    expect(
      metricValue(metrics, 'framehub_auth_failures_total{transport="publish",reason="proxied_anonymous"}'),
    ).toBe(1);
  });

  it('lets the same requests through without forwarding headers: 200 and 202', async () => {
    expect((await get(`${plain.url}/api/v1/status`)).status).toBe(200);
    const notice = await postNotice(plain.url);
    expect(notice.status).toBe(202);
  });

  it('still lets a relayed viewer watch: SSE 200 with events, /ws hello says role viewer', async () => {
    const sse = new SseReader(`${plain.url}/sse?topics=system`, xff('203.0.113.9'));
    expect((await sse.response).status).toBe(200);
    await postNotice(plain.url);
    await sse.until(() => sse.of('system').length >= 1, 10_000);
    sse.close();

    const ws = new Viewer(`${wsOf(plain.url)}/ws`, undefined, { headers: { Via: '1.1 edge' } });
    await ws.opened;
    ws.send({ type: 'hello', token: 'ignored with auth off' });
    await ws.until((r) => r.some((x) => x.type === 'hello'), 10_000);
    expect(ws.of('hello')[0]).toMatchObject({ sub: 'anonymous', role: 'viewer', cams: ['*'] });
    ws.close();

    const direct = new Viewer(`${wsOf(plain.url)}/ws`);
    await direct.opened;
    direct.send({ type: 'hello' });
    await direct.until((r) => r.some((x) => x.type === 'hello'), 10_000);
    expect(direct.of('hello')[0]).toMatchObject({ role: 'admin' });
    direct.close();
  });

  it('with trustProxy and authOffTrustsProxy, a relayed request from the trusted proxy is the admin again', async () => {
    expect((await get(`${vouched.url}/api/v1/status`, { headers: xff('203.0.113.9') })).status).toBe(200);
    expect((await postNotice(vouched.url, { Via: '1.1 nginx' })).status).toBe(202);
    const pub = new Viewer(`${wsOf(vouched.url)}/publish`, undefined, { headers: xff('203.0.113.9') });
    await pub.opened;
    pub.send({ type: 'ping', id: 1 });
    await pub.until((r) => r.some((x) => x.type === 'pong'), 20_000);
    pub.close();
  });

  it('refuses authOffTrustsProxy without trustProxy at start-up: exit 2, naming the field', () => {
    const run = spawnSync(
      process.execPath,
      [mainJs, '--port', '0', '--config', writeConfig({ cameras: [], authOffTrustsProxy: true })],
      { encoding: 'utf8', timeout: 10_000 },
    );
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/authOffTrustsProxy: needs the proxy in trustProxy/);
    const bad = spawnSync(process.execPath, [mainJs, '--port', '0', '--trust-proxy', '10.0.0.1/8'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/trustProxy\.0: .*host bits are set/);
  });
});

describe('a forged X-Forwarded-For from an untrusted peer', () => {
  let daemon: RunningDaemon;
  beforeAll(async () => {
    daemon = await startDaemon({
      ...small,
      cameras: [],
      trustProxy: ['10.0.0.0/8'],
      viewers: { maxConnectionsPerIp: 1 },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('is ignored: two viewers claiming different addresses are both 127.0.0.1', async () => {
    const first = await openSse(`${daemon.url}/sse?topics=system`, xff('203.0.113.1'));
    expect(first.status).toBe(200);
    const second = await openSse(`${daemon.url}/sse?topics=system`, xff('203.0.113.2'));
    expect(second.status).toBe(429);
    expect(errorCode(second.body)).toBe('TOO_MANY_CONNECTIONS');
    const ws = new Viewer(`${wsOf(daemon.url)}/ws`, undefined, { headers: xff('198.51.100.7') });
    expect((await ws.closed).code).toBe(1013);
    first.close();
  });
});

describe('through nginx with the documented config', () => {
  let daemon: RunningDaemon;
  let nginx: RunningNginx;
  beforeAll(async () => {
    daemon = await startDaemon({
      // 720p raw frames at 20 fps (about 3 MB/s) fill the sockets of a stalled viewer in seconds.
      cameras: [{ ...testCamera('demo', 20), width: 1280, height: 720 }],
      trustProxy: ['127.0.0.1'],
      viewers: { maxConnectionsPerIp: 1 },
    });
    nginx = await startNginx(Number(new URL(daemon.url).port));
  });
  afterAll(async () => {
    await nginx?.stop();
    await daemon?.stop();
  });

  it('the README shows docs/nginx.conf verbatim, server block included', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const conf = readFileSync(NGINX_CONF, 'utf8');
    const server = conf.slice(conf.indexOf('\nserver {') + 1);
    expect(server).toMatch(/^server \{\n[\s\S]*\n\}\n$/);
    // Booleans, not toContain: a failure would print the whole README.
    expect(readme.includes(server), 'README shows the server block of docs/nginx.conf verbatim').toBe(true);
    expect(readme.includes(conf), 'README shows docs/nginx.conf verbatim').toBe(true);
  });

  it("carries a WebSocket viewer from the wall's own origin: frames arrive", async () => {
    // nginx passes the browser's Host on ($http_host), so the Origin check sees the wall's own origin.
    const v = new Viewer(`${wsOf(nginx.url)}/ws?topics=cam/demo/low`, undefined, {
      headers: { ...xff('198.51.100.1'), Origin: nginx.url },
    });
    await v.until((r) => r.filter((x) => x.type === 'frame').length >= 3, 20_000);
    const frame = v.of('frame')[0]!;
    expect(frame).toMatchObject({ topic: 'cam/demo/low', mime: 'image/jpeg' });
    expect((await sharp(frame.data as Uint8Array).metadata()).format).toBe('jpeg');
    v.close();
  });

  it('carries SSE: frames arrive as events, and a lone small event promptly', async () => {
    const sse = new SseReader(`${nginx.url}/sse?topics=cam/demo/low`, xff('198.51.100.2'));
    const res = await sse.response;
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    await sse.until(() => sse.of('frame').length >= 3, 20_000);
    sse.close();
    // A buffering proxy holds a few hundred bytes until more come (frames would push them out).
    const events = new SseReader(`${nginx.url}/sse?topics=system`, xff('198.51.100.4'));
    expect((await events.response).status).toBe(200);
    await postNotice(daemon.url);
    await events.until(() => events.of('system').length >= 1, 5000);
    events.close();
    const body = JSON.parse(sse.of('frame')[0]!.data) as { topic: string; data: string };
    expect(body.topic).toBe('cam/demo/low');
    expect((await sharp(Buffer.from(body.data, 'base64')).metadata()).width).toBe(320);
  });

  it('carries MJPEG: multipart parts that are JPEGs', async () => {
    const parts = await readMjpeg(`${nginx.url}/cams/demo/low.mjpeg`, 4, xff('198.51.100.3'));
    expect(parts.length).toBeGreaterThanOrEqual(4);
    for (const p of parts) expect((await sharp(p.jpeg).metadata()).format).toBe('jpeg');
  });

  it('passes backpressure through (buffering off): MJPEG and SSE clients that stop reading become slow viewers', async () => {
    // With nginx buffering, nginx would read on into its temp files (up to 1 GiB each) and the
    // daemon would never see these viewers fall behind, nor skip frames for them.
    const stalled = ['/cams/demo/raw.mjpeg', '/sse?topics=cam/demo/raw'].map((path, i) => {
      const socket = connect(nginx.port, '127.0.0.1');
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${nginx.port}\r\nX-Forwarded-For: 198.51.100.${20 + i}\r\n\r\n`,
      );
      // Never read: a paused socket stops taking bytes once Node's small buffer is full.
      socket.pause();
      return socket;
    });
    const slowViewers = async () => {
      const counts = JSON.parse((await get(`${daemon.url}/api/v1/status/connections`)).text);
      return counts.byState.slow as number;
    };
    const bothSlow = await pollUntil(async () => (await slowViewers()) >= 2, 60_000);
    const slow = await slowViewers();
    for (const socket of stalled) socket.destroy();
    expect(bothSlow, `slow viewers: ${slow}`).toBe(true);
  }, 90_000);

  it('counts viewers by forwarded address: two addresses are two IPs, the same one twice is refused 429', async () => {
    const a = await openSse(`${nginx.url}/sse?topics=system`, xff('203.0.113.10'));
    expect(a.status).toBe(200);
    const b = await openSse(`${nginx.url}/sse?topics=system`, xff('203.0.113.11'));
    expect(b.status).toBe(200);
    const again = await openSse(`${nginx.url}/sse?topics=system`, xff('203.0.113.10'));
    expect(again.status).toBe(429);
    expect(errorCode(again.body)).toBe('TOO_MANY_CONNECTIONS');
    // A WebSocket from the same address is refused too (1013), one from a third is admitted.
    const wsAgain = new Viewer(`${wsOf(nginx.url)}/ws`, undefined, { headers: xff('203.0.113.11') });
    expect((await wsAgain.closed).code).toBe(1013);
    const wsThird = new Viewer(`${wsOf(nginx.url)}/ws`, undefined, { headers: xff('203.0.113.12') });
    await wsThird.opened;
    wsThird.send({ type: 'hello' });
    await wsThird.until((r) => r.some((x) => x.type === 'hello'), 10_000);
    wsThird.close();
    a.close();
    b.close();
  });

  it('with auth off, refuses admin and publishing through nginx (trustProxy alone is no opt-in)', async () => {
    const status = await get(`${nginx.url}/api/v1/status`);
    expect(status.status).toBe(403);
    expect(errorCode(status.text)).toBe('FORBIDDEN');
    expect((await postNotice(nginx.url)).status).toBe(403);
    const pub = new Viewer(`${wsOf(nginx.url)}/publish`);
    expect((await pub.closed).code).toBe(4003);
    // The same daemon, asked directly (no proxy in the path), still answers its operator.
    expect((await get(`${daemon.url}/api/v1/status`)).status).toBe(200);
    // nginx keeps /metrics to itself; Prometheus scrapes the daemon.
    expect((await get(`${nginx.url}/metrics`)).status).toBe(403);
  });
});

describe("the issue's case: many viewers behind nginx at once", () => {
  let crowd: RunningDaemon;
  let burst: RunningDaemon;
  let crowdNginx: RunningNginx;
  let burstNginx: RunningNginx;
  beforeAll(async () => {
    [crowd, burst] = await Promise.all([
      // Default per-IP limits: 1000 connections, 100 connects/s with a burst of 200.
      startDaemon({ ...small, cameras: [], trustProxy: ['127.0.0.1'] }),
      // The same case scaled down: a burst of 10, one new connect per 2 s.
      startDaemon({
        ...small,
        cameras: [],
        trustProxy: ['127.0.0.1'],
        viewers: { connectBurstPerIp: 10, connectRatePerIp: 0.5 },
      }),
    ]);
    [crowdNginx, burstNginx] = await Promise.all([
      startNginx(Number(new URL(crowd.url).port)),
      startNginx(Number(new URL(burst.url).port)),
    ]);
  });
  afterAll(async () => {
    await Promise.all([crowdNginx?.stop(), burstNginx?.stop()]);
    await Promise.all([crowd?.stop(), burst?.stop()]);
  });

  /** `count` SSE viewers opened at once, each from its own client address; their statuses. */
  const openMany = async (base: string, count: number, forwarded: boolean) => {
    const streams = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        openSse(`${base}/sse?topics=system`, forwarded ? xff(`198.18.${i >> 8}.${i & 255}`) : {}),
      ),
    );
    for (const s of streams) s.close();
    return streams.map((s) => s.status);
  };

  it('250 viewers reconnecting at once through nginx, default limits: every one admitted', async () => {
    const statuses = await openMany(crowdNginx.url, 250, true);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const metrics = (await get(`${crowd.url}/metrics`)).text;
    expect(metricValue(metrics, 'framehub_limit_rejections_total{limit="connect_rate"}')).toBe(0);
  });

  it('scaled to a burst of 10: 30 forwarded clients are all admitted, 30 seen as one IP are not', async () => {
    const behind = await openMany(burstNginx.url, 30, true);
    expect(behind.filter((s) => s !== 200)).toEqual([]);
    // What every viewer looked like before trustProxy: one address. At most the burst plus
    // what refills in the seconds this takes gets in; the rest get 429 RATE_LIMITED.
    const oneIp = await openMany(burst.url, 30, false);
    expect(oneIp.filter((s) => s === 429).length).toBeGreaterThanOrEqual(15);
    expect(oneIp.filter((s) => s === 200).length).toBeGreaterThanOrEqual(10);
  });
});
