// Ops artefacts: the Grafana dashboard must be well formed and only query metrics the daemon
// really exports, the alert rules must pass promtool (check and unit tests), the Prometheus
// config and the /metrics output must pass promtool, and the Dockerfile must copy things that
// exist. promtool comes from the `prometheus` Debian package (CI installs it). The same
// dashboard and rules are evaluated against a real Prometheus by test/prometheus.e2e.test.ts.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, metricValue, type RunningDaemon, root, startDaemon, testCamera } from './helpers.js';
import {
  allPanelsOf,
  checkMetrics,
  dashboardQueries,
  familyType,
  loadDashboard,
  metricNamesIn,
  metricsInVariableQuery,
  promtool,
  typesIn,
  variableQueryAsPromql,
  variableQueryOf,
  withoutThresholds,
} from './support/prometheus.js';

// ------------------------------------------------------------------------------ dashboard

const dashboard = loadDashboard();
const allPanels = allPanelsOf(dashboard);
const queryPanels = allPanels.filter((p) => p.type !== 'row');
const exprs = dashboardQueries(dashboard).map((q) => q.expr);
const variables = dashboard.templating.list;

/** Every metric name the dashboard queries, with the panels (or variables) that use it. */
const queried = new Map<string, string[]>();
for (const p of queryPanels) {
  for (const t of p.targets ?? []) {
    for (const n of metricNamesIn(t.expr ?? '')) queried.set(n, [...(queried.get(n) ?? []), p.title]);
  }
}
for (const v of variables) {
  if (v.type !== 'query') continue;
  for (const n of metricsInVariableQuery(variableQueryOf(v))) {
    queried.set(n, [...(queried.get(n) ?? []), `$${v.name}`]);
  }
}

/** True when `text` refers to variable `name` as `$name`, `${name}`, `${name:fmt}` or `[[name]]`. */
const mentions = (text: string, name: string) =>
  new RegExp(`\\$${name}\\b|\\$\\{${name}(?::\\w+)?\\}|\\[\\[${name}\\]\\]`).test(text);

/** DESIGN.md "Metrics" and issue 12: the minimum the dashboard must show. */
const REQUIRED = [
  'framehub_build_info',
  'framehub_connections',
  'framehub_connects_total',
  'framehub_disconnects_total',
  'framehub_frames_sent_total',
  'framehub_bytes_sent_total',
  'framehub_frames_dropped_total',
  'framehub_slow_viewers',
  'framehub_slow_disconnects_total',
  'framehub_camera_frames_in_total',
  'framehub_camera_up',
  'framehub_camera_restarts_total',
  'framehub_ingest_to_send_seconds_bucket',
  'framehub_pool_queue_depth',
  'framehub_pool_queued_tasks',
  'framehub_pool_queue_limit',
  'framehub_pool_queue_wait_seconds_bucket',
  'framehub_pool_task_duration_seconds_bucket',
  'framehub_pool_threads',
  'framehub_image_encode_seconds_bucket',
  'framehub_ring_fill_ratio',
  'framehub_ring_full_total',
  'framehub_image_bytes_in_total',
  'framehub_image_bytes_out_total',
  'framehub_limit_rejections_total',
  'framehub_auth_failures_total',
  'framehub_ws_errors_total',
  'framehub_vad_speech_active',
  'framehub_vad_segments_total',
  'framehub_vad_frames_total',
  'framehub_vad_backend_info',
  'framehub_jobs_total',
  'framehub_job_duration_seconds_bucket',
  'framehub_ffmpeg_speed_ratio_bucket',
  'framehub_job_result_bytes',
  'framehub_job_disk_bytes',
  'framehub_ffmpeg_processes',
  'framehub_nodejs_eventloop_lag_seconds',
  'framehub_nodejs_heap_size_used_bytes',
  'framehub_nodejs_gc_duration_seconds_sum',
  'framehub_process_resident_memory_bytes',
  'framehub_process_cpu_seconds_total',
];

/** Row titles, in order: issue 12 item 2 (no bus row until clustering exists). */
const ROWS = [
  'Viewers',
  'Delivery',
  'Cameras',
  'Worker pool',
  'Voice activity',
  'Jobs',
  'Limits and auth',
  'Node.js process',
  'Cluster bus (Redis)',
];

