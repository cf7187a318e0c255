import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  base64url,
  type CryptoKey,
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  type JWTPayload,
  SignJWT,
} from 'jose';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthError, type AuthFailure } from '../src/errors.js';
import { createMetrics } from '../src/metrics/metrics.js';
import {
  type AuthConfig,
  type Authenticator,
  assertAuthAllowedForHost,
  authConfigSchema,
  canView,
  createAuthenticator,
  extractToken,
  type Principal,
} from '../src/server/auth.js';
import { hasRole, logAuthFailure, recordAuthFailure, requireRole } from '../src/server/auth-guard.js';

const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';
const OTHER_SECRET = 'another-secret-that-is-also-32-bytes-or-more';
const now = () => Math.floor(Date.now() / 1000);
const claims = (extra: JWTPayload = {}): JWTPayload => ({
  sub: 'alice',
  exp: now() + 600,
  cams: ['front'],
  ...extra,
});

const dir = mkdtempSync(join(tmpdir(), 'framehub-auth-'));
const writeTmp = (name: string, text: string) => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};

async function sign(
  payload: JWTPayload,
  key: CryptoKey | Uint8Array,
  alg = 'HS256',
  kid?: string,
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', ...(kid ? { kid } : {}) }).sign(key);
}
const signHs = (payload: JWTPayload, secret = SECRET) => sign(payload, new TextEncoder().encode(secret));

