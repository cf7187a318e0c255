import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Histogram } from '../bench/lib/histogram.js';
import type { Figures, LoadResult, LoadSummary } from '../bench/lib/load-result.js';
import { peekRecord } from '../bench/lib/msgpack-peek.js';
import { root, startDaemon } from './helpers.js';

/**
 * Smoke tests of the load-test harness (bench/README.md): every scenario runs for a few
 * seconds with small numbers against the real daemon (and fanout against bare uWS too),
 * and its JSON must have the documented fields with sane values. Figures are not judged
 * here: CI machines are noisy, and the targets are checked by the full runs in RESULTS.md.
 */
const exec = promisify(execFile);
const benchBuild = join(root, 'dist-bench', 'bench');
const cli = join(benchBuild, 'cli.js');
let dir: string;

beforeAll(() => {
  if (!existsSync(join(root, 'dist', 'src', 'main.js'))) {
    throw new Error('dist/src/main.js is missing: run `npm run build` first');
  }
  // The harness is its own project (bench/tsconfig.json → dist-bench/), which `npm test` does
  // not build; build it here so the suite never runs a stale copy (`npm run bench:build`).
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'bench'], {
    cwd: root,
    stdio: 'inherit',
    timeout: 120_000,
  });
  if (!existsSync(join(root, 'bench', 'node_modules', 'autocannon'))) {
    // CI should run `npm --prefix bench ci` before the tests; this covers a fresh checkout.
    execFileSync('npm', ['--prefix', join(root, 'bench'), 'ci', '--no-audit', '--no-fund'], {
      stdio: 'inherit',
      timeout: 180_000,
    });
  }
  dir = mkdtempSync(join(tmpdir(), 'framehub-bench-smoke-'));
}, 200_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const readJson = <T>(file: string) => JSON.parse(readFileSync(file, 'utf8')) as T;

/** Runs a scenario; returns its raw result after checking the summary written next to it. */
async function bench(scenario: string, ...args: string[]): Promise<LoadResult> {
  await exec(process.execPath, [cli, scenario, ...args, '--results-dir', dir, '--quiet'], {
    cwd: root,
    timeout: 60_000,
  });
  const raw = readJson<LoadResult>(join(dir, 'raw', `load-${scenario}.json`));
  expectSummaryOf(readJson<LoadSummary>(join(dir, `load-${scenario}.json`)), raw);
  return raw;
}

/** The committed summary is the raw result without its runs, plus the chart points drawn from them. */
function expectSummaryOf(s: LoadSummary, raw: LoadResult): void {
  const { runs, ...rest } = raw;
  expect(s).not.toHaveProperty('runs');
  expect(s).toMatchObject(rest);
  expect(s.charts.timeline.map((line) => line.t.length)).toEqual(runs.map((r) => r.timeline.length));
  for (const line of s.charts.timeline) {
    for (const column of Object.values(line.series)) expect(column).toHaveLength(line.t.length);
  }
  const histograms = runs.flatMap((r) => Object.values(r.histograms).filter((h) => h.length > 0));
  expect(s.charts.cdf.length).toBeLessThanOrEqual(histograms.length);
  // Every scenario but http draws latency CDFs.
  if (raw.scenario !== 'http') expect(s.charts.cdf.length).toBeGreaterThan(0);
  for (const { points } of s.charts.cdf) {
    expect(points.length).toBeGreaterThan(0);
    expect(points.length).toBeLessThanOrEqual(401);
    expect(points.at(-1)![1]).toBe(1);
  }
}

function expectCommon(r: LoadResult, scenario: string): void {
  expect(r.kind).toBe('load');
  expect(r.scenario).toBe(scenario);
  expect(r.bench).toBe(`load-${scenario}`);
  expect(r.machine).toMatch(/x\d+, \d+ GiB, linux/);
  expect(r.commit).toMatch(/^[0-9a-f]{7,}|uncommitted$/);
  expect(Number.isNaN(Date.parse(r.startedAt))).toBe(false);
  expect(r.conditions.command).toContain(`npm run bench -- ${scenario}`);
  expect(r.tables.length).toBeGreaterThan(0);
  expect(typeof r.clientBound).toBe('boolean');
  for (const t of r.targets) expect(t).toMatchObject({ name: expect.any(String), met: expect.any(Boolean) });
  for (const run of r.runs) {
    expect(run.timeline.length).toBeGreaterThan(0);
    for (const p of run.timeline) expect(p.t).toBeGreaterThan(0);
  }
}

/** p50 ≤ p99 ≤ p99.9, all positive. */
function expectOrdered(f: Figures, p50: string, p99: string, p999?: string): void {
  expect(f[p50]).toBeGreaterThan(0);
  expect(f[p99]).toBeGreaterThanOrEqual(f[p50]!);
  if (p999) expect(f[p999]).toBeGreaterThanOrEqual(f[p99]!);
}

