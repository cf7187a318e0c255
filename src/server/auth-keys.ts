import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, type JWK, type JWTVerifyGetKey } from 'jose';
import type { AuthAlgorithm, ResolvedAuthConfig } from '../config/auth.js';
import { ConfigError } from '../errors.js';

/** What jwtVerify needs, decided once at start. */
export interface VerifyKey {
  key: Uint8Array | KeyObject | JWTVerifyGetKey;
  algorithms: AuthAlgorithm[];
  /** One line for the start-up log, e.g. `jwks /etc/jwks.json: 2 keys (ES256); skipped keys[2] (use "enc")`. */
  description: string;
}

/** Reads the configured key source. Every problem is a ConfigError naming the `auth.*` field. */
export async function loadVerifyKey(cfg: ResolvedAuthConfig): Promise<VerifyKey> {
  if (cfg.hs256Secret !== undefined) {
    return {
      key: new TextEncoder().encode(cfg.hs256Secret),
      algorithms: ['HS256'],
      description: 'hs256 secret',
    };
  }
  if (cfg.publicKeyFile !== undefined) return loadPublicKey(cfg.publicKeyFile, cfg.algorithms);
  if (cfg.jwksFile !== undefined) return loadJwks(cfg.jwksFile, cfg.algorithms);
  // resolveAuthConfig guarantees exactly one source.
  throw new ConfigError('auth: no key source configured');
}

async function loadPublicKey(file: string, configured: AuthAlgorithm[] | undefined): Promise<VerifyKey> {
  const field = 'auth.publicKeyFile';
  const pem = await readKeyFile(file, field);
  if (pem.includes('PRIVATE KEY')) {
    throw new ConfigError(
      `${field}: ${file} holds a private key; give the public key (openssl pkey -pubout)`,
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new ConfigError(`${field}: ${file} is not a PEM public key: ${(err as Error).message}`);
  }
  const alg = algorithmFor(key, `${field} ${file}`);
  const mismatch = configured?.find((a) => a !== alg);
  if (mismatch)
    throw new ConfigError(`auth.algorithms: ${mismatch} does not match the ${alg} key in ${file}`);
  return { key, algorithms: [alg], description: `${alg} public key ${file}` };
}

async function loadJwks(file: string, configured: AuthAlgorithm[] | undefined): Promise<VerifyKey> {
  const field = 'auth.jwksFile';
  const text = await readKeyFile(file, field);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${field}: ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const keys = (data as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new ConfigError(`${field}: ${file} must hold {"keys": [...]}`);

  // IdP key sets often carry encryption keys or algorithms framehub does not take; those are
  // skipped and named in the description. Private and symmetric keys are refused outright:
  // they are secrets that should not sit in a verification file.
  const usable: JWK[] = [];
  const algs = new Set<AuthAlgorithm>();
  const skipped: string[] = [];
  for (const [i, jwk] of (keys as unknown[]).entries()) {
    const where = `${field} ${file} keys[${i}]`;
    if (typeof jwk !== 'object' || jwk === null) throw new ConfigError(`${where}: must be an object`);
    const k = jwk as JWK;
    if (k.d !== undefined || k.kty === 'oct') {
      throw new ConfigError(`${where}: is a private or symmetric key; a JWKS file holds public keys only`);
    }
    if (k.use !== undefined && k.use !== 'sig') {
      skipped.push(`keys[${i}] (use "${k.use}")`);
      continue;
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: k as JsonWebKey, format: 'jwk' });
    } catch (err) {
      throw new ConfigError(`${where}: not a valid public JWK: ${(err as Error).message}`);
    }
    const alg = algorithmFor(key, where, false);
    if (alg === undefined || (k.alg !== undefined && k.alg !== alg)) {
      skipped.push(`keys[${i}] (${k.alg ?? k.kty}${k.crv ? ` ${k.crv}` : ''})`);
      continue;
    }
    usable.push(k);
    algs.add(alg);
  }
  if (usable.length === 0) {
    throw new ConfigError(
      `${field}: ${file} has no RS256 or ES256 signing key` +
        (skipped.length ? `; skipped ${skipped.join(', ')}` : ''),
    );
  }
  const missing = configured?.find((a) => !algs.has(a));
  if (missing) throw new ConfigError(`auth.algorithms: ${file} has no key for ${missing}`);
  const algorithms = configured ?? [...algs];
  return {
    key: createLocalJWKSet({ keys: usable }),
    algorithms,
    description:
      `jwks ${file}: ${usable.length} keys (${algorithms.join(', ')})` +
      (skipped.length ? `; skipped ${skipped.join(', ')}` : ''),
  };
}

async function readKeyFile(file: string, field: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

/** RS256 for RSA ≥ 2048 bits (jose's own floor), ES256 for EC P-256. */
function algorithmFor(key: KeyObject, where: string): AuthAlgorithm;
function algorithmFor(key: KeyObject, where: string, strict: false): AuthAlgorithm | undefined;
function algorithmFor(key: KeyObject, where: string, strict = true): AuthAlgorithm | undefined {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details?.modulusLength ?? 0;
    if (bits < 2048) throw new ConfigError(`${where}: RSA key of ${bits} bits; RS256 needs at least 2048`);
    return 'RS256';
  }
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') return 'ES256';
  if (!strict) return undefined;
  const kind = `${key.asymmetricKeyType}${details?.namedCurve ? ` ${details.namedCurve}` : ''}`;
  throw new ConfigError(`${where}: unsupported ${kind} key; use RSA (RS256) or EC P-256 (ES256)`);
}
