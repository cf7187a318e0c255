import { loadConfig } from './config/load.js';
import { startDaemon } from './daemon.js';
import { ConfigError } from './errors.js';
import { log } from './log.js';
import { exitOnSignals } from './shutdown.js';
import { warnIfThreadpoolSmall } from './threadpool.js';

try {
  const config = loadConfig(process.argv.slice(2), process.env);
  log.level = config.logLevel;
  // Only a check: by now libuv's pool is sized (threadpool-preload.cts says why it cannot be here).
  warnIfThreadpoolSmall(config.pool.threads, process.env, log);
  const daemon = await startDaemon(config, log);
  exitOnSignals(daemon, { deadlineMs: config.shutdown.deadlineMs, log });
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`framehub: ${err.message}\n`);
    process.exit(2);
  }
  log.fatal({ err }, 'start-up failed');
  process.exit(1);
}
