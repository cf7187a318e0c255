/**
 * tus 1.0.0 on uWS (src/uploads): a real uWS app on 127.0.0.1 behind the real routing layer,
 * real disk, and tus-js-client (Node) as the client. The store is also reopened over its own
 * directory, as after a restart or a crash.
 */

import uWS from 'uWebSockets.js';
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import pino from 'pino';
import type { Counter } from 'prom-client';
import * as tus from 'tus-js-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics, type Metrics } from '../src/metrics/metrics.js';
import { type Authenticator, createAuthenticator } from '../src/server/auth.js';
import { guardRoutes } from '../src/server/http-guard.js';
import { ChunkStream } from '../src/uploads/chunk-stream.js';
import { encodeMetadata, parseMetadata } from '../src/uploads/tus-metadata.js';
import { registerTus, TUS_PATH } from '../src/uploads/tus-routes.js';
import { TusStore, type TusStoreOptions, type TusUpload } from '../src/uploads/tus-store.js';
import { TEST_SECRET } from './support/auth.js';

const MiB = 1024 * 1024;
const log = pino({ level: 'silent' });
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const b64 = (s: string) => Buffer.from(s).toString('base64');

interface TusServer {
  metrics: Metrics;
  url: string;
  endpoint: string;
  store: TusStore;
  completed: TusUpload[];
  progressCalls: () => number;
  /** Like a crash for the clients: the listen socket and every connection close at once. */
  close(): Promise<void>;
}

/** The sum of a counter's series. */
async function counted(counter: Counter): Promise<number> {
  return (await counter.get()).values.reduce((sum, v) => sum + v.value, 0);
}

const dirs: string[] = [];
const servers: TusServer[] = [];
afterEach(async () => {
  const stopped = servers.splice(0);
  await Promise.all(stopped.map((s) => s.close()));
  // Every refusal above was a client error: nothing may have been answered as an internal failure.
  for (const s of stopped) expect(await counted(s.metrics.handlerErrors)).toBe(0);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'framehub-tus-'));
  dirs.push(dir);
  return dir;
}

async function startServer(
  dir: string,
  storeOpts: Partial<TusStoreOptions> = {},
  auth?: Authenticator,
): Promise<TusServer> {
  const metrics = createMetrics();
  const store = await TusStore.open({
    dir,
    maxUploadBytes: 32 * MiB,
    maxUploads: 8,
    expireMs: 60_000,
    log,
    ...storeOpts,
  });
  const app = guardRoutes(uWS.App(), { metrics, log });
  const completed: TusUpload[] = [];
  let progress = 0;
  const ctx = { auth: auth ?? (await createAuthenticator(undefined)), metrics, log };
  registerTus(
    app,
    ctx,
    store,
    { maxMetadataBytes: 4096 },
    { onComplete: (u) => completed.push(u), onProgress: () => progress++ },
  );
  const port = await new Promise<number>((resolve, reject) =>
    app.listen('127.0.0.1', 0, (ls) =>
      ls ? resolve(uWS.us_socket_local_port(ls)) : reject(new Error('listen')),
    ),
  );
  let closed = false;
  const server: TusServer = {
    metrics,
    url: `http://127.0.0.1:${port}`,
    endpoint: `http://127.0.0.1:${port}${TUS_PATH}/`,
    store,
    completed,
    progressCalls: () => progress,
    close: async () => {
      if (closed) return;
      closed = true;
      app.close();
      await store.close();
    },
  };
  servers.push(server);
  return server;
}

/** Polls a condition on observable state, bounded; the interval only paces the polling. */
async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const TUS = { 'Tus-Resumable': '1.0.0' };
const OCTETS = { ...TUS, 'Content-Type': 'application/offset+octet-stream' };