/** Resolves the rejection reason; fails the test if `p` resolves. */
async function refusal(p: Promise<unknown>): Promise<AuthError> {
  const err = await p.then(
    (v) => {
      throw new Error(`expected a refusal, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  return err as AuthError;
}
/** The failing check is in `reason` (metrics, logs); the client-facing message never names it. */
async function expectUnauthorized(p: Promise<unknown>, reason: AuthFailure) {
  const err = await refusal(p);
  expect(err.code).toBe('UNAUTHORIZED');
  expect(err.status).toBe(401);
  expect(err.reason).toBe(reason);
  expect(err.message).toBe(reason === 'missing' ? 'missing token' : 'missing or invalid token');
  return err;
}
async function configError(p: Promise<unknown> | (() => unknown)) {
  const run = typeof p === 'function' ? Promise.resolve().then(p) : p;
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toMatchObject({ code: 'BAD_CONFIG' });
}

describe('hs256 authenticator', () => {
  let auth: Authenticator;
  beforeAll(async () => {
    auth = await createAuthenticator({ hs256Secret: SECRET });
  });

  it('accepts a valid token and builds the principal', async () => {
    const p = await auth.verify(await signHs(claims({ cams: ['front', 'back'], role: 'publisher' })));
    expect(auth.enabled).toBe(true);
    expect(p.sub).toBe('alice');
    expect(p.role).toBe('publisher');
    expect(p.cams).toEqual(new Set(['front', 'back']));
  });

  it('defaults role to viewer', async () => {
    expect((await auth.verify(await signHs(claims()))).role).toBe('viewer');
  });

  it('refuses a missing token', async () => {
    await expectUnauthorized(auth.verify(undefined), 'missing');
    await expectUnauthorized(auth.verify(''), 'missing');
  });

  it('refuses a malformed token', async () => {
    await expectUnauthorized(auth.verify('not.a.jwt'), 'malformed');
  });

  it('refuses an oversized token before decoding it', async () => {
    await expectUnauthorized(auth.verify('a'.repeat(10_000)), 'malformed');
  });

  it('refuses a token expired beyond the clock tolerance', async () => {
    await expectUnauthorized(auth.verify(await signHs(claims({ exp: now() - 60 }))), 'expired');
  });

  it('accepts a token expired within the clock tolerance', async () => {
    await expect(auth.verify(await signHs(claims({ exp: now() - 2 })))).resolves.toMatchObject({
      sub: 'alice',
    });
  });

  it('refuses a token signed with another secret', async () => {
    await expectUnauthorized(auth.verify(await signHs(claims(), OTHER_SECRET)), 'signature');
  });

  it('refuses alg none', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
    const body = base64url.encode(JSON.stringify(claims({ role: 'admin', cams: ['*'] })));
    await expectUnauthorized(auth.verify(`${header}.${body}.`), 'algorithm');
  });

  it('refuses an RS256 token when only HS256 is configured', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    await expectUnauthorized(auth.verify(await sign(claims(), privateKey, 'RS256')), 'algorithm');
  });

  it('refuses cams "*" as a bare string', async () => {
    await expectUnauthorized(auth.verify(await signHs(claims({ cams: '*' }))), 'claims');
  });

  it('refuses cams with an invalid camera id', async () => {
    await expectUnauthorized(auth.verify(await signHs(claims({ cams: ['front', '../etc'] }))), 'claims');
    await expectUnauthorized(auth.verify(await signHs(claims({ cams: [42] }))), 'claims');
  });

  it('refuses a token without cams', async () => {
    await expectUnauthorized(auth.verify(await signHs({ sub: 'alice', exp: now() + 600 })), 'claims');
  });

  it('refuses a token without sub', async () => {
    await expectUnauthorized(auth.verify(await signHs({ exp: now() + 600, cams: ['front'] })), 'claims');
  });

  it('refuses a token without exp', async () => {
    await expectUnauthorized(auth.verify(await signHs({ sub: 'alice', cams: ['front'] })), 'claims');
  });

  it('refuses an unknown role', async () => {
    await expectUnauthorized(auth.verify(await signHs(claims({ role: 'root' }))), 'claims');
    await expectUnauthorized(auth.verify(await signHs(claims({ role: ['admin'] }))), 'claims');
  });

  it('reads ["*"] as every camera', async () => {
    expect((await auth.verify(await signHs(claims({ cams: ['*'] })))).cams).toBe('*');
  });
});

describe('issuer and audience', () => {
  it('refuses a token for another issuer or audience', async () => {
    const auth = await createAuthenticator({ hs256Secret: SECRET, issuer: 'idp', audience: 'framehub' });
    await expect(auth.verify(await signHs(claims({ iss: 'idp', aud: 'framehub' })))).resolves.toBeDefined();
    await expectUnauthorized(auth.verify(await signHs(claims({ iss: 'evil', aud: 'framehub' }))), 'claims');
    await expectUnauthorized(auth.verify(await signHs(claims({ iss: 'idp', aud: 'other' }))), 'claims');
  });
});

describe('rs256 public key file', () => {
  let auth: Authenticator;
  let privateKey: CryptoKey;
  let pem: string;
  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    privateKey = pair.privateKey;
    pem = await exportSPKI(pair.publicKey);
    auth = await createAuthenticator({ publicKeyFile: writeTmp('rsa.pem', pem) });
  });

  it('accepts a valid RS256 token', async () => {
    await expect(auth.verify(await sign(claims(), privateKey, 'RS256'))).resolves.toMatchObject({
      sub: 'alice',
    });
  });

  it('refuses an HS256 token signed with the public key text (algorithm confusion)', async () => {
    await expectUnauthorized(auth.verify(await signHs(claims({ role: 'admin' }), pem)), 'algorithm');
  });

  it('refuses a private key file', async () => {
    const file = writeTmp('private.pem', await exportPKCS8(privateKey));
    await configError(createAuthenticator({ publicKeyFile: file }));
  });

  it('refuses a key file that is not PEM', async () => {
    await configError(createAuthenticator({ publicKeyFile: writeTmp('junk.pem', 'not a key') }));
  });

  it('refuses a missing key file', async () => {
    await configError(createAuthenticator({ publicKeyFile: join(dir, 'nope.pem') }));
  });

  it('refuses algorithms that do not match the key', async () => {
    await configError(
      createAuthenticator({ publicKeyFile: writeTmp('rsa2.pem', pem), algorithms: ['ES256'] }),
    );
    await configError(
      createAuthenticator({ publicKeyFile: writeTmp('rsa3.pem', pem), algorithms: ['HS256'] }),
    );
  });
});

describe('es256 jwks file', () => {
  let auth: Authenticator;
  let privateKey: CryptoKey;
  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    const encKey = await generateKeyPair('RSA-OAEP-256', { extractable: true });
    const jwks = {
      keys: [
        { ...(await exportJWK(pair.publicKey)), kid: 'k1', use: 'sig' },
        { ...(await exportJWK(encKey.publicKey)), kid: 'enc', use: 'enc' },
      ],
    };
    auth = await createAuthenticator({ jwksFile: writeTmp('jwks.json', JSON.stringify(jwks)) });
  });

  it('accepts a valid ES256 token and names the skipped key', async () => {
    await expect(auth.verify(await sign(claims(), privateKey, 'ES256', 'k1'))).resolves.toMatchObject({
      sub: 'alice',
    });
    expect(auth.description).toContain('skipped keys[1]');
  });

  it('refuses a token whose kid is not in the set', async () => {
    await expectUnauthorized(auth.verify(await sign(claims(), privateKey, 'ES256', 'k2')), 'key');
  });

  it('refuses a token signed by a key outside the set', async () => {
    const stranger = await generateKeyPair('ES256');
    await expectUnauthorized(
      auth.verify(await sign(claims(), stranger.privateKey, 'ES256', 'k1')),
      'signature',
    );
  });

  it('with two ES256 keys (rotation) accepts a token without kid signed by either, and refuses a stranger', async () => {
    const next = await generateKeyPair('ES256', { extractable: true });
    const current = await generateKeyPair('ES256', { extractable: true });
    const rotating = await createAuthenticator({
      jwksFile: writeTmp(
        'rotation.json',
        JSON.stringify({ keys: [await exportJWK(current.publicKey), await exportJWK(next.publicKey)] }),
      ),
    });
    for (const key of [current.privateKey, next.privateKey]) {
      await expect(rotating.verify(await sign(claims(), key, 'ES256'))).resolves.toMatchObject({
        sub: 'alice',
      });
    }
    const stranger = await generateKeyPair('ES256');
    await expectUnauthorized(
      rotating.verify(await sign(claims(), stranger.privateKey, 'ES256')),
      'signature',
    );
  });

  it('refuses a JWKS holding a private key', async () => {
    const jwks = { keys: [await exportJWK(privateKey)] };
    await configError(createAuthenticator({ jwksFile: writeTmp('private-jwks.json', JSON.stringify(jwks)) }));
  });

  it('refuses a JWKS file that is not JSON or has no keys', async () => {
    await configError(createAuthenticator({ jwksFile: writeTmp('bad.json', '{') }));
    await configError(createAuthenticator({ jwksFile: writeTmp('empty.json', '{"keys":[]}') }));
  });
});

describe('token lifetime', () => {
  const HOUR = 3600;
  let auth: Authenticator;
  beforeAll(async () => {
    auth = await createAuthenticator({ hs256Secret: SECRET, maxTokenLifetimeSeconds: HOUR });
  });

  it('defaults the cap to a day', () => {
    expect(authConfigSchema.parse({ hs256Secret: SECRET }).maxTokenLifetimeSeconds).toBe(86_400);
  });

  it('refuses a cap that is missing in effect or out of range', () => {
    for (const bad of [0, 59, 366 * 86_400 + 1, 1.5]) {
      expect(authConfigSchema.safeParse({ hs256Secret: SECRET, maxTokenLifetimeSeconds: bad }).success).toBe(
        false,
      );
    }
  });

  it('accepts exp at the cap and keeps the token exp in the principal', async () => {
    const exp = now() + HOUR;
    const p = await auth.verify(await signHs(claims({ exp, iat: now() })));
    expect(p.exp).toBe(exp);
  });

  it('refuses exp beyond the cap, with or without iat', async () => {
    await expectUnauthorized(auth.verify(await signHs(claims({ exp: now() + HOUR + 60 }))), 'lifetime');
    await expectUnauthorized(auth.verify(await signHs(claims({ exp: 1e20 }))), 'lifetime');
  });

  it('refuses exp - iat beyond the cap even when exp is near', async () => {
    await expectUnauthorized(
      auth.verify(await signHs(claims({ iat: now() - 2 * HOUR, exp: now() + 60 }))),
      'lifetime',
    );
  });

  it('refuses iat in the future beyond the clock tolerance, accepts it within', async () => {
    await expectUnauthorized(
      auth.verify(await signHs(claims({ iat: now() + 60, exp: now() + 600 }))),
      'issued_in_future',
    );
    await expect(auth.verify(await signHs(claims({ iat: now() + 2 })))).resolves.toBeDefined();
  });

  it('refuses nbf in the future beyond the clock tolerance, accepts it within', async () => {
    await expectUnauthorized(auth.verify(await signHs(claims({ nbf: now() + 60 }))), 'not_yet_valid');
    await expect(auth.verify(await signHs(claims({ nbf: now() + 2 })))).resolves.toBeDefined();
  });
});

describe('auth failure records', () => {
  const capture = () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    return { lines, log: pino({ level: 'debug' }, stream) };
  };

  it('logs the failing check and its detail but never the token', async () => {
    const auth = await createAuthenticator({ hs256Secret: SECRET });
    const token = await signHs(claims({ exp: now() - 60 }));
    const err = await refusal(auth.verify(token));
    const { lines, log } = capture();
    logAuthFailure(log, 'sse', err);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, transport: 'sse', reason: 'expired', code: 'UNAUTHORIZED' });
    expect(String(lines[0]!.detail)).toMatch(/exp/);
    expect(JSON.stringify(lines)).not.toContain(token.split('.')[2]);
  });

  it('logs a missing token at debug and an unknown error at error', () => {
    const { lines, log } = capture();
    logAuthFailure(log, 'ws', new AuthError('UNAUTHORIZED', 'missing'));
    logAuthFailure(log, 'ws', new TypeError('boom'));
    expect(lines.map((l) => [l.level, l.reason])).toEqual([
      [20, 'missing'],
      [50, 'internal'],
    ]);
  });

  it('requireRole refuses a bad token with 401 and a low role with 403, counting each reason', async () => {
    const metrics = createMetrics();
    const auth = await createAuthenticator({ hs256Secret: SECRET });
    const publisher = { token: await signHs(claims({ role: 'publisher' })), relayedBy: undefined };
    await expect(requireRole({ auth, metrics }, 'status', publisher, 'publisher')).resolves.toMatchObject({
      role: 'publisher',
    });
    await expect(requireRole({ auth, metrics }, 'status', publisher, 'admin')).rejects.toMatchObject({
      code: 'FORBIDDEN',
      status: 403,
      reason: 'forbidden',
      message: 'token does not allow this',
    });
    await expect(
      requireRole({ auth, metrics }, 'status', { token: 'not.a.jwt', relayedBy: undefined }, 'viewer'),
    ).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
      status: 401,
      reason: 'malformed',
    });
    const values = (await metrics.authFailures.get()).values.filter((v) => v.value > 0);
    // Sorted: every series exists from start, in label-values.ts order.
    expect(values.map((v) => [v.labels.transport, v.labels.reason, v.value]).sort()).toEqual([
      ['status', 'forbidden', 1],
      ['status', 'malformed', 1],
    ]);
  });

  it('counts the failure by transport and reason', async () => {
    const metrics = createMetrics();
    recordAuthFailure({ metrics }, 'sse', new AuthError('UNAUTHORIZED', 'lifetime'));
    recordAuthFailure({ metrics }, 'sse', new Error('not an auth error'));
    const values = (await metrics.authFailures.get()).values.filter((v) => v.value > 0);
    expect(values.map((v) => [v.labels.transport, v.labels.reason, v.value])).toEqual([
      ['sse', 'lifetime', 1],
      ['sse', 'internal', 1],
    ]);
  });
});

describe('auth off', () => {
  it('resolves an anonymous admin for any token', async () => {
    const auth = await createAuthenticator(undefined);
    expect(auth.enabled).toBe(false);
    const p = await auth.verify(undefined);
    expect(p).toMatchObject({ sub: 'anonymous', cams: '*', role: 'admin' });
  });
});

describe('permissions', () => {
  const principal = (cams: Principal['cams'], role: Principal['role'] = 'viewer'): Principal => ({
    sub: 'alice',
    cams,
    role,
    exp: now() + 600,
    expiresAtMs: (now() + 605) * 1000,
  });

  it('canView allows a listed camera', () => {
    expect(canView(principal(new Set(['front'])), 'front')).toBe(true);
  });

  it('canView refuses another camera', () => {
    expect(canView(principal(new Set(['front'])), 'back')).toBe(false);
  });

  it('canView allows every camera with the wildcard', () => {
    expect(canView(principal('*'), 'back')).toBe(true);
  });

  it('hasRole orders the roles viewer < publisher < admin', () => {
    const roles = ['viewer', 'publisher', 'admin'] as const;
    const table = roles.map((has) => roles.map((needed) => hasRole(principal('*', has), needed)));
    expect(table).toEqual([
      [true, false, false],
      [true, true, false],
      [true, true, true],
    ]);
  });

  it('FORBIDDEN carries 403 and keeps the detail out of the message', () => {
    const err = new AuthError('FORBIDDEN', 'forbidden', 'camera "back" is not in this token');
    expect(err).toMatchObject({
      code: 'FORBIDDEN',
      status: 403,
      reason: 'forbidden',
      message: 'token does not allow this',
      detail: 'camera "back" is not in this token',
    });
  });
});

describe('extractToken', () => {
  it('reads Authorization: Bearer', () => {
    expect(extractToken({ authorization: 'Bearer abc.def.ghi' })).toEqual({ token: 'abc.def.ghi' });
    expect(extractToken({ authorization: 'bearer  abc' }).token).toBe('abc');
  });

  it('ignores other Authorization schemes', () => {
    expect(extractToken({ authorization: 'Basic dXNlcjpwYXNz' }).token).toBeUndefined();
  });

  it('reads ?token=', () => {
    expect(extractToken({ query: 'topics=a&token=abc.def' }).token).toBe('abc.def');
    expect(extractToken({ query: '?token=xyz' }).token).toBe('xyz');
    expect(extractToken({ query: 'token=' }).token).toBeUndefined();
  });

  it('reads the bearer subprotocol and echoes the plain entry', () => {
    expect(extractToken({ protocols: 'framehub, framehub.bearer.abc.def' })).toEqual({
      token: 'abc.def',
      protocol: 'framehub',
    });
  });

  it('echoes the bearer entry when it is the only one offered', () => {
    expect(extractToken({ protocols: 'framehub.bearer.abc' })).toEqual({
      token: 'abc',
      protocol: 'framehub.bearer.abc',
    });
  });

  it('prefers the header, then the subprotocol, then the query', () => {
    const all = { authorization: 'Bearer h', protocols: 'framehub.bearer.p', query: 'token=q' };
    expect(extractToken(all).token).toBe('h');
    expect(extractToken({ ...all, authorization: undefined }).token).toBe('p');
    expect(extractToken({ query: 'token=q' }).token).toBe('q');
  });

  it('finds nothing when nothing is sent', () => {
    expect(extractToken({})).toEqual({});
  });
});

describe('assertAuthAllowedForHost', () => {
  const off = (host: string) => () => assertAuthAllowedForHost(host, undefined);

  it('allows auth off on 127.0.0.1', () => {
    expect(off('127.0.0.1')).not.toThrow();
    expect(off('127.8.9.10')).not.toThrow();
  });

  it('allows auth off on ::1 and localhost', () => {
    expect(off('::1')).not.toThrow();
    expect(off('[::1]')).not.toThrow();
    expect(off('localhost')).not.toThrow();
  });

  it('refuses auth off on 0.0.0.0', async () => {
    await configError(off('0.0.0.0'));
  });

  it('refuses auth off on other non-loopback hosts', async () => {
    for (const host of ['::', '192.168.1.10', 'example.com', 'localhost.example.com'])
      await configError(off(host));
  });

  it('allows 0.0.0.0 with a secret', () => {
    expect(() => assertAuthAllowedForHost('0.0.0.0', { hs256Secret: SECRET })).not.toThrow();
  });

  it('refuses a short secret', async () => {
    await configError(() => assertAuthAllowedForHost('0.0.0.0', { hs256Secret: 'short' }));
    await configError(() => assertAuthAllowedForHost('127.0.0.1', { hs256Secret: 'short' }));
    await configError(createAuthenticator({ hs256Secret: 'short' }));
  });

  it('refuses a section with no key or two keys', async () => {
    await configError(() => assertAuthAllowedForHost('0.0.0.0', {}));
    await configError(() =>
      assertAuthAllowedForHost('0.0.0.0', { hs256Secret: SECRET, jwksFile: '/x.json' } as AuthConfig),
    );
  });
});

describe('authConfigSchema', () => {
  it('fills the default clock tolerance', () => {
    expect(authConfigSchema.parse({ hs256Secret: SECRET }).clockToleranceSeconds).toBe(5);
  });

  it('refuses HS256 next to a public key', () => {
    const r = authConfigSchema.safeParse({ publicKeyFile: '/k.pem', algorithms: ['RS256', 'HS256'] });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['algorithms', 1]);
  });
});
