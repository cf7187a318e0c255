/**
 * Browsers on another origin, at the HTTP level (the same in Chromium: cors.e2e.test.ts):
 * `cors.origins` and what it gives a listed origin (preflights, CORS headers on the API, SSE,
 * snapshots, MJPEG and tus), what an unlisted one gets (403 preflights, no CORS headers, its
 * POSTs refused), and the WebSocket Origin check on `/ws` and `/publish`. Requests go through
 * node:http, which sends exactly the headers given (fetch would add or refuse some).
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../src/config/load.js';
import { ConfigError } from '../src/errors.js';
import { createCorsPolicy, PREFLIGHT_MAX_AGE_SECONDS, sameOrigin } from '../src/server/cors.js';
import {
  catchError,
  get,
  metricValue,
  pollUntil,
  type RunningDaemon,
  startDaemon,
  testCamera,
  writeConfig,
} from './helpers.js';
import { signToken, TEST_SECRET } from './support/auth.js';

const LISTED = 'http://127.0.0.1:5173';
const OTHER = 'https://elsewhere.example';
const ORIGIN_REJECTIONS = 'framehub_limit_rejections_total{limit="origin"}';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One request with exactly these headers. `stream`: resolve on the response head and cut the
 * connection (an SSE or MJPEG stream never ends).
 */
function send(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; stream?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      const head = { status: res.statusCode ?? 0, headers: res.headers };
      if (opts.stream) {
        resolve({ ...head, body: '' });
        res.destroy();
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ ...head, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const preflight = (url: string, origin: string, method = 'POST', headers = 'authorization, content-type') =>
  send(url, {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': method,
      'Access-Control-Request-Headers': headers,
    },
  });

const errorCode = (a: Answer) => (JSON.parse(a.body) as { error: { code: string } }).error.code;
const csv = (v: string | string[] | undefined) =>
  String(v ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase());

/** How a WebSocket handshake ended: opened, or refused with this HTTP status. */
function dial(url: string, origin?: string): Promise<{ opened: boolean; status?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, origin === undefined ? {} : { origin });
    ws.once('open', () => {
      resolve({ opened: true });
      ws.close();
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve({ opened: false, status: res.statusCode });
      res.resume();
      ws.terminate();
    });
    ws.once('error', () => resolve({ opened: false }));
  });
}

const rejections = async (d: RunningDaemon) =>
  metricValue((await get(`${d.url}/metrics`)).text, ORIGIN_REJECTIONS) ?? 0;

