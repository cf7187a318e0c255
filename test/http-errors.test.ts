/**
 * The one HTTP error path: guardRoutes (what a route throws synchronously or from a promise)
 * and handleAsync (what an async handler throws) both answer through answerError. A route that
 * throws an unknown error cannot be provoked from outside the daemon, so these routes are
 * registered on a real uWS app on 127.0.0.1, behind the real routing layer, metrics and logger.
 */

import uWS from 'uWebSockets.js';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FramehubError, RetryLaterError, RingCorruptError } from '../src/errors.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { guardRoutes } from '../src/server/http-guard.js';
import { handleAsync, refuseDeclaredTooLarge, sendJson } from '../src/server/http-util.js';
import { KeepAliveHttp } from './support/keep-alive-http.js';

const metrics = createMetrics();
const logLines: Record<string, unknown>[] = [];
const log = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  }),
);
const sink = { metrics, log };
const tick = () => new Promise((resolve) => setImmediate(resolve));
/** Raw messages no client may ever see: they name a path, a host and an internal detail. */
const SECRET_SYNC = 'cannot open /etc/framehub/secret.key';
const SECRET_ASYNC = 'connect ECONNREFUSED 10.0.0.5:6379';

let url = '';
let listenSocket: uWS.us_listen_socket | undefined;

beforeAll(async () => {
  const app = guardRoutes(uWS.App(), sink);
  app.get('/sync-unknown', () => {
    throw new Error(SECRET_SYNC);
  });
  app.get('/sync-client', () => {
    throw new FramehubError('NOT_FOUND', 'no such thing', 404);
  });
  app.get('/retry', () => {
    throw new RetryLaterError('RATE_LIMITED', 'busy', 429, 7);
  });
  app.get('/async-unknown', (res) =>
    handleAsync(sink, res, async () => {
      await tick();
      throw new Error(SECRET_ASYNC);
    }),
  );
  app.get('/async-client', (res) =>
    handleAsync(sink, res, async () => {
      await tick();
      throw new FramehubError('INVALID_FIELD', '"x" must be a number', 422);
    }),
  );
  app.get('/async-internal', (res) =>
    handleAsync(sink, res, async () => {
      await tick();
      throw new RingCorruptError(4096, 'bad header tag');
    }),
  );
  // An async handler without handleAsync: the routing layer catches its rejected promise.
  app.get('/promise-unknown', async (res) => {
    res.onAborted(() => {});
    await tick();
    throw new Error(SECRET_ASYNC);
  });
  app.get('/answered-then-throws', (res) =>
    handleAsync(sink, res, async () => {
      sendJson(res, 200, { ok: true });
      throw new Error('after the answer');
    }),
  );
  app.get('/try-end', (res) => {
    res.cork(() => res.tryEnd('hello', 5));
  });
  app.post('/upload', (_res, req) => {
    refuseDeclaredTooLarge(req, 10);
  });
  await new Promise<void>((resolve, reject) =>
    app.listen('127.0.0.1', 0, (socket) => {
      if (!socket) return reject(new Error('cannot listen'));
      listenSocket = socket;
      url = `http://127.0.0.1:${uWS.us_socket_local_port(socket)}`;
      resolve();
    }),
  );
});
afterAll(() => {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
});

const handlerErrors = async () =>
  (await metrics.handlerErrors.get()).values.find((v) => v.labels.handler === 'http')?.value ?? 0;
const errorBody = (body: Buffer) =>
  JSON.parse(body.toString()) as { error: { code: string; message: string } };