describe('PromQL helpers', () => {
  it('metricNamesIn keeps metric names and drops functions, labels, ranges, numbers and variables', () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le, task) (rate(framehub_x_bucket{task="vad", instance=~"$instance"}[$__rate_interval])))',
      ),
    ).toEqual(['framehub_x_bucket']);
    expect(
      metricNamesIn('sum(rate(a_total[5m])) / ignoring(code) group_left b > 1e-3 and on(x) c offset 5m'),
    ).toEqual(['a_total', 'b', 'c']);
    expect(metricNamesIn('max by (instance, backend) (framehub_y{instance=~"$instance"}) == 1')).toEqual([
      'framehub_y',
    ]);
    expect(metricsInVariableQuery('label_values(framehub_camera_up{instance=~"$instance"}, camera)')).toEqual(
      ['framehub_camera_up'],
    );
  });

  it('variableQueryAsPromql turns label_values into a count by the label', () => {
    expect(variableQueryAsPromql('label_values(framehub_camera_up{instance=~".*"}, camera)')).toBe(
      'count by (camera) (framehub_camera_up{instance=~".*"})',
    );
    expect(variableQueryAsPromql('query_result(up)')).toBeUndefined();
  });

  it('withoutThresholds keeps the signal of an alert expression', () => {
    expect(withoutThresholds('max by (instance, camera) (framehub_camera_up) == 0')).toBe(
      'max by (instance, camera) (framehub_camera_up)',
    );
    expect(withoutThresholds('a / (b + c) > 0.1')).toBe('a / (b + c)');
    expect(withoutThresholds('max by (t) (a / b) > 0.8 or sum(increase(c{l="x or y"}[5m])) > 0')).toBe(
      'max by (t) (a / b) or sum(increase(c{l="x or y"}[5m]))',
    );
    expect(withoutThresholds('up{job="framehub"} == 0 or absent(up{job="framehub"})')).toBe(
      'up{job="framehub"}',
    );
  });
});

