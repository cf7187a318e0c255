import { loadConfig } from './config/load.js';
import { startDaemon } from './daemon.js';
import { ConfigError } from './errors.js';
import { log } from './log.js';
import { exitOnSignals } from './shutdown.js';

try {
  const config = loadConfig(process.argv.slice(2), process.env);
  log.level = config.logLevel;
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
