/**
 * The JWT part of the hostile-input corpus (issue #8): tokens an attacker would try, each run
 * against createAuthenticator and then against a running daemon on every transport that takes
 * a token. Each must be refused with the failing check in the metric's `reason` label while the
 * client sees only the generic text. The run's outcomes go to test/.reliability/auth-hostile.json
 * for the generated test/RELIABILITY.md.
 */
import { createHmac, createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_CLIENT_MESSAGES, AuthError, type AuthFailure } from '../src/errors.js';
import { type AuthConfig, type Authenticator, createAuthenticator } from '../src/server/auth.js';
import { type RunningDaemon, root, startDaemon, Viewer } from './helpers.js';
import { authFailureCounts } from './support/auth.js';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'framehub';
const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';
const DAY = 86_400;
const now = () => Math.floor(Date.now() / 1000);

// The daemon's RS256 key (in its JWKS as kid "k1") and an attacker's key of the same kind.
const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const daemonKey = rsa();
const attackerKey = rsa();
const publicPem = daemonKey.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const jwk = (key: KeyObject, kid: string) => ({
  ...key.export({ format: 'jwk' }),
  kid,
  use: 'sig',
  alg: 'RS256',
});

const dir = mkdtempSync(join(tmpdir(), 'framehub-auth-hostile-'));
const jwksFile = join(dir, 'jwks.json');
writeFileSync(jwksFile, JSON.stringify({ keys: [jwk(daemonKey.publicKey, 'k1')] }));

/** Both daemons run with the default token lifetime cap (a day), so the cases below test it. */
const CONFIGS = {
  rs: { jwksFile, issuer: ISSUER, audience: AUDIENCE },
  hs: { hs256Secret: SECRET },
} satisfies Record<string, AuthConfig>;
type Target = keyof typeof CONFIGS;

// Tokens are built by hand, not with jose's SignJWT, which refuses to sign some of these.
const segment = (v: unknown) =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
type Signer = (input: string) => Buffer;
const hmac =
  (secret: string): Signer =>
  (input) =>
    createHmac('sha256', secret).update(input).digest();
const rs256 =
  (key: KeyObject): Signer =>
  (input) =>
    createSign('RSA-SHA256').update(input).sign(key);
const noSignature: Signer = () => Buffer.alloc(0);

function jws(header: unknown, payload: unknown, sign: Signer): string {
  const input = `${segment(header)}.${segment(payload)}`;
  return `${input}.${sign(input).toString('base64url')}`;
}

/** What an attacker wants: every camera, admin, for a plausible hour. */
const claims = (extra: Record<string, unknown> = {}) => ({
  sub: 'mallory',
  cams: ['*'],
  role: 'admin',
  iss: ISSUER,
  aud: AUDIENCE,
  iat: now(),
  exp: now() + 600,
  ...extra,
});
const RS = { alg: 'RS256', typ: 'JWT', kid: 'k1' };
const HS = { alg: 'HS256', typ: 'JWT' };
/** Signed by the daemon's own key: refused only for the claim under test. */
const genuine = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = RS) =>
  jws(header, claims(extra), rs256(daemonKey.privateKey));

/** A listener standing in for an attacker's key server; a jku/x5u header points at it. */
let keyServer: Server;
let keyServerUrl = '';
let keyServerConnections = 0;

interface HostileCase {
  name: string;
  target: Target;
  token: () => string | undefined;
  reason: AuthFailure;
}

