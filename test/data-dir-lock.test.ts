import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { get, type RunningDaemon, startDaemon } from './helpers.js';

// Two daemons on one jobs.dataDir: each empties its results and work directories at start, so
// the second would delete the first one's results and uploads. It is refused with exit code 2
// and a message naming the holder; a holder that died (SIGKILL) leaves a file the next daemon
// takes over.
const dataDir = join(mkdtempSync(join(tmpdir(), 'framehub-lock-')), 'data');
const config = { cameras: [], jobs: { dataDir } };
const running: RunningDaemon[] = [];
/** The built module (the suites run against dist/, as the daemon does). */
const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
const lockModule = pathToFileURL(
  join(import.meta.dirname, '..', 'dist', 'src', 'jobs', 'data-dir-lock.js'),
).href;

afterAll(async () => {
  await Promise.all(running.map((d) => d.stop()));
});

describe('jobs.dataDir belongs to one daemon', () => {
  it('refuses a second daemon on it, names the holder, and leaves the first one serving', async () => {
    const first = await startDaemon(config);
    running.push(first);
    const refused = await startDaemon(config).then(
      () => 'started',
      (err: Error) => err.message,
    );
    expect(refused).toMatch(/daemon exited \(2\)/);
    expect(refused).toMatch(
      new RegExp(`jobs\\.dataDir: .* in use by another framehub \\(pid ${first.proc.pid} on `),
    );
    expect((await get(`${first.url}/healthz`)).status).toBe(200);
  }, 30_000);

  it('takes the directory over from a daemon that was killed', async () => {
    const first = running.pop()!;
    first.proc.kill('SIGKILL');
    await new Promise((r) => first.proc.once('exit', r));
    const next = await startDaemon(config);
    running.push(next);
    expect((await get(`${next.url}/healthz`)).status).toBe(200);
  }, 30_000);
});

describe('lockDataDir between processes starting at once', () => {
  /** Two processes take the lock on one fresh (or stale-held) directory at the same moment. */
  async function race(dir: string): Promise<string[]> {
    const script = `import(${JSON.stringify(lockModule)}).then((m) => {
      try { m.lockDataDir(${JSON.stringify(dir)}); process.stdout.write('won'); }
      catch (e) { process.stdout.write(e.code === 'BAD_CONFIG' ? 'refused' : 'error ' + e.message); }
      setTimeout(() => {}, 300);
    });`;
    const run = () =>
      new Promise<string>((resolve) => {
        execFile(process.execPath, ['-e', script], (_err, stdout) => resolve(stdout));
      });
    return Promise.all([run(), run()]);
  }

  it('exactly one of two wins, on a fresh directory and over a stale file, every time', async () => {
    for (let i = 0; i < 12; i++) {
      const dir = mkdtempSync(join(tmpdir(), 'framehub-lock-race-'));
      // Every other round starts from a file left by a process that is gone (pids are below
      // pid_max, so nothing runs under pid_max itself).
      if (i % 2) writeFileSync(join(dir, 'framehub.pid'), `${pidMax} ${hostname()}`);
      const outcomes = (await race(dir)).sort();
      expect(outcomes, `round ${i}`).toEqual(['refused', 'won']);
    }
  }, 60_000);
});