async function create(s: TusServer, length: number, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(s.endpoint, {
    method: 'POST',
    headers: { ...TUS, 'Upload-Length': String(length), ...headers },
  });
  expect(res.status).toBe(201);
  expect(res.statusText).toBe('Created');
  const location = res.headers.get('location') ?? '';
  expect(location).toMatch(new RegExp(`^${TUS_PATH}/[0-9a-f-]{36}$`));
  return location.split('/').pop() ?? '';
}

const patch = (
  s: TusServer,
  id: string,
  offset: number,
  body: Uint8Array,
  headers: Record<string, string> = {},
) =>
  fetch(`${s.url}${TUS_PATH}/${id}`, {
    method: 'PATCH',
    headers: { ...OCTETS, 'Upload-Offset': String(offset), ...headers },
    body,
  });

const head = (s: TusServer, id: string, headers: Record<string, string> = TUS) =>
  fetch(`${s.url}${TUS_PATH}/${id}`, { method: 'HEAD', headers });

async function errorCode(res: Response): Promise<string> {
  expect(res.headers.get('tus-resumable')).toBe('1.0.0');
  const body = (await res.json()) as { error: { code: string; message: string } };
  return body.error.code;
}

const idOf = (u: tus.Upload) => (u.url ?? '').split('/').pop() ?? '';

/** Starts an upload with tus-js-client and resolves once `stop` was called at `stopAt` bytes sent. */
function uploadUntil(
  data: Buffer,
  options: tus.UploadOptions,
  stopAt: number,
  stop: (u: tus.Upload) => unknown,
) {
  return new Promise<tus.Upload>((resolve, reject) => {
    let stopped = false;
    const upload = new tus.Upload(data, {
      chunkSize: MiB,
      retryDelays: null,
      ...options,
      onProgress: (sent) => {
        if (stopped || sent < stopAt) return;
        stopped = true;
        Promise.resolve(stop(upload)).then(() => resolve(upload), reject);
      },
      onSuccess: () => reject(new Error('upload completed before it was stopped')),
      // After stop() the client may report the connection it lost; that is the point.
      onError: (err) => (stopped ? undefined : reject(err)),
    });
    upload.start();
  });
}

/** Resumes at `uploadUrl`; resolves with the offset of the first chunk sent. */
function resume(data: Buffer, uploadUrl: string) {
  return new Promise<number>((resolve, reject) => {
    let firstChunkAt: number | undefined;
    const upload = new tus.Upload(data, {
      uploadUrl,
      chunkSize: MiB,
      retryDelays: null,
      onChunkComplete: (size, accepted) => {
        firstChunkAt ??= accepted - size;
      },
      onSuccess: () => resolve(firstChunkAt ?? -1),
      onError: reject,
    });
    upload.start();
  });
}

