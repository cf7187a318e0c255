import { errors, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import { CAMERA_ID } from '../config/camera-id.js';
import { FramehubError } from '../errors.js';
import { type AuthConfig, resolveAuthConfig } from './auth-config.js';
import { loadVerifyKey, type VerifyKey } from './auth-keys.js';

export {
  AUTH_ALGORITHMS,
  type AuthAlgorithm,
  type AuthConfig,
  assertAuthAllowedForHost,
  authConfigSchema,
  isLoopbackHost,
  type ResolvedAuthConfig,
} from './auth-config.js';
export { BEARER_PROTOCOL_PREFIX, type ExtractedToken, extractToken, type TokenSource } from './auth-token.js';

export const ROLES = ['viewer', 'publisher', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who a verified token speaks for. `exp` is the JWT NumericDate (seconds since the epoch). */
export interface Principal {
  readonly sub: string;
  readonly cams: '*' | ReadonlySet<string>;
  readonly role: Role;
  readonly exp: number;
}

export type AuthErrorCode = 'UNAUTHORIZED' | 'FORBIDDEN';
/** Finer than the code, for logs and metrics; clients get the code. */
export type AuthFailure =
  | 'missing'
  | 'malformed'
  | 'expired'
  | 'signature'
  | 'algorithm'
  | 'key'
  | 'claims'
  | 'forbidden';

/**
 * UNAUTHORIZED (401): no usable token. FORBIDDEN (403): a valid token that does not cover
 * the camera or endpoint.
 *
 * @example
 *   if (!canView(principal, camera)) throw new AuthError('FORBIDDEN', `camera "${camera}" is not in this token`);
 */
export class AuthError extends FramehubError {
  declare readonly code: AuthErrorCode;

  constructor(
    code: AuthErrorCode,
    message: string,
    readonly reason: AuthFailure = code === 'FORBIDDEN' ? 'forbidden' : 'malformed',
  ) {
    super(code, message, code === 'FORBIDDEN' ? 403 : 401);
  }
}

/** The failing check of a refused token, for the auth-failure metric and logs (never the client). */
export function authReason(err: unknown): AuthFailure | 'internal' {
  return err instanceof AuthError ? err.reason : 'internal';
}

export interface Authenticator {
  readonly enabled: boolean;
  /** One line for the start-up log naming the key source. */
  readonly description: string;
  /**
   * Resolves the token's Principal or rejects with AuthError UNAUTHORIZED. When auth is off,
   * resolves an all-access anonymous admin whatever the token. Call once per connection or
   * request, never per frame.
   */
  verify(token: string | undefined): Promise<Principal>;
}

const ANONYMOUS: Principal = Object.freeze({
  sub: 'anonymous',
  cams: '*',
  role: 'admin',
  exp: Number.POSITIVE_INFINITY,
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
  return {
    enabled: true,
    description,
    async verify(token) {
      if (!token) throw new AuthError('UNAUTHORIZED', 'missing token', 'missing');
      if (token.length > MAX_TOKEN_LENGTH) {
        throw new AuthError('UNAUTHORIZED', `token longer than ${MAX_TOKEN_LENGTH} characters`, 'malformed');
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await verifyWithAnyKey(token, key, options));
      } catch (err) {
        throw fromJose(err, algorithms);
      }
      return principalFrom(payload);
    },
  };
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

/** Maps jose's refusals to UNAUTHORIZED; anything else is a bug and is rethrown untouched. */
function fromJose(err: unknown, algorithms: readonly string[]): unknown {
  if (!(err instanceof errors.JOSEError)) return err;
  switch (err.code) {
    case errors.JWTExpired.code:
      return new AuthError('UNAUTHORIZED', 'token expired', 'expired');
    case errors.JWSSignatureVerificationFailed.code:
      return new AuthError('UNAUTHORIZED', 'token signature does not verify', 'signature');
    case errors.JOSEAlgNotAllowed.code:
    case errors.JOSENotSupported.code:
      return new AuthError(
        'UNAUTHORIZED',
        `token alg not allowed (allowed: ${algorithms.join(', ')})`,
        'algorithm',
      );
    case errors.JWKSNoMatchingKey.code:
      return new AuthError('UNAUTHORIZED', 'no configured key matches the token kid/alg', 'key');
    case errors.JWTClaimValidationFailed.code:
      return new AuthError('UNAUTHORIZED', `token claims: ${err.message}`, 'claims');
    default:
      return new AuthError('UNAUTHORIZED', `malformed token: ${err.message}`, 'malformed');
  }
}

/**
 * `cams` must be a list: `["*"]` is the wildcard, and a bare `"*"` string is refused rather
 * than read as "everything", so a claim of the wrong shape can never widen access.
 */
function principalFrom(payload: JWTPayload): Principal {
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
  return { sub, exp, cams: wildcard ? '*' : new Set(cams as string[]), role: role as Role };
}

const badClaims = (message: string) => new AuthError('UNAUTHORIZED', `token claims: ${message}`, 'claims');

export const canView = (p: Principal, camera: string): boolean => p.cams === '*' || p.cams.has(camera);

export const isAdmin = (p: Principal): boolean => p.role === 'admin';

/** Pushing frames or audio needs the publisher (or admin) role and the camera in `cams`. */
export const canPublish = (p: Principal, camera: string): boolean =>
  (p.role === 'publisher' || p.role === 'admin') && canView(p, camera);
