import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { sleep, withTimeout } from '../lib/clock.js';

/**
 * The bench's own redis-server (Debian's package, as the cluster e2e test runs it): loopback,
 * an ephemeral port, no persistence, default settings otherwise (output-buffer limits, one
 * thread), so the figures are those of a stock server. Plus the INFO counters the bench reads.
 */
export const REDIS_SERVER = '/usr/bin/redis-server';

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
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  client.on('error', () => {});
  const deadline = Date.now() + 10_000;
  // Bounded by the deadline: redis-server takes a few ms to listen.
  for (;;) {
    try {
      await withTimeout(client.connect(), 2000, 'redis connect');
      if ((await client.ping()) === 'PONG') break;
    } catch (err) {
      if (Date.now() > deadline || proc.exitCode !== null)
        throw new Error(`redis-server did not start on ${port}: ${(err as Error).message}\n${output}`);
      client.disconnect();
      await sleep(100);
    }
  }
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

/** Subscribers of each channel now (PUBSUB NUMSUB): one per subscribing node. */
export async function numsub(redis: Redis, channels: string[]): Promise<Record<string, number>> {
  const flat = (await redis.call('PUBSUB', 'NUMSUB', ...channels)) as (string | number)[];
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
