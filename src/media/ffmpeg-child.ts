import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { killGroup, trackChild } from './children.js';

/** Bytes of stderr kept per child: enough for the last few error lines, never a log's worth. */
const STDERR_TAIL_BYTES = 4096;

/** How a child ended; `error` is set when it could not be started at all (e.g. ENOENT). */
export interface FfmpegExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export interface FfmpegChild {
  readonly process: ChildProcessWithoutNullStreams;
  /** The extra pipes asked for, at fd 3, 4, ... in order (ffmpeg writes `pipe:3` there). */
  readonly pipes: Readable[];
  /** Resolves once the child exited and its pipes closed; never rejects. */
  readonly closed: Promise<FfmpegExit>;
  /** The last lines ffmpeg wrote to stderr. For logs only: it names files, hosts and ports. */
  stderrTail(lines?: number): string;
  /** SIGKILLs the child's whole process group; a no-op once it exited. */
  kill(): void;
}

/**
 * Starts ffmpeg (or a stand-in) from an argument list, never a shell string, in its own
 * process group and registered with the child registry, so a kill or a shutdown takes
 * whatever it started along with it. stdin, stdout and stderr are pipes; stderr is kept only
 * as a bounded tail. `extraPipes` opens more pipes at fd 3 and up, for outputs such as a
 * segment list (`-segment_list pipe:3`).
 *
 * @example
 *   const ff = spawnFfmpeg(path, ['-hide_banner', '-f', 'wav', '-i', 'pipe:0', '-f', 's16le', 'pipe:1']);
 *   const exit = await ff.closed;
 *   if (exit.code !== 0) log.warn({ exit, stderr: ff.stderrTail() }, 'ffmpeg failed');
 */
export function spawnFfmpeg(
  path: string,
  args: readonly string[],
  { extraPipes = 0 }: { extraPipes?: number } = {},
): FfmpegChild {
  const stdio = Array.from({ length: 3 + extraPipes }, () => 'pipe' as const);
  const child = spawn(path, args, { stdio, detached: true }) as ChildProcessWithoutNullStreams;
  trackChild(child);
  let tail = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    tail = (tail + text).slice(-STDERR_TAIL_BYTES);
  });
  // EPIPE when ffmpeg exits before reading all its input; the exit status says why.
  child.stdin.on('error', () => {});
  const closed = new Promise<FfmpegExit>((resolve) => {
    // 'error' without 'close' is a spawn failure; after a start, 'close' always follows.
    child.on('error', (error) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, error });
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return {
    process: child,
    pipes: child.stdio.slice(3) as Readable[],
    closed,
    stderrTail: (lines = 5) => tail.trim().split('\n').slice(-lines).join('\n'),
    kill: () => killGroup(child),
  };
}
