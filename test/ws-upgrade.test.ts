/**
 * A socket that passed its upgrade is never closed by the server without a reason.
 *
 * uWS 3.0.6 closes a WebSocket at once (1006, no close frame) when `res.upgrade` ran inside
 * `res.cork` after an await and the socket's memory stayed in place (uWebSockets #1929, fixed
 * upstream in July 2026): its cork wrapper then reads the HTTP state from what is now the
 * WebSocket. Which bytes it reads depended on the socket's user data, so in the field this
 * dropped about one connection in a few thousand. A handshake that says `Connection: close`
 * sets the flag it reads in the real HTTP state, which makes the old failure certain: every
 * case below failed on the code that upgraded after verifying the token.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeldMessages } from '../src/server/ws-verdict.js';
import { pack, type RunningDaemon, startDaemon, testCamera, unpack, Viewer } from './helpers.js';
import { signToken, TEST_SECRET } from './support/auth.js';

/** One masked client frame (RFC 6455 5.3), binary, for payloads under 126 bytes. */
function clientFrame(payload: Uint8Array): Buffer {
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const head = Buffer.from([0x82, 0x80 | payload.length]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([head, mask, body]);
}

/** The server's unmasked binary frames in `buf` (lengths up to 64 KiB), decoded as records. */
function serverRecords(buf: Buffer): { records: Record<string, unknown>[]; closeCode?: number } {
  const records: Record<string, unknown>[] = [];
  let at = 0;
  while (at + 2 <= buf.length) {
    const opcode = buf[at]! & 0x0f;
    let len = buf[at + 1]! & 0x7f;
    let start = at + 2;
    if (len === 126) {
      if (start + 2 > buf.length) break;
      len = buf.readUInt16BE(start);
      start += 2;
    } else if (len === 127) break;
    if (start + len > buf.length) break;
    const payload = buf.subarray(start, start + len);
    if (opcode === 0x2) records.push(unpack(payload));
    if (opcode === 0x8) return { records, closeCode: payload.length >= 2 ? payload.readUInt16BE(0) : 1005 };
    at = start + len;
  }
  return { records };
}

interface RawSession {
  status: string;
  records: Record<string, unknown>[];
  /** The server hung up (FIN) before `done` held. */
  ended: boolean;
}

/**
 * A raw WebSocket handshake that says `Connection: close`, then `late` frames as soon as the
 * 101 arrives. Resolves once `done` holds over the records received, or when the server hangs up.
 */
function rawSession(
  url: string,
  path: string,
  frames: { late?: Buffer[] },
  done: (records: Record<string, unknown>[]) => boolean,
): Promise<RawSession> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(Number(port), hostname);
    let buf = Buffer.alloc(0);
    let status = '';
    const body = () => buf.subarray(buf.indexOf('\r\n\r\n') + 4);
    const finish = (ended: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ status, records: serverRecords(body()).records, ended });
    };
    const timer = setTimeout(() => finish(false), 20_000);
    socket.on('error', reject);
    socket.on('connect', () => {
      const head =
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\nConnection: close\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
      socket.write(head);
    });
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.indexOf('\r\n\r\n') < 0) return;
      if (!status) {
        status = buf.subarray(0, buf.indexOf('\r\n')).toString();
        for (const f of frames.late ?? []) socket.write(f);
      }
      if (done(serverRecords(body()).records)) finish(false);
    });
    socket.on('end', () => finish(true));
  });
}

const ping = (id: number) => clientFrame(pack({ type: 'ping', id }));
const pongFor = (id: number) => (records: Record<string, unknown>[]) =>
  records.some((r) => r.type === 'pong' && r.id === id);
const SWITCHING = 'HTTP/1.1 101 Switching Protocols';

