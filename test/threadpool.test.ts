import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LIBUV_DEFAULT_THREADS, threadpoolSize, wantedThreadpoolSize } from '../src/threadpool.js';
import { type RunningDaemon, root, startDaemon } from './helpers.js';

// Each case sets the variable itself (or leaves it unset): an outside value must not leak in.
delete process.env.UV_THREADPOOL_SIZE;

const probe = join(root, 'test', 'support', 'threadpool-probe.cjs');
const WARNING = /more threads than libuv's thread pool/;

/** `npm start`'s node arguments (the preload), resolved against the repository as npm runs them. */
function npmStartNodeArgs(): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const [node, ...args] = pkg.scripts.start.split(/\s+/);
  expect(node).toBe('node');
  expect(args.at(-1)).toBe('dist/src/main.js');
  return args.slice(0, -1).map((a) => (a.startsWith('./') ? join(root, a) : a));
}

let daemon: RunningDaemon | undefined;
afterEach(() => {
  // SIGKILL, not a graceful stop: after a failed probe, pool threads are stuck in open() and
  // libuv joins them at exit.
  daemon?.proc.kill('SIGKILL');
  daemon = undefined;
});

/** Starts the daemon as `npm start` does, plus the probe, with `pool.threads` image workers. */
async function start(threads: number, env: Record<string, string> = {}, nodeArgs = npmStartNodeArgs()) {
  daemon = await startDaemon({ cameras: [], pool: { threads } }, [], env, {
    nodeArgs: [...nodeArgs, '--require', probe],
    ipc: true,
  });
  return daemon;
}

/**
 * Resolves once the daemon's pool has run a job while `n` of its threads were blocked: proof
 * that it has more than n threads. With n or fewer it never resolves, and the wait fails.
 */
function poolRunsBeyond(d: RunningDaemon, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(`no libuv job finished beside ${n} blocked ones: the pool has at most ${n} threads`),
        ),
      20_000,
    );
    d.proc.on('message', (m: { statDone?: boolean; released?: boolean }) => {
      if (m.statDone === false) reject(new Error('probe stat failed'));
      if (!m.released) return;
      clearTimeout(timer);
      resolve();
    });
    d.proc.send({ block: n });
  });
}

describe('libuv thread pool size (sharp runs on it)', () => {
  it('`npm start` sizes it from pool.threads, before Node starts it', async () => {
    const d = await start(6);
    await poolRunsBeyond(d, 5);
    expect(d.logs.some((l) => WARNING.test(l.msg ?? ''))).toBe(false);
  });

  it('a UV_THREADPOOL_SIZE set by the user wins over the config', async () => {
    // 7 > the 6 the config would ask for: only the user's value lets a 7th job run.
    const d = await start(6, { UV_THREADPOOL_SIZE: '7' });
    await poolRunsBeyond(d, 6);
  });

  it('warns at start-up when the pool has more workers than libuv threads', async () => {
    const d = await start(3, { UV_THREADPOOL_SIZE: '2' });
    const line = await d.waitForLog((l) => WARNING.test(l.msg ?? ''));
    expect(line).toMatchObject({ level: 40, poolThreads: 3, uvThreadpoolSize: 2 });
  });

  it('without the preload libuv keeps its 4 threads, and the daemon says so', async () => {
    const d = await start(6, {}, []);
    const line = await d.waitForLog((l) => WARNING.test(l.msg ?? ''));
    expect(line).toMatchObject({ poolThreads: 6, uvThreadpoolSize: 4 });
    await poolRunsBeyond(d, 3);
  });

  it('the Docker image runs the same command as `npm start`', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      scripts: { start: string };
    };
    // The image names /app/ explicitly, so a different working directory still works.
    expect(cmd.join(' ').replaceAll('/app/', '')).toBe(pkg.scripts.start.replaceAll('./', ''));
  });
});

describe('threadpool sizing rules', () => {
  it('asks for one thread per image worker, never fewer than libuv’s 4', () => {
    expect(wantedThreadpoolSize(2)).toBe(LIBUV_DEFAULT_THREADS);
    expect(wantedThreadpoolSize(6)).toBe(6);
  });

  it('reads UV_THREADPOOL_SIZE as libuv does', () => {
    for (const [value, size] of [
      [undefined, 4],
      ['8', 8],
      ['12abc', 12],
      ['0', 1],
      ['nope', 1],
      ['5000', 1024],
      ['-1', 1024],
    ] as const) {
      expect({ value, size: threadpoolSize({ UV_THREADPOOL_SIZE: value }) }).toEqual({ value, size });
    }
  });
});