describe('grafana dashboard (static)', () => {
  it('is a schemaVersion 39-ish dashboard with a stable uid', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toBe('framehub');
  });

  it('has unique panel ids, rows included', () => {
    const ids = allPanels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
    const dupes = ids.filter((id, i) => ids.indexOf(id) !== i);
    expect(dupes, 'duplicate panel ids').toEqual([]);
  });

  it('has the rows issue 12 asks for, in order', () => {
    expect(allPanels.filter((p) => p.type === 'row').map((p) => p.title)).toEqual(ROWS);
  });

  it('gives every panel a datasource and at least one non-empty query, and a sane grid position', () => {
    expect(queryPanels.length).toBeGreaterThan(30);
    for (const p of queryPanels) {
      expect(p.datasource?.uid, `panel "${p.title}" has no datasource`).toBeTruthy();
      const nonEmpty = (p.targets ?? []).filter((t) => (t.expr ?? '').trim() !== '');
      expect(nonEmpty.length, `panel "${p.title}" has no query`).toBeGreaterThan(0);
      expect(nonEmpty.length, `panel "${p.title}" has an empty target`).toBe(p.targets!.length);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, `panel "${p.title}" repeats a refId`).toBe(refIds.length);
      expect(p.gridPos.x + p.gridPos.w, `panel "${p.title}" overflows the grid`).toBeLessThanOrEqual(24);
    }
  });

  it('has a Prometheus datasource variable that every panel, target and query variable uses', () => {
    const ds = variables.find((v) => v.type === 'datasource');
    expect(ds, 'no datasource template variable').toBeDefined();
    expect(ds!.query).toBe('prometheus');
    const uid = `\${${ds!.name}}`;
    for (const p of queryPanels) {
      expect(p.datasource?.uid, `panel "${p.title}" datasource`).toBe(uid);
      for (const t of p.targets ?? []) expect(t.datasource?.uid ?? p.datasource?.uid).toBe(uid);
    }
    for (const v of variables.filter((x) => x.type === 'query')) {
      expect(v.datasource?.uid, `variable $${v.name} datasource`).toBe(uid);
    }
  });

  it('has $camera (from framehub_camera_frames_in_total, which push cameras have too, per $instance) and $instance variables', () => {
    const camera = variables.find((v) => v.name === 'camera');
    expect(camera?.type).toBe('query');
    expect(variableQueryOf(camera!)).toBe(
      'label_values(framehub_camera_frames_in_total{instance=~"$instance"}, camera)',
    );
    const instance = variables.find((v) => v.name === 'instance');
    expect(instance?.type).toBe('query');
    expect(variableQueryOf(instance!)).toMatch(/^label_values\(framehub_\w+, instance\)$/);
  });

  it('uses every template variable somewhere (a panel query, a datasource, or another variable)', () => {
    const panelText = queryPanels.map((p) => JSON.stringify([p.datasource, p.targets])).join('\n');
    for (const v of variables) {
      const others = variables
        .filter((o) => o !== v)
        .map((o) => JSON.stringify([o.datasource, o.query, o.definition]))
        .join('\n');
      expect(mentions(panelText, v.name) || mentions(others, v.name), `variable $${v.name} is unused`).toBe(
        true,
      );
    }
    // Every per-camera metric is filtered by $camera.
    for (const e of exprs.filter((x) => /framehub_(camera_|vad_(speech|segments|overrun|chunk))/.test(x))) {
      expect(mentions(e, 'camera'), e).toBe(true);
    }
    for (const e of exprs) expect(mentions(e, 'instance'), `no $instance filter: ${e}`).toBe(true);
  });

  it('uses $__rate_interval for every rate()/increase() window', () => {
    for (const e of exprs) {
      for (const m of e.matchAll(/\b(?:rate|irate|increase)\([^[]*\[([^\]]*)\]/g)) {
        expect(m[1], e).toBe('$__rate_interval');
      }
    }
  });

  it('queries only framehub_ metrics, and at least those issue 12 asks for', () => {
    for (const [name, where] of queried) expect(name, `used by ${where.join(', ')}`).toMatch(/^framehub_/);
    const missing = REQUIRED.filter((n) => !queried.has(n));
    expect(missing, 'metrics with no panel').toEqual([]);
  });

  it('has an ingest → send heatmap of the histogram buckets and a build-info stat', () => {
    const heatmap = queryPanels.find((p) => p.type === 'heatmap');
    expect(heatmap?.targets?.[0]?.expr).toMatch(/framehub_ingest_to_send_seconds_bucket/);
    expect((heatmap?.targets?.[0] as { format?: string } | undefined)?.format).toBe('heatmap');
    const build = queryPanels.find(
      (p) => p.type === 'stat' && /framehub_build_info/.test(p.targets?.[0]?.expr ?? ''),
    );
    expect(build, 'no build-info stat').toBeDefined();
  });
});

