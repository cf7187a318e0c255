import { type ChildProcess, spawn } from 'node:child_process';
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
