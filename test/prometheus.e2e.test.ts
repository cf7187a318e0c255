/**
 * The Prometheus round trip (issue 12 acceptance): Debian's real `prometheus` scrapes a real
 * daemon every second, with grafana/alerts.yml loaded. The daemon has a test camera with its
 * tone (so VAD runs), WS, SSE and MJPEG viewers (one WS viewer stalled), and one image, audio
 * and video job. Then every PromQL expression of the dashboard and of the alert rules is
 * evaluated through Prometheus's HTTP API with Grafana's variables substituted: each must parse
 * and return at least one series, except the alert expressions listed in FAILURE_ONLY. Before
 * any of that happens, every gauge and counter the dashboard uses must already have a series;
 * and a single limit rejection caused after the first scrape must read 1 in increase().
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  metricValue,
  noiseJpeg,
  pollUntil,
  type RunningDaemon,
  SseReader,
  startDaemon,
  testCamera,
  Viewer,
} from './helpers.js';
import {
  alertsPath,
  checkMetrics,
  dashboardQueries,
  familyType,
  loadDashboard,
  metricNamesIn,
  type RunningPrometheus,
  startPrometheus,
  substituteVariables,
  typesIn,
  variableQueryAsPromql,
  variableQueryOf,
  withoutThresholds,
} from './support/prometheus.js';

const CAMERA = 'demo';
/** The limit the test trips once: a `sub` naming more topics than this is refused. */
const MAX_TOPICS = 4;
const SCRAPE_SECONDS = 1;

/**
 * Grafana's variables as "All" would send them, except $camera, which names the test camera
 * so the per-camera panels prove the `camera` label. `$__rate_interval` is at least four
 * scrape intervals in Grafana; 1m is what a 15 s scrape gives.
 */
const VARIABLES: Record<string, string> = {
  camera: CAMERA,
  instance: '.*',
  __rate_interval: '1m',
  __interval: '15s',
  __range: '1h',
  DS_PROMETHEUS: 'prometheus',
};

/**
 * Alert expressions that return series only while something is wrong: each compares its signal
 * with a threshold (or is `absent(…)`), and a healthy daemon is under it. Their signal (the
 * expression without the thresholds, see withoutThresholds) must still return series.
 */
const FAILURE_ONLY = new Set([
  'alert FramehubCameraDown',
  'alert FramehubSlowViewerDropsSustained',
  'alert FramehubPoolQueueSaturated',
  'alert FramehubFramesDroppedOurFault',
  'alert FramehubEventLoopLag',
  'alert FramehubScrapeGone',
  'alert FramehubBusDown',
]);

