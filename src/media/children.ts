import type { ChildProcess } from 'node:child_process';

/**
 * Every child process the daemon started and that is still running, so a shutdown past its
 * deadline can kill them all. Children are spawned `detached` (their own process group) and
 * killed by group, so whatever ffmpeg starts dies with it.
 */
const running = new Set<ChildProcess>();

/** Registers a spawned child until it exits. */
export function trackChild(child: ChildProcess): ChildProcess {
  if (child.pid === undefined) return child;
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Sends `signal` to the child's process group (or the child alone when it has none). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Not a group leader (spawned without detached) or already gone: signal the child itself.
    child.kill(signal);
  }
}

/** Kills every registered child's group; returns how many were still running. */
export function killAllChildren(signal: NodeJS.Signals = 'SIGKILL'): number {
  const n = running.size;
  for (const child of running) killGroup(child, signal);
  return n;
}