describe('tus with tus-js-client', () => {
  it('an upload aborted mid-way resumes from the server offset and stores the exact bytes', async () => {
    const s = await startServer(tempDir());
    const data = randomBytes(20 * MiB);
    const metadata = { filename: 'photo.jpg', format: 'webp', widths: '320,640' };
    // Aborted while the server is inside a PATCH, so the request cut is the one it is writing.
    const first = await uploadUntil(data, { endpoint: s.endpoint, metadata }, 5 * MiB, async (u) => {
      await until('a PATCH on the server', () => s.store.get(idOf(u)).locked);
      await u.abort();
    });
    const id = idOf(first);
    const upload = s.store.get(id);
    // The aborted PATCH ends on the server once what had arrived is on disk.
    await until('the aborted PATCH to end', () => !upload.locked);
    expect(upload.offset).toBeGreaterThan(0);
    expect(upload.offset).toBeLessThan(data.length);
    expect(upload.metadata).toEqual(metadata);

    const res = await head(s, id);
    expect(res.status).toBe(200);
    expect(res.headers.get('upload-offset')).toBe(String(upload.offset));
    expect(res.headers.get('upload-length')).toBe(String(data.length));
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(parseMetadata(res.headers.get('upload-metadata') ?? '', 4096)).toEqual(metadata);
    expect(Date.parse(res.headers.get('upload-expires') ?? '')).toBeGreaterThan(Date.now());

    const offsetBefore = upload.offset;
    expect(await resume(data, first.url ?? '')).toBe(offsetBefore);
    expect(s.completed.map((u) => u.id)).toEqual([id]);
    expect(sha256(readFileSync(s.store.filePath(upload)))).toBe(sha256(data));
    expect(s.progressCalls()).toBeGreaterThan(20);
  });

  it('creation-with-upload sends the first chunk in the POST', async () => {
    const s = await startServer(tempDir());
    const data = randomBytes(300_000);
    await new Promise<void>((resolve, reject) => {
      new tus.Upload(data, {
        endpoint: s.endpoint,
        chunkSize: 128 * 1024,
        uploadDataDuringCreation: true,
        retryDelays: null,
        onSuccess: () => resolve(),
        onError: reject,
      }).start();
    });
    const [upload] = s.completed;
    expect(upload?.offset).toBe(data.length);
    expect(sha256(readFileSync(s.store.filePath(upload as TusUpload)))).toBe(sha256(data));
  });

  it('a restart mid-upload keeps the offset, and the upload completes on the new server', async () => {
    const dir = tempDir();
    const before = await startServer(dir);
    const data = randomBytes(20 * MiB);
    const first = await uploadUntil(data, { endpoint: before.endpoint }, 8 * MiB, () => before.close());
    const id = idOf(first);
    // close() waited for the cut PATCH to record its offset.
    const offset = before.store.get(id).offset;
    expect(offset).toBeGreaterThan(0);

    const after = await startServer(dir);
    const res = await head(after, id);
    expect(res.headers.get('upload-offset')).toBe(String(offset));
    expect(await resume(data, `${after.endpoint}${id}`)).toBe(offset);
    expect(after.completed.map((u) => u.id)).toEqual([id]);
    expect(sha256(readFileSync(after.store.filePath(after.store.get(id))))).toBe(sha256(data));
  });
});