const bundledFfmpeg = (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;
const dir = mkdtempSync(join(tmpdir(), 'framehub-prom-e2e-'));
const dashboard = loadDashboard();

let daemon: RunningDaemon;
let prom: RunningPrometheus;
const closers: (() => void)[] = [];

/** Polls a PromQL query until pred holds over its series; the last answer either way. */
async function queryUntil(
  expr: string,
  pred: (values: number[]) => boolean,
  timeoutMs = 20_000,
): Promise<number[]> {
  let values: number[] = [];
  await pollUntil(async () => {
    const answer = await prom.query(expr);
    values = answer.series.map((s) => Number(s.value));
    return pred(values);
  }, timeoutMs);
  return values;
}

/** The timestamp (s) of the newest scrape of the daemon. */
async function lastScrape(): Promise<number> {
  const [t] = await queryUntil('timestamp(up{job="framehub"})', (v) => v.length === 1);
  return t ?? 0;
}

/** Waits until `n` more scrapes have landed. */
async function scrapes(n: number): Promise<void> {
  const from = await lastScrape();
  const ok = await pollUntil(async () => (await lastScrape()) >= from + n * SCRAPE_SECONDS, 20_000);
  expect(ok, `${n} more scrapes`).toBe(true);
}

async function waitForJob(id: string, timeoutMs = 90_000): Promise<{ state: string; kind: string }> {
  let job = { state: 'unknown', kind: '' };
  await pollUntil(async () => {
    job = JSON.parse((await get(`${daemon.url}/api/v1/jobs/${id}`)).text);
    return ['done', 'failed', 'cancelled'].includes(job.state);
  }, timeoutMs);
  return job;
}

async function postJob(kind: string, body: Uint8Array, query: string): Promise<string> {
  const res = await fetch(`${daemon.url}/api/v1/jobs/${kind}${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body,
  });
  const text = await res.text();
  expect({ kind, status: res.status, text }).toMatchObject({ kind, status: 202 });
  return (JSON.parse(text) as { id: string }).id;
}

beforeAll(async () => {
  daemon = await startDaemon({
    cameras: [testCamera(CAMERA, 10)],
    // A stalled viewer goes slow after 32 KiB buffered, instead of 256 KiB.
    viewers: { softBufferBytes: 32 * 1024, maxTopicsPerConnection: MAX_TOPICS },
    jobs: { dataDir: join(dir, 'jobs') },
  });
  prom = await startPrometheus({
    target: new URL(daemon.url).host,
    scrapeIntervalSeconds: SCRAPE_SECONDS,
    ruleFiles: [alertsPath],
  });
}, 60_000);

afterAll(async () => {
  for (const close of closers) close();
  await prom?.stop();
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('Prometheus round trip (real prometheus, real daemon)', () => {
  it('has a series for every gauge and counter the dashboard uses right after the first scrape', async () => {
    const up = await queryUntil('up{job="framehub"}', (v) => v[0] === 1);
    expect(up, `first scrape; prometheus log: ${prom.log().slice(-1000)}`).toEqual([1]);
    // Types from the daemon's own exposition; the names from every dashboard query.
    const types = typesIn((await get(`${daemon.url}/metrics`)).text);
    const names = new Set(dashboardQueries(dashboard).flatMap((q) => metricNamesIn(q.expr)));
    const plain = [...names].filter((n) => ['gauge', 'counter'].includes(familyType(n, types) ?? ''));
    expect(plain.length).toBeGreaterThan(25);
    const missing: string[] = [];
    for (const name of plain) {
      if ((await prom.query(`count(${name}{job="framehub"})`)).series.length === 0) missing.push(name);
    }
    expect(missing, 'dashboard gauges and counters with no series at the first scrape').toEqual([]);
    // The one this test trips later is there at 0, so its first increment shows in increase().
    const limit = await prom.query(`framehub_limit_rejections_total{limit="topics_per_connection"}`);
    expect(limit.series.map((s) => s.value)).toEqual(['0']);
  }, 60_000);

  it('loads alerts.yml into prometheus and evaluates every rule without error', async () => {
    let rules = await prom.rules();
    await pollUntil(async () => {
      rules = await prom.rules();
      return rules.length > 0 && rules.every((r) => r.health !== 'unknown');
    }, 20_000);
    expect(rules.map((r) => r.name).sort()).toEqual(
      [...FAILURE_ONLY].map((n) => n.replace(/^alert /, '')).sort(),
    );
    for (const r of rules)
      expect({ rule: r.name, health: r.health, error: r.lastError }).toMatchObject({ health: 'ok' });
  }, 60_000);

  it('sees WS, SSE and MJPEG viewers (one WS viewer stalled) and one job of every kind', async () => {
    // Viewers: WS on a variant and the VAD events, SSE, MJPEG, and a WS viewer that stops reading.
    const ws = new Viewer(`${daemon.wsUrl}?topics=cam/${CAMERA}/low,cam/${CAMERA}/vad`);
    closers.push(() => ws.close());
    const sse = new SseReader(`${daemon.url}/sse?topics=cam/${CAMERA}/low`);
    closers.push(() => sse.close());
    const mjpeg = new AbortController();
    closers.push(() => mjpeg.abort());
    let mjpegBytes = 0;
    void fetch(`${daemon.url}/cams/${CAMERA}/low.mjpeg`, { signal: mjpeg.signal })
      .then(async (res) => {
        for await (const chunk of res.body!) mjpegBytes += (chunk as Uint8Array).length;
      })
      .catch(() => {});
    const stalled = new Viewer(`${daemon.wsUrl}?topics=cam/${CAMERA}/raw,cam/${CAMERA}/high`);
    closers.push(() => stalled.ws.terminate());
    await stalled.opened;
    (stalled.ws as unknown as { _socket: net.Socket })._socket.pause();

    // One job of every kind, the smallest requests of the job suites.
    const photo = await noiseJpeg(320, 240);
    const rate = 8000;
    const pcm = new Int16Array(rate * 3);
    for (let i = rate; i < 2 * rate; i++)
      pcm[i] = Math.round(9000 * Math.sin((2 * Math.PI * 250 * i) / rate));
    const clip = join(dir, 'clip.mp4');
    // biome-ignore format: one option and its value per line
    execFileSync(bundledFfmpeg, [
      '-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
      '-t', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac',
      clip,
    ]);
    const ids = [
      await postJob('image', photo, '?format=webp&widths=160'),
      await postJob('audio', new Uint8Array(pcm.buffer), `?format=s16le&rate=${rate}`),
      await postJob('video', readFileSync(clip), '?chunkSeconds=2'),
    ];
    const jobs = await Promise.all(ids.map((id) => waitForJob(id)));
    expect(jobs.map((j) => [j.kind, j.state])).toEqual([
      ['image', 'done'],
      ['audio', 'done'],
      ['video', 'done'],
    ]);

    await ws.until((r) => r.some((x) => x.type === 'frame') && r.some((x) => x.type === 'vad'), 15_000);
    await sse.until(() => sse.events.length > 0, 15_000);
    expect(await pollUntil(() => mjpegBytes > 0, 15_000), 'MJPEG bytes').toBe(true);
    // The stalled viewer is over the soft limit: frames are dropped for it (and it may be closed).
    const slow = await pollUntil(async () => {
      const text = (await get(`${daemon.url}/metrics`)).text;
      return (metricValue(text, 'framehub_frames_dropped_total{reason="slow"}') ?? 0) > 0;
    }, 30_000);
    expect(slow, 'slow drops for the stalled viewer').toBe(true);

    // Prometheus saw all of it.
    const seen = async (expr: string) =>
      (await queryUntil(expr, (v) => v.length > 0 && v.every((x) => x >= 1)))[0];
    expect(await seen('sum(framehub_connections{transport="sse"})')).toBe(1);
    expect(await seen('sum(framehub_connections{transport="mjpeg"})')).toBe(1);
    expect(await seen('sum(framehub_connects_total{transport="ws"})')).toBeGreaterThanOrEqual(2);
    expect(await seen('sum(framehub_frames_dropped_total{reason="slow"})')).toBeGreaterThan(0);
    expect(await seen(`framehub_vad_frames_total{backend=~"native|js"} > 0`)).toBeGreaterThan(0);
    for (const kind of ['image', 'audio', 'video']) {
      expect(await seen(`framehub_jobs_total{kind="${kind}", outcome="done"}`), kind).toBe(1);
    }
  }, 180_000);

  it('evaluates every dashboard and alert expression: each parses, and each returns series unless listed as failure-only', async () => {
    await scrapes(3);
    const queries: { where: string; expr: string }[] = [
      ...dashboardQueries(dashboard),
      ...dashboard.templating.list
        .filter((v) => v.type === 'query')
        .map((v) => ({
          where: `variable $${v.name}`,
          expr: variableQueryAsPromql(variableQueryOf(v)) ?? '',
        })),
      // As Prometheus parsed and formatted them from grafana/alerts.yml.
      ...(await prom.rules()).map((r) => ({
        where: `${r.type === 'alerting' ? 'alert' : 'record'} ${r.name}`,
        expr: r.query,
      })),
    ];
    expect(queries.length).toBeGreaterThan(50);
    const failed: string[] = [];
    const empty: string[] = [];
    /** Failure-only alerts that return series now: pending, and firing if it lasts `for:`. */
    const pending: string[] = [];
    for (const q of queries) {
      const expr = substituteVariables(q.expr, VARIABLES);
      const answer = await prom.query(expr);
      if (answer.status !== 'success') failed.push(`${q.where}: ${answer.error}\n    ${expr}`);
      else if (answer.series.length === 0) empty.push(`${q.where}\n    ${expr}`);
      if (FAILURE_ONLY.has(q.where) && answer.series.length > 0) {
        pending.push(
          `${q.where}: ${answer.series.map((x) => `${JSON.stringify(x.metric)} ${x.value}`).join(', ')}`,
        );
      }
      if (FAILURE_ONLY.has(q.where)) {
        const signal = withoutThresholds(expr);
        const s = await prom.query(signal);
        if (s.status !== 'success') failed.push(`${q.where} (signal): ${s.error}\n    ${signal}`);
        else if (s.series.length === 0) failed.push(`${q.where} (signal) returned nothing\n    ${signal}`);
      }
    }
    console.log(
      `${queries.length} expressions evaluated; ${empty.length} returned nothing:\n  ${empty.join('\n  ')}`,
    );
    if (pending.length > 0)
      console.log(`failure-only alerts returning series now:\n  ${pending.join('\n  ')}`);
    expect(failed, 'expressions that failed to parse or evaluate').toEqual([]);
    const unexpected = empty.filter((e) => !FAILURE_ONLY.has(e.split('\n')[0]!));
    expect(unexpected, 'expressions that returned no series').toEqual([]);
  }, 60_000);

  it('shows one limit rejection, caused after the first scrape, as 1 in increase()', async () => {
    const series = 'framehub_limit_rejections_total{limit="topics_per_connection"}';
    expect(await queryUntil(series, (v) => v.length === 1)).toEqual([0]);
    const v = new Viewer(daemon.wsUrl);
    closers.push(() => v.close());
    await v.opened;
    v.send({ type: 'sub', topics: Array.from({ length: MAX_TOPICS + 1 }, (_, i) => `cam/${CAMERA}/t${i}`) });
    await v.until((r) => r.some((x) => x.type === 'error'));
    expect(v.of('error')[0]).toMatchObject({ code: 'TOO_MANY_TOPICS' });
    expect(await queryUntil(series, (x) => x[0] === 1)).toEqual([1]);
    await scrapes(2);
    // The series has been 0 since the first scrape, so Prometheus knows where the counter
    // started: increase() does not extrapolate before the first sample (the zero point), and
    // extrapolates at most about one scrape interval past the last one, over a window of
    // dozens of scrapes. So 1 reads as 1 plus a few percent; 1.5 leaves room for a late scrape
    // on a loaded host. Before every series was made at 0, this read 0: the counter appeared
    // with its first increment, and increase() cannot see a series' first sample as a rise.
    const [increase] = await queryUntil(`increase(${series}[1m])`, (x) => x.length === 1);
    console.log(`increase(${series}[1m]) = ${increase}`);
    expect(increase).toBeGreaterThanOrEqual(0.9);
    expect(increase).toBeLessThanOrEqual(1.5);
    const errors = await queryUntil('framehub_ws_errors_total{code="TOO_MANY_TOPICS"}', (x) => x[0] === 1);
    expect(errors).toEqual([1]);
  }, 60_000);

  it('passes promtool check metrics on a scrape after all that, with no findings on framehub metrics', async () => {
    const scrape = (await get(`${daemon.url}/metrics`)).text;
    const { code, out, unexpected } = checkMetrics(scrape);
    expect(code, `promtool exit ${code}: ${out}`).toBe(0);
    expect(unexpected, 'promtool check metrics findings').toEqual([]);
  });
});
