import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

export const AUTH_ALGORITHMS = ['HS256', 'RS256', 'ES256'] as const;
export type AuthAlgorithm = (typeof AUTH_ALGORITHMS)[number];

const KEY_SOURCES = ['hs256Secret', 'publicKeyFile', 'jwksFile'] as const;

/** A day: well above the hour most identity providers issue, short enough to bound a leak. */
export const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 86_400;
/** The setting's own ceiling (366 days): a cap that can be switched off is no cap. */
export const MAX_TOKEN_LIFETIME_CAP_SECONDS = 366 * 86_400;

/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash output. */
export const MIN_HS256_SECRET_BYTES = 32;

/**
 * The daemon config's `auth` section. Leaving the section out turns auth off, which is only
 * allowed on a loopback host (see assertAuthAllowedForHost). Exactly one key source is required.
 *
 * @example
 *   { "auth": { "hs256Secret": "…32+ bytes…" } }
 *   { "auth": { "jwksFile": "/etc/framehub/jwks.json", "issuer": "https://idp.example" } }
 */
export const authConfigSchema = z
  .strictObject({
    /** Shared HMAC secret for HS256 tokens. */
    hs256Secret: z
      .string()
      .refine((s) => Buffer.byteLength(s, 'utf8') >= MIN_HS256_SECRET_BYTES, {
        message: `must be at least ${MIN_HS256_SECRET_BYTES} bytes`,
      })
      .optional(),
    /** PEM public key (SPKI) for RS256 or ES256 tokens. */
    publicKeyFile: z.string().min(1).optional(),
    /** Local JWKS JSON file. It is read once at start; framehub never fetches keys over the network. */
    jwksFile: z.string().min(1).optional(),
    /** Allowed `alg` values; by default inferred from the key. */
    algorithms: z.array(z.enum(AUTH_ALGORITHMS)).min(1).optional(),
    issuer: z.string().min(1).optional(),
    audience: z.string().min(1).optional(),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(5),
    /**
     * Longest token accepted: `exp` at most this far ahead of now (plus the clock tolerance),
     * and `exp - iat` at most this when `iat` is present. A stolen token otherwise works for
     * as long as its issuer (or a forger with a leaked key) chose, e.g. `exp: 1e20`. Raise it
     * for publishers that hold long-lived device tokens.
     */
    maxTokenLifetimeSeconds: z
      .number()
      .int()
      .min(60)
      .max(MAX_TOKEN_LIFETIME_CAP_SECONDS)
      .default(DEFAULT_MAX_TOKEN_LIFETIME_SECONDS),
  })
  .superRefine((cfg, ctx) => {
    const sources = KEY_SOURCES.filter((k) => cfg[k] !== undefined);
    if (sources.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          sources.length === 0
            ? `set one of ${KEY_SOURCES.join(', ')}`
            : `set only one of ${KEY_SOURCES.join(', ')} (got ${sources.join(', ')})`,
      });
    }
    // Allowing HS256 next to a public key is the classic algorithm-confusion hole: the
    // public key text becomes the HMAC secret. Refuse the mix at start.
    const hmac = cfg.hs256Secret !== undefined;
    cfg.algorithms?.forEach((alg, i) => {
      if ((alg === 'HS256') !== hmac) {
        ctx.addIssue({
          code: 'custom',
          path: ['algorithms', i],
          message: hmac ? `${alg} needs publicKeyFile or jwksFile` : 'HS256 needs hs256Secret',
        });
      }
    });
  });

/** The section as written in the config file. */
export type AuthConfig = z.input<typeof authConfigSchema>;
/** The section after defaults. */
export type ResolvedAuthConfig = z.output<typeof authConfigSchema>;

/** Validates `cfg` even when it did not come through the config loader. Throws ConfigError naming `auth.<field>`. */
export function resolveAuthConfig(cfg: AuthConfig): ResolvedAuthConfig {
  const parsed = authConfigSchema.safeParse(cfg);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map(
    (issue) => `  ${['auth', ...issue.path].join('.')}: ${issue.message}`,
  );
  throw new ConfigError(`invalid auth configuration:\n${lines.join('\n')}`);
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * True for `localhost`, 127.0.0.0/8 and ::1 in any spelling (`[::1]`, `0:0:0:0:0:0:0:1`,
 * `::ffff:127.0.0.1`). `0.0.0.0` and `::` are every interface, so not loopback.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/%.*$/, '');
  if (h === 'localhost') return true;
  if (isIPv4(h)) return loopback.check(h, 'ipv4');
  if (isIPv6(h)) return loopback.check(h, 'ipv6');
  return false;
}

/**
 * Start-up rule: auth may be off only on a loopback host, and a configured section must be
 * valid (one key source, HS256 secret of at least 32 bytes). Throws ConfigError naming `auth`.
 *
 * @example
 *   assertAuthAllowedForHost('127.0.0.1', undefined); // ok
 *   assertAuthAllowedForHost('0.0.0.0', undefined);   // throws BAD_CONFIG
 */
export function assertAuthAllowedForHost(host: string, cfg: AuthConfig | undefined): void {
  if (cfg !== undefined) {
    resolveAuthConfig(cfg);
    return;
  }
  if (!isLoopbackHost(host)) {
    throw new ConfigError(
      `auth: host "${host}" is not a loopback address, so auth must be configured ` +
        `(set auth.${KEY_SOURCES.join(', auth.')}) or bind to 127.0.0.1`,
    );
  }
}