const CASES: HostileCase[] = [
  { name: 'no token at all', target: 'rs', token: () => undefined, reason: 'missing' },
  {
    name: 'alg "none" with an empty signature',
    target: 'rs',
    token: () => jws({ alg: 'none', typ: 'JWT' }, claims(), noSignature),
    reason: 'algorithm',
  },
  {
    name: 'alg "none" on the HS256 daemon',
    target: 'hs',
    token: () => jws({ alg: 'none' }, claims(), noSignature),
    reason: 'algorithm',
  },
  {
    name: 'HS256 signed with the RS256 public key PEM (algorithm confusion)',
    target: 'rs',
    token: () => jws({ ...HS, kid: 'k1' }, claims(), hmac(publicPem)),
    reason: 'algorithm',
  },
  {
    name: 'RS256 token against an HS256 config',
    target: 'hs',
    token: () => genuine({}, { alg: 'RS256', typ: 'JWT' }),
    reason: 'algorithm',
  },
  {
    name: 'signed by a key outside the JWKS under its kid',
    target: 'rs',
    token: () => jws(RS, claims(), rs256(attackerKey.privateKey)),
    reason: 'signature',
  },
  {
    name: 'expired an hour ago',
    target: 'rs',
    token: () => genuine({ exp: now() - 3600 }),
    reason: 'expired',
  },
  {
    name: 'not valid for another hour (nbf)',
    target: 'rs',
    token: () => genuine({ nbf: now() + 3600, exp: now() + 7200 }),
    reason: 'not_yet_valid',
  },
  {
    name: 'issued an hour in the future (iat)',
    target: 'rs',
    token: () => genuine({ iat: now() + 3600, exp: now() + 7200 }),
    reason: 'issued_in_future',
  },
  { name: 'exp = 1e20', target: 'rs', token: () => genuine({ exp: 1e20 }), reason: 'lifetime' },
  {
    name: 'exp a day and an hour ahead (over the default cap)',
    target: 'rs',
    token: () => genuine({ exp: now() + DAY + 3600 }),
    reason: 'lifetime',
  },
  {
    name: 'exp - iat over the cap though exp is near',
    target: 'rs',
    token: () => genuine({ iat: now() - 2 * DAY, exp: now() + 600 }),
    reason: 'lifetime',
  },
  {
    name: 'exp 1e400 (JSON Infinity) on the HS256 daemon',
    target: 'hs',
    token: () => {
      const input = `${segment(HS)}.${segment(`{"sub":"m","cams":["*"],"exp":1e400}`)}`;
      return `${input}.${hmac(SECRET)(input).toString('base64url')}`;
    },
    reason: 'lifetime',
  },
  { name: 'wrong aud', target: 'rs', token: () => genuine({ aud: 'another-service' }), reason: 'claims' },
  { name: 'wrong iss', target: 'rs', token: () => genuine({ iss: 'https://evil.test' }), reason: 'claims' },
  {
    name: 'kid naming a key that is not in the JWKS',
    target: 'rs',
    token: () => genuine({}, { ...RS, kid: 'k2' }),
    reason: 'key',
  },
  {
    name: 'kid with path traversal (../../etc/passwd)',
    target: 'rs',
    token: () => genuine({}, { ...RS, kid: '../../etc/passwd' }),
    reason: 'key',
  },
  {
    name: 'kid pointing at /dev/null, HMAC with an empty key',
    target: 'hs',
    token: () => jws({ ...HS, kid: '../../../../../dev/null' }, claims(), hmac('')),
    reason: 'signature',
  },
  {
    name: 'jku header pointing at a local key server, with its kid',
    target: 'rs',
    token: () =>
      jws(
        { ...RS, kid: 'attacker', jku: `${keyServerUrl}/jwks.json` },
        claims(),
        rs256(attackerKey.privateKey),
      ),
    reason: 'key',
  },
  {
    name: 'x5u header pointing at a local key server, no kid',
    target: 'rs',
    token: () =>
      jws({ alg: 'RS256', x5u: `${keyServerUrl}/cert.pem` }, claims(), rs256(attackerKey.privateKey)),
    reason: 'signature',
  },
  {
    name: 'the attacker key embedded in the header (jwk)',
    target: 'rs',
    token: () =>
      jws(
        { alg: 'RS256', jwk: jwk(attackerKey.publicKey, 'attacker') },
        claims(),
        rs256(attackerKey.privateKey),
      ),
    reason: 'signature',
  },
  {
    name: 'an unknown crit extension',
    target: 'rs',
    token: () => genuine({}, { ...RS, crit: ['x-framehub'], 'x-framehub': 1 }),
    reason: 'malformed',
  },
  {
    name: 'a 9 KB token with a genuine signature',
    target: 'rs',
    token: () => genuine({ pad: 'x'.repeat(9 * 1024) }),
    reason: 'malformed',
  },
  {
    name: 'invalid base64 in the header segment',
    target: 'rs',
    token: () => `!!!*.${segment(claims())}.c2ln`,
    reason: 'malformed',
  },
  {
    name: 'a header that is not JSON',
    target: 'rs',
    token: () => `${segment('{"alg":"RS256"')}.${segment(claims())}.c2ln`,
    reason: 'malformed',
  },
  {
    name: 'a correctly signed payload that is not JSON',
    target: 'hs',
    token: () => {
      const input = `${segment(HS)}.${segment('{"sub":"mallory","cams":')}`;
      return `${input}.${hmac(SECRET)(input).toString('base64url')}`;
    },
    reason: 'malformed',
  },
  {
    name: 'two segments only',
    target: 'rs',
    token: () => `${segment(RS)}.${segment(claims())}`,
    reason: 'malformed',
  },
  { name: 'cams as the string "*"', target: 'rs', token: () => genuine({ cams: '*' }), reason: 'claims' },
  { name: 'cams as an object', target: 'rs', token: () => genuine({ cams: { 0: '*' } }), reason: 'claims' },
  { name: 'cams holding a number', target: 'rs', token: () => genuine({ cams: [1] }), reason: 'claims' },
  { name: 'role not in the list', target: 'rs', token: () => genuine({ role: 'root' }), reason: 'claims' },
  { name: 'role as an array', target: 'rs', token: () => genuine({ role: ['admin'] }), reason: 'claims' },
];