describe('tus protocol', () => {
  it('OPTIONS names the version, the extensions and the maximum size', async () => {
    const s = await startServer(tempDir());
    const res = await fetch(s.endpoint, { method: 'OPTIONS' });
    expect(res.status).toBe(204);
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    expect(res.headers.get('tus-version')).toBe('1.0.0');
    expect(res.headers.get('tus-extension')).toBe('creation,creation-with-upload,termination,expiration');
    expect(res.headers.get('tus-max-size')).toBe(String(32 * MiB));
  });

  it('PATCH appends at the offset; a wrong Upload-Offset is 409 and a wrong Content-Type 415', async () => {
    const s = await startServer(tempDir());
    const id = await create(s, 100);
    const ok = await patch(s, id, 0, Buffer.alloc(10, 1));
    expect(ok.status).toBe(204);
    expect(ok.headers.get('upload-offset')).toBe('10');
    expect(ok.headers.get('tus-resumable')).toBe('1.0.0');
    expect(ok.headers.get('upload-expires')).toMatch(/GMT$/);

    const stale = await patch(s, id, 0, Buffer.alloc(10, 2));
    expect(stale.status).toBe(409);
    expect(stale.statusText).toBe('Conflict');
    expect(await errorCode(stale)).toBe('UPLOAD_OFFSET_MISMATCH');
    const ahead = await patch(s, id, 20, Buffer.alloc(10, 2));
    expect(ahead.status).toBe(409);
    const type = await patch(s, id, 10, Buffer.alloc(10, 2), { 'Content-Type': 'application/octet-stream' });
    expect(type.status).toBe(415);
    expect(await errorCode(type)).toBe('UNSUPPORTED_MEDIA_TYPE');
    const offset = await patch(s, id, 10, Buffer.alloc(10, 2), { 'Upload-Offset': '-1' });
    expect(offset.status).toBe(400);

    expect((await head(s, id)).headers.get('upload-offset')).toBe('10');
    expect(readFileSync(s.store.filePath(s.store.get(id)))).toEqual(Buffer.alloc(10, 1));
  });

  it('a second PATCH while one is writing is 423 Locked, and so is DELETE', async () => {
    const s = await startServer(tempDir());
    const id = await create(s, 200_000);
    const first = request(`${s.url}${TUS_PATH}/${id}`, {
      method: 'PATCH',
      headers: { ...OCTETS, 'Upload-Offset': '0', 'Content-Length': '200000' },
    });
    const answered = new Promise<number>((resolve, reject) => {
      first.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      first.on('error', reject);
    });
    first.write(Buffer.alloc(100_000, 3));
    const upload = s.store.get(id);
    await until('half the body on disk', () => upload.offset === 100_000);

    const second = await patch(s, id, 100_000, Buffer.alloc(10));
    expect(second.status).toBe(423);
    expect(second.statusText).toBe('Locked');
    expect(await errorCode(second)).toBe('UPLOAD_LOCKED');
    const del = await fetch(`${s.url}${TUS_PATH}/${id}`, { method: 'DELETE', headers: TUS });
    expect(del.status).toBe(423);
    expect(await errorCode(del)).toBe('UPLOAD_LOCKED');

    first.end(Buffer.alloc(100_000, 3));
    expect(await answered).toBe(204);
    expect(s.completed.map((u) => u.id)).toEqual([id]);
  });

  it('a PATCH cut mid-body keeps what reached the disk, and the next PATCH goes on from there', async () => {
    const s = await startServer(tempDir());
    const id = await create(s, 200_000);
    const cut = request(`${s.url}${TUS_PATH}/${id}`, {
      method: 'PATCH',
      headers: { ...OCTETS, 'Upload-Offset': '0', 'Content-Length': '200000' },
    });
    cut.on('error', () => {}); // the reset this test causes
    cut.write(Buffer.alloc(120_000, 4));
    const upload = s.store.get(id);
    await until('the first part on disk', () => upload.offset === 120_000);
    cut.destroy();
    await until('the cut PATCH to end', () => !upload.locked);
    expect(upload.offset).toBe(120_000);
    expect((await head(s, id)).headers.get('upload-offset')).toBe('120000');
    expect(s.completed).toEqual([]);

    expect((await patch(s, id, 120_000, Buffer.alloc(80_000, 5))).status).toBe(204);
    const bytes = readFileSync(s.store.filePath(upload));
    expect(bytes).toEqual(Buffer.concat([Buffer.alloc(120_000, 4), Buffer.alloc(80_000, 5)]));
    expect(s.completed.map((u) => u.id)).toEqual([id]);
  });

  it('an expired upload is 410, then 404 once swept, and its files are gone', async () => {
    const s = await startServer(tempDir(), { expireMs: 300, sweepIntervalMs: 3_600_000 });
    const id = await create(s, 100);
    const bin = s.store.filePath(s.store.get(id));
    await until('the upload to expire', async () => (await head(s, id)).status !== 200);
    expect((await head(s, id)).status).toBe(410);
    const late = await patch(s, id, 0, Buffer.alloc(10));
    expect(late.status).toBe(410);
    expect(late.statusText).toBe('Gone');
    expect(await errorCode(late)).toBe('UPLOAD_EXPIRED');
    await s.store.sweep();
    expect((await head(s, id)).status).toBe(404);
    expect(existsSync(bin)).toBe(false);
    expect(readdirSync(join(bin, '..'))).toEqual([]);
  });

  it('termination answers 204 and removes the files', async () => {
    const s = await startServer(tempDir());
    const id = await create(s, 100);
    expect((await patch(s, id, 0, Buffer.alloc(50))).status).toBe(204);
    const bin = s.store.filePath(s.store.get(id));
    const res = await fetch(`${s.url}${TUS_PATH}/${id}`, { method: 'DELETE', headers: TUS });
    expect(res.status).toBe(204);
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    expect(existsSync(bin)).toBe(false);
    expect(readdirSync(join(bin, '..'))).toEqual([]);
    expect((await head(s, id)).status).toBe(404);
  });

  it('a zero-length upload is complete at creation', async () => {
    const s = await startServer(tempDir());
    const id = await create(s, 0);
    expect(s.completed.map((u) => u.id)).toEqual([id]);
  });
});