describe('cors.origins in the config', () => {
  const load = (cors: unknown, env: Record<string, string> = {}) =>
    loadConfig(['--config', writeConfig({ cors })], env);

  it('defaults to none, and takes exact origins from the file, the env or the flag', () => {
    expect(loadConfig([], {}).cors.origins).toEqual([]);
    expect(load({ origins: [LISTED, 'https://wall.example.com'] }).cors.origins).toEqual([
      LISTED,
      'https://wall.example.com',
    ]);
    expect(
      load({ origins: [LISTED] }, { FRAMEHUB_CORS_ORIGINS: ' https://a.example , http://b.example:81' }).cors
        .origins,
    ).toEqual(['https://a.example', 'http://b.example:81']);
    const flag = loadConfig(['--cors-origins', 'https://c.example'], { FRAMEHUB_CORS_ORIGINS: LISTED });
    expect(flag.cors.origins).toEqual(['https://c.example']);
    expect(load({ origins: ['*'] }).cors.origins).toEqual(['*']);
  });

  it('refuses what a browser never sends as an Origin, naming the entry and the fix', () => {
    const cases: [string, RegExp][] = [
      [
        'https://wall.example.com/',
        /cors\.origins\.0: must be an origin.*write "https:\/\/wall\.example\.com"/,
      ],
      ['https://wall.example.com/app', /write "https:\/\/wall\.example\.com"/],
      ['https://Wall.Example.com', /write "https:\/\/wall\.example\.com"/],
      ['https://wall.example.com:443', /write "https:\/\/wall\.example\.com"/],
      ['wall.example.com', /cors\.origins\.0: must be an origin/],
      ['ftp://wall.example.com', /cors\.origins\.0: must be an origin/],
      ['null', /cors\.origins\.0: must be an origin/],
    ];
    for (const [entry, message] of cases) {
      const err = catchError(() => load({ origins: [entry] }));
      expect(err, entry).toBeInstanceOf(ConfigError);
      expect((err as Error).message, entry).toMatch(message);
    }
    expect((catchError(() => load({ origins: ['*', LISTED] })) as Error).message).toMatch(
      /cors\.origins: "\*" must be the only entry/,
    );
    expect((catchError(() => load({ origns: [] })) as Error).message).toMatch(/cors: .*origns/);
  });

  it('refuses "*" with auth off, and says what it means with auth on', () => {
    const err = catchError(() => createCorsPolicy(['*'], false));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/"\*" needs auth on/);
    expect(createCorsPolicy(['*'], true).anyOrigin).toBe(true);
    expect([...createCorsPolicy([LISTED], false).origins]).toEqual([LISTED]);
  });

  it("matches the daemon's own origin by host and port, whatever the scheme", () => {
    expect(sameOrigin('http://127.0.0.1:8080', '127.0.0.1:8080')).toBe(true);
    expect(sameOrigin('https://Wall.example.com', 'wall.example.com')).toBe(true);
    expect(sameOrigin('http://127.0.0.1:8081', '127.0.0.1:8080')).toBe(false);
    expect(sameOrigin('http://evil.example', '127.0.0.1:8080')).toBe(false);
    expect(sameOrigin('null', '127.0.0.1:8080')).toBe(false);
    expect(sameOrigin('http://127.0.0.1:8080', '')).toBe(false);
  });

  it('stops start-up with exit 2 on a bad entry', async () => {
    const d = startDaemon({ cors: { origins: ['https://wall.example.com/'] } });
    await expect(d).rejects.toThrow(/exited \(2\).*cors\.origins\.0/s);
  });
});

