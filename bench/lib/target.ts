import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, withTimeout } from './clock.js';
import { pidListeningOn } from './proc-stats.js';
import { benchDir } from './results.js';

/** The servers a scenario can run against: framehub and the two references in bench/baselines. */
export const TARGETS = ['framehub', 'uws-bare', 'ws-http'] as const;
/**
 * `framehub-before` is framehub built from another checkout (`--before DIR`, a clone at an
 * older commit with `npm run build` done), so a change is measured against the code before it
 * in the same run, under the same load.
 */
export type TargetName = (typeof TARGETS)[number] | 'framehub-before' | 'external';

/** framehub's own builds (this checkout, or `--before`): generated config, Prometheus metrics. */
export const isFramehub = (name: TargetName): boolean =>
  name === 'framehub' || name === 'framehub-before' || name === 'external';

export interface TargetSetup {
  cameras: string[];
  fps: number;
  width: number;
  height: number;
  /** Extra framehub config merged over the generated one (from --framehub-config). */
  framehubConfig?: Record<string, unknown>;
  /** `--before DIR`: the checkout whose dist/src/main.js is the `framehub-before` target. */
  beforeDir?: string;
}

export interface RunningTarget {
  name: TargetName;
  url: string;
  port: number;
  wsBase: string;
  /** The server process, for /proc sampling; undefined when --url named a daemon we cannot see. */
  pid: number | undefined;
  /** framehub exports Prometheus metrics the report reads; the baselines do not. */
  hasMetrics: boolean;
  stop(): Promise<void>;
  /** The last lines the server wrote to stderr, for error messages. */
  stderrTail(): string;
}

const repoRoot = join(benchDir, '..');
const entries: Record<(typeof TARGETS)[number], string> = {
  // The product build (`npm run build`), the daemon as it ships; dist-bench/ holds only the
  // few modules the harness itself imports.
  framehub: join(repoRoot, 'dist', 'src', 'main.js'),
  'uws-bare': fileURLToPath(new URL('../baselines/uws-bare.js', import.meta.url)),
  'ws-http': fileURLToPath(new URL('../baselines/ws-http.js', import.meta.url)),
};

/** Servers started by this process; killed if it exits early, so no daemon outlives a failed run. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** Starts a target in its own process on an ephemeral loopback port and waits for its listening line. */
export async function startTarget(
  name: Exclude<TargetName, 'external'>,
  setup: TargetSetup,
): Promise<RunningTarget> {
  let args: string[];
  let tmp: string | undefined;
  if (name === 'framehub' || name === 'framehub-before') {
    const entry =
      name === 'framehub' ? entries.framehub : join(setup.beforeDir ?? '', 'dist', 'src', 'main.js');
    tmp = mkdtempSync(join(tmpdir(), 'framehub-bench-'));
    const config = deepMerge(
      {
        // A push camera takes the size of the frames it is sent; only the baselines need --width.
        cameras: setup.cameras.map((id) => ({ id, source: 'push', fps: setup.fps })),
        // Every swarm connection comes from 127.0.0.1: the per-IP limits that protect a real
        // deployment would otherwise turn most of the swarm away (1013 after the upgrade).
        viewers: LOAD_TEST_LIMITS,
        // Each daemon its own data directory: two at once on one (the cluster bench) is refused.
        ...(name === 'framehub' ? { jobs: { dataDir: join(tmp, 'data') } } : {}),
      },
      setup.framehubConfig ?? {},
    );
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(config));
    args = [entry, '--port', '0', '--config', join(tmp, 'config.json')];
  } else {
    args = [entries[name], '--port', '0', '--width', String(setup.width), '--height', String(setup.height)];
  }
  const proc = spawn(process.execPath, args, {
    env: { ...process.env, FRAMEHUB_LOG_LEVEL: process.env.FRAMEHUB_LOG_LEVEL ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  proc.stderr!.on('data', (d: Buffer) => {
    stderr.push(d.toString());
    if (stderr.length > 50) stderr.shift();
  });
  live.add(proc);
  const exited = new Promise<void>((r) =>
    proc.once('exit', () => {
      live.delete(proc);
      r();
    }),
  );
  try {
    const url = await withTimeout(listeningUrl(proc), 20_000, `${name} start-up`);
    const port = Number(new URL(url).port);
    return {
      name,
      url,
      port,
      wsBase: url.replace(/^http/, 'ws'),
      pid: proc.pid,
      hasMetrics: isFramehub(name),
      stderrTail: () => stderr.join('').slice(-2000),
      async stop() {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
        await Promise.race([exited, sleep(6000)]);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
        await Promise.race([exited, sleep(2000)]);
        if (tmp) rmSync(tmp, { recursive: true, force: true });
      },
    };
  } catch (err) {
    proc.kill('SIGKILL');
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}; stderr: ${stderr.join('').slice(-2000)}`);
  }
}

/** Reads stdout lines until the JSON `"msg":"listening"` line and returns its url; keeps draining after. */
function listeningUrl(proc: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let found = false;
    proc.stdout!.on('data', (d: Buffer) => {
      if (found) return; // keep the pipe drained so the server never blocks on its log
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.includes('"listening"')) continue;
        try {
          const url = (JSON.parse(line) as { url?: unknown }).url;
          if (typeof url === 'string') {
            found = true;
            return resolve(url);
          }
        } catch (err) {
          return reject(new Error(`unparseable listening line: ${line}: ${(err as Error).message}`));
        }
      }
    });
    proc.once('exit', (code, signal) => {
      if (!found) reject(new Error(`exited before listening (code ${code}, signal ${signal})`));
    });
  });
}

/** A daemon given by --url: loopback only; its pid from --pid or from the listening socket. */
export function externalTarget(url: string, pid?: number): RunningTarget {
  const u = new URL(url);
  if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost' && u.hostname !== '[::1]') {
    throw new Error(`--url must be a loopback address (127.0.0.1), not ${u.hostname}`);
  }
  const port = Number(u.port || 80);
  const base = `http://127.0.0.1:${port}`;
  return {
    name: 'external',
    url: base,
    port,
    wsBase: base.replace(/^http/, 'ws'),
    pid: pid ?? pidListeningOn(port),
    hasMetrics: true,
    stderrTail: () => '',
    async stop() {},
  };
}

/** framehub `viewers` limits for a load test from one address; bench/README.md repeats them for --url. */
export const LOAD_TEST_LIMITS = {
  maxConnections: 200_000,
  maxConnectionsPerIp: 200_000,
  connectRatePerIp: 1_000_000,
  connectBurstPerIp: 200_000,
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Merges `over` into `base`, recursing into plain objects; arrays and scalars are replaced. */
export function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over))
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k], v) : v;
  return out;
}

/** Reads a JSON file given on the command line (e.g. --framehub-config). */
export function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}
