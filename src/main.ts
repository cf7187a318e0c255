import { loadConfig } from './config/load.js';
import { startDaemon } from './daemon.js';
import { ConfigError } from './errors.js';
import { log } from './log.js';

/** Hard deadline for a graceful stop; past it the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 4500;

try {
  const config = loadConfig(process.argv.slice(2), process.env);
  const daemon = await startDaemon(config, log);
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.error('graceful shutdown timed out, exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    daemon.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`framehub: ${err.message}\n`);
    process.exit(2);
  }
  log.fatal({ err }, 'start-up failed');
  process.exit(1);
}
