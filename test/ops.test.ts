// Ops artefacts: the Grafana dashboard must only query metrics the daemon really exports,
// the Prometheus config and the /metrics output must pass promtool, and the Dockerfile must
// copy things that exist. promtool comes from the `prometheus` Debian package (CI installs it).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, metricValue, type RunningDaemon, root, startDaemon, testCamera } from './helpers.js';

// ------------------------------------------------------------------------------ promtool

function promtool(args: string[], input?: string) {
  const res = spawnSync('promtool', args, { cwd: root, input, encoding: 'utf8', timeout: 20_000 });
  if ((res.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error(
      'promtool is not installed or not on PATH. Install the `prometheus` Debian package ' +
        '(apt-get install prometheus), as CI does (.ci/apt-packages).',
    );
  }
  if (res.error) throw res.error;
  return { code: res.status, out: `${res.stdout}${res.stderr}`.trim() };
}

/**
 * `promtool check metrics` findings we accept: prom-client's default collectors name three
 * gauges `*_total`. They are not ours and the dashboard does not use them. Anything else
 * (our own metrics, or a parse error) fails the test.
 */
const ACCEPTED_LINT = [
  /^framehub_nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/,
];

// ------------------------------------------------------------------------------ PromQL names

const PROMQL_WORDS = new Set([
  'bool',
  'offset',
  'and',
  'or',
  'unless',
  'group_left',
  'group_right',
  'inf',
  'nan',
]);

/**
 * Metric names a PromQL expression selects: identifiers left once strings, label matchers,
 * ranges, label lists (by/without/on/ignoring/group_*), numbers and function or aggregation
 * names are removed. Deliberately simple; the self-test below pins it down.
 */
function metricNamesIn(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ')
    .replace(/\b(?:\d+(?:ms|[smhdwy]))+\b/g, ' ')
    .replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = s.slice(m.index + m[0].length);
    if (/^\s*\(/.test(after)) continue; // function call or aggregation
    if (PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Metric in a Grafana Prometheus variable query such as `label_values(metric, label)`. */
function metricsInVariableQuery(q: string): string[] {
  const lv = /^\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*$/.exec(q);
  if (lv) return metricNamesIn(lv[1]!);
  if (/^\s*label_values\(\s*\w+\s*\)\s*$/.test(q)) return [];
  const qr = /^\s*query_result\((.*)\)\s*$/.exec(q);
  return metricNamesIn(qr ? qr[1]! : q);
}

/** `# TYPE <name> <type>` lines of a Prometheus text exposition. */
function typesIn(scrape: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  return types;
}

/**
 * The type of the family a queried series name belongs to, or undefined if the scrape has no
 * such series. A bare histogram name is not a series (only its _bucket/_sum/_count are).
 */
function familyType(name: string, types: Map<string, string>): string | undefined {
  const direct = types.get(name);
  if (direct !== undefined) return direct === 'histogram' ? undefined : direct;
  const m = /^(.+)_(bucket|sum|count)$/.exec(name);
  if (!m) return undefined;
  const base = types.get(m[1]!);
  if (base === 'histogram') return 'histogram';
  if (base === 'summary' && m[2] !== 'bucket') return 'summary';
  return undefined;
}

// ------------------------------------------------------------------------------ dashboard

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
  gridPos: { x: number; y: number; w: number; h: number };
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  datasource?: { type?: string; uid?: string };
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboardPath = join(root, 'grafana', 'dashboards', 'framehub.json');
const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8')) as Dashboard;
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = allPanels.filter((p) => p.type !== 'row');
const exprs = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
const variableQueries = dashboard.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => (typeof v.query === 'string' ? v.query : (v.query?.query ?? '')));

/** Every metric name the dashboard queries, with the panels (or variables) that use it. */
const queried = new Map<string, string[]>();
for (const p of queryPanels) {
  for (const t of p.targets ?? []) {
    for (const n of metricNamesIn(t.expr ?? '')) queried.set(n, [...(queried.get(n) ?? []), p.title]);
  }
}
for (const v of dashboard.templating.list) {
  if (v.type !== 'query') continue;
  const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
  for (const n of metricsInVariableQuery(q)) queried.set(n, [...(queried.get(n) ?? []), `$${v.name}`]);
}

/** DESIGN.md "Metrics": the minimum the dashboard must show. */
const REQUIRED = [
  'framehub_connections',
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
  'framehub_pool_task_duration_seconds_bucket',
  'framehub_ring_fill_ratio',
  'framehub_ring_full_total',
  'framehub_image_bytes_in_total',
  'framehub_image_bytes_out_total',
  'framehub_limit_rejections_total',
  'framehub_auth_failures_total',
  'framehub_vad_speech_active',
  'framehub_vad_segments_total',
  'framehub_vad_frames_total',
  'framehub_vad_backend_info',
  'framehub_jobs_total',
  'framehub_ffmpeg_processes',
  'framehub_nodejs_eventloop_lag_seconds',
  'framehub_process_resident_memory_bytes',
  'framehub_process_cpu_seconds_total',
];

describe('metricNamesIn (PromQL name extraction)', () => {
  it('keeps metric names and drops functions, labels, ranges, numbers and variables', () => {
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
    expect(metricsInVariableQuery('label_values(framehub_camera_up, camera)')).toEqual([
      'framehub_camera_up',
    ]);
  });
});

describe('grafana dashboard (static)', () => {
  it('is a schemaVersion 39-ish dashboard with a stable uid', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toBe('framehub');
  });

  it('has a Prometheus datasource variable that every panel and target uses', () => {
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource');
    expect(ds, 'no datasource template variable').toBeDefined();
    expect(ds!.query).toBe('prometheus');
    const uid = `\${${ds!.name}}`;
    for (const p of queryPanels) {
      expect(p.datasource?.uid, `panel "${p.title}" datasource`).toBe(uid);
      for (const t of p.targets ?? []) expect(t.datasource?.uid ?? p.datasource?.uid).toBe(uid);
    }
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
      expect(v.datasource?.uid, `variable $${v.name} datasource`).toBe(uid);
    }
  });

  it('has a camera variable from label_values(framehub_camera_up, camera)', () => {
    const camera = dashboard.templating.list.find((v) => v.name === 'camera');
    expect(camera?.type).toBe('query');
    expect(variableQueries).toContain('label_values(framehub_camera_up, camera)');
  });

  it('gives every panel at least one non-empty query, unique ids and a sane grid position', () => {
    expect(queryPanels.length).toBeGreaterThan(10);
    for (const p of queryPanels) {
      const nonEmpty = (p.targets ?? []).filter((t) => (t.expr ?? '').trim() !== '');
      expect(nonEmpty.length, `panel "${p.title}" has no query`).toBeGreaterThan(0);
      expect(p.gridPos.x + p.gridPos.w, `panel "${p.title}" overflows the grid`).toBeLessThanOrEqual(24);
    }
    const ids = allPanels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('uses $__rate_interval for every rate()/increase() window', () => {
    for (const e of exprs) {
      for (const m of e.matchAll(/\b(?:rate|irate|increase)\([^[]*\[([^\]]*)\]/g)) {
        expect(m[1], e).toBe('$__rate_interval');
      }
    }
  });

  it('queries only framehub_ metrics, and at least those DESIGN.md asks for', () => {
    for (const [name, where] of queried) expect(name, `used by ${where.join(', ')}`).toMatch(/^framehub_/);
    const missing = REQUIRED.filter((n) => !queried.has(n));
    expect(missing, 'metrics with no panel').toEqual([]);
  });
});

describe('prometheus config', () => {
  it('passes promtool check config', () => {
    const { code, out } = promtool(['check', 'config', 'grafana/prometheus.yml']);
    expect(code, out).toBe(0);
  });

  it('scrapes framehub at 127.0.0.1:8080/metrics every 5 s', () => {
    const text = readFileSync(join(root, 'grafana', 'prometheus.yml'), 'utf8');
    expect(text).toMatch(/job_name:\s*framehub/);
    expect(text).toMatch(/metrics_path:\s*\/metrics/);
    expect(text).toMatch(/scrape_interval:\s*5s/);
    expect(text).toMatch(/targets:\s*\[\s*["']127\.0\.0\.1:8080["']\s*\]/);
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
    const { code, out } = promtool(['check', 'metrics'], scrape);
    const unexpected = out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !ACCEPTED_LINT.some((re) => re.test(l)));
    // 0: clean. 3: lint findings only (all of which must be accepted above). Anything else: parse error.
    expect(code === 0 || code === 3, `promtool exit ${code}: ${out}`).toBe(true);
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
