import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Server-side cost from /proc: the daemon's CPU seconds, RSS and open descriptors, read
 * from outside so the figures mean the same for framehub and for the baselines.
 */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface ProcSample {
  /** ms since epoch. */
  at: number;
  /** user + system CPU seconds since the process started (threads included). */
  cpuSeconds: number;
  rssBytes: number;
  fds: number;
}

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
    return {
      at: Date.now(),
      cpuSeconds: (utime + stime) / CLK_TCK,
      rssBytes: rssKb * 1024,
      fds: countFds(pid),
    };
  } catch {
    return undefined; // the process is gone
  }
}

function countFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

/** The soft and hard open-file limits of a process, from /proc/<pid>/limits. */
export function fdLimits(pid: number | 'self'): { soft: number; hard: number } {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'latin1')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const [soft, hard] = (line?.slice('Max open files'.length).trim().split(/\s+/) ?? []).map((v) =>
      v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v),
    );
    return { soft: soft ?? Number.NaN, hard: hard ?? Number.NaN };
  } catch {
    return { soft: Number.NaN, hard: Number.NaN };
  }
}

/** Whole-machine CPU jiffies, to tell how busy the box was (other tenants included). */
export interface MachineCpu {
  busy: number;
  total: number;
}

export function sampleMachine(): MachineCpu {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Busy fraction of all cores between two samples, 0..1. */
export function machineBusy(a: MachineCpu, b: MachineCpu): number {
  const total = b.total - a.total;
  return total > 0 ? (b.busy - a.busy) / total : 0;
}

/**
 * The pid listening on a loopback TCP port, found through /proc/net/tcp{,6} and the socket
 * inodes in /proc/<pid>/fd; used when the daemon was given by --url. Only this user's
 * processes are readable, which is the case that matters (a daemon you started yourself).
 */
export function pidListeningOn(port: number): number | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is f[1] (ADDR:PORT), st is f[3] (0A = LISTEN), inode is f[9].
      if (f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A' && f[9]) inodes.add(`socket:[${f[9]}]`);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
      } catch {
        // descriptors come and go while we look
      }
    }
  }
  return undefined;
}