const clientMessage = (reason: AuthFailure) =>
  reason === 'missing' ? AUTH_CLIENT_MESSAGES.MISSING : AUTH_CLIENT_MESSAGES.UNAUTHORIZED;

beforeAll(async () => {
  keyServer = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk(attackerKey.publicKey, 'attacker')] }));
  });
  keyServer.on('connection', () => {
    keyServerConnections++;
  });
  await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
  keyServerUrl = `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => keyServer?.close(resolve));
});

describe('hostile JWTs against createAuthenticator', () => {
  const auth = {} as Record<Target, Authenticator>;
  beforeAll(async () => {
    auth.rs = await createAuthenticator(CONFIGS.rs);
    auth.hs = await createAuthenticator(CONFIGS.hs);
  });

  it('accepts the genuine token of each config (the cases below differ from it in one point)', async () => {
    await expect(auth.rs.verify(genuine())).resolves.toMatchObject({ sub: 'mallory', role: 'admin' });
    await expect(auth.hs.verify(jws(HS, claims(), hmac(SECRET)))).resolves.toMatchObject({ sub: 'mallory' });
  });

  for (const c of CASES) {
    it(`refuses ${c.name}: reason ${c.reason}, generic message`, async () => {
      const err = await auth[c.target].verify(c.token()).then(
        () => expect.fail('token accepted'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AuthError);
      expect(err).toMatchObject({ code: 'UNAUTHORIZED', status: 401, reason: c.reason });
      expect((err as AuthError).message).toBe(clientMessage(c.reason));
      if (c.reason !== 'missing') expect((err as AuthError).detail).not.toBe('');
    });
  }
});

/** One transport's answer as the client sees it. */
interface Seen {
  outcome: string;
  message: string | undefined;
}

/** Auth failures by `transport/reason`, from /metrics. */
async function authFailures(d: RunningDaemon): Promise<Map<string, number>> {
  return authFailureCounts(await (await fetch(`${d.url}/metrics`)).text());
}

/** Settles p, or fails naming `what` after ms (a token that was accepted never closes the socket). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function httpSeen(res: Response): Promise<Seen> {
  const body = JSON.parse(await res.text()) as { error?: { code: string; message: string } };
  expect(Object.keys(body.error ?? {}).sort()).toEqual(['code', 'message']); // nothing else leaks
  return { outcome: `${body.error?.code}/${res.status}`, message: body.error?.message };
}

const bearer = (token: string | undefined): Record<string, string> =>
  token === undefined ? {} : { authorization: `Bearer ${token}` };

/** Each transport that takes a token; `counted` ones must show the refusal in the metric. */
const TRANSPORTS: {
  name: string;
  counted: string | undefined;
  try(d: RunningDaemon, t?: string): Promise<Seen>;
}[] = [
  {
    name: 'ws hello',
    counted: 'ws',
    async try(d, token) {
      const v = new Viewer(d.wsUrl);
      await v.opened;
      v.send({ type: 'hello', token: token ?? '' });
      const { code, reason } = await within(v.closed, 5000, 'ws hello');
      return { outcome: code === 4001 ? 'UNAUTHORIZED/4001' : `WS/${code}`, message: reason };
    },
  },
  {
    name: 'sse',
    counted: 'sse',
    async try(d, token) {
      const ctl = new AbortController();
      const query = token === undefined ? '' : `&token=${encodeURIComponent(token)}`;
      const res = await fetch(`${d.url}/sse?topics=system${query}`, { signal: ctl.signal });
      if (res.status === 200) {
        ctl.abort();
        return { outcome: 'accepted/200', message: undefined };
      }
      return httpSeen(res);
    },
  },
  {
    name: 'status',
    counted: 'status',
    async try(d, token) {
      return httpSeen(await fetch(`${d.url}/api/v1/status`, { headers: bearer(token) }));
    },
  },
  {
    name: 'notices',
    counted: 'notices',
    async try(d, token) {
      return httpSeen(
        await fetch(`${d.url}/api/v1/notices`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...bearer(token) },
          body: JSON.stringify({ message: 'pwned' }),
        }),
      );
    },
  },
];

describe('hostile JWTs against a running daemon', () => {
  const daemons = {} as Record<Target, RunningDaemon>;
  const outcomes: Record<string, number> = {};
  const reasons: Record<string, number> = {};
  let attempts = 0;
  let daemonUp = false;
  const sent: string[] = [];

  beforeAll(async () => {
    const start = (auth: AuthConfig) => startDaemon({ cameras: [{ id: 'feed', source: 'push' }], auth });
    [daemons.rs, daemons.hs] = await Promise.all([start(CONFIGS.rs), start(CONFIGS.hs)]);
  });
  afterAll(async () => {
    await Promise.all(Object.values(daemons).map((d) => d.stop()));
    if (attempts === 0) return;
    const out = join(root, 'test', '.reliability');
    mkdirSync(out, { recursive: true });
    const summary = { class: 'JWT', cases: attempts, outcomes, daemonUp, tokens: CASES.length, reasons };
    writeFileSync(join(out, 'auth-hostile.json'), `${JSON.stringify(summary, null, 2)}\n`);
  });

  for (const c of CASES) {
    it(`refuses ${c.name} on ws, sse, status and notices with only the generic text`, async () => {
      const d = daemons[c.target];
      const token = c.token();
      if (token) sent.push(token);
      const before = await authFailures(d);
      for (const t of TRANSPORTS) {
        const seen = await t.try(d, token);
        attempts++;
        outcomes[seen.outcome] = (outcomes[seen.outcome] ?? 0) + 1;
        expect(seen, t.name).toEqual({
          outcome: t.name === 'ws hello' ? 'UNAUTHORIZED/4001' : 'UNAUTHORIZED/401',
          message: clientMessage(c.reason),
        });
      }
      const after = await authFailures(d);
      for (const t of TRANSPORTS) {
        if (!t.counted) continue;
        const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
        expect(delta(`${t.counted}/${c.reason}`), `${t.counted} reason=${c.reason}`).toBe(1);
        const all = [...after.keys()].filter((k) => k.startsWith(`${t.counted}/`));
        expect(
          all.reduce((sum, k) => sum + delta(k), 0),
          `${t.counted} failures in all`,
        ).toBe(1);
        reasons[c.reason] = (reasons[c.reason] ?? 0) + 1;
      }
    });
  }

  it('logs each refusal with its failing check and detail, and never a token', async () => {
    // pino writes through libuv's thread pool: the last lines may land after the last answer.
    const logged = (transport: string) =>
      [...daemons.rs.logs, ...daemons.hs.logs].filter(
        (l) => l.msg === 'auth refused' && l.transport === transport,
      ).length;
    const allIn = () => ['sse', 'notices', 'status'].every((t) => logged(t) >= CASES.length - 1);
    for (let waited = 0; !allIn() && waited < 20_000; waited += 50)
      await new Promise((r) => setTimeout(r, 50));
    const logs = [...daemons.rs.logs, ...daemons.hs.logs];
    const refused = logs.filter((l) => l.msg === 'auth refused');
    // Every case but "no token" (logged at debug), once per counted HTTP transport.
    expect(refused.filter((l) => l.transport === 'sse')).toHaveLength(CASES.length - 1);
    expect(refused.filter((l) => l.transport === 'notices')).toHaveLength(CASES.length - 1);
    expect(refused.filter((l) => l.transport === 'status')).toHaveLength(CASES.length - 1);
    expect(refused.find((l) => l.transport === 'sse' && l.reason === 'lifetime')?.detail).toMatch(/exp/);
    const text = logs.map((l) => JSON.stringify(l)).join('\n');
    for (const token of sent) {
      for (const part of token.split('.').filter((p) => p.length >= 20)) expect(text).not.toContain(part);
    }
  });

  it('never contacted the key server named in jku and x5u', () => {
    expect(keyServerUrl).not.toBe('');
    expect(keyServerConnections).toBe(0);
  });

  it('stays up and still serves a genuine token on both daemons', async () => {
    for (const [target, token] of [
      ['rs', genuine()],
      ['hs', jws(HS, claims(), hmac(SECRET))],
    ] as const) {
      const d = daemons[target];
      expect(d.proc.exitCode).toBeNull();
      expect((await fetch(`${d.url}/healthz`)).status).toBe(200);
      const v = new Viewer(d.wsUrl);
      await v.opened;
      v.send({ type: 'hello', token });
      await v.until((r) => r.some((x) => x.type === 'hello'));
      expect(v.of('hello')[0]).toMatchObject({ sub: 'mallory', role: 'admin', cams: ['*'] });
      v.close();
      const status = await fetch(`${d.url}/api/v1/status`, { headers: bearer(token) });
      expect(status.status).toBe(200);
    }
    daemonUp = true;
  });
});
