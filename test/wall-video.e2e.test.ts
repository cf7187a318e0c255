import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDaemon, root, startDaemon } from './helpers.js';
import { CHROMIUM, CHROMIUM_FLAGS } from './support/chromium.js';

/**
 * The camera wall's `mse` transport in real Chromium (Debian's `chromium`, driven by
 * playwright-core, set up as in wall.e2e.test.ts): a camera with live H.264 (libx264 over a
 * test pattern) plays in the tile's <video> through Media Source Extensions, its time to first
 * picture and live latency (capture → display, from requestVideoFrameCallback) are measured
 * and printed, and a camera without video shows the server's error.
 *
 * Every wait is on state the page publishes (data-state, data-video-frames,
 * data-first-picture-ms, data-latency-ms on the tile; the <video>'s currentTime), never on a
 * sleep. Bounds are wide: a loaded 2-core machine makes the player slower, not wrong.
 */
const FLAGS = CHROMIUM_FLAGS;
const ARTIFACTS = join(root, 'test-artifacts');
const FPS = 15;
/** First picture and latency bounds: far above what an idle machine shows (about 0.2 s and 0.1 s). */
const FIRST_PICTURE_MAX_MS = 10_000;
const LATENCY_MAX_MS = 5_000;

let daemon: RunningDaemon | undefined;
let browser: Browser | undefined;
let profile: string | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) return; // the test fails with the reason
  daemon = await startDaemon({
    cameras: [
      { id: 'v', source: 'test', fps: FPS, width: 640, height: 360, video: 'transcode' },
      { id: 'plain', source: 'test', fps: 5, width: 160, height: 90, audio: false },
    ],
  });
  profile = mkdtempSync(join(tmpdir(), 'framehub-chromium-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    ignoreDefaultArgs: true,
    args: [...FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-pipe'],
    timeout: 15_000,
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function newPage(): Promise<Page> {
  const p = await browser!.newPage({ viewport: { width: 1000, height: 520 } });
  p.setDefaultTimeout(15_000);
  p.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
  p.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  return p;
}

const tileIn = (p: Page, camera: string) => p.locator(`.tile[data-camera="${camera}"]`);
const num = async (l: Locator, attr: string) => Number(await l.getAttribute(`data-${attr}`));
/** A set attribute, as a number; NaN while it is empty. */
const measured = async (l: Locator, attr: string) => {
  const v = await l.getAttribute(`data-${attr}`);
  return v ? Number(v) : Number.NaN;
};
const poll = { timeout: 20_000, interval: 100 };
const nav = { waitUntil: 'commit' } as const;

/** The few DOM shapes the in-page helpers touch (the test project is compiled without the DOM lib). */
interface PageVideo {
  currentTime: number;
  videoWidth: number;
  videoHeight: number;
  paused: boolean;
  getAttribute(name: string): string | null;
}
interface PageDocument {
  querySelector(selector: string): PageVideo | null;
  createElement(tag: 'canvas'): {
    width: number;
    height: number;
    getContext(
      kind: '2d',
      opts: object,
    ): {
      drawImage(src: PageVideo, x: number, y: number, w: number, h: number): void;
      getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> };
    } | null;
  };
}

/** Runs in the page: what the tile's <video> is doing. */
function videoState(camera: string) {
  const v = (globalThis as unknown as { document: PageDocument }).document.querySelector(
    `.tile[data-camera="${camera}"] video`,
  );
  return v
    ? { currentTime: v.currentTime, width: v.videoWidth, height: v.videoHeight, src: v.getAttribute('src') }
    : undefined;
}

/** Runs in the page: a 16×9 thumbnail of the tile's <video>, as text. Self-contained for Playwright. */
function videoPicture(camera: string): string {
  const d = (globalThis as unknown as { document: PageDocument }).document;
  const v = d.querySelector(`.tile[data-camera="${camera}"] video`);
  if (!v?.videoWidth) return 'no picture yet';
  const probe = d.createElement('canvas');
  probe.width = 16;
  probe.height = 9;
  const ctx = probe.getContext('2d', { willReadFrequently: true });
  if (!ctx) return 'no 2d context';
  ctx.drawImage(v, 0, 0, 16, 9);
  return Array.from(ctx.getImageData(0, 0, 16, 9).data).join(',');
}

/** Runs in the page: every latency the tile measured since the last call. */
function drainLatencies(camera: string): number[] {
  const wall = (globalThis as unknown as { framehubWall: { tiles: Map<string, unknown> } }).framehubWall;
  const tile = wall.tiles.get(camera) as { video: { drainLatencies(): { latencies: number[] } } } | undefined;
  return tile ? tile.video.drainLatencies().latencies : [];
}

const percentile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

/**
 * The tile plays: frames are presented, currentTime advances, the picture changes, and the
 * first picture and latency are measured. Returns what it measured.
 */
async function expectPlaying(p: Page, camera: string) {
  const t = tileIn(p, camera);
  const why = async () => `tile ${camera}: ${await t.locator('.stats .err').textContent()}`;
  // Polled with the tile's error, so a failure says why (a refused codec, a blocked MediaSource).
  await expect.poll(async () => (await num(t, 'video-frames')) >= 1 || (await why()), poll).toBe(true);
  expect(await t.getAttribute('data-state')).toBe('live');
  const firstPictureMs = await measured(t, 'first-picture-ms');
  const frames0 = await num(t, 'video-frames');
  const time0 = (await p.evaluate(videoState, camera))!.currentTime;
  const picture0 = await p.evaluate(videoPicture, camera);
  await expect.poll(() => num(t, 'video-frames'), poll).toBeGreaterThanOrEqual(frames0 + 2 * FPS);
  await expect
    .poll(async () => (await p.evaluate(videoState, camera))!.currentTime, poll)
    .toBeGreaterThan(time0 + 1);
  await expect.poll(() => p.evaluate(videoPicture, camera), poll).not.toBe(picture0);
  await expect.poll(() => measured(t, 'latency-ms'), poll).not.toBeNaN();
  const state = (await p.evaluate(videoState, camera))!;
  expect(state).toMatchObject({ width: 640, height: 360 });
  expect(await t.getAttribute('data-malformed')).toBe('0');
  return { firstPictureMs, latencies: await p.evaluate(drainLatencies, camera) };
}

describe('camera wall: live H.264 through MSE', () => {
  it('plays video on ?transport=mse, measures first picture and latency, and shows a camera without video', async () => {
    expect(
      existsSync(CHROMIUM),
      `${CHROMIUM} not found: this test needs Debian's chromium (apt-get install -y chromium)`,
    ).toBe(true);
    const p = await newPage();
    await p.goto(`${daemon!.url}/?transport=mse&cameras=v,plain`, nav);
    await expect.poll(() => p.locator('.tile').count(), poll).toBe(2);
    const v = tileIn(p, 'v');
    expect(await v.getAttribute('data-transport')).toBe('mse');
    expect(await v.getAttribute('data-media')).toBe('video');
    // MSE plays the camera's one stream: the variant select does not apply.
    expect(await v.locator('select.variant').isDisabled()).toBe(true);
    expect(await v.locator('select.transport option').allTextContents()).toContain('MSE');

    const first = await expectPlaying(p, 'v');
    expect(first.firstPictureMs, 'time to first picture').toBeGreaterThan(0);
    expect(first.firstPictureMs, 'time to first picture').toBeLessThan(FIRST_PICTURE_MAX_MS);
    // A few more seconds of live latency, measured by the page itself.
    await expect.poll(() => num(v, 'video-frames'), poll).toBeGreaterThanOrEqual(5 * FPS);
    const latencies = [...first.latencies, ...(await p.evaluate(drainLatencies, 'v'))].sort((a, b) => a - b);
    const [p50, p99] = [percentile(latencies, 0.5), percentile(latencies, 0.99)];
    console.log(
      `wall-video: time to first picture ${first.firstPictureMs} ms; live latency (capture → display) ` +
        `p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms over ${latencies.length} frames; ` +
        `skips ${await v.getAttribute('data-video-skips')}, player restarts ${await v.getAttribute('data-video-resets')}`,
    );
    expect(latencies.length).toBeGreaterThanOrEqual(3 * FPS);
    expect(latencies.every(Number.isFinite)).toBe(true);
    expect(p50).toBeGreaterThan(0);
    expect(p50).toBeLessThan(LATENCY_MAX_MS);
    // The stats line shows it too, and which stream it is.
    expect(await v.locator('.stats .latency').textContent()).toMatch(/^\d+ ms$|^\d+(\.\d)? s$/);
    expect(await v.locator('.stats .size').textContent()).toBe('640×360 video');

    // A camera without video: the server's error, on the tile, instead of a stalled picture.
    const plain = tileIn(p, 'plain');
    await expect.poll(() => plain.getAttribute('data-state'), poll).toBe('error');
    expect(await plain.locator('.stats .err').textContent()).toMatch(/^UNKNOWN_TOPIC: .*no live video/);
    expect(await plain.locator('.overlay').textContent()).toMatch(/UNKNOWN_TOPIC/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await p.screenshot({ path: join(ARTIFACTS, 'wall-video.png') });

    // Away to WS (JPEG on the canvas; the <video> lets go of its MediaSource) and back: the
    // second join is measured again.
    await v.locator('select.transport').selectOption('ws');
    await expect.poll(() => v.getAttribute('data-media'), poll).toBe('picture');
    await expect.poll(async () => (await p.evaluate(videoState, 'v'))?.src ?? null, poll).toBeNull();
    await expect.poll(() => num(v, 'painted'), poll).toBeGreaterThan(0);
    expect(await v.locator('select.variant').isDisabled()).toBe(false);
    await v.locator('select.transport').selectOption('mse');
    await expect.poll(() => v.getAttribute('data-first-picture-ms'), poll).not.toBe('');
    const again = await expectPlaying(p, 'v');
    console.log(`wall-video: rejoin, time to first picture ${again.firstPictureMs} ms`);
    expect(again.firstPictureMs).toBeLessThan(FIRST_PICTURE_MAX_MS);
    await p.close();

    expect(pageErrors).toEqual([]);
  }, 120_000);
});
