import { decodeProtectedHeader, errors, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import { type AuthConfig, type ResolvedAuthConfig, resolveAuthConfig } from '../config/auth.js';
import { CAMERA_ID } from '../config/camera-id.js';
import { AuthError, type AuthFailure } from '../errors.js';
import { loadVerifyKey, type VerifyKey } from './auth-keys.js';

export {
  AUTH_ALGORITHMS,
  type AuthAlgorithm,
  type AuthConfig,
  assertAuthAllowedForHost,
  authConfigSchema,
  DEFAULT_MAX_TOKEN_LIFETIME_SECONDS,
  isLoopbackHost,
  type ResolvedAuthConfig,
} from '../config/auth.js';
export { BEARER_PROTOCOL_PREFIX, type ExtractedToken, extractToken, type TokenSource } from './auth-token.js';

export const ROLES = ['viewer', 'publisher', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who a verified token speaks for. `exp` is the JWT NumericDate (seconds since the epoch). */
export interface Principal {
  readonly sub: string;
  readonly cams: '*' | ReadonlySet<string>;
  readonly role: Role;
  readonly exp: number;
  /**
   * When connections opened with this token must be closed: `exp` plus the clock tolerance, in
   * ms since the epoch (Infinity with auth off). A token is checked once, at connect, so without
   * this an open connection would outlive its token, and the lifetime cap would bound nothing.
   */
  readonly expiresAtMs: number;
}

export interface Authenticator {
  readonly enabled: boolean;
  /** One line for the start-up log naming the key source. */
  readonly description: string;
  /**
   * Resolves the token's Principal or rejects with AuthError UNAUTHORIZED, and with nothing
   * else: its `message` is safe to send to the client, its `reason` and `detail` are not. When
   * auth is off, resolves an all-access anonymous admin whatever the token. Call once per
   * connection or request, never per frame, and only through requireRole (auth-guard.ts), which
   * also checks the role and counts every refusal.
   */
  verify(token: string | undefined): Promise<Principal>;
}

/** Who every request is with auth off: an all-access admin that never expires. */
export const ANONYMOUS: Principal = Object.freeze({
  sub: 'anonymous',
  cams: '*',
  role: 'admin',
  exp: Number.POSITIVE_INFINITY,
  expiresAtMs: Number.POSITIVE_INFINITY,
});

/** Far above any real token; stops a huge query string from reaching base64 and JSON decoding. */
const MAX_TOKEN_LENGTH = 8192;

/**
 * Builds the authenticator from the `auth` config section; undefined turns auth off. Key files
 * are read once here. Throws ConfigError (BAD_CONFIG) for an invalid section or key file.
 *
 * @example
 *   const auth = await createAuthenticator(config.auth);
 *   const principal = await auth.verify(extractToken({ authorization }).token);
 */
export async function createAuthenticator(cfg: AuthConfig | undefined): Promise<Authenticator> {
  if (cfg === undefined) {
    return { enabled: false, description: 'auth off', verify: async () => ANONYMOUS };
  }
  const resolved = resolveAuthConfig(cfg);
  const { key, algorithms, description } = await loadVerifyKey(resolved);
  // An explicit list also makes jose refuse `alg: none` and HS256-with-the-public-key.
  const options: JWTVerifyOptions = {
    algorithms,
    issuer: resolved.issuer,
    audience: resolved.audience,
    clockTolerance: resolved.clockToleranceSeconds,
    requiredClaims: ['sub', 'exp', 'cams'],
  };
  const check = async (token: string | undefined): Promise<Principal> => {
    if (!token) throw new AuthError('UNAUTHORIZED', 'missing', 'no token in header, subprotocol or query');
    if (token.length > MAX_TOKEN_LENGTH) {
      throw new AuthError(
        'UNAUTHORIZED',
        'malformed',
        `token of ${token.length} characters, over ${MAX_TOKEN_LENGTH}`,
      );
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await verifyWithAnyKey(token, key, options));
    } catch (err) {
      throw fromJose(err, token, algorithms);
    }
    checkLifetime(payload, resolved);
    return principalFrom(payload, resolved.clockToleranceSeconds);
  };
  return {
    enabled: true,
    description,
    verify: (token) => check(token).catch(toAuthError),
  };
}

/** Keeps verify's promise: every refusal is an AuthError, so no internal message reaches a client. */
function toAuthError(err: unknown): never {
  if (err instanceof AuthError) throw err;
  throw new AuthError('UNAUTHORIZED', 'internal', err instanceof Error ? err.message : String(err), {
    cause: err,
  });
}

/**
 * jwtVerify, except that a token without `kid` that several keys of a JWKS could have signed
 * (key rotation: two P-256 keys) is tried against each of them, as jose leaves to its caller.
 */
async function verifyWithAnyKey(token: string, key: VerifyKey['key'], options: JWTVerifyOptions) {
  try {
    return await jwtVerify(token, key, options);
  } catch (err) {
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
    for await (const candidate of err) {
      try {
        return await jwtVerify(token, candidate, options);
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

/** Maps jose's refusals to UNAUTHORIZED with the failing check; anything else passes through. */
function fromJose(err: unknown, token: string, algorithms: readonly string[]): unknown {
  if (!(err instanceof errors.JOSEError)) return err;
  const refuse = (reason: AuthFailure, detail: string) =>
    new AuthError('UNAUTHORIZED', reason, detail, { cause: err });
  switch (err.code) {
    case errors.JWTExpired.code:
      return refuse('expired', err.message);
    case errors.JWSSignatureVerificationFailed.code:
      return refuse('signature', err.message);
    case errors.JOSEAlgNotAllowed.code:
      return refuse('algorithm', `alg ${headerField(token, 'alg')} is not one of ${algorithms.join(', ')}`);
    case errors.JWKSNoMatchingKey.code:
      return refuse(
        'key',
        `no key for kid ${headerField(token, 'kid')} and alg ${headerField(token, 'alg')}`,
      );
    case errors.JWTClaimValidationFailed.code: {
      const { claim } = err as errors.JWTClaimValidationFailed;
      return refuse(claim === 'nbf' ? 'not_yet_valid' : 'claims', err.message);
    }
    default:
      // JWSInvalid, JWTInvalid (bad base64 or JSON, wrong segment count), JOSENotSupported (an
      // unknown `crit` extension).
      return refuse('malformed', `${err.code}: ${err.message}`);
  }
}

/** A header value for a log line: the client chose it, so it is quoted and cut short. */
function headerField(token: string, name: 'alg' | 'kid'): string {
  try {
    return JSON.stringify(decodeProtectedHeader(token)[name] ?? null).slice(0, 64);
  } catch {
    return '(undecodable header)'; // jose already refused the token; this only feeds the log line
  }
}

/**
 * jose checks `exp` and `nbf` but checks `iat` only under `maxTokenAge`, which would make
 * `iat` required, and never bounds how far ahead `exp` lies. Both come from a token whose
 * signature has been verified, so these refuse a too-generous issuer or a leaked key, not a
 * forgery. The clock tolerance covers skew between the issuer's clock and ours; `exp - iat`
 * is one clock's arithmetic and gets none.
 */
function checkLifetime(payload: JWTPayload, cfg: ResolvedAuthConfig): void {
  const { exp, iat } = payload;
  const now = Math.floor(Date.now() / 1000);
  const tolerance = cfg.clockToleranceSeconds;
  const max = cfg.maxTokenLifetimeSeconds;
  if (typeof exp !== 'number') throw badClaims('exp must be a number'); // jose checked; narrows the type
  if (typeof iat === 'number' && iat > now + tolerance) {
    throw new AuthError('UNAUTHORIZED', 'issued_in_future', `iat is ${iat - now} s ahead of this clock`);
  }
  if (exp - now > max + tolerance) {
    throw new AuthError('UNAUTHORIZED', 'lifetime', `exp is ${exp - now} s ahead; at most ${max} s`);
  }
  if (typeof iat === 'number' && exp - iat > max) {
    throw new AuthError('UNAUTHORIZED', 'lifetime', `exp - iat is ${exp - iat} s; at most ${max} s`);
  }
}

/**
 * `cams` must be a list: `["*"]` is the wildcard, and a bare `"*"` string is refused rather
 * than read as "everything", so a claim of the wrong shape can never widen access.
 */
function principalFrom(payload: JWTPayload, toleranceSeconds: number): Principal {
  const { sub, exp, cams, role = 'viewer' } = payload;
  if (typeof sub !== 'string' || sub === '') throw badClaims('sub must be a non-empty string');
  if (typeof exp !== 'number') throw badClaims('exp must be a number'); // jose checked; narrows the type
  if (!Array.isArray(cams)) throw badClaims('cams must be an array of camera ids (["*"] for every camera)');
  let wildcard = false;
  for (const [i, cam] of cams.entries()) {
    if (cam === '*') wildcard = true;
    else if (typeof cam !== 'string' || !CAMERA_ID.test(cam))
      throw badClaims(`cams[${i}] is not a camera id`);
  }
  if (!ROLES.includes(role as Role)) throw badClaims(`role must be one of ${ROLES.join(', ')}`);
  return {
    sub,
    exp,
    expiresAtMs: (exp + toleranceSeconds) * 1000,
    cams: wildcard ? '*' : new Set(cams as string[]),
    role: role as Role,
  };
}

const badClaims = (detail: string) => new AuthError('UNAUTHORIZED', 'claims', detail);

export const canView = (p: Principal, camera: string): boolean => p.cams === '*' || p.cams.has(camera);
