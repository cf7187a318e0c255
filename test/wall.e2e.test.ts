import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDaemon, root, startDaemon, testCamera } from './helpers.js';

/**
 * The camera wall at `/` in real Chromium: Debian's `chromium` package driven by playwright-core.
 * CI installs it (`apt-get install -y chromium`); without it this suite fails on purpose.
 */
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ARTIFACTS = join(root, 'test-artifacts');
const CONFIG = { cameras: [testCamera('cam1', 10), testCamera('cam2', 10)] };

let daemon: RunningDaemon | undefined;
let browser: Browser | undefined;
let page: Page;
let profile: string | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} not found: the camera-wall e2e test needs Debian's chromium (apt-get install -y chromium)`,
    );
  }
  daemon = await startDaemon(CONFIG);
  profile = mkdtempSync(join(tmpdir(), 'framehub-chromium-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Exactly our flags; Playwright only needs its pipe and a profile directory on top.
    ignoreDefaultArgs: true,
    args: [...FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-pipe'],
    timeout: 15_000,
  });
  page = await browser.newPage({ viewport: { width: 1000, height: 520 } });
  page.setDefaultTimeout(8000);
  page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()} (${msg.location().url})`);
  });
});

afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const tile = (camera: string) => page.locator(`.tile[data-camera="${camera}"]`);
const num = async (l: Locator, attr: string) => Number(await l.getAttribute(`data-${attr}`));
const poll = { timeout: 8000, interval: 100 };

/** Picks a transport and/or variant in the tile's own selects, as a user would. */
async function choose(camera: string, choice: { transport?: string; variant?: string }) {
  const t = tile(camera);
  if (choice.transport) await t.locator('select.transport').selectOption(choice.transport);
  if (choice.variant) await t.locator('select.variant').selectOption(choice.variant);
  if (choice.transport) expect(await t.getAttribute('data-transport')).toBe(choice.transport);
  if (choice.variant) expect(await t.getAttribute('data-variant')).toBe(choice.variant);
}

/** The tile goes live, its frame counter climbs by 5, and the picture itself changes. */
async function expectChangingFrames(camera: string) {
  const t = tile(camera);
  await expect.poll(() => t.getAttribute('data-state'), poll).toBe('live');
  const frames0 = await num(t, 'frames');
  const seq0 = await num(t, 'seq');
  const shot0 = await t.locator('.media').screenshot();
  await expect.poll(() => num(t, 'frames'), poll).toBeGreaterThanOrEqual(frames0 + 5);
  const shot1 = await t.locator('.media').screenshot();
  expect(shot1.equals(shot0), 'the tile picture should change between two screenshots').toBe(false);

  const transport = await t.getAttribute('data-transport');
  const stats = async (cls: string) => (await t.locator(`.stats .${cls}`).textContent())?.trim() ?? '';
  if (transport === 'mjpeg') {
    // An <img> exposes no seq or timestamp: fps is estimated, latency and drops say n/a.
    expect(await stats('fps')).toMatch(/^~\d+(\.\d)?$/);
    expect(await stats('latency')).toBe('n/a');
    expect(await stats('drops')).toBe('n/a');
  } else {
    expect(await num(t, 'seq')).toBeGreaterThan(seq0 || 0);
    await expect.poll(async () => Number.parseFloat(await stats('fps')), poll).toBeGreaterThan(0);
    expect(await stats('latency')).toMatch(/^\d+ ms$|^\d+(\.\d)? s$/);
    expect(await stats('drops')).toMatch(/^\d+$/);
  }
}

describe('camera wall at /', () => {
  it('plays every transport with changing frames, switches variants, and retries when the daemon goes', async () => {
    // Both tiles start on MJPEG (a documented URL parameter); cam1 then goes through every
    // transport by its own select.
    await page.goto(`${daemon!.url}/?transport=mjpeg&variant=medium`);
    await expect.poll(() => page.locator('.tile').count(), poll).toBe(2);
    for (const camera of ['cam1', 'cam2']) {
      expect(await tile(camera).getAttribute('data-transport')).toBe('mjpeg');
      expect(await tile(camera).locator('.vad').getAttribute('data-vad')).toBe('unknown');
    }

    await choose('cam1', { transport: 'ws' });
    await expectChangingFrames('cam1');
    expect(await tile('cam1').getAttribute('data-active-variant')).toBe('medium');
    await expect.poll(() => num(tile('cam1'), 'width'), poll).toBe(640);

    await choose('cam1', { transport: 'sse' });
    await expectChangingFrames('cam1');

    // low is 320 px wide: check the size the page actually decoded (canvas bitmap).
    await choose('cam1', { variant: 'low' });
    await expect.poll(() => num(tile('cam1'), 'width'), poll).toBe(320);
    await expectChangingFrames('cam1');

    await choose('cam1', { transport: 'mjpeg' });
    await expectChangingFrames('cam1');
    // …and the <img>'s natural size.
    await expect.poll(() => num(tile('cam1'), 'width'), poll).toBe(320);

    // cam2 stayed on MJPEG from the URL; move it to WS with adaptive quality.
    await expectChangingFrames('cam2');
    await choose('cam2', { transport: 'ws', variant: 'auto' });
    await expectChangingFrames('cam2');
    expect(['low', 'medium', 'high', 'raw']).toContain(
      await tile('cam2').getAttribute('data-active-variant'),
    );
    expect(await tile('cam2').locator('.stats .size').textContent()).toMatch(/auto→(low|medium|high|raw)/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'wall.png'), fullPage: true });

    // The voice dot is the hook for cam/<id>/vad events (none flow from test cameras yet).
    await page.evaluate(() => {
      const wall = (
        globalThis as unknown as { framehubWall: { tiles: Map<string, { onVad(r: unknown): void }> } }
      ).framehubWall;
      wall.tiles
        .get('cam2')!
        .onVad({ type: 'vad', topic: 'cam/cam2/vad', state: 'speech', ts: Date.now(), dbfs: -20 });
    });
    expect(await tile('cam2').locator('.vad').getAttribute('data-vad')).toBe('speech');

    // Daemon gone: every tile drops its connection and schedules a retry with backoff. WS sees
    // the close at once; an MJPEG <img> reports nothing, so that tile retries once its picture
    // has stopped changing for 6 s.
    const port = new URL(daemon!.url).port;
    await daemon!.stop();
    for (const camera of ['cam2', 'cam1']) {
      await expect
        .poll(() => tile(camera).getAttribute('data-state'), { timeout: 10_000, interval: 100 })
        .toBe('retrying');
      expect(await tile(camera).locator('.overlay').textContent()).toMatch(/^retrying in /);
    }
    // Back on the same port: both tiles reconnect by themselves and play again.
    const { execSync, spawn } = await import('node:child_process');
    console.log(execSync(`ss -tanp | grep ${port} | head -20`).toString());
    const dbg = spawn(process.execPath, ['dist/src/main.js', '--port', port], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    dbg.stdout.on('data', (d) => console.log('DBG', d.toString().slice(0, 400)));
    dbg.stderr.on('data', (d) => console.log('DBGERR', d.toString().slice(0, 400)));
    await new Promise((r) => setTimeout(r, 4000));
    console.log(execSync(`ss -tanp | grep ${port} | head -20`).toString());
    dbg.kill();
    daemon = await startDaemon(CONFIG, ['--port', port]);
    for (const camera of ['cam2', 'cam1']) {
      await expect
        .poll(() => tile(camera).getAttribute('data-state'), { timeout: 15_000, interval: 100 })
        .toBe('live');
      await expectChangingFrames(camera);
    }

    // Failed connections while the daemon was away are expected; nothing else may go wrong.
    const unexpected = pageErrors.filter((e) => !/ERR_CONNECTION_REFUSED|WebSocket connection/.test(e));
    expect(unexpected).toEqual([]);
  });
});
