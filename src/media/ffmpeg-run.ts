import { readdirSync } from 'node:fs';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { MediaError } from '../errors.js';
import { type FfmpegChild, type FfmpegExit, spawnFfmpeg } from './ffmpeg-child.js';
import { type FfmpegProgress, ProgressParser } from './ffmpeg-progress.js';

/** Why a run failed on its own (not stopped by its caller): spawn failure or a non-zero exit. */
export type FailureKind = 'spawn' | 'exit';

export interface FfmpegRunOptions {
  ffmpegPath: string;
  /** The argument list (never a shell string). With `onProgress` it must hold `-progress pipe:1`. */
  args: readonly string[];
  /** Past this the process group is killed and `done` rejects MEDIA_TIMEOUT; omitted: no deadline. */
  timeoutMs?: number;
  /** The deadline's message for the client, e.g. "the job ran past its 600 s deadline (jobs.video.timeoutSeconds)". */
  timeoutMessage?: string;
  /** Aborting kills the process group; `done` rejects with the signal's reason (MEDIA_CANCELLED when none). */
  signal?: AbortSignal;
  /** Pipes at fd 3, 4, ... (see spawnFfmpeg), read from `run.child.pipes`. */
  extraPipes?: number;
  /** Every block of `-progress pipe:1` output. */
  onProgress?: (p: FfmpegProgress) => void;
  /**
   * How far below the daemon ffmpeg runs (0..19 added to the daemon's nice value; 0 or omitted
   * leaves it). Set with os.setPriority on the pid right after spawn, and again on every thread
   * ffmpeg has started once it reports progress, since Linux keeps a nice value per thread.
   */
  nice?: number;
  /**
   * The error a failed run rejects with; the default says MEDIA_FAILED (500) for a spawn
   * failure and MEDIA_DECODE_FAILED (422) for a non-zero exit, the input being the uploader's.
   * `detail` is the exit status and stderr tail, for the log only.
   */
  failure?: (kind: FailureKind, detail: string) => Error;
}

export interface FfmpegRun {
  readonly child: FfmpegChild;
  /** Resolves on exit 0; rejects with the stop reason, MEDIA_TIMEOUT or `failure(...)`. */
  readonly done: Promise<void>;
  /** Kills the whole process group; `done` rejects with `reason`. Idempotent: the first reason wins. */
  stop(reason: Error): void;
  /** Set once stopped (by the caller, the signal or the deadline). */
  readonly stopped: Error | undefined;
}

/** The default failure mapping (see FfmpegRunOptions.failure). */
export function defaultFailure(kind: FailureKind, detail: string): MediaError {
  if (kind === 'spawn') return new MediaError('MEDIA_FAILED', 'ffmpeg could not be started', 500, detail);
  return new MediaError('MEDIA_DECODE_FAILED', 'the input could not be decoded', 422, detail);
}

/**
 * Runs ffmpeg from an argument list in its own process group (spawnFfmpeg), with a deadline,
 * an AbortSignal, progress from `-progress pipe:1`, a nice value, and its exit mapped to a
 * stable code. Every way of stopping kills the whole group, so nothing ffmpeg started lives on.
 *
 * @example
 *   const run = runFfmpeg({ ffmpegPath, args, timeoutMs: 60_000, signal, nice: 10,
 *     onProgress: (p) => report(progressFraction(p, seconds)) });
 *   await run.done; // or MediaError MEDIA_TIMEOUT / MEDIA_DECODE_FAILED / the abort reason
 */
export function runFfmpeg(o: FfmpegRunOptions): FfmpegRun {
  const child = spawnFfmpeg(o.ffmpegPath, o.args, { extraPipes: o.extraPipes ?? 0 });
  const pid = child.process.pid;
  const nice = o.nice ?? 0;
  if (pid !== undefined && nice > 0) lowerPriority(pid, nice, false);
  let stopped: Error | undefined;
  const stop = (reason: Error) => {
    if (stopped) return;
    stopped = reason;
    child.process.stdin.destroy();
    child.kill();
  };
  const onAbort = () => {
    const reason: unknown = o.signal?.reason;
    stop(reason instanceof Error ? reason : new MediaError('MEDIA_CANCELLED', 'the job was cancelled', 400));
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  const timer =
    o.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          const message =
            o.timeoutMessage ?? `ffmpeg ran past its ${Math.round(o.timeoutMs! / 1000)} s deadline`;
          stop(new MediaError('MEDIA_TIMEOUT', message, 504));
        }, o.timeoutMs);

  if (o.onProgress) {
    const parser = new ProgressParser();
    let threadsLowered = false;
    child.process.stdout.setEncoding('utf8').on('data', (text: string) => {
      for (const p of parser.push(text)) {
        if (!threadsLowered && pid !== undefined && nice > 0) {
          // By the first progress block ffmpeg has started its encoder threads: nice them too.
          threadsLowered = true;
          lowerPriority(pid, nice, true);
        }
        if (!stopped) o.onProgress!(p);
      }
    });
  } else {
    child.process.stdout.resume();
  }

  const failure = o.failure ?? defaultFailure;
  const done = child.closed.then((exit: FfmpegExit) => {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
    if (stopped) throw stopped;
    if (exit.code === 0) return;
    const detail = `${exit.error?.message ?? exit.signal ?? `exit ${exit.code}`}: ${child.stderrTail()}`;
    throw failure(exit.error ? 'spawn' : 'exit', detail);
  });
  // The caller may only look at `done` later (or never, after a stop): never an unhandled rejection.
  done.catch(() => {});
  return {
    child,
    done,
    stop,
    get stopped() {
      return stopped;
    },
  };
}

/**
 * Sets ffmpeg's nice value `increment` above the daemon's (at most 19): on the process (its
 * main thread) at once, and with `threads` on every thread it has started. A thread that
 * exited meanwhile, or a refusal, is ignored: priority is best effort, never a failure.
 */
function lowerPriority(pid: number, increment: number, threads: boolean): void {
  const nice = Math.min(19, os.getPriority() + increment);
  const ids = threads ? safeList(`/proc/${pid}/task`).map(Number) : [pid];
  for (const id of ids) {
    try {
      if (os.getPriority(id) < nice) os.setPriority(id, nice);
    } catch {
      // ESRCH (exited) or EACCES: leave it.
    }
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Calls `onLine` with each complete line a pipe writes (a segment list on fd 3, say); lines
 * over 4 KiB are dropped. Resolves when the pipe ends.
 *
 * @example
 *   await readLines(run.child.pipes[0]!, (line) => chunks.push(line));
 */
export function readLines(pipe: Readable, onLine: (line: string) => void): Promise<void> {
  let partial = '';
  pipe.setEncoding('utf8');
  pipe.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    if (partial.length > 4096) partial = '';
    for (const line of lines) if (line.trim() && line.length <= 4096) onLine(line.trim());
  });
  return new Promise((resolve) => {
    pipe.once('close', () => {
      if (partial.trim()) onLine(partial.trim());
      partial = '';
      resolve();
    });
    pipe.once('error', () => resolve());
  });
}
