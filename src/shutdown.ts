import pino from 'pino';
import type { Daemon } from './daemon.js';
import { FramehubError } from './errors.js';
import type { Logger } from './log.js';
import { killAllChildren } from './media/children.js';

/** stop() aims to finish this long before the deadline, so its own report wins the race. */
export const STOP_MARGIN_MS = 250;

export interface ShutdownOptions {
  /** `shutdown.deadlineMs`: from the first signal to the process being gone. */
  deadlineMs: number;
  log: Logger;
}

/**
 * SIGTERM and SIGINT stop the daemon gracefully within `deadlineMs`, and exit 0 when they did.
 * Otherwise (stop() failed, a worker was still busy, the deadline passed, or a second signal
 * came) the exit is forced: every child process group is killed, the reason is logged, and the
 * process SIGKILLs itself (exit status 137).
 *
 * Why not process.exit(1): Node joins every worker thread on exit, and a worker inside a
 * libvips call only ends when the call returns: in issue #8 a daemon fed three image bombs was
 * still alive 8 minutes after SIGTERM. A signal is the one exit nothing in the process can hold.
 *
 * @example
 *   exitOnSignals(await startDaemon(config, log), { deadlineMs: config.shutdown.deadlineMs, log });
 */
export function exitOnSignals(daemon: Daemon, opts: ShutdownOptions): void {
  const { deadlineMs, log } = opts;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return forceExit(log, `${signal} received again during shutdown`);
    stopping = true;
    log.info({ signal, deadlineMs }, 'shutting down');
    const deadline = setTimeout(
      () => forceExit(log, `shutdown deadline of ${deadlineMs} ms passed`),
      deadlineMs,
    );
    daemon.stop().then(
      () => {
        clearTimeout(deadline);
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        clearTimeout(deadline);
        forceExit(log, err instanceof FramehubError ? err.message : 'shutdown failed', err);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Kills every child, logs why (synchronously), and SIGKILLs this process. */
function forceExit(log: Logger, reason: string, err?: unknown): void {
  const killedChildren = killAllChildren('SIGKILL');
  lastWords(log, { reason, killedChildren, err }, 'forced exit: children killed, process killing itself');
  process.kill(process.pid, 'SIGKILL');
}

/**
 * The daemon's log stream writes through libuv's thread pool, which busy libvips calls may be
 * holding, and nothing queued there survives a SIGKILL. So the queue is flushed synchronously
 * and the last line goes out through a synchronous stream of its own.
 */
function lastWords(log: Logger, fields: Record<string, unknown>, msg: string): void {
  const stream = (log as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[
    pino.symbols.streamSym
  ];
  let flushError: string | undefined;
  try {
    stream?.flushSync?.();
  } catch (err) {
    // A write still in flight, or the stream not open yet: reported in the last line itself.
    flushError = (err as Error).message;
  }
  pino(
    { level: 'fatal', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 1, sync: true }),
  ).fatal({ ...fields, flushError }, msg);
}
