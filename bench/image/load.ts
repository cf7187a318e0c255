import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { type MachineCpu, machineBusy, sampleMachine } from '../lib/proc-stats.js';
import type { LoadWindow } from './shared.js';

/** One finished image: when it started and ended (performance.now ms) and what it measured. */
export type Timed<T> = T & { startMs: number; endMs: number };

export interface LoopOutcome<T, S> {
  /** The images that ended inside the window. */
  inWindow: Timed<T>[];
  /** The window's length as the edge timers saw it, s. */
  seconds: number;
  /** `snapshot()` at the window's start and end. */
  edges: [S, S];
}

/**
 * Runs `window.clients` closed loops: each starts its next image when its last one has ended,
 * as ab and k6 clients do, so the work in flight is exactly `clients`. Only images that end
 * inside the window count; the warm-up's are dropped, and no image starts after the window
 * closes (the ones in flight finish before this resolves, so the next case starts on an idle
 * machine). `snapshot` is called at both edges (CPU counters); an error in it or in `op` fails
 * the run.
 */
export async function closedLoop<T, S>(
  window: LoadWindow,
  op: (client: number) => Promise<T>,
  snapshot: () => S,
): Promise<LoopOutcome<T, S>> {
  const begin = performance.now();
  const opens = begin + window.warmupSeconds * 1000;
  const closes = opens + window.seconds * 1000;
  const edges: S[] = [];
  const edgeTimes: number[] = [];
  let failure: unknown;
  const edge = () => {
    edgeTimes.push(performance.now());
    try {
      edges.push(snapshot());
    } catch (err) {
      failure ??= err;
    }
  };
  const timers = [setTimeout(edge, opens - begin), setTimeout(edge, closes - begin)];
  const finished: Timed<T>[] = [];
  const loop = async (client: number) => {
    while (performance.now() < closes) {
      const startMs = performance.now();
      const result = await op(client);
      finished.push({ ...result, startMs, endMs: performance.now() });
    }
  };
  try {
    await Promise.all(Array.from({ length: window.clients }, (_, i) => loop(i)));
  } finally {
    for (const t of timers) clearTimeout(t);
  }
  // The last image can end past the close before its timer's turn comes: close the window now.
  while (edgeTimes.length < 2) edge();
  if (failure) throw failure;
  const [from, to] = edgeTimes as [number, number];
  const inWindow = finished.filter((s) => s.endMs >= from && s.endMs <= to);
  if (!inWindow.length) throw new Error(`no image finished in the ${window.seconds} s window: lengthen it`);
  return {
    inWindow,
    seconds: (to - from) / 1000,
    edges: edges as [S, S],
  };
}

/** Clock ticks per second of /proc's CPU times (getconf CLK_TCK, as bench/lib/proc-stats.ts reads it). */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** utime + stime of a /proc stat file, ms; fields counted after the command name, which may hold spaces. */
function statCpuMs(path: string): number {
  const stat = readFileSync(path, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/**
 * CPU counters at one window edge: a process's CPU (every thread and every child process, and its main thread alone:
 * in the daemon that is HTTP, WebSockets and the jobs' bookkeeping, the rest is sharp, the
 * workers and V8's GC), and the whole machine's. Throws if the process is gone.
 */
export interface CpuEdge {
  totalMs: number;
  mainThreadMs: number;
  machine: MachineCpu;
}

/**
 * A process's CPU with its children's: the live ones (framehub's image job processes, which
 * live as long as their worker) and those already reaped (cutime + cstime).
 */
function treeCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const reaped = ((Number(fields[13]) + Number(fields[14])) * 1000) / CLK_TCK;
  const children = readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
    readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').split(' ').filter(Boolean),
  );
  return (
    statCpuMs(`/proc/${pid}/stat`) +
    reaped +
    children.reduce((sum, child) => sum + statCpuMs(`/proc/${child}/stat`), 0)
  );
}

export const cpuEdge = (pid: number): CpuEdge => ({
  totalMs: treeCpuMs(pid),
  mainThreadMs: statCpuMs(`/proc/${pid}/task/${pid}/stat`),
  machine: sampleMachine(),
});

/** The whole machine's busy share between two edges, %. */
export const machineBusyPct = (a: CpuEdge, b: CpuEdge): number => 100 * machineBusy(a.machine, b.machine);

/** CPU ms spent over `seconds` as a share of all the machine's cores, %. */
export const coreSharePct = (cpuMs: number, seconds: number): number =>
  (100 * cpuMs) / (seconds * 1000 * availableParallelism());
