import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { get, type RunningDaemon, startDaemon } from './helpers.js';

// Two daemons on one jobs.dataDir: each empties its results and work directories at start, so
// the second would delete the first one's results and uploads. It is refused with exit code 2
// and a message naming the holder; a holder that died (SIGKILL) leaves a file the next daemon
// takes over.
const dataDir = join(mkdtempSync(join(tmpdir(), 'framehub-lock-')), 'data');
const config = { cameras: [], jobs: { dataDir } };
const running: RunningDaemon[] = [];

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
      new RegExp(`jobs\\.dataDir: .* in use by another framehub \\(pid ${first.proc.pid}\\)`),
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