describe('auth on: a token in the URL', () => {
  let daemon: RunningDaemon;
  beforeAll(async () => {
    daemon = await startDaemon({
      cameras: [testCamera('lobby', 5), { id: 'feed', source: 'push' }],
      auth: { hs256Secret: TEST_SECRET },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('keeps a /ws socket whose handshake says Connection: close open, and answers its ping', async () => {
    const token = await signToken({ cams: ['*'] });
    const got = await rawSession(daemon.url, `/ws?token=${token}`, { late: [ping(7)] }, pongFor(7));
    expect({ status: got.status, ended: got.ended, pongs: got.records.length }).toEqual({
      status: SWITCHING,
      ended: false,
      pongs: 1,
    });
  });

  it('keeps a /publish socket whose handshake says Connection: close open, and answers its ping', async () => {
    const token = await signToken({ cams: ['feed'], role: 'publisher' });
    const got = await rawSession(daemon.url, `/publish?token=${token}`, { late: [ping(7)] }, pongFor(7));
    expect({ status: got.status, ended: got.ended, pongs: got.records.length }).toEqual({
      status: SWITCHING,
      ended: false,
      pongs: 1,
    });
  });

  it('answers the records a viewer sends before its token is verified, in order', async () => {
    const token = await signToken({ cams: ['lobby'] });
    const v = new Viewer(`${daemon.url.replace('http', 'ws')}/ws?token=${token}`);
    await v.opened;
    // Sent at once, before the server can have finished verifying the token.
    v.send({ type: 'ping', id: 1 });
    v.send({ type: 'sub', topics: ['cam/lobby/low'] });
    v.send({ type: 'ping', id: 2 });
    await v.until(
      (rs) => rs.some((r) => r.type === 'pong' && r.id === 2) && rs.some((r) => r.type === 'frame'),
      20_000,
    );
    const pongs = v.of('pong').map((r) => r.id);
    expect(pongs).toEqual([1, 2]);
    expect(v.of('error')).toEqual([]);
    v.close();
  });

  it('answers each of 20 records sent on the 101 exactly once, pongs in order (any beyond 16 held: RATE_LIMITED)', async () => {
    const token = await signToken({ cams: ['*'] });
    // One write as soon as the 101 arrives: most or all of it lands before the verdict.
    const late = [Buffer.concat(Array.from({ length: 20 }, (_, i) => ping(i + 1)))];
    const answered = (rs: Record<string, unknown>[]) =>
      rs.filter((r) => r.type === 'pong' || r.type === 'error');
    const got = await rawSession(
      daemon.url,
      `/ws?token=${token}`,
      { late },
      (rs) => answered(rs).length >= 20,
    );
    const errors = got.records.filter((r) => r.type === 'error');
    const pongs = got.records.filter((r) => r.type === 'pong').map((r) => r.id as number);
    expect(errors.every((e) => e.code === 'RATE_LIMITED')).toBe(true);
    expect(errors.length).toBeLessThanOrEqual(4);
    expect(pongs.length + errors.length).toBe(20);
    expect(pongs).toEqual([...pongs].sort((a, b) => a - b));
    expect(new Set(pongs).size).toBe(pongs.length);
  });

  it("answers a publisher's first records, sent on the 101, in order", async () => {
    const token = await signToken({ cams: ['feed'], role: 'publisher' });
    const late = [Buffer.concat([ping(1), ping(2)])];
    const got = await rawSession(daemon.url, `/publish?token=${token}`, { late }, pongFor(2));
    expect(got.records.map((r) => `${r.type} ${r.id}`)).toEqual(['pong 1', 'pong 2']);
  });

  it('closes a socket whose URL token fails with 4001, and a viewer token on /publish with 4003, after the open', async () => {
    const ws = daemon.url.replace('http', 'ws');
    expect((await new Viewer(`${ws}/ws?token=not.a.jwt`).closed).code).toBe(4001);
    const viewerToken = await signToken({ cams: ['feed'] });
    expect((await new Viewer(`${ws}/publish?token=${viewerToken}`).closed).code).toBe(4003);
  });
});

describe('auth off', () => {
  let daemon: RunningDaemon;
  beforeAll(async () => {
    daemon = await startDaemon({ cameras: [testCamera('lobby', 5)] });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('keeps a /ws socket whose handshake says Connection: close open, and answers its ping', async () => {
    const got = await rawSession(daemon.url, '/ws', { late: [ping(7)] }, pongFor(7));
    expect({ status: got.status, ended: got.ended, pongs: got.records.length }).toEqual({
      status: SWITCHING,
      ended: false,
      pongs: 1,
    });
  });
});

describe('HeldMessages: what may wait for a verdict', () => {
  it('keeps copies of at most 16 messages and at most its byte bound, in order', () => {
    const held = new HeldMessages(1000);
    const sent = new Uint8Array(10);
    for (let i = 0; i < 16; i++) {
      sent.fill(i);
      expect(held.hold(sent.buffer, true)).toBe(true);
    }
    expect(held.hold(sent.buffer, true)).toBe(false);
    // Copies: the sender's buffer was overwritten after each hold (uWS reuses it).
    expect([...held].map((m) => new Uint8Array(m.data)[0])).toEqual(Array.from({ length: 16 }, (_, i) => i));

    const small = new HeldMessages(25);
    expect(small.hold(new ArrayBuffer(20), false)).toBe(true);
    expect(small.hold(new ArrayBuffer(6), true)).toBe(false);
    expect(small.hold(new ArrayBuffer(5), true)).toBe(true);
    expect([...small].map((m) => `${m.data.byteLength} ${m.isBinary}`)).toEqual(['20 false', '5 true']);
  });
});
