import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { sleep, withTimeout } from '../lib/clock.js';

/**
 * The bench's own redis-server (Debian's package, as the cluster e2e test runs it): loopback,
 * an ephemeral port, no persistence, default settings otherwise (output-buffer limits, one
 * thread), so the figures are those of a stock server. Plus the INFO counters the bench reads.
 */
export const REDIS_SERVER = '/usr/bin/redis-server';
export const REDIS_CLI = '/usr/bin/redis-cli';

export interface BenchRedis {
  url: string;
  pid: number;
  /** The bench's own connection: INFO, PUBSUB NUMSUB, CONFIG GET; never used per frame. */
  client: Redis;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A client of the redis-server on `port`, once it listens (10 s at most; its exit fails at once). */
async function connectWhenListening(port: number, proc: ChildProcess, output: () => string): Promise<Redis> {
  const client = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => 100,
  });
  client.on('error', () => {});
  const deadline = Date.now() + 10_000;
  // Bounded by the deadline: redis-server takes a few ms to listen.
  for (;;) {
    try {
      await withTimeout(client.connect(), 2000, 'redis connect');
      if ((await client.ping()) === 'PONG') return client;
    } catch (err) {
      if (Date.now() > deadline || proc.exitCode !== null)
        throw new Error(`redis-server did not start on ${port}: ${(err as Error).message}\n${output()}`);
      client.disconnect();
      await sleep(100);
    }
  }
}

export async function startRedis(): Promise<BenchRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const proc: ChildProcess = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  // No redis-server outlives a failed run.
  process.once('exit', () => proc.kill('SIGKILL'));
  const client = await connectWhenListening(port, proc, () => output);
  return {
    url,
    pid: proc.pid!,
    client,
    async stop() {
      client.disconnect();
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, sleep(3000)]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}

export interface BenchRedisCluster {
  /** Every master as a comma-separated list of seeds, as `cluster.redisUrl` takes it with `redisCluster: true`. */
  url: string;
  /** The masters' client ports. */
  ports: number[];
  pids: number[];
  /**
   * One plain (not cluster-aware) connection per master, in `ports` order: the bench's own INFO,
   * PUBSUB SHARDNUMSUB, CLUSTER look-ups; never used per frame.
   */
  clients: Redis[];
  /** The index (in `ports`) of the master that holds `key`'s slot, and the slot. */
  ownerOf(key: string): Promise<{ index: number; slot: number }>;
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` private redis-servers (no replicas), as the cluster e2e tests run
 * one (test/support/redis.ts, not imported here): each on a loopback ephemeral port with its
 * cluster bus on a second ephemeral port (`--cluster-port`; the default port + 10000 may not
 * exist above 55535), no persistence, joined with `redis-cli --cluster create`, resolved once
 * every server says `cluster_state:ok`.
 */
export async function startRedisCluster(masters = 3): Promise<BenchRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'fh-bench-redis-cluster-'));
  const procs: ChildProcess[] = [];
  const clients: Redis[] = [];
  const ports: number[] = [];
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  };
  // No redis-server outlives a failed run.
  process.once('exit', () => {
    for (const p of procs) p.kill('SIGKILL');
  });
  const stop = async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(
      procs.map(async (proc) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([exited, sleep(3000)]);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const busPorts: number[] = [];
    // Held open together, so the 2 × masters ports are distinct.
    const held = await Promise.all(Array.from({ length: 2 * masters }, () => holdPort()));
    for (const [i, h] of held.entries()) (i < masters ? ports : busPorts).push(h.port);
    await Promise.all(held.map((h) => h.release()));
    for (const [i, port] of ports.entries()) {
      const proc = spawn(
        REDIS_SERVER,
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(busPorts[i]),
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      proc.stdout?.on('data', keep);
      proc.stderr?.on('data', keep);
      procs.push(proc);
    }
    for (const [i, port] of ports.entries()) {
      const client = await connectWhenListening(port, procs[i]!, () => output);
      clients.push(client);
    }
    await promisify(execFile)(
      REDIS_CLI,
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { timeout: 30_000 },
    );
    const deadline = Date.now() + 20_000;
    // Bounded by the deadline: the masters learn of each other over their cluster bus.
    for (;;) {
      const states = await Promise.all(clients.map((c) => c.call('CLUSTER', 'INFO') as Promise<string>));
      if (states.every((s) => s.includes('cluster_state:ok'))) break;
      if (Date.now() > deadline)
        throw new Error(`the Redis Cluster did not reach cluster_state:ok\n${output}`);
      await sleep(200);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: ports.map((p) => `redis://127.0.0.1:${p}`).join(','),
    ports,
    pids: procs.map((p) => p.pid!),
    clients,
    async ownerOf(key: string) {
      const slot = Number(await clients[0]!.call('CLUSTER', 'KEYSLOT', key));
      const ranges = (await clients[0]!.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      const index = range ? ports.indexOf(Number(range[2][1])) : -1;
      if (index < 0) throw new Error(`no master of the bench's cluster holds slot ${slot} (${key})`);
      return { index, slot };
    },
    stop,
  };
}

