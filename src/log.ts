import pino from 'pino';

/**
 * One JSON-lines logger for the daemon. It starts at info; main.ts sets the configured level
 * (`logLevel`, FRAMEHUB_LOG_LEVEL) once the config is validated, so a bad level is a config
 * error (exit 2, field named), not a crash at import.
 * Lines go to stdout so that `"msg":"listening"` can be read by supervisors and tests.
 */
export const log = pino({
  level: 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export type Logger = typeof log;
