/**
 * Browsers on another origin, in real Chromium (Debian's `chromium`, driven by playwright-core;
 * without it this suite fails on purpose). Two small pages, each served by its own node:http
 * server on another port, so each is an origin other than the daemon's: one listed in
 * `cors.origins`, one not. From each, the page uses the daemon as a web app would: EventSource
 * on /sse, fetch of the API with an `Authorization` header (auth is on, so the preflight is
 * real), a snapshot in `<img crossorigin>` drawn to a canvas and read back, and a WebSocket.
 * All of it works from the listed origin; from the other, each fails the way a browser fails
 * it. Every wait is on an event the page reports, never a sleep.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, metricValue, pollUntil, type RunningDaemon, startDaemon, testCamera } from './helpers.js';
import { signToken, TEST_SECRET } from './support/auth.js';
import { CHROMIUM, CHROMIUM_FLAGS } from './support/chromium.js';

/**
 * The page's helpers, each resolving with what the browser let it see. Plain script in the
 * page (the test project is compiled without the DOM types).
 */
const PAGE_SCRIPT = `
window.checks = {
  /** Opens an EventSource; resolves 'open', or 'error' if it failed before opening. */
  openSse(url) {
    return new Promise((resolve) => {
      const es = new EventSource(url);
      window.sse = { es, notices: [] };
      es.addEventListener('system', (e) => window.sse.notices.push(JSON.parse(e.data).message));
      es.onopen = () => resolve('open');
      es.onerror = () => {
        if (es.readyState !== EventSource.OPEN) {
          es.close();
          resolve('error');
        }
      };
    });
  },
  async fetch(url, init, read) {
    try {
      const r = await fetch(url, init);
      const headers = {};
      for (const name of read) headers[name] = r.headers.get(name);
      const type = r.headers.get('content-type') || '';
      const body = type.startsWith('application/json') ? await r.json() : (await r.arrayBuffer()).byteLength;
      return { ok: true, status: r.status, headers, body };
    } catch (err) {
      return { ok: false, error: err.name };
    }
  },
  /** Loads an image, draws it on a canvas and reads a pixel back. */
  image(url, crossOrigin) {
    return new Promise((resolve) => {
      const img = new Image();
      if (crossOrigin) img.crossOrigin = 'anonymous';
      img.onload = () => {
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const ctx = canvas.getContext('2d');
        ctx.drawImage(img, 0, 0);
        try {
          const px = ctx.getImageData(0, 0, 1, 1).data;
          resolve({ loaded: true, width: img.naturalWidth, read: true, alpha: px[3] });
        } catch (err) {
          resolve({ loaded: true, width: img.naturalWidth, read: false, error: err.name });
        }
      };
      img.onerror = () => resolve({ loaded: false });
      img.src = url;
    });
  },
  /** A WebSocket: its first message, or how it closed without one. */
  socket(url) {
    return new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      let opened = false;
      ws.onopen = () => { opened = true; };
      ws.onmessage = (e) => {
        resolve({ opened, message: e.data.byteLength });
        ws.close();
      };
      ws.onclose = (e) => resolve({ opened, closed: e.code });
    });
  },
};
`;
const PAGE = `<!doctype html><meta charset="utf-8"><title>another origin</title><script>${PAGE_SCRIPT}</script>`;

/** A page server: the same page at every path, on an ephemeral port of its own. */
async function pageServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(PAGE);
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const { port } = server.address() as { port: number };
  return { server, origin: `http://127.0.0.1:${port}` };
}

let daemon: RunningDaemon | undefined;
let listed: { server: Server; origin: string } | undefined;
let unlisted: { server: Server; origin: string } | undefined;
let browser: Browser | undefined;
let profile: string | undefined;
const pageErrors: string[] = [];
const tokens: Record<string, string> = {};

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) return;
  listed = await pageServer();
  unlisted = await pageServer();
  daemon = await startDaemon({
    cameras: [testCamera('cam1', 10)],
    auth: { hs256Secret: TEST_SECRET },
    cors: { origins: [listed.origin] },
  });
  tokens.viewer = await signToken({ cams: ['*'] });
  tokens.admin = await signToken({ cams: ['*'], role: 'admin' });
  const snapshot = `${daemon.url}/cams/cam1/low.jpg?token=${tokens.viewer}`;
  expect(await pollUntil(async () => (await get(snapshot)).status === 200)).toBe(true);
  profile = mkdtempSync(join(tmpdir(), 'framehub-chromium-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    ignoreDefaultArgs: true,
    args: [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-pipe'],
    timeout: 15_000,
  });
});

afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  for (const s of [listed, unlisted]) await new Promise((res) => s?.server.close(res));
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** A page on `origin`, in a context of its own (its own cache), that fails the suite on a script error. */
async function openPage(origin: string): Promise<Page> {
  const page = await browser!.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
  await page.goto(`${origin}/`);
  return page;
}

/** Runs one of the page's checks with JSON arguments. */
function check<T>(page: Page, name: string, ...args: unknown[]): Promise<T> {
  return page.evaluate(
    `window.checks.${name}(${args.map((a) => JSON.stringify(a)).join(',')})`,
  ) as Promise<T>;
}

