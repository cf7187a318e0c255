import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';

/**
 * Makes `jobs.dataDir` this process's own: `<dir>/framehub.pid` is created exclusively and
 * holds our pid. Each daemon empties its results and work directories at start (what an earlier
 * process left belongs to jobs that no longer exist), so a second daemon on the same directory
 * (two nodes on one host with the default `/tmp/framehub`) would delete the first one's results
 * and uploads under it. It is refused instead, naming the holder. A file whose pid is no longer
 * running (a crash, SIGKILL) is taken over. Returns the release, for a clean stop.
 *
 * What it costs: a pid can be reused by an unrelated process after a crash, which then blocks
 * the start until the file is removed; the message says which file.
 */
export function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'framehub.pid');
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        if (holder(file) === process.pid) rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const pid = holder(file);
    if (pid !== undefined && pid !== process.pid && running(pid)) {
      throw new ConfigError(
        `jobs.dataDir: ${dir} is in use by another framehub (pid ${pid}); give each daemon its own ` +
          `jobs.dataDir (or remove ${file} if that process is not framehub)`,
      );
    }
    rmSync(file, { force: true });
  }
}

function holder(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Signal 0 tests for existence; EPERM means it exists under another user. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
