import pino from 'pino';

/**
 * One JSON-lines logger for the daemon. Level from FRAMEHUB_LOG_LEVEL (default info).
 * Lines go to stdout so that `"msg":"listening"` can be read by supervisors and tests.
 */
export const log = pino({
  level: process.env.FRAMEHUB_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export type Logger = typeof log;
