// The metrics reference in README.md is generated from the registry, and every series exists
// from the start: a counter whose first increment is also its first scrape reads 0 in
// Prometheus's increase(), so the first incident would not show (see src/metrics/label-values.ts).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  noiseJpeg,
  pollUntil,
  type RunningDaemon,
  root,
  SseReader,
  startDaemon,
  testCamera,
  Viewer,
} from './helpers.js';

describe('README metrics reference', () => {
  it('is what npm run docs:metrics makes from the registry', async () => {
    const script = join(root, 'scripts', 'docs-metrics.mjs');
    const { renderMetricsTable } = (await import(script)) as { renderMetricsTable: () => Promise<string> };
    const table = await renderMetricsTable();
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(table).toContain('`framehub_build_info`');
    expect(readme, 'run `npm run docs:metrics`').toContain(`-->\n${table}\n<!-- metrics:end -->`);
    // The --check mode CI users run by hand agrees.
    expect(execFileSync(process.execPath, [script, '--check'], { encoding: 'utf8' })).toMatch(/matches/);
  });
});

/** `name{labels}` of every sample of framehub's own metrics (prom-client's defaults left out: GC kinds appear lazily). */
function seriesIn(scrape: string): Set<string> {
  const series = new Set<string>();
  for (const line of scrape.split('\n')) {
    if (!line.startsWith('framehub_') || /^framehub_(process|nodejs)_/.test(line)) continue;
    series.add(line.slice(0, line.lastIndexOf(' ')));
  }
  return series;
}

describe('series at start', () => {
  let daemon: RunningDaemon;
  const scrape = async () => (await fetch(`${daemon.url}/metrics`)).text();

  beforeAll(async () => {
    daemon = await startDaemon({
      cameras: [testCamera('demo', 10)],
      viewers: { maxTopicsPerConnection: 2 },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('a scrape after viewers, errors, rejections and a job holds no series the first scrape lacked', async () => {
    const before = seriesIn(await scrape());
    expect(before.has('framehub_limit_rejections_total{limit="topics_per_connection"}')).toBe(true);
    expect(before.has('framehub_jobs_total{kind="video",outcome="failed"}')).toBe(true);
    expect(before.has('framehub_camera_up{camera="demo"}')).toBe(true);
    expect([...before].some((s) => s.startsWith('framehub_build_info{version='))).toBe(true);

    // Viewers on every transport, a WS error, a limit rejection and a finished image job.
    const ws = new Viewer(`${daemon.wsUrl}?topics=cam/demo/low`);
    await ws.until((r) => r.some((x) => x.type === 'frame'), 15_000);
    ws.send({ type: 'sub', topics: ['cam/demo/medium', 'cam/demo/high'] });
    ws.send({ type: 'nonsense' });
    await ws.until((r) => r.filter((x) => x.type === 'error').length >= 2, 10_000);
    const sse = new SseReader(`${daemon.url}/sse?topics=cam/demo/low`);
    await sse.until(() => sse.events.some((x) => x.event === 'frame'), 15_000);
    const mjpeg = await fetch(`${daemon.url}/cams/demo/low.mjpeg`);
    const reader = mjpeg.body!.getReader();
    await reader.read();
    const body = await noiseJpeg(320, 240);
    const job = (await (await fetch(`${daemon.url}/api/v1/jobs/image`, { method: 'POST', body })).json()) as {
      id: string;
    };
    const jobDone = await pollUntil(async () => {
      const view = (await (await fetch(`${daemon.url}/api/v1/jobs/${job.id}`)).json()) as { state: string };
      return view.state === 'done';
    }, 60_000);
    expect(jobDone).toBe(true);
    const during = await scrape();
    await reader.cancel();
    ws.close();
    sse.close();
    const closed = await pollUntil(
      async () => /framehub_disconnects_total\{transport="ws"\} [1-9]/.test(await scrape()),
      10_000,
    );
    expect(closed).toBe(true);

    const after = await scrape();
    // The activity really happened (so the comparison means something).
    expect(during).toMatch(/framehub_limit_rejections_total\{limit="topics_per_connection"\} 1\b/);
    expect(during).toMatch(/framehub_ws_errors_total\{code="UNKNOWN_TYPE"\} 1\b/);
    expect(during).toMatch(/framehub_jobs_total\{kind="image",outcome="done"\} 1\b/);
    expect(during).toMatch(/framehub_connects_total\{transport="mjpeg"\} 1\b/);
    expect(after).toMatch(/framehub_pool_task_duration_seconds_count\{task="image_job"\} 1\b/);
    const added = [...seriesIn(during), ...seriesIn(after)].filter((s) => !before.has(s));
    expect([...new Set(added)], 'series created by activity: initialise them in src/metrics').toEqual([]);
  });
});