describe('one HTTP error path', () => {
  const unknown: [string, string, boolean][] = [
    ['thrown synchronously', '/sync-unknown', true],
    ['thrown by an async handler', '/async-unknown', false],
    ['from a rejected promise of the handler', '/promise-unknown', true],
  ];
  for (const [what, path, closes] of unknown) {
    it(`answers an unknown error ${what} with a generic 500 INTERNAL, counted and logged`, async () => {
      const before = await handlerErrors();
      const conn = await KeepAliveHttp.open(url);
      const res = await conn.request('GET', path);
      expect(res.status).toBe(500);
      expect(errorBody(res.body)).toEqual({ error: { code: 'INTERNAL', message: 'internal error' } });
      expect(res.body.toString()).not.toMatch(/etc|10\.0\.0\.5|ECONNREFUSED/);
      expect(await handlerErrors()).toBe(before + 1);
      const line = logLines.findLast((l) => l.msg === 'HTTP handler failed; answered 500');
      expect(line?.err).toMatchObject({ message: path === '/sync-unknown' ? SECRET_SYNC : SECRET_ASYNC });
      // From a promise the request is gone, so the answer closes; otherwise it may stay open.
      if (closes) await conn.whenClosed;
      else expect((await conn.request('GET', '/sync-client')).status).toBe(404);
      conn.close();
    });
  }

  it('answers a FramehubError with its own status, code and message, and counts nothing', async () => {
    const before = await handlerErrors();
    const conn = await KeepAliveHttp.open(url);
    const sync = await conn.request('GET', '/sync-client');
    expect([sync.status, errorBody(sync.body)]).toEqual([
      404,
      { error: { code: 'NOT_FOUND', message: 'no such thing' } },
    ]);
    // The same connection goes on: nothing was left unread.
    const async = await conn.request('GET', '/async-client');
    expect([async.status, errorBody(async.body).error]).toEqual([
      422,
      { code: 'INVALID_FIELD', message: '"x" must be a number' },
    ]);
    conn.close();
    expect(await handlerErrors()).toBe(before);
  });

  it('sends Retry-After with a RetryLaterError', async () => {
    const conn = await KeepAliveHttp.open(url);
    const res = await conn.request('GET', '/retry');
    expect([res.status, res.headers['retry-after'], errorBody(res.body).error.code]).toEqual([
      429,
      '7',
      'RATE_LIMITED',
    ]);
    conn.close();
  });

  it('treats a FramehubError with status 500 as internal: its message stays in the log', async () => {
    const before = await handlerErrors();
    const conn = await KeepAliveHttp.open(url);
    const res = await conn.request('GET', '/async-internal');
    expect([res.status, errorBody(res.body).error]).toEqual([
      500,
      { code: 'INTERNAL', message: 'internal error' },
    ]);
    expect(await handlerErrors()).toBe(before + 1);
    conn.close();
  });

  it('survives a handler that throws after answering: the client keeps its answer, the error is logged', async () => {
    const before = await handlerErrors();
    const conn = await KeepAliveHttp.open(url);
    const res = await conn.request('GET', '/answered-then-throws');
    expect([res.status, JSON.parse(res.body.toString())]).toEqual([200, { ok: true }]);
    await expect.poll(handlerErrors).toBe(before + 1);
    await expect
      .poll(() =>
        logLines.some((l) => l.msg === 'could not answer an HTTP error: already answered or aborted'),
      )
      .toBe(true);
    // Still serving on the same connection and on new ones.
    expect((await conn.request('GET', '/sync-client')).status).toBe(404);
    conn.close();
  });

  it('refuses a declared body over the limit with 413 before reading it, and closes', async () => {
    const conn = await KeepAliveHttp.open(url);
    const res = await conn.request('POST', '/upload', { 'content-length': '1000000' });
    expect([res.status, errorBody(res.body).error.code]).toEqual([413, 'TOO_LARGE']);
    await conn.whenClosed;
  });

  it('answers HEAD of a throwing GET route with the same status, headers and no body', async () => {
    const conn = await KeepAliveHttp.open(url);
    const get = await conn.request('GET', '/sync-client');
    const head = await conn.request('HEAD', '/sync-client');
    expect(head.status).toBe(404);
    expect(head.headers['content-type']).toBe('application/json');
    expect(head.headers['content-length']).toBe(get.headers['content-length']);
    expect(head.headerCounts['content-length']).toBe(1);
    expect((await conn.request('GET', '/retry')).status).toBe(429);
    conn.close();
  });

  it('answers HEAD of a route that ends with tryEnd() with its length and no body', async () => {
    const conn = await KeepAliveHttp.open(url);
    const head = await conn.request('HEAD', '/try-end');
    expect([head.status, head.headers['content-length']]).toEqual([200, '5']);
    const get = await conn.request('GET', '/try-end');
    expect(get.body.toString()).toBe('hello');
    conn.close();
  });

  it('answers HEAD of an unexpected failure with 500 and no body, then closes', async () => {
    const conn = await KeepAliveHttp.open(url);
    const head = await conn.request('HEAD', '/sync-unknown');
    // uWS 20 cannot end a bodiless answer with a length and a close at once: it says 0.
    expect([head.status, head.headers['content-length'], head.headers.connection]).toEqual([
      500,
      '0',
      'close',
    ]);
    await conn.whenClosed;
    expect(conn.unread).toBe(0);
  });

  it('refuses a HEAD with ambiguous framing like a GET: 400, no body, closed', async () => {
    const conn = await KeepAliveHttp.open(url);
    // Two Content-Length headers (the value smuggles the second line in).
    const head = await conn.request('HEAD', '/sync-client', { 'content-length': '0\r\nContent-Length: 0' });
    expect([head.status, head.headers['content-length']]).toEqual([400, '0']);
    await conn.whenClosed;
    expect(conn.unread).toBe(0);
  });
});