describe('prometheus config', () => {
  it('passes promtool check config (alerts.yml included)', () => {
    const { code, out } = promtool(['check', 'config', 'grafana/prometheus.yml']);
    expect(code, out).toBe(0);
    expect(out).toMatch(/1 rule files found/);
  });

  it('scrapes framehub at 127.0.0.1:8080/metrics every 5 s and loads alerts.yml', () => {
    const text = readFileSync(join(root, 'grafana', 'prometheus.yml'), 'utf8');
    expect(text).toMatch(/job_name:\s*framehub/);
    expect(text).toMatch(/metrics_path:\s*\/metrics/);
    expect(text).toMatch(/scrape_interval:\s*5s/);
    expect(text).toMatch(/targets:\s*\[\s*["']127\.0\.0\.1:8080["']\s*\]/);
    expect(text).toMatch(/rule_files:\s*\n\s*-\s*alerts\.yml/);
  });

  it('has Grafana provisioning for the data source and the dashboards folder', () => {
    const ds = readFileSync(join(root, 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8');
    expect(ds).toMatch(/type:\s*prometheus/);
    const provider = readFileSync(
      join(root, 'grafana', 'provisioning', 'dashboards', 'framehub.yml'),
      'utf8',
    );
    expect(provider).toMatch(/type:\s*file/);
    expect(provider).toMatch(/path:\s*\S+/);
  });
});

describe('alert rules (grafana/alerts.yml)', () => {
  const ALERTS = [
    'FramehubCameraDown',
    'FramehubSlowViewerDropsSustained',
    'FramehubPoolQueueSaturated',
    'FramehubFramesDroppedOurFault',
    'FramehubEventLoopLag',
    'FramehubScrapeGone',
    'FramehubBusDown',
  ];
  const text = readFileSync(join(root, 'grafana', 'alerts.yml'), 'utf8');

  it('passes promtool check rules with the six alerts issue 12 asks for, and the bus alert', () => {
    const { code, out } = promtool(['check', 'rules', 'grafana/alerts.yml']);
    expect(code, out).toBe(0);
    expect(out).toMatch(/SUCCESS: 7 rules found/);
    expect([...text.matchAll(/^\s*- alert: (\w+)$/gm)].map((m) => m[1])).toEqual(ALERTS);
  });

  it('gives every alert a for:, a severity and a summary and description', () => {
    const blocks = text.split(/^\s*- alert: /m).slice(1);
    expect(blocks).toHaveLength(ALERTS.length);
    for (const b of blocks) {
      const name = b.split('\n')[0];
      expect(b, name).toMatch(/^\s+for: \d+m$/m);
      expect(b, name).toMatch(/^\s+severity: (critical|warning)$/m);
      expect(b, name).toMatch(/^\s+summary: /m);
      expect(b, name).toMatch(/^\s+description: /m);
    }
  });

  it('passes promtool test rules: each alert fires on a synthetic series and stays quiet on a healthy one', () => {
    const tests = readFileSync(join(root, 'grafana', 'alerts.test.yml'), 'utf8');
    for (const a of ALERTS)
      expect(tests, `no unit test for ${a}`).toMatch(new RegExp(`alertname: ${a}$`, 'm'));
    const { code, out } = promtool(['test', 'rules', 'grafana/alerts.test.yml']);
    expect(code, out).toBe(0);
    expect(out).toMatch(/SUCCESS/);
  });
});

describe('dashboard against the live daemon', () => {
  let daemon: RunningDaemon;
  let scrape: string;

  beforeAll(async () => {
    daemon = await startDaemon({ cameras: [testCamera('demo', 10)] });
    // Let a few frames through so histograms and per-camera series have samples too.
    const deadline = Date.now() + 15_000;
    for (;;) {
      scrape = (await get(`${daemon.url}/metrics`)).text;
      const framesIn = metricValue(scrape, 'framehub_camera_frames_in_total{camera="demo"}') ?? 0;
      if (framesIn > 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await get(`${daemon.url}/cams/demo/low.jpg`);
    scrape = (await get(`${daemon.url}/metrics`)).text;
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('exports every metric the dashboard queries (by # TYPE line)', () => {
    const types = typesIn(scrape);
    expect(types.size).toBeGreaterThan(20);
    const missing = [...queried]
      .filter(([name]) => familyType(name, types) === undefined)
      .map(([name, where]) => `${name} (used by: ${[...new Set(where)].join(', ')})`);
    expect(missing, 'dashboard queries metrics that /metrics does not export').toEqual([]);
  });

  it('only rates counters and histogram series, and does not rate gauges', () => {
    const types = typesIn(scrape);
    for (const e of exprs) {
      for (const m of e.matchAll(/\b(?:rate|irate|increase)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/g)) {
        const t = familyType(m[1]!, types);
        if (t === undefined) continue; // reported by the test above
        expect(['counter', 'histogram', 'summary'], `${m[1]} is a ${t}: ${e}`).toContain(t);
      }
    }
  });

  it('passes promtool check metrics', () => {
    const { code, out, unexpected } = checkMetrics(scrape);
    expect(code, `promtool exit ${code}: ${out}`).toBe(0);
    expect(unexpected, 'promtool check metrics findings').toEqual([]);
  });
});

// ------------------------------------------------------------------------------ Dockerfile

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions with continuation lines joined and ARG defaults substituted. */
function parseDockerfile(text: string): { instructions: Instruction[]; stages: string[] } {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const args = new Map<string, string>();
  const instructions: Instruction[] = [];
  const stages: string[] = [];
  for (const line of lines) {
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const expanded = rest.replace(
      /\$\{(\w+)\}|\$(\w+)/g,
      (all, a?: string, b?: string) => args.get(a ?? b!) ?? all,
    );
    const upper = op.toUpperCase();
    if (upper === 'ARG' && stages.length === 0) {
      const [k, v] = expanded.split('=');
      if (k && v !== undefined) args.set(k, v);
    }
    if (upper === 'FROM') stages.push(expanded.split(/\s+/)[0]!);
    instructions.push({ op: upper, args: expanded, stage: stages.length - 1 });
  }
  return { instructions, stages };
}

/** Source paths of a COPY (flags and the destination removed); JSON-array form not used here. */
function copySources(args: string): { from?: string; sources: string[] } {
  const words = args.split(/\s+/);
  const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
  const paths = words.filter((w) => !w.startsWith('--'));
  return { from, sources: paths.slice(0, -1) };
}

describe('Dockerfile (static; no Docker engine here)', () => {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const { instructions, stages } = parseDockerfile(text);
  const finalStage = stages.length - 1;
  const inFinal = (op: string) => instructions.filter((i) => i.stage === finalStage && i.op === op);

  it('is multi-stage on a node 22 or 24 base', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const image of stages) expect(image).toMatch(/^node:(22|24)([.-]|$)/);
  });

  it('runs as a non-root user with a /healthz HEALTHCHECK, port 8080 and the built entry point', () => {
    const user = inFinal('USER').at(-1)?.args;
    expect(user, 'final stage has no USER').toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(inFinal('HEALTHCHECK').at(-1)?.args).toContain('/healthz');
    expect(inFinal('EXPOSE').map((i) => i.args)).toContain('8080');
    expect(inFinal('CMD').at(-1)?.args).toContain('dist/src/main.js');
    expect(
      inFinal('ENV')
        .map((i) => i.args)
        .join(' '),
    ).toMatch(/FRAMEHUB_HOST=0\.0\.0\.0/);
    expect(text, 'document the required auth secret').toContain('FRAMEHUB_AUTH_HS256_SECRET');
  });

  it('builds with npm ci before pruning dev deps without re-running scripts', () => {
    const runs = instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
    const ci = runs.findIndex((r) => /\bnpm ci\b/.test(r) && !r.includes('--ignore-scripts'));
    const prune = runs.findIndex((r) => /\bnpm prune\b/.test(r));
    expect(ci, 'npm ci (with scripts: addon + tsc)').toBeGreaterThanOrEqual(0);
    expect(prune).toBeGreaterThan(ci);
    expect(runs[prune]).toContain('--omit=dev');
    expect(runs[prune]).toContain('--ignore-scripts');
  });

  it('copies into the build stage everything npm ci scripts and tsc read', () => {
    const ignored = readFileSync(join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim().replace(/\/$/, ''))
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const must of ['node_modules', 'dist', 'native/build', '.git']) expect(ignored).toContain(must);
    const copied = instructions
      .filter((i) => i.op === 'COPY' && copySources(i.args).from === undefined)
      .flatMap((i) => copySources(i.args).sources.map((s) => s.replace(/\/$/, '')));
    for (const src of copied) {
      expect(existsSync(join(root, src)), `COPY source ${src} missing`).toBe(true);
      expect(ignored.includes(src), `COPY source ${src} is in .dockerignore`).toBe(false);
    }
    const build = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as {
      include: string[];
    };
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const needed = new Set([
      'package.json',
      'package-lock.json',
      'tsconfig.build.json',
      ...build.include.map((p) => p.split('/')[0]!),
      ...(pkg.scripts.install?.match(/\S+\.m?js\b/g) ?? []).map((p) => p.split('/')[0]!),
    ]);
    for (const n of needed) expect(copied, `build stage does not COPY ${n}`).toContain(n);
  });

  it('copies from the build stage only paths that exist after npm run build', () => {
    const fromBuild = instructions
      .filter((i) => i.stage === finalStage && i.op === 'COPY')
      .map((i) => copySources(i.args));
    expect(fromBuild.length).toBeGreaterThan(0);
    const sources = fromBuild.flatMap((c) => {
      expect(c.from, 'runtime COPY must come from the build stage').toBeDefined();
      return c.sources.map((s) => s.replace(/^\/app\//, '').replace(/\/$/, ''));
    });
    for (const src of sources) expect(existsSync(join(root, src)), `${src} (after npm run build)`).toBe(true);
    // What the daemon reads at run time.
    for (const p of ['package.json', 'node_modules', 'dist', 'src/server/viewer'])
      expect(sources).toContain(p);
    expect(sources.some((s) => s.startsWith('native/build/Release'))).toBe(true);
    for (const p of [
      'dist/src/main.js',
      'dist/workers',
      'src/server/viewer/index.html',
      'package-lock.json',
    ]) {
      expect(existsSync(join(root, p)), p).toBe(true);
    }
  });
});
