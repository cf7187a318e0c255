import { SignJWT } from 'jose';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MsgpackRefusedError } from '../src/errors.js';
import { decodeUntrusted } from '../src/wire/records.js';
import { get, metricValue, noiseJpeg, pack, type RunningDaemon, startDaemon, Viewer } from './helpers.js';

/**
 * Issue #8 finding 1 and its neighbours: single messages that once ended the daemon, before or
 * after auth, on /ws and /publish; tokenless sockets that took viewer slots (finding 6); the
 * sub/unsub loop that re-sent cached frames without limit (finding 8); NaN audio (finding 11).
 */
const SECRET = 'hostile-records-test-secret-of-32-bytes!';
const key = new TextEncoder().encode(SECRET);
const token = (role: string) =>
  new SignJWT({ cams: ['*'], role })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('t')
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(key);

/** Bytes of `{type:'ping', id: <value bytes>}` with the id spliced in as raw msgpack. */
const pingWithRawId = (id: Uint8Array) =>
  Buffer.concat([Buffer.from([0x82]), pack('type'), pack('ping'), pack('id'), Buffer.from(id)]);

const bigIntId = () => new Packr({ useBigIntExtension: true } as never).pack({ type: 'ping', id: 2n ** 70n });
const cycleId = () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  return new Packr({ structuredClone: true }).pack({ type: 'ping', id: cyclic });
};
const deepId = (depth: number) =>
  pingWithRawId(Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]));
const hugeArray = () => pingWithRawId(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]));
const throwingName = { toString: 1, valueOf: 1 };
/** Wide on purpose: these suites share 2 cores with daemons, ffmpeg and Chromium. */
const WAIT = 20_000;

describe('decodeUntrusted', () => {
  it('refuses extensions, deep nesting, lying lengths and trailing bytes; accepts plain records', () => {
    for (const bytes of [bigIntId(), cycleId(), deepId(3000), deepId(5), hugeArray()]) {
      expect(() => decodeUntrusted(bytes)).toThrow(MsgpackRefusedError);
    }
    expect(() => decodeUntrusted(Buffer.concat([pack({ type: 'ping' }), Buffer.from([0xc0])]))).toThrow(
      /trailing/,
    );
    // Honest lengths, but 100,000 one-byte values: seconds of decoding and hundreds of MB of heap.
    const manyMaps = Buffer.concat([Buffer.from([0xdd, 0, 1, 0x86, 0xa0]), Buffer.alloc(100_000, 0x80)]);
    expect(() => decodeUntrusted(manyMaps)).toThrow(/more than 4096 values/);
    const record = { type: 'hello', token: 'x', resume: { 'cam/a/vad': 3 }, n: 2 ** 40 };
    expect(decodeUntrusted(pack(record))).toEqual(record);
    // A uint64 decodes as a number (never a BigInt that cannot be re-encoded).
    expect(
      typeof (
        decodeUntrusted(pingWithRawId(Buffer.from([0xcf, 0xff, 0, 0, 0, 0, 0, 0, 1]))) as { id: unknown }
      ).id,
    ).toBe('number');
  });
});

