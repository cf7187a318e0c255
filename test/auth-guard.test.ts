/**
 * One auth gate for every route family: token → 401 (WebSocket close 4001) → role → 403
 * (close 4003), each refusal counted once in framehub_auth_failures_total{transport, reason}.
 * A camera outside the token's `cams` is refused per topic (403, or a FORBIDDEN record inside
 * a WebSocket), after the gate: it is not an auth failure and is not counted there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack, type RunningDaemon, startDaemon, testCamera, Viewer } from './helpers.js';
import { authFailureCounts, signToken, TEST_SECRET } from './support/auth.js';

let daemon: RunningDaemon;
const tokens: Record<'lobbyViewer' | 'allViewer' | 'garbage', string> = {
  lobbyViewer: '',
  allViewer: '',
  garbage: 'not.a.jwt',
};

beforeAll(async () => {
  daemon = await startDaemon({
    cameras: [testCamera('lobby', 5), testCamera('vault', 5), { id: 'feed', source: 'push' }],
    auth: { hs256Secret: TEST_SECRET },
    ws: { authTimeoutMs: 300 },
  });
  tokens.lobbyViewer = await signToken({ cams: ['lobby'] });
  tokens.allViewer = await signToken({ cams: ['*'] });
});
afterAll(async () => {
  await daemon?.stop();
});

const authFailures = async () => authFailureCounts(await (await fetch(`${daemon.url}/metrics`)).text());

const bearer = (token: string | undefined): Record<string, string> =>
  token === undefined ? {} : { authorization: `Bearer ${token}` };

async function http(path: string, token: string | undefined, init: RequestInit = {}): Promise<string> {
  const res = await fetch(`${daemon.url}${path}`, {
    ...init,
    headers: { ...bearer(token), ...(init.headers as Record<string, string>) },
  });
  const body = (await res.json()) as { error?: { code: string } };
  return `${res.status} ${body.error?.code ?? 'OK'}`;
}

async function wsClose(path: string, token: string | undefined): Promise<string> {
  const query = token === undefined ? '' : `${path.includes('?') ? '&' : '?'}token=${token}`;
  const v = new Viewer(`${daemon.url.replace('http', 'ws')}${path}${query}`);
  const { code } = await v.closed;
  return `close ${code}`;
}

interface Family {
  name: string;
  transport: string;
  attempt(token: string | undefined): Promise<string>;
  /** The 403 case: a valid token that is not enough, what it gets, and its counted reason. */
  forbidden: { token: keyof typeof tokens; outcome: string; reason: string | undefined };
  /** What no token gets (and its reason): /ws waits for a hello first. */
  missing?: { outcome: string; reason: string };
}

const json = { 'content-type': 'application/json' };
const FAMILIES: Family[] = [
  {
    name: 'status',
    transport: 'status',
    attempt: (t) => http('/api/v1/status', t),
    forbidden: { token: 'allViewer', outcome: '403 FORBIDDEN', reason: 'forbidden' },
  },
  {
    name: 'notices',
    transport: 'notices',
    attempt: (t) =>
      http('/api/v1/notices', t, { method: 'POST', headers: json, body: JSON.stringify({ message: 'hi' }) }),
    forbidden: { token: 'allViewer', outcome: '403 FORBIDDEN', reason: 'forbidden' },
  },
  {
    name: 'jobs (submit)',
    transport: 'jobs',
    attempt: (t) => http('/api/v1/jobs/audio?format=s16le&rate=16000', t, { method: 'POST', body: 'xx' }),
    forbidden: { token: 'allViewer', outcome: '403 FORBIDDEN', reason: 'forbidden' },
  },
  {
    name: 'jobs (read)',
    transport: 'jobs',
    attempt: (t) => http('/api/v1/jobs/00000000-0000-0000-0000-000000000000', t),
    // Any valid token may read a job: a viewer passes the gate and finds no such job.
    forbidden: { token: 'lobbyViewer', outcome: '404 NOT_FOUND', reason: undefined },
  },
  // The HTTP viewers: any role passes the gate; a camera outside `cams` is refused after it.
  ...(
    [
      ['sse', '/sse?topics=cam/vault/low'],
      ['mjpeg', '/cams/vault/low.mjpeg'],
      ['snapshot', '/cams/vault/low.jpg'],
    ] as const
  ).map(
    ([transport, path]): Family => ({
      name: transport,
      transport,
      attempt: (t) => http(path, t),
      forbidden: { token: 'lobbyViewer', outcome: '403 FORBIDDEN', reason: undefined },
    }),
  ),
  {
    name: 'ws upgrade',
    transport: 'ws',
    async attempt(t) {
      if (t !== tokens.lobbyViewer) return wsClose('/ws', t);
      const v = new Viewer(`${daemon.wsUrl}?token=${t}`);
      await v.opened;
      v.send({ type: 'sub', topics: ['cam/vault/low'] });
      await v.until((r) => r.some((x) => x.type === 'error'));
      v.close();
      return `record ${v.of('error')[0]!.code}`;
    },
    forbidden: { token: 'lobbyViewer', outcome: 'record FORBIDDEN', reason: undefined },
    // No token at the upgrade may still come in `hello`; none in time is the refusal.
    missing: { outcome: 'close 4001', reason: 'timeout' },
  },
  {
    name: 'publish',
    transport: 'publish',
    attempt: (t) => wsClose('/publish', t),
    forbidden: { token: 'allViewer', outcome: 'close 4003', reason: 'forbidden' },
  },
];

describe('the auth gate, per route family (auth on)', () => {
  for (const family of FAMILIES) {
    const unauthorized =
      family.transport === 'ws' || family.transport === 'publish' ? 'close 4001' : '401 UNAUTHORIZED';
    const cases: [string, () => string | undefined, string, string | undefined][] = [
      [
        'no token',
        () => undefined,
        family.missing?.outcome ?? unauthorized,
        family.missing?.reason ?? 'missing',
      ],
      ['a malformed token', () => tokens.garbage, unauthorized, 'malformed'],
      [
        `the ${family.forbidden.token} token`,
        () => tokens[family.forbidden.token],
        family.forbidden.outcome,
        family.forbidden.reason,
      ],
    ];
    for (const [what, token, outcome, reason] of cases) {
      it(`${family.name}: ${what} gets ${outcome}, counted as ${reason ?? 'no auth failure'}`, async () => {
        const before = await authFailures();
        expect(await family.attempt(token())).toBe(outcome);
        const after = await authFailures();
        const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
        const ofTransport = [...after.keys()].filter((k) => k.startsWith(`${family.transport}/`));
        // Exactly one count, under the right reason: never twice, never under another label.
        expect(ofTransport.reduce((sum, k) => sum + delta(k), 0)).toBe(reason ? 1 : 0);
        if (reason) expect(delta(`${family.transport}/${reason}`)).toBe(1);
      });
    }
  }
});

describe('after the gate', () => {
  it('a publisher token publishes to its camera, and an admin token reads the status', async () => {
    const publisher = await signToken({ cams: ['feed'], role: 'publisher' });
    const pub = new Viewer(`${daemon.url.replace('http', 'ws')}/publish?token=${publisher}`);
    await pub.opened;
    pub.ws.send(pack({ type: 'ping', id: 7 }));
    await pub.until((r) => r.some((x) => x.type === 'pong'));
    pub.close();
    const admin = await signToken({ cams: ['*'], role: 'admin' });
    expect(await http('/api/v1/status', admin)).toBe('200 OK');
  });
});
