import { randomUUID } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';

/**
 * Makes `jobs.dataDir` this process's own: `<dir>/framehub.pid` names it (`<pid> <hostname>`).
 * Each daemon empties its results and work directories at start (what an earlier process left
 * belongs to jobs that no longer exist), so a second daemon on the same directory (two nodes on
 * one host with the default `/tmp/framehub`) would delete the first one's results and uploads.
 * It is refused instead, naming the holder. Returns the release, also run at exit.
 *
 * - The file is written whole, then linked into place: another starter never reads it empty.
 * - A holder on this host that is no longer running (a crash, SIGKILL) is taken over, by moving
 *   the file aside under a name of our own first, so of two starters only one takes it. Our own
 *   pid counts as not running: a container restarted with the same pid (1) takes its file back.
 * - A holder on another host (another container sharing the volume) cannot be checked: refused,
 *   and the message says which file to remove if that daemon is gone.
 *
 * What it costs: after a crash, a pid reused by an unrelated process blocks the start until the
 * file is removed; two containers with the same hostname on one volume are not told apart.
 */
export function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'framehub.pid');
  const me = `${process.pid} ${hostname()}`;
  const release = () => {
    if (readHolder(file)?.raw === me) rmSync(file, { force: true });
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    const mine = join(dir, `.framehub.pid.${randomUUID()}`);
    writeFileSync(mine, me);
    try {
      linkSync(mine, file);
      process.once('exit', release);
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(mine, { force: true });
    }
    const holder = readHolder(file);
    if (holder && running(holder)) throw inUse(dir, file, holder);
    const aside = join(dir, `.framehub.pid.stale.${randomUUID()}`);
    try {
      renameSync(file, aside);
    } catch {
      continue; // another starter moved it first: try again
    }
    const moved = readHolder(aside);
    if (holder && moved?.raw !== holder.raw) {
      // Another starter's fresh lock was moved, not the stale one: put it back and give way.
      try {
        linkSync(aside, file);
      } catch {
        // Someone holds it again meanwhile: the next start says who.
      }
      rmSync(aside, { force: true });
      throw inUse(dir, file, moved ?? holder);
    }
    rmSync(aside, { force: true });
  }
  throw new ConfigError(`jobs.dataDir: could not take ${file}: other daemons are starting on ${dir}`);
}

interface Holder {
  raw: string;
  pid: number;
  host: string;
}

function readHolder(file: string): Holder | undefined {
  try {
    const raw = readFileSync(file, 'utf8');
    const [pid, host = ''] = raw.split(' ');
    const n = Number.parseInt(pid ?? '', 10);
    return Number.isSafeInteger(n) && n > 0 ? { raw, pid: n, host } : undefined;
  } catch {
    return undefined;
  }
}

/** Signal 0 tests for existence; EPERM means it exists under another user. Another host's: assumed running. */
function running(holder: Holder): boolean {
  if (holder.host !== '' && holder.host !== hostname()) return true;
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function inUse(dir: string, file: string, holder: Holder): ConfigError {
  return new ConfigError(
    `jobs.dataDir: ${dir} is in use by another framehub (pid ${holder.pid} on ${holder.host || 'an unknown host'}); ` +
      `give each daemon its own jobs.dataDir (or remove ${file} if that daemon is gone)`,
  );
}