describe('single hostile messages (auth on)', () => {
  let daemon: RunningDaemon;
  let publisherToken: string;
  let viewerToken: string;
  const wsUrl = () => daemon.wsUrl;
  const publishUrl = () => `${daemon.url.replace('http', 'ws')}/publish`;

  beforeAll(async () => {
    [publisherToken, viewerToken] = await Promise.all([token('publisher'), token('viewer')]);
    daemon = await startDaemon(
      {
        host: '127.0.0.1',
        cameras: [
          { id: 'p1', source: 'push', fps: 30 },
          { id: 'a1', source: 'push', fps: 30, audio: false },
        ],
        ws: { subscribeRatePerSecond: 5, subscribeBurst: 10 },
        auth: { clockToleranceSeconds: 0 },
      },
      [],
      { FRAMEHUB_AUTH_HS256_SECRET: SECRET },
    );
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  const alive = async () => {
    expect(daemon.proc.exitCode).toBeNull();
    expect((await get(`${daemon.url}/healthz`)).status).toBe(200);
  };

  /** Sends raw bytes and waits for the error record answering them. */
  const expectError = async (v: Viewer, bytes: Uint8Array, code: string) => {
    const before = v.of('error').length;
    v.ws.send(bytes);
    await v.until(() => v.of('error').length > before, WAIT);
    expect(v.of('error').at(-1)?.code).toBe(code);
  };

  it('answers a BigInt id, a structured-clone cycle and 3,000-deep arrays with BAD_MESSAGE before auth', async () => {
    const v = new Viewer(wsUrl());
    await v.opened;
    for (const bytes of [bigIntId(), cycleId(), deepId(3000), deepId(4300), hugeArray()]) {
      await expectError(v, bytes, 'BAD_MESSAGE');
    }
    // An id that decodes but is not a short string or a safe integer is not echoed.
    await expectError(v, pack({ type: 'ping', id: { a: 1 } }), 'BAD_MESSAGE');
    await expectError(v, pack({ type: 'ping', id: 'x'.repeat(65) }), 'BAD_MESSAGE');
    v.send({ type: 'ping', id: 'ok' });
    await v.until((r) => r.some((x) => x.type === 'pong' && x.id === 'ok'), WAIT);
    v.close();
    await alive();
  });

  it('answers topics and types with a throwing toString with BAD_TOPIC / BAD_MESSAGE after auth', async () => {
    const v = new Viewer(`${wsUrl()}?token=${viewerToken}`);
    await v.opened;
    await expectError(v, pack({ type: 'sub', topics: [throwingName] }), 'BAD_TOPIC');
    expect(v.of('error').at(-1)?.message).toBe('a object is not a valid topic');
    await expectError(v, pack({ type: throwingName }), 'BAD_MESSAGE');
    v.close();
    await alive();
  });

  it('keeps /publish alive through the same messages and throwing camera and type fields', async () => {
    const p = new Viewer(`${publishUrl()}?token=${publisherToken}`);
    await p.opened;
    for (const bytes of [bigIntId(), cycleId(), deepId(3000)]) await expectError(p, bytes, 'BAD_MESSAGE');
    await expectError(p, pack({ type: 'frame', camera: throwingName }), 'UNKNOWN_TOPIC');
    await expectError(p, pack({ type: throwingName, camera: 'p1' }), 'BAD_MESSAGE');
    await expectError(p, pack({ type: 'ping', id: [1, 2] }), 'BAD_MESSAGE');
    p.close();
    await alive();
  });

  it('refuses NaN and Infinity f32le samples on /publish with BAD_PCM_VALUES', async () => {
    const p = new Viewer(`${publishUrl()}?token=${publisherToken}`);
    await p.opened;
    const samples = new Float32Array(1600).fill(0.1);
    samples[7] = Number.NaN;
    const audio = (data: Float32Array) => ({
      type: 'audio',
      camera: 'a1',
      rate: 16000,
      format: 'f32le',
      data: new Uint8Array(data.buffer),
    });
    await expectError(p, pack(audio(samples)), 'BAD_PCM_VALUES');
    samples[7] = Number.POSITIVE_INFINITY;
    await expectError(p, pack(audio(samples)), 'BAD_PCM_VALUES');
    // Finite audio is still taken: no error comes back before the pong.
    const errors = p.of('error').length;
    p.send(audio(new Float32Array(1600).fill(0.01)));
    p.send({ type: 'ping', id: 'after-audio' });
    await p.until((r) => r.some((x) => x.type === 'pong' && x.id === 'after-audio'), WAIT);
    expect(p.of('error').length).toBe(errors);
    p.close();
  });

  it('charges hello (and each topic it resumes) to the same subscription budget', async () => {
    const v = new Viewer(`${wsUrl()}?token=${viewerToken}`);
    await v.opened;
    for (let i = 0; i < 200; i++) v.send({ type: 'hello', resume: { system: 0 } });
    v.send({ type: 'ping', id: 'done' });
    await v.until((r) => r.some((x) => x.type === 'pong' && x.id === 'done'), WAIT);
    // Burst 10 at 5/s: almost every replaying hello is refused.
    expect(v.of('error').filter((e) => e.code === 'RATE_LIMITED').length).toBeGreaterThan(150);
    expect(v.of('hello').length).toBeLessThan(50);
    v.close();
  });

  it('closes WS, SSE and publisher connections when their token expires', async () => {
    const shortLived = (role: string) =>
      new SignJWT({ cams: ['*'], role })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('t')
        .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
        .sign(key);
    const [viewer, publisher] = await Promise.all([shortLived('viewer'), shortLived('publisher')]);
    const ws = new Viewer(`${wsUrl()}?token=${viewer}`);
    const pub = new Viewer(`${publishUrl()}?token=${publisher}`);
    const sse = await fetch(`${daemon.url}/sse?topics=system&token=${viewer}`);
    expect(sse.status).toBe(200);
    const sseEnded = sse.text(); // resolves when the server ends the stream
    // clockToleranceSeconds is 0 here: each closes about 2 s after connecting (bound: 15 s).
    expect((await ws.closed).code).toBe(4001);
    expect((await pub.closed).code).toBe(4001);
    await sseEnded;
    const metrics = (await get(`${daemon.url}/metrics`)).text;
    for (const transport of ['ws', 'sse', 'publish']) {
      expect(
        metricValue(metrics, `framehub_auth_failures_total{transport="${transport}",reason="expired"}`),
      ).toBeGreaterThanOrEqual(1);
    }
  }, 20_000);

  it('rate-limits sub/unsub loops so cached frames cannot be pulled without bound', async () => {
    const pub = new Viewer(`${publishUrl()}?token=${publisherToken}`);
    await pub.opened;
    pub.send({ type: 'frame', camera: 'p1', data: await noiseJpeg(64, 48) });
    const v = new Viewer(`${wsUrl()}?token=${viewerToken}`);
    await v.opened;
    v.send({ type: 'sub', topics: ['cam/p1/raw'] });
    await v.until((r) => r.some((x) => x.type === 'frame'), WAIT);
    for (let i = 0; i < 200; i++) {
      v.send({ type: 'unsub', topics: ['cam/p1/raw'] });
      v.send({ type: 'sub', topics: ['cam/p1/raw'] });
    }
    v.send({ type: 'ping', id: 'done' });
    await v.until((r) => r.some((x) => x.type === 'pong' && x.id === 'done'), WAIT);
    const limited = v.of('error').filter((e) => e.code === 'RATE_LIMITED').length;
    // Burst 10 at 5/s: a few dozen changes at most go through in the seconds this takes.
    expect(limited).toBeGreaterThan(300);
    expect(v.of('frame').length).toBeLessThan(60);
    const metrics = (await get(`${daemon.url}/metrics`)).text;
    expect(
      metricValue(metrics, 'framehub_limit_rejections_total{limit="subscribe_rate"}'),
    ).toBeGreaterThanOrEqual(limited);
    v.close();
    pub.close();
  });
});

describe('tokenless sockets (auth on)', () => {
  let daemon: RunningDaemon;
  beforeAll(async () => {
    daemon = await startDaemon(
      {
        cameras: [{ id: 'p1', source: 'push', fps: 30 }],
        viewers: { maxConnections: 10 },
        ws: { maxUnauthenticated: 8, maxUnauthenticatedPerIp: 8, authTimeoutMs: 20_000 },
      },
      [],
      { FRAMEHUB_AUTH_HS256_SECRET: SECRET },
    );
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('count against their own budget, never a viewer slot, and join the viewer limits on hello', async () => {
    const tokenless = Array.from({ length: 12 }, () => new Viewer(daemon.wsUrl));
    await Promise.all(tokenless.map((v) => v.opened));
    // Each socket either is closed at once (1013) or answers a ping while waiting for its hello.
    const outcomes = await Promise.all(
      tokenless.map((v) => {
        v.send({ type: 'ping', id: 'wait' });
        return Promise.race([
          v.closed.then((c) => c.code),
          v.until((r) => r.some((x) => x.type === 'pong'), WAIT).then(() => 'open' as const),
        ]);
      }),
    );
    expect(outcomes.filter((o) => o === 1013).length).toBe(4);
    expect(outcomes.filter((o) => o === 'open').length).toBe(8);
    // All 10 viewer slots are still free for authenticated viewers.
    const t = await token('viewer');
    const viewers = Array.from({ length: 10 }, () => new Viewer(`${daemon.wsUrl}?token=${t}`));
    await Promise.all(viewers.map((v) => v.opened));
    for (const v of viewers) {
      v.send({ type: 'ping', id: 'in' });
      await v.until((r) => r.some((x) => x.type === 'pong' && x.id === 'in'), WAIT);
    }
    expect(viewers.every((v) => v.ws.readyState === v.ws.OPEN)).toBe(true);
    // A pending socket that authenticates now finds the viewer limit full: 1013, as at an upgrade.
    const pending = tokenless.find((v) => v.ws.readyState === v.ws.OPEN)!;
    pending.send({ type: 'hello', token: t });
    expect((await pending.closed).code).toBe(1013);
    const metrics = (await get(`${daemon.url}/metrics`)).text;
    expect(metricValue(metrics, 'framehub_limit_rejections_total{limit="unauthenticated"}')).toBe(4);
    for (const v of [...tokenless, ...viewers]) v.close();
  });
});
