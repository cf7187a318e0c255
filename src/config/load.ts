import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { type Config, configSchema } from './schema.js';

/** CLI flags and their FRAMEHUB_* twins. Flags beat env, env beats the file, the file beats defaults. */
const OPTIONS = {
  host: { type: 'string', env: 'FRAMEHUB_HOST' },
  port: { type: 'string', env: 'FRAMEHUB_PORT' },
  config: { type: 'string', env: 'FRAMEHUB_CONFIG' },
  'pool-threads': { type: 'string', env: 'FRAMEHUB_POOL_THREADS' },
  /** `jobs.dataDir`: each daemon on a host needs its own. */
  'data-dir': { type: 'string', env: 'FRAMEHUB_DATA_DIR' },
  /** `trustProxy`, comma-separated; an empty value trusts no proxy. */
  'trust-proxy': { type: 'string', env: 'FRAMEHUB_TRUST_PROXY' },
  /** `cors.origins`, comma-separated. */
  'cors-origins': { type: 'string', env: 'FRAMEHUB_CORS_ORIGINS' },
  /** `cluster.redisUrl`: scale out on this Redis. */
  'redis-url': { type: 'string', env: 'FRAMEHUB_REDIS_URL' },
  /** `cluster.redisCluster`: `--redis-cluster=true` when the URL names a Redis Cluster. */
  'redis-cluster': { type: 'string', env: 'FRAMEHUB_REDIS_CLUSTER' },
  /** `cluster.ingest`: `--ingest=false` makes a pure edge that takes no camera. */
  ingest: { type: 'string', env: 'FRAMEHUB_INGEST' },
  /** `cluster.nodeId`. */
  'node-id': { type: 'string', env: 'FRAMEHUB_NODE_ID' },
} as const;

type Env = Record<string, string | undefined>;

/**
 * Builds the validated config from argv, the environment and an optional JSON file.
 * Throws ConfigError naming the offending field; main.ts turns that into exit code 2.
 *
 * @example
 *   loadConfig(['--port', '0'], process.env) // { host: '127.0.0.1', port: 0, cameras: [demo], ... }
 */
export function loadConfig(argv: string[], env: Env): Config {
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      args: argv,
      options: Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, { type: o.type }])),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new ConfigError(`command line: ${(err as Error).message}`);
  }
  const pick = (name: keyof typeof OPTIONS): string | undefined => {
    const flag = flags[name];
    return typeof flag === 'string' ? flag : env[OPTIONS[name].env];
  };

  const configPath = pick('config');
  const raw: Record<string, unknown> = configPath ? readConfigFile(configPath) : {};
  const host = pick('host');
  const port = pick('port');
  const threads = pick('pool-threads');
  if (host !== undefined) raw.host = host;
  if (port !== undefined) raw.port = toNumber(port);
  if (threads !== undefined) raw.pool = { ...(raw.pool as object | undefined), threads: toNumber(threads) };
  const dataDir = pick('data-dir');
  if (dataDir !== undefined) raw.jobs = { ...(raw.jobs as object | undefined), dataDir };
  const trustProxy = pick('trust-proxy');
  if (trustProxy !== undefined) {
    raw.trustProxy = trustProxy
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean);
  }
  const corsOrigins = pick('cors-origins');
  if (corsOrigins !== undefined) {
    const origins = corsOrigins
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean);
    raw.cors = { ...(raw.cors as object | undefined), origins };
  }
  const cluster: Record<string, unknown> = { ...(raw.cluster as object | undefined) };
  const redisUrl = pick('redis-url');
  const redisCluster = pick('redis-cluster');
  const ingest = pick('ingest');
  const nodeId = pick('node-id');
  if (redisUrl !== undefined) cluster.redisUrl = redisUrl;
  if (redisCluster !== undefined) cluster.redisCluster = toBoolean(redisCluster);
  if (ingest !== undefined) cluster.ingest = toBoolean(ingest);
  if (nodeId !== undefined) cluster.nodeId = nodeId;
  if (Object.keys(cluster).length) raw.cluster = cluster;
  if (env.FFMPEG_PATH) raw.ffmpegPath = env.FFMPEG_PATH;
  if (env.FRAMEHUB_LOG_LEVEL) raw.logLevel = env.FRAMEHUB_LOG_LEVEL;
  if (env.FRAMEHUB_VAD_BACKEND) raw.vadBackend = env.FRAMEHUB_VAD_BACKEND;
  // A secret belongs in the environment (or a mounted file), not in a config file in a repo.
  if (env.FRAMEHUB_AUTH_HS256_SECRET)
    raw.auth = { ...(raw.auth as object | undefined), hs256Secret: env.FRAMEHUB_AUTH_HS256_SECRET };

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatIssues(parsed.error.issues, configPath));
  return parsed.data;
}

/** `true`/`false`; anything else stays a string, so the schema names the field in its error. */
const toBoolean = (value: string): boolean | string =>
  value === 'true' ? true : value === 'false' ? false : value;

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config: ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`config: ${path} must hold a JSON object`);
  }
  return data as Record<string, unknown>;
}

/** Keeps non-numeric strings as they are so the schema reports "expected number" against the field. */
function toNumber(value: string): number | string {
  return value.trim() !== '' && Number.isFinite(Number(value)) ? Number(value) : value;
}

function formatIssues(issues: z.core.$ZodIssue[], file: string | undefined): string {
  const lines = issues.map((issue) => {
    const field = issue.path.length ? issue.path.join('.') : '(root)';
    const keys = issue.code === 'unrecognized_keys' ? `: ${issue.keys.join(', ')}` : '';
    return `  ${field}: ${issue.message}${keys}`;
  });
  return `invalid configuration${file ? ` (${file})` : ''}:\n${lines.join('\n')}`;
}
