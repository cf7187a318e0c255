/**
 * Sizes libuv's thread pool from the config before Node starts it. Loaded with
 * `node --require ./dist/src/threadpool-preload.cjs dist/src/main.js`, which is what `npm start`
 * and the Docker image run.
 *
 * Why a CommonJS preload: libuv reads UV_THREADPOOL_SIZE once, when the pool first gets work,
 * and Node's ES module loader reads module files on that pool. By the first line of any ES
 * module, main.js included, the pool already has its 4 threads and setting the variable does
 * nothing (measured on Node 20.20: the thread count does not change). A `--require` module
 * runs before the loader; it reads the config with the daemon's own loader (require() of an ES
 * module, Node 20.19 and later) and sets the variable while it still counts.
 *
 * A UV_THREADPOOL_SIZE already in the environment wins. A config error is left to main.js,
 * which reads the same config next and exits 2 naming the field.
 */
import { isMainThread } from 'node:worker_threads';

// Node runs --require preloads in every worker thread too. Workers inherit the variable and
// must not load the config modules (zod, the schema: about 9 MB per worker), so the main
// thread alone requires them, lazily.
if (isMainThread && process.env.UV_THREADPOOL_SIZE === undefined) {
  const { loadConfig } = require('./config/load.js') as typeof import('./config/load.js');
  const { ConfigError } = require('./errors.js') as typeof import('./errors.js');
  const { wantedThreadpoolSize } = require('./threadpool.js') as typeof import('./threadpool.js');
  try {
    const config = loadConfig(process.argv.slice(2), process.env);
    process.env.UV_THREADPOOL_SIZE = String(wantedThreadpoolSize(config.pool.threads));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
  }
}
