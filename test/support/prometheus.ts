/**
 * Prometheus for the ops tests: promtool, the PromQL helpers the dashboard checks share, and a
 * real Debian `prometheus` on a loopback port with a throwaway TSDB (test/prometheus.e2e.test.ts).
 * promtool and prometheus come from the `prometheus` Debian package (CI installs it).
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from '../helpers.js';
import { freePort } from './nginx.js';

const NOT_INSTALLED =
  'is not installed or not on PATH. Install the `prometheus` Debian package ' +
  '(apt-get install prometheus), as CI does (.ci/apt-packages).';

// ------------------------------------------------------------------------------ promtool

/** Runs promtool in the repo root; `out` is stdout and stderr together. */
export function promtool(args: string[], input?: string): { code: number | null; out: string } {
  const res = spawnSync('promtool', args, { cwd: root, input, encoding: 'utf8', timeout: 60_000 });
  if ((res.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error(`promtool ${NOT_INSTALLED}`);
  }
  if (res.error) throw res.error;
  return { code: res.status, out: `${res.stdout}${res.stderr}`.trim() };
}

/** `promtool check metrics` on a scrape: exit code, and every finding (none is accepted). */
export function checkMetrics(scrape: string): { code: number | null; out: string; unexpected: string[] } {
  const { code, out } = promtool(['check', 'metrics'], scrape);
  const unexpected = out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return { code, out, unexpected };
}

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
 * names are removed. Deliberately simple; test/ops.test.ts pins it down.
 */
export function metricNamesIn(expr: string): string[] {
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

/** `label_values(<selector>, <label>)`, the Grafana variable query form the dashboard uses. */
const LABEL_VALUES = /^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$/;

/** Metric in a Grafana Prometheus variable query such as `label_values(metric, label)`. */
export function metricsInVariableQuery(q: string): string[] {
  const lv = LABEL_VALUES.exec(q);
  if (lv) return metricNamesIn(lv[1]!);
  if (/^\s*label_values\(\s*\w+\s*\)\s*$/.test(q)) return [];
  const qr = /^\s*query_result\((.*)\)\s*$/.exec(q);
  return metricNamesIn(qr ? qr[1]! : q);
}

/**
 * The PromQL that returns what a variable query lists: `label_values(sel, label)` becomes
 * `count by (label) (sel)` (one series per value). Undefined for other query forms.
 */
export function variableQueryAsPromql(q: string): string | undefined {
  const lv = LABEL_VALUES.exec(q);
  return lv ? `count by (${lv[2]}) (${lv[1]})` : undefined;
}

/** `# TYPE <name> <type>` lines of a Prometheus text exposition. */
export function typesIn(scrape: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  return types;
}

/**
 * The type of the family a queried series name belongs to, or undefined if the scrape has no
 * such series. A bare histogram name is not a series (only its _bucket/_sum/_count are).
 */
export function familyType(name: string, types: Map<string, string>): string | undefined {
  const direct = types.get(name);
  if (direct !== undefined) return direct === 'histogram' ? undefined : direct;
  const m = /^(.+)_(bucket|sum|count)$/.exec(name);
  if (!m) return undefined;
  const base = types.get(m[1]!);
  if (base === 'histogram') return 'histogram';
  if (base === 'summary' && m[2] !== 'bucket') return 'summary';
  return undefined;
}

/**
 * An alert expression with its thresholds taken off: each top-level `or` branch loses a
 * trailing comparison with a number (`… > 0.8`, `… == 0`), and `absent(…)` branches go. What
 * is left is the signal the alert watches, which on a healthy daemon must still return series
 * (proving the metric and label names), while the alert itself returns nothing.
 */
export function withoutThresholds(expr: string): string {
  const branches: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (depth === 0 && /^\sor\s/.test(expr.slice(i, i + 4))) {
      branches.push(expr.slice(start, i));
      start = i + 4;
      i += 3;
    }
  }
  branches.push(expr.slice(start));
  return branches
    .map((b) => b.trim().replace(/\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$/i, ''))
    .filter((b) => !/^absent\(/.test(b))
    .join(' or ');
}

// ------------------------------------------------------------------------------ dashboard

export interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
  gridPos: { x: number; y: number; w: number; h: number };
}
export interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
  datasource?: { type?: string; uid?: string };
}
export interface Dashboard {
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

export const dashboardPath = join(root, 'grafana', 'dashboards', 'framehub.json');
export const alertsPath = join(root, 'grafana', 'alerts.yml');

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(dashboardPath, 'utf8')) as Dashboard;
}