describe('a listed origin, auth on', () => {
  let daemon: RunningDaemon;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    daemon = await startDaemon({
      cameras: [testCamera('cam1', 10), { id: 'feed', source: 'push' }],
      auth: { hs256Secret: TEST_SECRET },
      cors: { origins: [LISTED, 'https://wall.example.com'] },
    });
    tokens.viewer = await signToken({ cams: ['*'] });
    tokens.publisher = await signToken({ cams: ['*'], role: 'publisher' });
    tokens.admin = await signToken({ cams: ['*'], role: 'admin' });
    // A snapshot answers 503 until the first frame.
    const snapshot = `${daemon.url}/cams/cam1/low.jpg?token=${tokens.viewer}`;
    expect(await pollUntil(async () => (await get(snapshot)).status === 200)).toBe(true);
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('answers a preflight on every route with 204 and what the page may send', async () => {
    const paths = [
      '/api/v1/notices',
      '/api/v1/status',
      '/api/v1/jobs/image',
      '/api/v1/uploads/',
      '/api/v1/uploads/abc',
      '/sse?topics=system',
      '/cams/cam1/low.jpg',
      '/no/such/route',
    ];
    for (const path of paths) {
      const a = await preflight(`${daemon.url}${path}`, LISTED);
      expect(a.status, path).toBe(204);
      expect(a.body, path).toBe('');
      expect(a.headers['access-control-allow-origin'], path).toBe(LISTED);
      expect(csv(a.headers.vary), path).toContain('origin');
      expect(csv(a.headers['access-control-allow-methods'])).toEqual(
        expect.arrayContaining(['get', 'head', 'post', 'patch', 'delete']),
      );
      expect(csv(a.headers['access-control-allow-headers'])).toEqual(
        expect.arrayContaining([
          'authorization',
          'content-type',
          'last-event-id',
          'tus-resumable',
          'upload-offset',
        ]),
      );
      expect(a.headers['access-control-max-age']).toBe(String(PREFLIGHT_MAX_AGE_SECONDS));
      expect(a.headers['access-control-allow-credentials']).toBeUndefined();
    }
    // The other listed origin gets its own origin back, never the first one.
    const other = await preflight(`${daemon.url}/api/v1/notices`, 'https://wall.example.com');
    expect(other.headers['access-control-allow-origin']).toBe('https://wall.example.com');
    // Chromium's private network access check, from a public page to the LAN.
    const pna = await send(`${daemon.url}/api/v1/status`, {
      method: 'OPTIONS',
      headers: {
        Origin: LISTED,
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Private-Network': 'true',
      },
    });
    expect(pna.headers['access-control-allow-private-network']).toBe('true');
  });

  it('refuses a preflight from an unlisted origin with 403, counted, without CORS headers', async () => {
    const before = await rejections(daemon);
    for (const origin of [OTHER, 'http://127.0.0.1:5174', 'https://wall.example.com.evil.example', 'null']) {
      const a = await preflight(`${daemon.url}/api/v1/notices`, origin);
      expect(a.status, origin).toBe(403);
      expect(errorCode(a)).toBe('FORBIDDEN');
      expect(a.body).toMatch(/cors\.origins/);
      expect(a.headers['access-control-allow-origin'], origin).toBeUndefined();
      expect(a.headers['access-control-allow-methods']).toBeUndefined();
    }
    expect(await rejections(daemon)).toBe(before + 4);
    // A tus OPTIONS that is not a preflight still reaches the tus route.
    const tus = await send(`${daemon.url}/api/v1/uploads/`, {
      method: 'OPTIONS',
      headers: { Origin: LISTED },
    });
    expect(tus.status).toBe(204);
    expect(tus.headers['tus-version']).toBe('1.0.0');
    expect(tus.headers['access-control-allow-origin']).toBe(LISTED);
  });

  it('puts the CORS headers on API answers, errors included, and exposes what clients read', async () => {
    const status = await send(`${daemon.url}/api/v1/status`, {
      headers: { Origin: LISTED, Authorization: `Bearer ${tokens.admin}` },
    });
    expect(status.status).toBe(200);
    expect(status.headers['access-control-allow-origin']).toBe(LISTED);
    expect(csv(status.headers.vary)).toContain('origin');
    expect(csv(status.headers['access-control-expose-headers'])).toEqual(
      expect.arrayContaining(['retry-after', 'location', 'etag', 'x-seq', 'upload-offset', 'tus-resumable']),
    );
    // A refusal is readable by the page too: it can tell a bad token from a network error.
    const refused = await send(`${daemon.url}/api/v1/status`, { headers: { Origin: LISTED } });
    expect(refused.status).toBe(401);
    expect(errorCode(refused)).toBe('UNAUTHORIZED');
    expect(refused.headers['access-control-allow-origin']).toBe(LISTED);
    const missing = await send(`${daemon.url}/no/such/route`, { headers: { Origin: LISTED } });
    expect(missing.status).toBe(404);
    expect(missing.headers['access-control-allow-origin']).toBe(LISTED);

    const notice = await send(`${daemon.url}/api/v1/notices`, {
      method: 'POST',
      headers: {
        Origin: LISTED,
        Authorization: `Bearer ${tokens.admin}`,
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({ message: 'from the listed origin' }),
    });
    expect(notice.status).toBe(202);
    expect(notice.headers['access-control-allow-origin']).toBe(LISTED);

    // tus from a listed page: Location and Upload-Offset must be readable.
    const created = await send(`${daemon.url}/api/v1/uploads/`, {
      method: 'POST',
      headers: {
        Origin: LISTED,
        Authorization: `Bearer ${tokens.publisher}`,
        'Tus-Resumable': '1.0.0',
        'Upload-Length': '10',
      },
    });
    expect(created.status).toBe(201);
    expect(created.headers.location).toMatch(/^\/api\/v1\/uploads\/\S+$/);
    expect(created.headers['access-control-allow-origin']).toBe(LISTED);
    const offset = await send(`${daemon.url}${created.headers.location}`, {
      method: 'HEAD',
      headers: { Origin: LISTED, Authorization: `Bearer ${tokens.publisher}`, 'Tus-Resumable': '1.0.0' },
    });
    expect(offset.status).toBe(200);
    expect(offset.headers['upload-offset']).toBe('0');
    expect(offset.headers['access-control-allow-origin']).toBe(LISTED);
  });

  it('puts them on SSE, snapshots (200, 304 and HEAD) and MJPEG', async () => {
    const h = { Origin: LISTED };
    const sse = await send(`${daemon.url}/sse?topics=system&token=${tokens.viewer}`, {
      headers: { ...h, 'Last-Event-ID': 'system:0:x' },
      stream: true,
    });
    expect(sse.status).toBe(200);
    expect(sse.headers['content-type']).toBe('text/event-stream');
    expect(sse.headers['access-control-allow-origin']).toBe(LISTED);

    const jpg = `${daemon.url}/cams/cam1/low.jpg?token=${tokens.viewer}`;
    const snap = await send(jpg, { headers: h });
    expect(snap.status).toBe(200);
    expect(snap.headers['content-type']).toBe('image/jpeg');
    expect(snap.headers['access-control-allow-origin']).toBe(LISTED);
    const etag = snap.headers.etag as string;
    expect(etag).toMatch(/^"\d+-\d+"$/);
    // Another frame may come between the two: wait for the 304 on whatever is now latest.
    const notModified = await send(jpg, { headers: { ...h, 'If-None-Match': etag } });
    expect([200, 304]).toContain(notModified.status);
    expect(notModified.headers['access-control-allow-origin']).toBe(LISTED);
    const head = await send(jpg, { method: 'HEAD', headers: h });
    expect(head.status).toBe(200);
    expect(head.headers['access-control-allow-origin']).toBe(LISTED);
    const noFrame = await send(`${daemon.url}/cams/cam1/annotated.jpg?token=${tokens.viewer}`, {
      headers: h,
    });
    expect(noFrame.status).toBe(503);
    expect(noFrame.headers['access-control-allow-origin']).toBe(LISTED);

    const mjpeg = await send(`${daemon.url}/cams/cam1/low.mjpeg?token=${tokens.viewer}`, {
      headers: h,
      stream: true,
    });
    expect(mjpeg.status).toBe(200);
    expect(mjpeg.headers['content-type']).toMatch(/^multipart\/x-mixed-replace/);
    expect(mjpeg.headers['access-control-allow-origin']).toBe(LISTED);
  });

  it('gives an unlisted origin no CORS headers on GET, refuses its POST, and varies on Origin everywhere', async () => {
    const snap = await send(`${daemon.url}/cams/cam1/low.jpg?token=${tokens.viewer}`, {
      headers: { Origin: OTHER },
    });
    expect(snap.status).toBe(200);
    expect(snap.headers['access-control-allow-origin']).toBeUndefined();
    expect(csv(snap.headers.vary)).toContain('origin');
    // No Origin (a plain <img>, curl): no CORS headers, but Vary, so a browser cache keeps the two apart.
    const plain = await send(`${daemon.url}/cams/cam1/low.jpg?token=${tokens.viewer}`);
    expect(plain.status).toBe(200);
    expect(plain.headers['access-control-allow-origin']).toBeUndefined();
    expect(csv(plain.headers.vary)).toContain('origin');

    const before = await rejections(daemon);
    const post = await send(`${daemon.url}/api/v1/notices`, {
      method: 'POST',
      headers: { Origin: OTHER, Authorization: `Bearer ${tokens.admin}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: 'from an unlisted origin' }),
    });
    expect(post.status).toBe(403);
    expect(errorCode(post)).toBe('FORBIDDEN');
    expect(await rejections(daemon)).toBe(before + 1);
    // The daemon's own origin (its Host) may POST without being listed.
    const own = await send(`${daemon.url}/api/v1/notices`, {
      method: 'POST',
      headers: {
        Origin: daemon.url,
        Authorization: `Bearer ${tokens.admin}`,
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({ message: 'from the daemon origin' }),
    });
    expect(own.status).toBe(202);
  });

  it('checks Origin on WebSocket upgrades: missing, listed and own allowed, any other refused 403', async () => {
    const ws = `${daemon.wsUrl}?token=${tokens.viewer}`;
    const before = await rejections(daemon);
    expect(await dial(ws)).toEqual({ opened: true });
    expect(await dial(ws, LISTED)).toEqual({ opened: true });
    expect(await dial(ws, 'https://wall.example.com')).toEqual({ opened: true });
    expect(await dial(ws, daemon.url)).toEqual({ opened: true });
    expect(await dial(ws, OTHER)).toEqual({ opened: false, status: 403 });
    expect(await dial(ws, 'http://127.0.0.1:5174')).toEqual({ opened: false, status: 403 });
    expect(await dial(ws, 'null')).toEqual({ opened: false, status: 403 });
    const publish = daemon.wsUrl.replace(/\/ws$/, '/publish');
    expect(await dial(`${publish}?token=${tokens.publisher}`, OTHER)).toEqual({ opened: false, status: 403 });
    expect(await dial(`${publish}?token=${tokens.publisher}`, LISTED)).toEqual({ opened: true });
    expect(await rejections(daemon)).toBe(before + 4);
  });
});

describe('the default: no origins listed, auth off', () => {
  let daemon: RunningDaemon;

  beforeAll(async () => {
    daemon = await startDaemon({ cameras: [testCamera('cam1', 10)] });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('is same-origin only: preflights refused, no CORS or Vary headers, foreign POSTs and WebSockets refused', async () => {
    const pre = await preflight(`${daemon.url}/api/v1/notices`, LISTED);
    expect(pre.status).toBe(403);
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();

    const health = await send(`${daemon.url}/healthz`, { headers: { Origin: LISTED } });
    expect(health.status).toBe(200);
    expect(health.headers['access-control-allow-origin']).toBeUndefined();
    expect(health.headers.vary).toBeUndefined();

    // With auth off, a page on any site could otherwise post a notice (or start a job) as admin.
    const post = await send(`${daemon.url}/api/v1/notices`, {
      method: 'POST',
      headers: { Origin: OTHER, 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: 'cross-site' }),
    });
    expect(post.status).toBe(403);
    const job = await send(`${daemon.url}/api/v1/jobs/image`, {
      method: 'POST',
      headers: { Origin: OTHER, 'Content-Type': 'text/plain' },
      body: 'not an image',
    });
    expect(job.status).toBe(403);
    // No Origin (curl, scripts) and the daemon's own page are unaffected.
    const plain = await send(`${daemon.url}/api/v1/notices`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: 'local' }),
    });
    expect(plain.status).toBe(202);

    expect(await dial(daemon.wsUrl, OTHER)).toEqual({ opened: false, status: 403 });
    expect(await dial(daemon.wsUrl, daemon.url)).toEqual({ opened: true });
    expect(await dial(daemon.wsUrl)).toEqual({ opened: true });
    expect(await rejections(daemon)).toBe(4);
  });
});

describe('"*" with auth on', () => {
  let daemon: RunningDaemon;

  beforeAll(async () => {
    daemon = await startDaemon({
      cameras: [testCamera('cam1', 10)],
      auth: { hs256Secret: TEST_SECRET },
      cors: { origins: ['*'] },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('answers every origin with Access-Control-Allow-Origin: *, and still asks for a token', async () => {
    const pre = await preflight(`${daemon.url}/api/v1/status`, OTHER, 'GET', 'authorization');
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('*');
    const status = await send(`${daemon.url}/api/v1/status`, { headers: { Origin: OTHER } });
    expect(status.status).toBe(401);
    expect(status.headers['access-control-allow-origin']).toBe('*');
    const token = await signToken({ cams: ['*'] });
    expect(await dial(`${daemon.wsUrl}?token=${token}`, OTHER)).toEqual({ opened: true });
  });
});
