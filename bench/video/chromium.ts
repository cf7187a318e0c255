import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { sleep } from '../lib/clock.js';
import type { ChromiumRequest, ChromiumResults } from './chromium-hook.js';

/**
 * bench:video's Chromium cases, measured by the camera wall's own MSE player (the page at
 * `/?transport=mse&cameras=<id>`, src/server/viewer/js/mse-transport.js), in Debian's
 * headless Chromium driven by playwright-core:
 *
 * - **time to first picture** of a new viewer: the tile's transport is closed, a random
 *   0–`maxDelayMs` pause puts the next join at a random point of the GOP, and the tile opens
 *   again; the page measures from the transport's open to the first presented frame
 *   (requestVideoFrameCallback's expectedDisplayTime), so the harness's polling adds nothing;
 * - **live latency**: capture (the fragment's `ts`, when the daemon received it from ffmpeg,
 *   carried to each presented frame by its media time) → the frame's expected display time,
 *   for every frame presented in the window, as the tile's VideoStats logged it.
 *
 * Each case runs in a fresh page with one tile. The daemon and browser share the machine
 * (and its clock, which the latency needs).
 */
export const CHROMIUM_PATH = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // A page that loses focus must not be throttled mid-measurement.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
];
/** A join that shows nothing for this long counts as failed (NaN), and the next one starts. */
const JOIN_TIMEOUT_MS = 15_000;

export const describe =
  "Chromium (headless, software decoding) playing the wall's own MSE player at /?transport=mse: " +
  'first picture = transport open → first presented frame (requestVideoFrameCallback), each join after ' +
  'a random 0–2 s pause; latency = fragment capture ts → expected display time of each presented frame.';

/** A running headless Chromium with its throw-away profile. */
export interface BenchBrowser {
  browser: Browser;
  version: string;
  close(): Promise<void>;
}

/**
 * @example const b = await launchChromium(); try { … } finally { await b.close(); }
 */
