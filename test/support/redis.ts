import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pollUntil } from '../helpers.js';
import { freePort } from './nginx.js';

/** Debian's redis-server (the package `.ci/run` installs). */
export const REDIS_SERVER = '/usr/bin/redis-server';

export interface RunningRedis {
  port: number;
  /** `redis://127.0.0.1:<port>` */
  url: string;
  /** A client for the test's own look-ups (INFO, MONITOR, keys). */
  client(): Redis;
  /** Stops the server (SIGTERM, nothing saved); `start()` brings it back, empty, on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP: the server keeps its connections open and answers nothing (a hung Redis); `resume()` is SIGCONT. */
  pause(): void;
  resume(): void;
  /** Everything the server wrote, for a failing test's message. */
  output(): string;
}

/**
 * A private redis-server on a loopback ephemeral port, without persistence (`--save ''
 * --appendonly no`): a restart starts empty, as a cache-only Redis does.
 */
export async function startRedis(): Promise<RunningRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  let output = '';
  const clients: Redis[] = [];

  const start = async () => {
    proc = spawn(
      REDIS_SERVER,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'yes',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    proc.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const up = await pollUntil(async () => {
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => {});
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    }, 10_000);
    if (!up) throw new Error(`redis-server did not start on ${port}: ${output.slice(-2000)}`);
  };

  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((res) => p.once('exit', res));
    p.kill('SIGTERM');
    await exited;
  };

  await start();
  return {
    port,
    url,
    client() {
      const c = new Redis(url, { maxRetriesPerRequest: 1 });
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients.splice(0)) c.disconnect();
      await stop();
    },
    start,
    pause: () => proc?.kill('SIGSTOP'),
    resume: () => proc?.kill('SIGCONT'),
    output: () => output,
  };
}

/** `INFO commandstats` as command → calls (`cmdstat_publish:calls=12,...` → publish: 12). */
export async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const text = await redis.info('commandstats');
  const calls: Record<string, number> = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1]!] = Number(m[2]);
  return calls;
}

export interface RunningRedisCluster {
  /** The masters' ports. */
  ports: number[];
  /** Every master as a comma-separated list of seeds, as `--redis-url` takes it with `--redis-cluster=true`. */
  url: string;
  /** A plain client of one master, for its own INFO and PUBSUB (not cluster-aware). */
  node(port: number): Redis;
  /** The master holding `key`'s slot. */
  ownerOf(key: string): Promise<number>;
  /** SIGSTOP / SIGCONT one master: its connections stay open, it answers nothing meanwhile. */
  pause(port: number): void;
  resume(port: number): void;
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` private redis-servers (no replicas) on loopback ephemeral ports,
 * joined with `redis-cli --cluster create`, resolved once every server says `cluster_state:ok`.
 */
export async function startRedisCluster(
  masters = 3,
  /** false: SPUBLISH renamed away, as on a server without sharded pub/sub (Redis < 7). */
  { sharded = true } = {},
): Promise<RunningRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'fh-redis-cluster-'));
  const ports: number[] = [];
  const procs: ChildProcess[] = [];
  const clients: Redis[] = [];
  let output = '';
  for (let i = 0; i < masters; i++) ports.push(await freePort());
  /** One client per master, made on first use. */
  const byPort = new Map<number, Redis>();
  const node = (port: number) => {
    let c = byPort.get(port);
    if (!c) {
      c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      c.on('error', () => {});
      clients.push(c);
      byPort.set(port, c);
    }
    return c;
  };
  const stopAll = async () => {
    for (const c of clients.splice(0)) c.disconnect();
    byPort.clear();
    await Promise.all(
      procs.map((p) => {
        p.kill('SIGCONT');
        if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
        const exited = new Promise((res) => p.once('exit', res));
        p.kill('SIGTERM');
        return exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await createCluster();
  } catch (err) {
    await stopAll();
    throw err;
  }

  async function createCluster(): Promise<void> {
    for (const port of ports) {
      const proc = spawn(
        REDIS_SERVER,
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          // Its own free port for the cluster bus: the default, port + 10000, may be taken or past 65535.
          '--cluster-port',
          String(await freePort()),
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
          ...(sharded ? [] : ['--rename-command', 'SPUBLISH', '']),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      proc.stdout?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      procs.push(proc);
    }
    const answers = async (port: number) => {
      try {
        return (await node(port).ping()) === 'PONG';
      } catch {
        return false;
      }
    };
    for (const port of ports) {
      if (!(await pollUntil(() => answers(port), 10_000)))
        throw new Error(`redis ${port}: ${output.slice(-2000)}`);
    }
    execFileSync(
      '/usr/bin/redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { stdio: 'ignore', timeout: 30_000 },
    );
    const ok = await pollUntil(async () => {
      const states = await Promise.all(ports.map((p) => node(p).cluster('INFO')));
      return states.every((s) => s.includes('cluster_state:ok'));
    }, 20_000);
    if (!ok) throw new Error('the Redis Cluster did not reach cluster_state:ok');
  }

  return {
    ports,
    url: ports.map((p) => `redis://127.0.0.1:${p}`).join(','),
    node,
    async ownerOf(key: string) {
      const slot = Number(await node(ports[0]!).cluster('KEYSLOT', key));
      const ranges = await node(ports[0]!).cluster('SLOTS');
      const range = ranges.find(([from, to]) => slot >= from && slot <= to)!;
      return range[2]![1];
    },
    pause: (port) => procs[ports.indexOf(port)]?.kill('SIGSTOP'),
    resume: (port) => procs[ports.indexOf(port)]?.kill('SIGCONT'),
    stop: stopAll,
  };
}

/** The `cluster` section of a node's `/api/v1/status`. */
export interface ClusterSection {
  nodeId: string;
  busUp: boolean;
  pubsub: 'plain' | 'sharded';
  ingesting: string[];
  nodes: { id: string; cameras: string[]; viewers: number; ingest: boolean }[];
}

/** A node's view of the cluster; undefined while it does not answer (killed, starting). */
export async function clusterOf(node: { url: string }): Promise<ClusterSection | undefined> {
  try {
    const res = await fetch(`${node.url}/api/v1/status`, { signal: AbortSignal.timeout(2000) });
    return ((await res.json()) as { cluster: ClusterSection }).cluster;
  } catch {
    return undefined;
  }
}