interface Fetched {
  ok: boolean;
  status?: number;
  headers?: Record<string, string | null>;
  body?: unknown;
  error?: string;
}
interface Drawn {
  loaded: boolean;
  width?: number;
  read?: boolean;
  alpha?: number;
  error?: string;
}
interface Socket {
  opened: boolean;
  message?: number;
  closed?: number;
}

describe('a page on another origin, in Chromium', () => {
  it('has a browser', () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`).toBe(true);
  });

  it('uses EventSource, fetch with a token, a snapshot on a canvas and a WebSocket from a listed origin', async () => {
    const d = daemon!;
    const page = await openPage(listed!.origin);
    try {
      expect(await check(page, 'openSse', `${d.url}/sse?topics=system&token=${tokens.viewer}`)).toBe('open');

      // A preflighted POST (Authorization, JSON) whose notice the page's EventSource then gets.
      const message = `hello from ${listed!.origin}`;
      const posted = await check<Fetched>(
        page,
        'fetch',
        `${d.url}/api/v1/notices`,
        {
          method: 'POST',
          headers: { Authorization: `Bearer ${tokens.admin}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ message }),
        },
        [],
      );
      expect(posted).toMatchObject({ ok: true, status: 202, body: { topic: 'system' } });
      await page.waitForFunction(`window.sse.notices.includes(${JSON.stringify(message)})`, undefined, {
        timeout: 15_000,
      });

      const status = await check<Fetched>(
        page,
        'fetch',
        `${d.url}/api/v1/status`,
        { headers: { Authorization: `Bearer ${tokens.admin}` } },
        [],
      );
      expect(status).toMatchObject({ ok: true, status: 200 });
      expect((status.body as { cameras: unknown[] }).cameras).toHaveLength(1);

      // The exposed headers are readable: without Access-Control-Expose-Headers they read null.
      const snap = await check<Fetched>(
        page,
        'fetch',
        `${d.url}/cams/cam1/low.jpg`,
        { headers: { Authorization: `Bearer ${tokens.viewer}` } },
        ['etag', 'x-seq', 'content-type'],
      );
      expect(snap).toMatchObject({ ok: true, status: 200, headers: { 'content-type': 'image/jpeg' } });
      expect(snap.headers?.etag).toMatch(/^"\d+-\d+"$/);
      expect(Number(snap.headers?.['x-seq'])).toBeGreaterThan(0);

      const drawn = await check<Drawn>(
        page,
        'image',
        `${d.url}/cams/cam1/low.jpg?token=${tokens.viewer}`,
        true,
      );
      expect(drawn).toMatchObject({ loaded: true, read: true, alpha: 255 });
      expect(drawn.width).toBeGreaterThan(0);

      const ws = await check<Socket>(page, 'socket', `${d.wsUrl}?topics=cam/cam1/low&token=${tokens.viewer}`);
      expect(ws.opened).toBe(true);
      expect(ws.message).toBeGreaterThan(0);
    } finally {
      await page.close();
    }
    expect(pageErrors).toEqual([]);
  });

  it('fails each of them from an unlisted origin, as a browser fails a cross-origin request', async () => {
    const d = daemon!;
    const rejections = async () =>
      metricValue((await get(`${d.url}/metrics`)).text, 'framehub_limit_rejections_total{limit="origin"}') ??
      0;
    const before = await rejections();
    const page = await openPage(unlisted!.origin);
    try {
      expect(await check(page, 'openSse', `${d.url}/sse?topics=system&token=${tokens.viewer}`)).toBe('error');

      // Preflighted (Authorization): the daemon refuses the preflight, the POST is never sent.
      const posted = await check<Fetched>(
        page,
        'fetch',
        `${d.url}/api/v1/notices`,
        {
          method: 'POST',
          headers: { Authorization: `Bearer ${tokens.admin}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ message: 'from an unlisted origin' }),
        },
        [],
      );
      expect(posted).toEqual({ ok: false, error: 'TypeError' });
      // Not preflighted: sent and answered, but the browser keeps the answer from the page.
      const health = await check<Fetched>(page, 'fetch', `${d.url}/healthz`, {}, []);
      expect(health).toEqual({ ok: false, error: 'TypeError' });

      expect(
        await check<Drawn>(page, 'image', `${d.url}/cams/cam1/low.jpg?token=${tokens.viewer}`, true),
      ).toEqual({
        loaded: false,
      });
      // A plain <img> still shows the snapshot, but the canvas it is drawn on is tainted.
      const tainted = await check<Drawn>(
        page,
        'image',
        `${d.url}/cams/cam1/low.jpg?token=${tokens.viewer}`,
        false,
      );
      expect(tainted).toMatchObject({ loaded: true, read: false, error: 'SecurityError' });

      const ws = await check<Socket>(page, 'socket', `${d.wsUrl}?topics=cam/cam1/low&token=${tokens.viewer}`);
      expect(ws).toEqual({ opened: false, closed: 1006 });
    } finally {
      await page.close();
    }
    // The preflight and the WebSocket were refused by the daemon itself.
    expect(await rejections()).toBeGreaterThanOrEqual(before + 2);
    expect(pageErrors).toEqual([]);
  });
});