describe('tus refusals', () => {
  it('Upload-Length over the maximum is 413 and creates nothing', async () => {
    const s = await startServer(tempDir(), { maxUploadBytes: 1000 });
    const res = await fetch(s.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': '1001' } });
    expect(res.status).toBe(413);
    expect(await errorCode(res)).toBe('TOO_LARGE');
    expect(s.store.size).toBe(0);
    expect((await s.metrics.limitRejections.get()).values).toContainEqual(
      expect.objectContaining({ labels: { limit: 'tus_upload_length' }, value: 1 }),
    );
  });

  it.each([
    ['no Upload-Length', {}],
    ['Upload-Defer-Length', { 'Upload-Defer-Length': '1' }],
    ['a negative Upload-Length', { 'Upload-Length': '-5' }],
    ['a fractional Upload-Length', { 'Upload-Length': '1.5' }],
  ])('POST with %s is 400', async (_name, headers: Record<string, string>) => {
    const s = await startServer(tempDir());
    const res = await fetch(s.endpoint, { method: 'POST', headers: { ...TUS, ...headers } });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('INVALID_FIELD');
    expect(s.store.size).toBe(0);
  });

  it.each([
    ['three parts in a pair', `a ${b64('x')} extra`],
    ['a value that is not base64', 'a !!!!'],
    ['unpadded base64', 'a dg'],
    ['a repeated key', `a ${b64('x')},a ${b64('y')}`],
    ['an empty key', ` ,a ${b64('x')}`],
    ['a non-ASCII key', `k\u00e9 ${b64('x')}`],
    ['a value that is not UTF-8', `a ${Buffer.from([0xff, 0xfe]).toString('base64')}`],
    ['__proto__ as a key', `__proto__ ${b64('x')}`],
    ['a header over 4 KiB', `a ${b64('x'.repeat(3100))}`],
  ])('Upload-Metadata with %s is 400', async (_name, metadata) => {
    const s = await startServer(tempDir());
    const res = await fetch(s.endpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': '10', 'Upload-Metadata': metadata },
    });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('INVALID_FIELD');
    expect(s.store.size).toBe(0);
  });

  it('Upload-Metadata keeps keys without values and UTF-8 text', () => {
    expect(parseMetadata(`filename ${b64('café.jpg')}, flag,empty `, 4096)).toEqual({
      filename: 'café.jpg',
      flag: '',
      empty: '',
    });
    expect(parseMetadata('', 4096)).toEqual({});
  });

  it('encodeMetadata is what parseMetadata reads back', () => {
    const metadata = { filename: 'café.jpg', flag: '', widths: '320,640' };
    expect(encodeMetadata(metadata)).toBe(`filename ${b64('café.jpg')},flag,widths ${b64('320,640')}`);
    expect(parseMetadata(encodeMetadata(metadata), 4096)).toEqual(metadata);
  });

  it('an id that is not an upload id is 404, never a path', async () => {
    const s = await startServer(tempDir());
    const id = await create(s, 10);
    const raw = (method: string, path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(`${s.url}${path}`, { method, headers: { ...OCTETS, 'Upload-Offset': '0' } });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    for (const bad of ['..', '..%2F..%2Fetc%2Fpasswd', `..%2F${id}`, id.toUpperCase(), `${id}.json`]) {
      expect(await raw('HEAD', `${TUS_PATH}/${bad}`), bad).toBe(404);
      expect(await raw('PATCH', `${TUS_PATH}/${bad}`), bad).toBe(404);
      expect(await raw('DELETE', `${TUS_PATH}/${bad}`), bad).toBe(404);
    }
    expect(s.store.get(id).offset).toBe(0);
  });

  it('a request without Tus-Resumable 1.0.0 is 412 with Tus-Version', async () => {
    const s = await startServer(tempDir());
    const id = await create(s, 10);
    for (const headers of [{}, { 'Tus-Resumable': '0.2.2' }] as Record<string, string>[]) {
      const res = await head(s, id, headers);
      expect(res.status).toBe(412);
      expect(res.headers.get('tus-version')).toBe('1.0.0');
      const post = await fetch(s.endpoint, {
        method: 'POST',
        headers: { ...headers, 'Upload-Length': '10' },
      });
      expect(post.status).toBe(412);
      expect(post.statusText).toBe('Precondition Failed');
      expect(await errorCode(post)).toBe('TUS_VERSION_UNSUPPORTED');
    }
    const res = await patch(s, id, 0, Buffer.alloc(5), { 'Tus-Resumable': '' });
    expect(res.status).toBe(412);
    expect(s.store.get(id).offset).toBe(0);
  });

  it('a PATCH past Upload-Length is 413 and the file does not grow', async () => {
    const s = await startServer(tempDir());
    const id = await create(s, 100);
    expect((await patch(s, id, 0, Buffer.alloc(60, 1))).status).toBe(204);
    const over = await patch(s, id, 60, Buffer.alloc(41, 2));
    expect(over.status).toBe(413);
    expect(await errorCode(over)).toBe('TOO_LARGE');
    const bin = s.store.filePath(s.store.get(id));
    expect(statSync(bin).size).toBe(60);
    expect(s.store.get(id).offset).toBe(60);
    expect(s.completed).toEqual([]);
  });

  it('a chunked PATCH body that passes Upload-Length is cut at the length and answered 413', async () => {
    const s = await startServer(tempDir());
    const id = await create(s, 100);
    const chunks = [Buffer.alloc(70, 1), Buffer.alloc(70, 2)];
    const res = await fetch(`${s.url}${TUS_PATH}/${id}`, {
      method: 'PATCH',
      headers: { ...OCTETS, 'Upload-Offset': '0' },
      body: new ReadableStream({
        pull(controller) {
          const next = chunks.shift();
          if (next) controller.enqueue(next);
          else controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    const bin = s.store.filePath(s.store.get(id));
    expect(readFileSync(bin)).toEqual(Buffer.concat([Buffer.alloc(70, 1), Buffer.alloc(30, 2)]));
  });

  it('more uploads than maxUploads is 429 with Retry-After', async () => {
    const s = await startServer(tempDir(), { maxUploads: 2 });
    await create(s, 10);
    await create(s, 10);
    const res = await fetch(s.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': '10' } });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('60');
    expect(await errorCode(res)).toBe('RATE_LIMITED');
  });

  it('with auth on, a publisher token is needed and an upload is only its owner’s', async () => {
    const auth = await createAuthenticator({ hs256Secret: TEST_SECRET });
    const s = await startServer(tempDir(), {}, auth);
    const token = (sub: string, role: string) =>
      new SignJWT({ role, cams: ['*'] })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(sub)
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(TEST_SECRET));
    const bearer = async (sub: string, role: string) => ({
      Authorization: `Bearer ${await token(sub, role)}`,
    });

    const anonymous = await fetch(s.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': '10' } });
    expect(anonymous.status).toBe(401);
    expect(await errorCode(anonymous)).toBe('UNAUTHORIZED');
    const viewer = await fetch(s.endpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': '10', ...(await bearer('alice', 'viewer')) },
    });
    expect(viewer.status).toBe(403);

    const id = await create(s, 10, await bearer('alice', 'publisher'));
    expect((await head(s, id, { ...TUS, ...(await bearer('alice', 'publisher')) })).status).toBe(200);
    expect((await head(s, id, { ...TUS, ...(await bearer('bob', 'publisher')) })).status).toBe(404);
    expect((await head(s, id, { ...TUS, ...(await bearer('root', 'admin')) })).status).toBe(200);
    const stolen = await patch(s, id, 0, Buffer.alloc(5), await bearer('bob', 'publisher'));
    expect(stolen.status).toBe(404);
    expect(s.store.get(id).offset).toBe(0);
  });
});

describe('tus store on disk', () => {
  const open = (dir: string, expireMs = 60_000) =>
    TusStore.open({ dir, maxUploadBytes: MiB, maxUploads: 8, expireMs, log });

  async function written(store: TusStore, length: number, bytes: Buffer): Promise<TusUpload> {
    const upload = await store.create(length, { name: 'x' }, 'anonymous');
    const writer = await store.openWriter(upload);
    try {
      await writer.append(bytes);
    } finally {
      await writer.close();
    }
    return upload;
  }

  it('takes the offset from the .bin when the process died after a write and before its .json', async () => {
    const dir = tempDir();
    const store = await open(dir);
    const upload = await written(store, 1000, Buffer.alloc(100, 1));
    await store.close();
    // The bytes of a write the .json never heard of.
    appendFileSync(store.filePath(upload), Buffer.alloc(300, 2));

    const reopened = await open(dir);
    const again = reopened.get(upload.id);
    expect(again.offset).toBe(400);
    expect(again.length).toBe(1000);
    expect(again.metadata).toEqual({ name: 'x' });
    const record = JSON.parse(readFileSync(join(dir, `${upload.id}.json`), 'utf8')) as { offset: number };
    expect(record.offset).toBe(400);
    await reopened.close();
  });

  it('never takes an offset past the length: a longer .bin is cut', async () => {
    const dir = tempDir();
    const store = await open(dir);
    const upload = await written(store, 100, Buffer.alloc(100, 1));
    await store.close();
    appendFileSync(store.filePath(upload), Buffer.alloc(50, 2));

    const reopened = await open(dir);
    expect(reopened.get(upload.id).offset).toBe(100);
    expect(statSync(reopened.filePath(upload)).size).toBe(100);
    await reopened.close();
  });

  it('tells onRemoved of a termination and of an expired upload swept, not of what open() deletes', async () => {
    const dir = tempDir();
    const removed: string[] = [];
    const opts = {
      dir,
      maxUploadBytes: MiB,
      maxUploads: 8,
      log,
      onRemoved: (u: TusUpload) => removed.push(u.id),
    };
    const stale = await TusStore.open({ ...opts, expireMs: 60_000 });
    const left = await written(stale, 100, Buffer.alloc(10));
    await stale.close();
    const record = JSON.parse(readFileSync(join(dir, `${left.id}.json`), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, `${left.id}.json`), JSON.stringify({ ...record, expiresAt: Date.now() - 1 }));

    const store = await TusStore.open({ ...opts, expireMs: 200, sweepIntervalMs: 3_600_000 });
    expect(removed).toEqual([]);
    const terminated = await written(store, 100, Buffer.alloc(10));
    const expiring = await written(store, 100, Buffer.alloc(10));
    await store.remove(terminated);
    expect(removed).toEqual([terminated.id]);
    await until('the upload to expire', () => {
      try {
        store.get(expiring.id);
        return false;
      } catch (err) {
        return (err as { code?: string }).code === 'UPLOAD_EXPIRED';
      }
    });
    await store.sweep();
    expect(removed).toEqual([terminated.id, expiring.id]);
    expect(readdirSync(dir)).toEqual([]);
    await store.close();
  });

  it('deletes expired uploads, unreadable records, cut-short temp files and orphan data at start', async () => {
    const dir = tempDir();
    const store = await open(dir);
    const kept = await written(store, 100, Buffer.alloc(10));
    const corrupt = await written(store, 100, Buffer.alloc(10));
    const noData = await written(store, 100, Buffer.alloc(10));
    const expired = await written(store, 100, Buffer.alloc(10));
    await store.close();
    writeFileSync(join(dir, `${corrupt.id}.json`), '{"length":');
    rmSync(store.filePath(noData));
    const record = JSON.parse(readFileSync(join(dir, `${expired.id}.json`), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(join(dir, `${expired.id}.json`), JSON.stringify({ ...record, expiresAt: Date.now() - 1 }));
    const orphan = '0f0e0d0c-0b0a-4908-8706-050403020100';
    writeFileSync(join(dir, `${orphan}.bin`), 'half created');
    writeFileSync(join(dir, `${kept.id}.json.tmp`), '{"half":');
    writeFileSync(join(dir, 'notes.txt'), 'not ours');

    const reopened = await open(dir);
    expect(reopened.list().map((u) => u.id)).toEqual([kept.id]);
    expect(readdirSync(dir).sort()).toEqual([`${kept.id}.bin`, `${kept.id}.json`, 'notes.txt'].sort());
    await reopened.close();
  });
});

describe('tus body stream', () => {
  /** A ChunkSource standing in for uWS: the test delivers the chunks and sees pause and resume. */
  function source() {
    let deliver: (chunk: ArrayBuffer, isLast: boolean) => void = () => {};
    const calls: string[] = [];
    return {
      calls,
      send: (bytes: number, fill: number, isLast = false) =>
        deliver(new Uint8Array(bytes).fill(fill).buffer, isLast),
      onData: (handler: typeof deliver) => {
        deliver = handler;
      },
      pause: () => calls.push('pause'),
      resume: () => calls.push('resume'),
    };
  }

  it('reads the next chunk only once the previous one is appended', async () => {
    const src = source();
    const body = new ChunkStream(src, 60);
    expect(src.calls).toEqual(['pause']);
    src.send(10, 1);
    const appended: number[] = [];
    let release: () => void = () => {};
    const piped = body.pipeTo(async (chunk) => {
      appended.push(chunk.length);
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    }, 60);
    await until('the first chunk handed on', () => appended.length === 1);
    release();
    await until('the stream asking for more', () => src.calls.length === 2);
    expect(src.calls).toEqual(['pause', 'resume']);
    src.send(20, 2);
    await until('the second chunk handed on', () => appended.length === 2);
    // Paused at once, and while the chunk is being written: the socket is not read meanwhile.
    expect(src.calls).toEqual(['pause', 'resume', 'pause']);
    release();
    await until('the stream asking for more', () => src.calls.length === 4);
    src.send(30, 3, true);
    await until('the last chunk handed on', () => appended.length === 3);
    release();
    await piped;
    expect(appended).toEqual([10, 20, 30]);
    expect(src.calls).toEqual(['pause', 'resume', 'pause', 'resume']);
  });

  it('appends what fits in the room and refuses the rest with 413', async () => {
    const src = source();
    const body = new ChunkStream(src, undefined);
    src.send(70, 1);
    src.send(70, 2, true);
    const appended: Buffer[] = [];
    const piped = body.pipeTo(async (chunk) => {
      appended.push(chunk);
    }, 100);
    await expect(piped).rejects.toMatchObject({ code: 'TOO_LARGE', status: 413 });
    expect(Buffer.concat(appended)).toEqual(Buffer.concat([Buffer.alloc(70, 1), Buffer.alloc(30, 2)]));
  });

  it('after an early answer, lingers over a small rest of the body and closes for a large or unknown one', () => {
    const small = source();
    expect(new ChunkStream(small, 64 * 1024).dropUnread()).toBe(false);
    expect(small.calls).toEqual(['pause', 'resume']);
    const large = source();
    expect(new ChunkStream(large, 64 * 1024 + 1).dropUnread()).toBe(true);
    expect(large.calls).toEqual(['pause']);
    expect(new ChunkStream(source(), undefined).dropUnread()).toBe(true);
  });
});