export async function launchChromium(executablePath = CHROMIUM_PATH): Promise<BenchBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'framehub-bench-chromium-'));
  const browser = await chromium.launch({
    executablePath,
    ignoreDefaultArgs: true,
    args: [...FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-pipe'],
    timeout: 30_000,
  });
  let version = browser.version();
  try {
    version = execFileSync(executablePath, ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'], // Debian's wrapper script complains on stderr
    }).trim();
  } catch {
    // browser.version() is enough
  }
  return {
    browser,
    version,
    async close() {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** What the page exposes on `window.framehubWall` (viewer.js), as far as the bench reads it. */
interface PageTile {
  state: string;
  error: string;
  connect(): void;
  disconnect(): void;
  tick(now: number): void;
  video: {
    presented: number;
    firstPictureMs: number | undefined;
    skips: number;
    resets: number;
    drainLatencies(): { latencies: number[]; dropped: number };
  };
}

/**
 * Runs in the page: the tile's video counters (`first` undefined until its first picture).
 * Self-contained, since Playwright ships its source to the browser (the page's CSP allows no eval).
 */
function tileVideo(camera: string) {
  const wall = (globalThis as unknown as { framehubWall?: { tiles: Map<string, PageTile> } }).framehubWall;
  const tile = wall?.tiles.get(camera);
  if (!tile) return undefined;
  const v = tile.video;
  return {
    state: tile.state,
    error: tile.error,
    first: v.firstPictureMs,
    frames: v.presented,
    skips: v.skips,
    resets: v.resets,
  };
}

/** Runs in the page: every latency the tile logged since the last call. */
function drainInPage(camera: string) {
  const wall = (globalThis as unknown as { framehubWall: { tiles: Map<string, PageTile> } }).framehubWall;
  const tile = wall.tiles.get(camera);
  if (!tile) return undefined;
  const { latencies, dropped } = tile.video.drainLatencies();
  return {
    latencies,
    dropped,
    frames: tile.video.presented,
    skips: tile.video.skips,
    resets: tile.video.resets,
  };
}

/** Opens the wall with one MSE tile and waits for its first picture. */
async function openWall(b: BenchBrowser, url: string, camera: string): Promise<Page> {
  const page = await b.browser.newPage({ viewport: { width: 960, height: 600 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${url}/?transport=mse&cameras=${encodeURIComponent(camera)}`, { waitUntil: 'commit' });
  const deadline = performance.now() + 30_000;
  for (;;) {
    const v = await page.evaluate(tileVideo, camera).catch(() => undefined);
    if (v?.first !== undefined) return page;
    if (performance.now() > deadline) {
      await page.close();
      const why = v ? `${v.state}: ${v.error}` : 'no tile';
      throw new Error(`camera ${camera} never showed a picture in Chromium (${why}) ${errors.join('; ')}`);
    }
    await sleep(100);
  }
}

/**
 * Runs in the page: closes the tile's transport, waits `delayMs`, opens it again, and resolves
 * with the page's own time to first picture (ms), or NaN after `timeoutMs`. Self-contained,
 * since Playwright ships its source to the browser.
 */
function rejoinInPage([camera, delayMs, timeoutMs]: readonly [string, number, number]): Promise<number> {
  const wall = (globalThis as unknown as { framehubWall: { tiles: Map<string, PageTile> } }).framehubWall;
  const tile = wall.tiles.get(camera);
  if (!tile) return Promise.resolve(Number.NaN);
  tile.disconnect();
  return new Promise((resolve) => {
    setTimeout(() => {
      tile.connect();
      tile.tick(Date.now());
      const started = performance.now();
      const check = () => {
        const ms = tile.video.firstPictureMs;
        if (ms !== undefined) resolve(ms);
        else if (performance.now() - started > timeoutMs) resolve(Number.NaN);
        else setTimeout(check, 10);
      };
      check();
    }, delayMs);
  });
}

export interface FirstPictureOptions {
  /** The daemon, e.g. http://127.0.0.1:PORT. */
  url: string;
  camera: string;
  joins: number;
  /** Each join waits a random 0..maxDelayMs first: a 2 s GOP is joined at random points. */
  maxDelayMs?: number;
  /** Called after each join, e.g. for a progress line. */
  onJoin?: (ms: number, index: number) => void;
}

/**
 * Time to first picture for `joins` new viewers of one camera, in ms each (NaN: no picture in
 * 15 s), as the wall's MSE player measured it.
 * @example const ms = await firstPictureJoins(b, { url, camera: 'v', joins: 50 }); // [212, 48, 61, …]
 */
export async function firstPictureJoins(b: BenchBrowser, opts: FirstPictureOptions): Promise<number[]> {
  const page = await openWall(b, opts.url, opts.camera);
  const out: number[] = [];
  try {
    for (let i = 0; i < opts.joins; i++) {
      const delay = Math.round(Math.random() * (opts.maxDelayMs ?? 2000));
      const ms = await page.evaluate(rejoinInPage, [opts.camera, delay, JOIN_TIMEOUT_MS] as const);
      out.push(ms);
      opts.onJoin?.(ms, i);
    }
  } finally {
    await page.close();
  }
  return out;
}

export interface LatencyResult {
  /** Capture → expected display, ms, of every frame presented in the window. */
  samples: number[];
  /** Frames presented in the window (the page's count: samples lacking a capture time are not in `samples`). */
  frames: number;
  seconds: number;
  /** Seq jumps (the server skipped this viewer to a keyframe) and player restarts in the window. */
  skips: number;
  resets: number;
  /** Samples the page's log had no room for (0 unless the window is minutes at a high rate). */
  dropped: number;
}

/**
 * Live latency over `seconds` of playback of one camera, after its first picture (the startup
 * seek is not part of the window).
 * @example const { samples } = await liveLatency(b, { url, camera: 'v', seconds: 60 });
 */
export async function liveLatency(
  b: BenchBrowser,
  opts: { url: string; camera: string; seconds: number },
): Promise<LatencyResult> {
  const page = await openWall(b, opts.url, opts.camera);
  try {
    const read = async () => {
      const r = await page.evaluate(drainInPage, opts.camera);
      if (!r) throw new Error(`the tile of camera ${opts.camera} is gone`);
      return r;
    };
    // A second of playback first, so the window starts at the steady state, not at the seek.
    await sleep(1000);
    const start = await read();
    const t0 = performance.now();
    const samples: number[] = [];
    let dropped = 0;
    let last = start;
    // Drained every 10 s: the page's log stays small whatever the window.
    while (performance.now() - t0 < opts.seconds * 1000) {
      await sleep(Math.min(10_000, opts.seconds * 1000 - (performance.now() - t0)));
      last = await read();
      samples.push(...last.latencies);
      dropped += last.dropped;
    }
    return {
      samples,
      frames: last.frames - start.frames,
      seconds: (performance.now() - t0) / 1000,
      skips: last.skips - start.skips,
      resets: last.resets - start.resets,
      dropped,
    };
  } finally {
    await page.close();
  }
}

/**
 * Both cases, in the shape bench/video/chromium-hook.ts reports: first picture over
 * `joins` joins of the camera with the GOP cache and of the one without, then live latency of
 * the cached one.
 */
export async function run(request: ChromiumRequest): Promise<ChromiumResults> {
  const b = await launchChromium();
  try {
    const cache = await firstPictureJoins(b, {
      url: request.url,
      camera: request.cache,
      joins: request.joins,
    });
    const noCache = await firstPictureJoins(b, {
      url: request.url,
      camera: request.noCache,
      joins: request.joins,
    });
    const latency = await liveLatency(b, {
      url: request.url,
      camera: request.cache,
      seconds: request.latencySeconds,
    });
    return {
      firstPicture: { cache, noCache },
      latency: { samples: latency.samples, frames: latency.frames, seconds: latency.seconds },
      browser: b.version,
    };
  } finally {
    await b.close();
  }
}