/** Every panel, rows and the panels inside collapsed rows included. */
export const allPanelsOf = (d: Dashboard): Panel[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

export const variableQueryOf = (v: Variable): string =>
  typeof v.query === 'string' ? v.query : (v.query?.query ?? '');

/** Each panel query of the dashboard, named `panel "<title>" <refId>`. */
export function dashboardQueries(d: Dashboard): { where: string; expr: string }[] {
  return allPanelsOf(d)
    .filter((p) => p.type !== 'row')
    .flatMap((p) =>
      (p.targets ?? []).map((t) => ({
        where: `panel "${p.title}" ${t.refId ?? ''}`.trim(),
        expr: t.expr ?? '',
      })),
    );
}

/**
 * Replaces Grafana's variables in an expression the way Grafana would for "All": `$name`,
 * `${name}` and `[[name]]` from `values`; anything left over is an error, so a new variable
 * cannot slip past the round trip unsubstituted.
 */
export function substituteVariables(expr: string, values: Record<string, string>): string {
  return expr.replace(
    /\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g,
    (_all, a?: string, b?: string, c?: string) => {
      const name = a ?? b ?? c!;
      const v = values[name];
      if (v === undefined) throw new Error(`no value for variable $${name} in ${expr}`);
      return v;
    },
  );
}

// ------------------------------------------------------------------------------ prometheus

/** A port the kernel just handed out on 127.0.0.1 (prometheus cannot report the port of :0). */

export interface QueryAnswer {
  status: 'success' | 'error';
  error?: string;
  /** Instant-vector series (a scalar answer counts as one series with no labels). */
  series: { metric: Record<string, string>; value: string }[];
}

export interface RuleState {
  name: string;
  type: 'alerting' | 'recording';
  query: string;
  health: string;
  lastError?: string;
  state?: string;
}

export interface RunningPrometheus {
  url: string;
  /** An instant query at now through /api/v1/query. */
  query(expr: string): Promise<QueryAnswer>;
  /** The loaded rules with their last evaluation's health (/api/v1/rules). */
  rules(): Promise<RuleState[]>;
  /** What prometheus wrote to stderr (its log), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port of the /metrics endpoint to scrape, as job `framehub`. */
  target: string;
  scrapeIntervalSeconds?: number;
  ruleFiles?: string[];
}

/**
 * Starts /usr/bin/prometheus on 127.0.0.1 with a temp config and TSDB, scraping `target` as
 * job "framehub" (the name alerts.yml's FramehubScrapeGone selects), and waits for /-/ready.
 */
export async function startPrometheus(opts: PrometheusOptions): Promise<RunningPrometheus> {
  const interval = `${opts.scrapeIntervalSeconds ?? 1}s`;
  const dir = mkdtempSync(join(tmpdir(), 'framehub-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      `  scrape_interval: ${interval}`,
      `  scrape_timeout: ${interval}`,
      `  evaluation_interval: ${interval}`,
      'rule_files:',
      ...(opts.ruleFiles ?? []).map((f) => `  - ${JSON.stringify(f)}`),
      'scrape_configs:',
      '  - job_name: framehub',
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: [${JSON.stringify(opts.target)}]`,
      '',
    ].join('\n'),
  );
  // Another process can take the port between freePort() and prometheus' bind: try again then.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const started = await launch(dir, config, port);
    if (started) return started;
    if (attempt === 3) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error('prometheus did not start in 3 attempts');
    }
  }
}

async function launch(dir: string, config: string, port: number): Promise<RunningPrometheus | undefined> {
  const url = `http://127.0.0.1:${port}`;
  const proc: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, `data-${port}`)}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<number | null>((res) => {
    proc.once('exit', (code) => res(code));
    proc.once('error', (err) => {
      log += (err as NodeJS.ErrnoException).code === 'ENOENT' ? `prometheus ${NOT_INSTALLED}` : String(err);
      res(-1);
    });
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (gone) {
      if (/address already in use/.test(log)) return undefined;
      throw new Error(`prometheus exited before it was ready: ${log.slice(-2000)}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`prometheus not ready in 30 s: ${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    url,
    log: () => log,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ query: expr }),
      });
      const body = (await res.json()) as {
        status: 'success' | 'error';
        error?: string;
        data?: { resultType: string; result: unknown };
      };
      if (body.status !== 'success') return { status: 'error', error: body.error, series: [] };
      const { resultType, result } = body.data!;
      if (resultType === 'vector') {
        const vector = result as { metric: Record<string, string>; value: [number, string] }[];
        return { status: 'success', series: vector.map((s) => ({ metric: s.metric, value: s.value[1] })) };
      }
      if (resultType === 'scalar') {
        return { status: 'success', series: [{ metric: {}, value: (result as [number, string])[1] }] };
      }
      return { status: 'error', error: `unexpected result type ${resultType}`, series: [] };
    },
    async rules() {
      const body = (await (await fetch(`${url}/api/v1/rules`)).json()) as {
        data: { groups: { rules: RuleState[] }[] };
      };
      return body.data.groups.flatMap((g) => g.rules);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