describe('load-test harness (npm run bench)', () => {
  it('fanout: 50 WS viewers for 5 s on framehub and bare uWS', async () => {
    const r = await bench(
      'fanout',
      '--viewers',
      '50',
      '--seconds',
      '5',
      '--warmup',
      '0.5',
      '--targets',
      'framehub,uws-bare',
    );
    expectCommon(r, 'fanout');
    expect(r.params).toMatchObject({ viewers: 50, fps: 30, frameKb: 20, transport: 'ws' });
    expect(r.runs.map((x) => x.target).sort()).toEqual(['framehub', 'uws-bare']);
    for (const run of r.runs) {
      const f = run.figures;
      expect(f.viewersOpened).toBe(50);
      expect(f.sentPerCamera).toBeGreaterThan(50);
      expect(f.expectedFrames).toBe(50 * f.sentPerCamera!);
      expect(f.deliveredFrames).toBeGreaterThan(0);
      expect(f.deliveredFrames).toBeLessThanOrEqual(f.expectedFrames!);
      expect(f.deliveredFraction).toBeGreaterThan(0.5);
      expect(f.deliveredFraction).toBeLessThanOrEqual(1);
      expect(f.drops).toBe(f.expectedFrames! - f.deliveredFrames!);
      expect(f.deliveredMBPerSec).toBeGreaterThan(0);
      expectOrdered(f, 'latencyP50Ms', 'latencyP99Ms', 'latencyP999Ms');
      expectOrdered(f, 'ttffP50Ms', 'ttffP99Ms');
      expect(f.probeTtffCount).toBeGreaterThan(10);
      expectOrdered(f, 'probeTtffP50Ms', 'probeTtffP99Ms');
      expect(f.serverCpuSeconds).toBeGreaterThan(0);
      expect(f.serverCpuSecondsPerGB).toBeGreaterThan(0);
      expect(f.serverRssMaxMiB).toBeGreaterThan(10);
      expect(f.clientCpuPct).toBeGreaterThan(0);
      expect(run.histograms.latency!.length).toBeGreaterThan(0);
    }
    expect(Object.keys(r.summary).sort()).toEqual(['framehub', 'uws-bare']);
    expect(r.targets.map((t) => t.name).join()).toContain('server CPU per delivered GB vs bare uWS');
  }, 60_000);

  it('slow: 10% of 20 viewers stalled, against a control run', async () => {
    const r = await bench('slow', '--viewers', '20', '--seconds', '2', '--warmup', '0.5');
    expectCommon(r, 'slow');
    const control = r.summary['framehub:control']!;
    const slow = r.summary['framehub:slow']!;
    expect(control.slowViewers).toBe(0);
    expect(control.healthyViewers).toBe(20);
    expect(slow.slowViewers).toBe(2);
    expect(slow.healthyViewers).toBe(18);
    for (const f of [control, slow]) {
      expect(f.deliveredFrames).toBeLessThanOrEqual(f.expectedFrames!);
      expectOrdered(f, 'latencyP50Ms', 'latencyP99Ms');
      expect(typeof f.serverRssGrowthMiB).toBe('number');
    }
    expect(r.targets.some((t) => t.name.includes('healthy p99 with slow viewers'))).toBe(true);
  }, 60_000);

  it('idle: 200 idle connections report RSS per connection and connect rate', async () => {
    const r = await bench('idle', '--conns', '200', '--hold', '0.5', '--targets', 'framehub');
    expectCommon(r, 'idle');
    const f = r.summary.framehub!;
    expect(f.connections).toBe(200);
    expect(f.openAtEnd).toBe(200);
    expect(f.failed).toBe(0);
    expect(Number.isFinite(f.rssPerConnKiB)).toBe(true);
    expect(f.connectPerSec).toBeGreaterThan(0);
    expectOrdered(f, 'connectP50Ms', 'connectP99Ms');
    expect(f.serverFdsAfter).toBeGreaterThanOrEqual(200);
  }, 60_000);

  it('churn: connect/first-frame/disconnect loops report latency and leaks', async () => {
    const r = await bench('churn', '--seconds', '2', '--warmup', '0.5', '--concurrency', '4');
    expectCommon(r, 'churn');
    const f = r.summary.framehub!;
    expect(f.cycles).toBeGreaterThan(10);
    expect(f.errors).toBe(0);
    expectOrdered(f, 'connectP50Ms', 'connectP99Ms');
    expectOrdered(f, 'firstFrameP50Ms', 'firstFrameP99Ms');
    expect(typeof f.rssLeakMiB).toBe('number');
    expect(typeof f.fdLeak).toBe('number');
  }, 60_000);

  it('--url to a daemon without the push cameras fails at once, naming them, and writes no result', async () => {
    const daemon = await startDaemon({ cameras: [{ id: 'lobby', source: 'push', fps: 30 }] });
    try {
      const started = Date.now();
      const out = join(dir, 'refused');
      const run = exec(
        process.execPath,
        [cli, 'churn', '--url', daemon.url, '--seconds', '5', '--results-dir', out],
        {
          cwd: root,
          timeout: 30_000,
        },
      );
      await expect(run).rejects.toMatchObject({
        code: 1,
        stderr: expect.stringContaining('/publish refused the priming frames (UNKNOWN_TOPIC'),
      });
      await run.catch((err: { stderr: string }) => expect(err.stderr).toContain('needs push cameras bench0'));
      // The priming message above proves it stopped before the scenario; this bound only
      // catches a CLI that hangs (5 s failed once with the machine's load average at 15-19).
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(existsSync(join(out, 'load-churn.json'))).toBe(false);
      expect(existsSync(join(out, 'raw', 'load-churn.json'))).toBe(false);
    } finally {
      await daemon.stop();
    }
  }, 30_000);

  it('http: autocannon reports req/s, latency, errors and requests per server CPU-second', async () => {
    const r = await bench(
      'http',
      '--seconds',
      '1',
      '--warmup',
      '0',
      '--connections',
      '10',
      '--targets',
      'framehub',
    );
    expectCommon(r, 'http');
    const f = r.summary.framehub!;
    for (const key of ['healthz', 'status', 'metrics', 'jpg']) {
      expect(f[`${key}.requests`]).toBeGreaterThan(0);
      expect(f[`${key}.reqPerSec`]).toBeGreaterThan(0);
      expect(f[`${key}.latencyP99Ms`]).toBeGreaterThanOrEqual(f[`${key}.latencyP50Ms`]!);
      expect(f[`${key}.reqPerServerCpuSecond`]).toBeGreaterThan(0);
    }
    expect(f['healthz.errors']).toBe(0);
    expect(f['jpg.errors']).toBe(0);
  }, 60_000);

  it('bench:report renders the summaries alone into markdown tables and SVG charts', async () => {
    // What a fresh clone has: the committed summaries, no raw samples.
    rmSync(join(dir, 'raw'), { recursive: true });
    const out = join(dir, 'RESULTS.md');
    await exec(process.execPath, [
      join(benchBuild, 'report.js'),
      '--results-dir',
      dir,
      '--out',
      out,
      '--charts-dir',
      join(dir, 'charts'),
    ]);
    const md = readFileSync(out, 'utf8');
    expect(md).toContain('## Load: fanout, 50 ws viewers');
    expect(md).toMatch(/\| framehub +\| 50 +\|/);
    const svg = readFileSync(join(dir, 'charts', 'load-fanout-latency.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(md).toContain('](charts/load-fanout-latency.svg)');
  }, 30_000);
});

describe('harness internals', () => {
  const packr = new Packr({ useRecords: false });

  it('peekRecord reads type, seq and ts exactly as msgpackr decodes them', () => {
    fc.assert(
      fc.property(
        fc.record({
          topic: fc.string(),
          seq: fc.integer({ min: 0, max: 2 ** 40 }),
          ts: fc.oneof(fc.double({ min: 0, max: 4e12, noNaN: true }), fc.integer({ min: 0, max: 2 ** 45 })),
          extra: fc.dictionary(fc.string(), fc.jsonValue()),
          data: fc.uint8Array({ maxLength: 300 }),
        }),
        (r) => {
          const bytes = packr.pack({
            type: 'frame',
            topic: r.topic,
            extra: r.extra,
            seq: r.seq,
            data: r.data,
            ts: r.ts,
          });
          const decoded = packr.unpack(bytes) as { seq: number; ts: number };
          expect(peekRecord(bytes)).toEqual({ type: 'frame', seq: decoded.seq, ts: decoded.ts });
        },
      ),
    );
  });

  it('histogram quantiles stay within 1% of the exact sample quantile', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.001, max: 60_000, noNaN: true }), { minLength: 1, maxLength: 500 }),
        (xs) => {
          const h = new Histogram();
          for (const x of xs) h.recordMs(x);
          const sorted = [...xs].sort((a, b) => a - b);
          for (const q of [0.5, 0.99]) {
            const exact = sorted[Math.max(0, Math.ceil(q * xs.length) - 1)]!;
            expect(Math.abs(h.quantileMs(q) - exact)).toBeLessThanOrEqual(exact * 0.01 + 0.001);
          }
        },
      ),
    );
  });
});