/** A free loopback port, kept bound until `release()` so that several taken at once differ. */
async function holdPort(): Promise<{ port: number; release(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  return { port, release: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The INFO counters a window is measured by, read in one INFO call (one instant). */
export interface RedisCounters {
  /** used_cpu_sys + used_cpu_user, seconds. */
  cpuSeconds: number;
  netInputBytes: number;
  netOutputBytes: number;
  /** INFO commandstats: command (`publish`, `set`, `pubsub|numsub`, …) → calls. */
  calls: Record<string, number>;
}

export async function readCounters(redis: Redis): Promise<RedisCounters> {
  const text = (await redis.call('INFO', 'cpu', 'stats', 'commandstats')) as string;
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  const calls: Record<string, number> = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1]!] = Number(m[2]);
  return {
    cpuSeconds: field('used_cpu_sys') + field('used_cpu_user'),
    netInputBytes: field('total_net_input_bytes'),
    netOutputBytes: field('total_net_output_bytes'),
    calls,
  };
}

/** after − before, command by command (commands first seen in `after` count from 0). */
export function countersDelta(before: RedisCounters, after: RedisCounters): RedisCounters {
  const calls: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.calls)) {
    const d = v - (before.calls[k] ?? 0);
    if (d) calls[k] = d;
  }
  return {
    cpuSeconds: after.cpuSeconds - before.cpuSeconds,
    netInputBytes: after.netInputBytes - before.netInputBytes,
    netOutputBytes: after.netOutputBytes - before.netOutputBytes,
    calls,
  };
}

/** Each command's calls, CPU and bytes added up over several servers (the masters of a cluster). */
export function sumCounters(list: RedisCounters[]): RedisCounters {
  const calls: Record<string, number> = {};
  for (const c of list) for (const [k, v] of Object.entries(c.calls)) calls[k] = (calls[k] ?? 0) + v;
  return {
    cpuSeconds: list.reduce((a, c) => a + c.cpuSeconds, 0),
    netInputBytes: list.reduce((a, c) => a + c.netInputBytes, 0),
    netOutputBytes: list.reduce((a, c) => a + c.netOutputBytes, 0),
    calls,
  };
}

/** Subscribers of each channel now (PUBSUB NUMSUB): one per subscribing node. */
export async function numsub(redis: Redis, channels: string[]): Promise<Record<string, number>> {
  return countReply(await redis.call('PUBSUB', 'NUMSUB', ...channels));
}

/**
 * Subscribers of each sharded channel now: PUBSUB SHARDNUMSUB summed over the masters, as the
 * nodes count demand (src/cluster/redis-links.ts; a server counts only its own clients, so the
 * masters that do not hold a channel's slot answer 0).
 */
export async function shardNumsub(masters: Redis[], channels: string[]): Promise<Record<string, number>> {
  const replies = await Promise.all(
    masters.map(async (m) => countReply(await m.call('PUBSUB', 'SHARDNUMSUB', ...channels))),
  );
  const out: Record<string, number> = {};
  for (const r of replies) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
  return out;
}

function countReply(reply: unknown): Record<string, number> {
  const flat = reply as (string | number)[];
  const out: Record<string, number> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = Number(flat[i + 1]);
  return out;
}

/** `redis_version` and the settings the issue names (output-buffer limits, threads, maxmemory). */
export async function serverFacts(redis: Redis): Promise<Record<string, string>> {
  const info = (await redis.call('INFO', 'server')) as string;
  const version = /^redis_version:(.+)$/m.exec(info)?.[1]?.trim() ?? 'unknown';
  const get = async (name: string) => {
    const reply = (await redis.call('CONFIG', 'GET', name)) as string[];
    return reply[1] ?? '';
  };
  return {
    version,
    'client-output-buffer-limit': await get('client-output-buffer-limit'),
    'io-threads': await get('io-threads'),
    maxmemory: await get('maxmemory'),
  };
}
