import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resultsDir } from './results.js';
import type { SlowMode } from './swarm-protocol.js';
import { readJson, TARGETS, type TargetName } from './target.js';
import type { Transport } from './viewers.js';

export const SCENARIOS = ['http', 'fanout', 'slow', 'idle', 'churn'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Every option of `npm run bench -- <scenario> [options]`; bench/README.md documents them. */
export interface Options {
  scenario: Scenario;
  url: string | undefined;
  pid: number | undefined;
  targets: TargetName[];
  seconds: number;
  warmup: number;
  repeat: number;
  procs: number;
  viewers: number;
  cameras: number;
  fps: number;
  frameKb: number;
  width: number;
  height: number;
  transport: Transport | 'mix';
  probeIntervalMs: number;
  slowFraction: number;
  slowMode: SlowMode;
  throttleKiBps: number;
  conns: number;
  hold: number;
  connectConcurrency: number;
  concurrency: number;
  maxCycles: number;
  connections: number;
  pipelining: number;
  endpoints: string[] | undefined;
  autocannonWorkers: number;
  framehubConfig: Record<string, unknown> | undefined;
  /** A checkout (built) to run as the `framehub-before` target. */
  beforeDir: string | undefined;
  resultsDir: string;
  tag: string | undefined;
  quiet: boolean;
}

/** Defaults that differ by scenario: quick enough to try, the README lists the target runs. */
const DEFAULT_SECONDS: Record<Scenario, number> = { http: 5, fanout: 10, slow: 10, idle: 5, churn: 10 };
const BASELINE_SCENARIOS: Scenario[] = ['http', 'fanout', 'idle'];

const num = (v: string | undefined, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new Error(`--${name} must be a number in [${min}, ${max}]`);
  return n;
};

export function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      pid: { type: 'string' },
      targets: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string', default: '2' },
      repeat: { type: 'string', default: '1' },
      procs: { type: 'string' },
      viewers: { type: 'string', default: '100' },
      cameras: { type: 'string', default: '1' },
      fps: { type: 'string', default: '30' },
      'frame-kb': { type: 'string', default: '20' },
      width: { type: 'string', default: '640' },
      height: { type: 'string', default: '360' },
      transport: { type: 'string', default: 'ws' },
      'probe-interval-ms': { type: 'string', default: '100' },
      'slow-fraction': { type: 'string', default: '0.1' },
      'slow-mode': { type: 'string', default: 'stall' },
      'throttle-kibps': { type: 'string', default: '64' },
      conns: { type: 'string', default: '1000' },
      hold: { type: 'string', default: '3' },
      'connect-concurrency': { type: 'string', default: '200' },
      concurrency: { type: 'string', default: '20' },
      'max-cycles': { type: 'string', default: '200000' },
      connections: { type: 'string', default: '50' },
      pipelining: { type: 'string', default: '1' },
      endpoints: { type: 'string' },
      'autocannon-workers': { type: 'string', default: '0' },
      'framehub-config': { type: 'string' },
      before: { type: 'string' },
      'results-dir': { type: 'string', default: resultsDir },
      tag: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
  });
  const scenario = positionals[0] as Scenario;
  if (!SCENARIOS.includes(scenario)) {
    throw new Error(`usage: npm run bench -- <${SCENARIOS.join('|')}> [options] (see bench/README.md)`);
  }
  const transport = values.transport as Options['transport'];
  if (!['ws', 'sse', 'mjpeg', 'mix'].includes(transport))
    throw new Error('--transport must be ws, sse, mjpeg or mix');
  const slowMode = values['slow-mode'] as SlowMode;
  if (slowMode !== 'stall' && slowMode !== 'throttle')
    throw new Error('--slow-mode must be stall or throttle');

  const known = [...TARGETS, 'framehub-before', 'external'];
  let targets: TargetName[];
  if (values.targets) {
    targets = values.targets.split(',').map((t) => {
      if (!known.includes(t)) throw new Error(`--targets: unknown target "${t}" (${known.join(', ')})`);
      return t as TargetName;
    });
  } else if (values.url) targets = ['external'];
  else targets = BASELINE_SCENARIOS.includes(scenario) ? [...TARGETS] : ['framehub'];
  if (targets.includes('external') && !values.url) throw new Error('target "external" needs --url');
  if (values.url && !targets.includes('external')) targets.unshift('external');
  if (values.before && !targets.includes('framehub-before')) targets.splice(1, 0, 'framehub-before');
  if (targets.includes('framehub-before') && !values.before)
    throw new Error('target "framehub-before" needs --before DIR (a built checkout)');

  const cores = os.availableParallelism();
  return {
    scenario,
    url: values.url,
    pid: values.pid ? num(values.pid, 'pid', 1) : undefined,
    targets,
    seconds: num(values.seconds ?? String(DEFAULT_SECONDS[scenario]), 'seconds', 0.5, 3600),
    warmup: num(values.warmup, 'warmup', 0, 600),
    repeat: num(values.repeat, 'repeat', 1, 20),
    // The server gets a core; the swarm takes the rest (at least one process).
    procs: num(values.procs ?? String(Math.max(1, cores - 1)), 'procs', 1, 64),
    viewers: num(values.viewers, 'viewers', 1, 100_000),
    cameras: num(values.cameras, 'cameras', 1, 256),
    fps: num(values.fps, 'fps', 1, 120),
    frameKb: num(values['frame-kb'], 'frame-kb', 1, 4096),
    width: num(values.width, 'width', 16, 7680),
    height: num(values.height, 'height', 16, 4320),
    transport,
    probeIntervalMs: num(values['probe-interval-ms'], 'probe-interval-ms', 10, 60_000),
    slowFraction: num(values['slow-fraction'], 'slow-fraction', 0, 0.9),
    slowMode,
    throttleKiBps: num(values['throttle-kibps'], 'throttle-kibps', 1, 1e6),
    conns: num(values.conns, 'conns', 1, 200_000),
    hold: num(values.hold, 'hold', 0, 3600),
    connectConcurrency: num(values['connect-concurrency'], 'connect-concurrency', 1, 10_000),
    concurrency: num(values.concurrency, 'concurrency', 1, 10_000),
    maxCycles: num(values['max-cycles'], 'max-cycles', 1, 10_000_000),
    connections: num(values.connections, 'connections', 1, 10_000),
    pipelining: num(values.pipelining, 'pipelining', 1, 100),
    endpoints: values.endpoints?.split(',').filter(Boolean),
    autocannonWorkers: num(values['autocannon-workers'], 'autocannon-workers', 0, 64),
    framehubConfig: values['framehub-config'] ? readJson(values['framehub-config']) : undefined,
    beforeDir: values.before,
    resultsDir: values['results-dir'],
    tag: values.tag,
    quiet: values.quiet,
  };
}

/** Camera ids the harness configures and publishes to: bench0, bench1, ... */
export const cameraIds = (n: number) => Array.from({ length: n }, (_, i) => `bench${i}`);

export const resultFile = (o: Options) =>
  join(o.resultsDir, `load-${o.scenario}${o.tag ? `-${o.tag}` : ''}.json`);
