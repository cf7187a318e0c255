import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
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

/**
 * A TCP pass-through between the browser and the daemon that can cut every connection and
 * refuse new ones, to play a network outage without restarting the daemon.
 */
class Cutter {
  private readonly sockets = new Set<Socket>();
  private down = false;
  readonly server: Server;

  constructor(targetPort: number) {
    this.server = createServer((client) => {
      if (this.down) {
        client.destroy();
        return;
      }
      const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
  }

  listen(): Promise<string> {
    return new Promise((res) =>
      this.server.listen(0, '127.0.0.1', () => {
        const { port } = this.server.address() as { port: number };
        res(`http://127.0.0.1:${port}`);
      }),
    );
  }

  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.down = false;
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((res) => this.server.close(() => res()));
  }
}

let daemon: RunningDaemon | undefined;
let cutter: Cutter | undefined;
let baseUrl: string;
let browser: Browser | undefined;
let page: Page;
let profile: string | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  // No browser: set nothing up, and let the test itself fail with the reason.
  if (!existsSync(CHROMIUM)) return;
  daemon = await startDaemon({ cameras: [testCamera('cam1', 10), testCamera('cam2', 10)] });
  cutter = new Cutter(Number(new URL(daemon.url).port));
  baseUrl = await cutter.listen();
  profile = mkdtempSync(join(tmpdir(), 'framehub-chromium-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Exactly our flags; Playwright only adds its control pipe and the profile directory.
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
  await cutter?.close();
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

const stateOf = (camera: string) => tile(camera).getAttribute('data-state');

/** The tile goes live, its frame counter climbs by 5, and the picture itself changes. */
async function expectChangingFrames(camera: string) {
  const t = tile(camera);
  await expect.poll(() => stateOf(camera), poll).toBe('live');
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

/**
 * The voice dot follows cam/<id>/vad on the tile's current transport (MJPEG tiles: the page's
 * shared event socket). The test camera's tone is on 2 s, off 2 s.
 */
async function expectVad(camera: string) {
  const t = tile(camera);
  await expect.poll(() => num(t, 'vad-events'), { timeout: 8000, interval: 100 }).toBeGreaterThanOrEqual(1);
  const dot = t.locator('.vad');
  expect(await dot.getAttribute('data-vad')).toMatch(/^(speech|silence)$/);
  expect(await dot.getAttribute('title')).toMatch(/^voice: (speech|silence)/);
}

/** Cuts the network; each tile notices, retries with backoff, and plays again once it is back. */
async function expectReconnect(cameras: string[]) {
  const retries0 = new Map<string, number>();
  for (const camera of cameras) retries0.set(camera, await num(tile(camera), 'retries'));
  cutter!.cut();
  // WS and SSE see the cut at once; let them fail against a refusing server for a while.
  await expect.poll(() => stateOf(cameras[0]!), poll).toBe('retrying');
  expect(await tile(cameras[0]!).locator('.overlay').textContent()).toMatch(
    /^retrying in .*\(attempt \d+\)$/,
  );
  await new Promise((r) => setTimeout(r, 1000));
  cutter!.restore();
  for (const camera of cameras) {
    // An MJPEG <img> reports nothing when its stream dies: that tile retries once its picture
    // has not changed for 6 s.
    await expect
      .poll(() => num(tile(camera), 'retries'), { timeout: 10_000, interval: 100 })
      .toBeGreaterThan(retries0.get(camera)!);
    await expectChangingFrames(camera);
  }
}

describe('camera wall at /', () => {
  it('plays every transport with changing frames, switches variants, and reconnects', async () => {
    expect(
      existsSync(CHROMIUM),
      `${CHROMIUM} not found: this test needs Debian's chromium (apt-get install -y chromium)`,
    ).toBe(true);
    // Both tiles start on MJPEG (a documented URL parameter); cam1 then goes through every
    // transport by its own select.
    await page.goto(`${baseUrl}/?transport=mjpeg&variant=medium`);
    await expect.poll(() => page.locator('.tile').count(), poll).toBe(2);
    for (const camera of ['cam1', 'cam2']) {
      expect(await tile(camera).getAttribute('data-transport')).toBe('mjpeg');
      expect(await tile(camera).locator('.vad').getAttribute('data-vad')).toMatch(
        /^(unknown|speech|silence)$/,
      );
    }

    await choose('cam1', { transport: 'ws' });
    await expectChangingFrames('cam1');
    await expectVad('cam1');
    expect(await tile('cam1').getAttribute('data-active-variant')).toBe('medium');
    await expect.poll(() => num(tile('cam1'), 'width'), poll).toBe(640);

    await choose('cam1', { transport: 'sse' });
    await expectChangingFrames('cam1');
    await expectVad('cam1');

    // low is 320 px wide: check the size the page actually decoded (canvas bitmap).
    await choose('cam1', { variant: 'low' });
    await expect.poll(() => num(tile('cam1'), 'width'), poll).toBe(320);
    await expectChangingFrames('cam1');

    await choose('cam1', { transport: 'mjpeg' });
    await expectChangingFrames('cam1');
    await expectVad('cam1');
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

    // Network outages: WS and MJPEG, then SSE.
    await expectReconnect(['cam2', 'cam1']);
    await choose('cam2', { transport: 'sse' });
    await expectChangingFrames('cam2');
    await expectReconnect(['cam2']);

    // Failed connections during the outages are expected; nothing else may go wrong.
    const unexpected = pageErrors.filter((e) => !/net::ERR_|WebSocket connection/.test(e));
    expect(unexpected).toEqual([]);
  }, 40_000);
});
