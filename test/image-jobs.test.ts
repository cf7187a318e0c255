/**
 * Image jobs over HTTP against the real daemon: POST → 202 → progress on `job/<id>` → result
 * files served with their type, length, ETag and byte ranges; every refusal one test each;
 * DELETE and the per-job timeout reach the worker and leave nothing on disk.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  metricValue,
  noiseJpeg,
  type RunningDaemon,
  startDaemon,
  testCamera,
  Viewer,
} from './helpers.js';

interface JobView {
  id: string;
  kind: string;
  state: string;
  progress: number;
  error?: { code: string; message: string };
  result?: {
    source: { format: string; width: number; height: number; bytes: number };
    outputs: {
      n: number;
      url: string;
      mime: string;
      format: string;
      bytes: number;
      width: number;
      height: number;
      quality?: number;
      encodes: number;
      targetMet?: boolean;
      kept?: string;
    }[];
    placeholder?: string;
  };
}

const dataDir = mkdtempSync(join(tmpdir(), 'framehub-image-jobs-'));
let daemon: RunningDaemon;
let photo: Buffer;

beforeAll(async () => {
  daemon = await startDaemon({
    cameras: [testCamera('live', 10), { id: 'feed', source: 'push' }],
    jobs: {
      dataDir,
      maxUploadBytes: 32 * 1024 * 1024,
      maxActive: 4,
      ttlSeconds: 10,
      imageTimeoutSeconds: 60,
    },
  });
  photo = await noiseJpeg(1600, 1200, 90);
});
afterAll(async () => {
  await daemon?.stop();
});

async function post(query: string, body: Uint8Array, headers: Record<string, string> = {}) {
  const res = await fetch(`${daemon.url}/api/v1/jobs/image${query}`, { method: 'POST', body, headers });
  return {
    status: res.status,
    body: (await res.json()) as { id?: string; topic?: string; error?: { code: string } },
  };
}

async function finished(id: string, timeoutMs = 60_000): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = JSON.parse((await get(`${daemon.url}/api/v1/jobs/${id}`)).text) as JobView;
    if (['done', 'failed', 'cancelled'].includes(job.state)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.state} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('an image job, end to end', () => {
  it('compresses to WebP at two widths, reports progress on job/<id>, and serves each output', async () => {
    const accepted = await post('?format=webp&widths=640,320&placeholder=blurhash', photo);
    expect(accepted.status).toBe(202);
    const { id, topic } = accepted.body as { id: string; topic: string };
    expect(topic).toBe(`job/${id}`);
    // The job's history replays on subscribe, so a late subscriber still sees every state.
    const v = new Viewer(`${daemon.wsUrl}?topics=${topic}`);
    await v.until((rs) => rs.some((r) => r.type === 'job' && r.state === 'done'), 60_000);
    const progress = v.of('job').map((r) => r.progress as number);
    expect(v.of('job').at(-1)?.state).toBe('done');
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    v.close();

    const job = await finished(id);
    expect(job.result?.outputs.map((o) => [o.format, o.width, o.height])).toEqual([
      ['webp', 640, 480],
      ['webp', 320, 240],
    ]);
    expect(job.result?.placeholder).toMatch(/^[0-9A-Za-z#$%*+,\-.:;=?@[\]^_{|}~]{6,}$/);
    const out = job.result!.outputs[0]!;
    const res = await fetch(`${daemon.url}${out.url}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/webp');
    expect(Number(res.headers.get('content-length'))).toBe(out.bytes);
    expect(res.headers.get('cache-control')).toContain('immutable');
    expect(bytes.length).toBe(out.bytes);
    expect((await sharp(bytes).metadata()).format).toBe('webp');

    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    const cached = await fetch(`${daemon.url}${out.url}`, { headers: { 'if-none-match': etag } });
    expect(cached.status).toBe(304);
    const part = await fetch(`${daemon.url}${out.url}`, { headers: { range: 'bytes=10-109' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-109/${out.bytes}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(10, 110))).toBe(true);
    const past = await fetch(`${daemon.url}${out.url}`, { headers: { range: `bytes=${out.bytes}-` } });
    expect(past.status).toBe(416);
    const head = await fetch(`${daemon.url}${out.url}`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length'), (await head.arrayBuffer()).byteLength]).toEqual([
      200,
      String(out.bytes),
      0,
    ]);
    expect((await fetch(`${daemon.url}/api/v1/jobs/${id}/result/2`)).status).toBe(404);
    const metrics = (await get(`${daemon.url}/metrics`)).text;
    expect(metricValue(metrics, 'framehub_job_result_bytes')).toBeGreaterThanOrEqual(out.bytes);
  });

  it('meets a byte budget: targetMet means at most maxBytes', async () => {
    const accepted = await post('?format=jpeg&maxBytes=60000', photo);
    expect(accepted.status).toBe(202);
    const job = await finished(accepted.body.id!);
    const out = job.result!.outputs[0]!;
    expect(out.targetMet).toBe(true);
    expect(out.bytes).toBeLessThanOrEqual(60_000);
    expect(out.encodes).toBeLessThanOrEqual(10);
  });

  it('picks for format=auto among what Accept names', async () => {
    const accepted = await post('?format=auto&widths=400', photo, { accept: 'image/webp,image/*' });
    const job = await finished(accepted.body.id!);
    expect(['webp', 'jpeg']).toContain(job.result!.outputs[0]!.format);
  });
});

describe('refusals, one each, before any job exists', () => {
  const tiny = new Uint8Array(16);
  const cases: [string, string, () => Promise<Uint8Array>, number, string][] = [
    [
      'a truncated JPEG',
      '',
      async () => photo.subarray(0, Math.floor(photo.length / 2)),
      422,
      'CORRUPT_IMAGE',
    ],
    [
      'random bytes',
      '',
      async () => Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'a PNG header claiming 100000×100000',
      '',
      async () => pngHeader(100_000, 100_000),
      422,
      'IMAGE_TOO_LARGE',
    ],
    // fit=contain pads out to the box: the output, not just the input, is held to images.maxPixels.
    [
      'a 2×2 PNG asked for as a 16383×16383 box',
      '?format=webp&widths=16383&height=16383&fit=contain',
      async () =>
        sharp({ create: { width: 2, height: 2, channels: 3, background: '#fff' } })
          .png()
          .toBuffer(),
      422,
      'IMAGE_TOO_LARGE',
    ],
    ['a 0-byte body', '', async () => new Uint8Array(0), 400, 'EMPTY_BODY'],
    [
      'an unsupported format (SVG)',
      '',
      async () => Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    // Refused from the query alone: a small body, so the answer never races the upload (EPIPE).
    ['an unknown format=', '?format=bmp', async () => tiny, 400, 'INVALID_FIELD'],
    ['maxBytes=0', '?maxBytes=0', async () => tiny, 400, 'INVALID_FIELD'],
    ['a negative width', '?widths=-5', async () => tiny, 400, 'INVALID_FIELD'],
  ];
  for (const [name, query, body, status, code] of cases) {
    it(`answers ${name} with ${status} ${code}`, async () => {
      const res = await post(query, await body());
      expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code });
    });
  }

  it('answers the same PNG pushed as a frame on /publish with an IMAGE_TOO_LARGE record', async () => {
    const publisher = new Viewer(`${daemon.url.replace('http', 'ws')}/publish`);
    await publisher.opened;
    publisher.send({ type: 'frame', camera: 'feed', data: pngHeader(100_000, 100_000), ts: Date.now() });
    await publisher.until((rs) => rs.some((r) => r.type === 'error'), 20_000);
    expect(publisher.of('error').map((r) => r.code)).toEqual(['IMAGE_TOO_LARGE']);
    publisher.close();
  });

  it('answers a body declared over jobs.maxUploadBytes with 413 before reading it', async () => {
    // Headers only: the answer must come without a byte of the body.
    const { hostname, port } = new URL(daemon.url);
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: hostname,
          port,
          method: 'POST',
          path: '/api/v1/jobs/image',
          headers: { 'content-length': String(64 * 1024 * 1024) },
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.flushHeaders();
    });
    expect({
      status: reply.status,
      code: (JSON.parse(reply.body) as { error: { code: string } }).error.code,
    }).toEqual({
      status: 413,
      code: 'TOO_LARGE',
    });
  });
});

describe('stopping a job', () => {
  it('DELETE cancels a running job, frees its worker and leaves nothing on disk', async () => {
    const big = await noiseJpeg(2000, 1500, 90);
    // Seconds of AVIF encoding: still running when the DELETE comes.
    const accepted = await post('?format=avif&widths=2000,1500,1000&quality=90', big);
    expect(accepted.status).toBe(202);
    const id = accepted.body.id!;
    const v = new Viewer(`${daemon.wsUrl}?topics=job/${id}`);
    await v.until((rs) => rs.some((r) => r.type === 'job' && r.state === 'running'), 60_000);
    // The encode runs in a job process of the daemon (one per worker that took a job), every
    // thread of it, libvips's included, jobs.nice (10) below the daemon's priority.
    const daemonPid = daemon.proc.pid!;
    const encoding = await busyJobProcess(daemonPid);
    await expect
      .poll(() => threadsOf(encoding).some((t) => t.comm.includes('vips')), { timeout: 30_000 })
      .toBe(true);
    const niced = Math.min(19, threadsOf(daemonPid)[0]!.nice + 10);
    for (const pid of jobProcesses(daemonPid))
      expect(threadsOf(pid).filter((t) => t.nice !== niced)).toEqual([]);
    const del = await fetch(`${daemon.url}/api/v1/jobs/${id}`, { method: 'DELETE' });
    expect(((await del.json()) as JobView).state).toBe('cancelled');
    v.close();
    // Cancelling kills the job process and its worker reaps it: gone from /proc, not a zombie.
    await expect.poll(() => existsSync(`/proc/${encoding}`), { timeout: 30_000 }).toBe(false);
    // The pool runs new work: a small job finishes while the cancelled one would still be encoding.
    const next = await post('?format=jpeg&widths=100', photo);
    expect((await finished(next.body.id!)).state).toBe('done');
    expect(existsSync(join(dataDir, 'results', id))).toBe(false);
  }, 120_000);
});

describe('a storm of cancelled jobs', () => {
  it('leaves no zombie, no input file and no result, and live frames keep reaching a viewer', async () => {
    const viewer = new Viewer(`${daemon.wsUrl}?topics=cam/live/low`);
    const frames = () => viewer.records.filter((r) => r.type === 'frame').length;
    await viewer.until((rs) => rs.some((r) => r.type === 'frame'), 30_000);
    const big = await noiseJpeg(1600, 1200, 90);
    const ids: string[] = [];
    for (let round = 0; round < 6; round++) {
      const accepted = await Promise.all([post('?format=avif&quality=90', big), post('?format=webp', big)]);
      for (const a of accepted) if (a.status === 202) ids.push(a.body.id!);
      // Some are cancelled while queued, some while running, some after their process started.
      await Promise.all(
        accepted
          .filter((a) => a.status === 202)
          .map((a) => fetch(`${daemon.url}/api/v1/jobs/${a.body.id}`, { method: 'DELETE' })),
      );
    }
    expect(ids.length).toBeGreaterThanOrEqual(6);
    for (const id of ids) expect(['cancelled', 'done']).toContain((await finished(id)).state);
    const seen = frames();
    await viewer.until(() => frames() >= seen + 5, 30_000);
    viewer.close();
    const daemonPid = daemon.proc.pid!;
    const zombies = () =>
      readdirSync(`/proc/${daemonPid}/task`)
        .flatMap((tid) => readProc(`${daemonPid}/task/${tid}/children`).split(' '))
        .filter((pid) => pid !== '' && /^\S+ \(.*\) Z/.test(readProc(`${pid}/stat`)));
    await expect.poll(zombies, { timeout: 30_000 }).toEqual([]);
    await expect.poll(() => readdirSync(join(dataDir, 'work')), { timeout: 30_000 }).toEqual([]);
    for (const id of ids) {
      const job = JSON.parse((await get(`${daemon.url}/api/v1/jobs/${id}`)).text) as JobView;
      if (job.state === 'cancelled') expect(existsSync(join(dataDir, 'results', id))).toBe(false);
    }
  }, 180_000);
});

describe('a job process that dies', () => {
  it('fails its job alone, with INTERNAL; the next job starts a new process and is done', async () => {
    const accepted = await post(
      '?format=avif&widths=2000,1500,1000&quality=90',
      await noiseJpeg(2000, 1500, 90),
    );
    expect(accepted.status).toBe(202);
    const daemonPid = daemon.proc.pid!;
    const victim = await busyJobProcess(daemonPid);
    process.kill(victim, 'SIGKILL');
    const job = await finished(accepted.body.id!);
    expect(job).toMatchObject({ state: 'failed', error: { code: 'INTERNAL' } });
    await expect.poll(() => existsSync(`/proc/${victim}`), { timeout: 30_000 }).toBe(false);
    const next = await post('?format=jpeg&widths=100', photo);
    expect((await finished(next.body.id!)).state).toBe('done');
    expect((await get(`${daemon.url}/healthz`)).status).toBe(200);
  }, 120_000);
});

/** CPU ticks (10 ms each on Linux) a job process must spend to count as the one encoding. */
const BUSY_TICKS = 30;

/**
 * The job process encoding now: the one whose CPU time grows by BUSY_TICKS (300 ms). Another
 * may sit idle from earlier jobs, libvips threads and all, spending a tick now and then; a
 * process started for this job counts from zero.
 */
async function busyJobProcess(daemonPid: number): Promise<number> {
  const ticksBefore = new Map(jobProcesses(daemonPid).map((pid) => [pid, cpuTicks(pid)]));
  const busy = () =>
    jobProcesses(daemonPid).find((pid) => cpuTicks(pid) - (ticksBefore.get(pid) ?? 0) >= BUSY_TICKS);
  await expect.poll(busy, { timeout: 30_000 }).toBeDefined();
  return busy()!;
}

/** utime + stime of a process, in clock ticks; 0 once it is gone. */
function cpuTicks(pid: number): number {
  const stat = readProc(`${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return stat === '' ? 0 : Number(fields[11]) + Number(fields[12]);
}

/** Pids of the daemon's job processes (workers/job-process.js). */
function jobProcesses(daemonPid: number): number[] {
  return readdirSync(`/proc/${daemonPid}/task`)
    .flatMap((tid) => readProc(`${daemonPid}/task/${tid}/children`).split(' '))
    .filter((pid) => pid !== '' && readProc(`${pid}/cmdline`).includes('workers/job-process.js'))
    .map(Number);
}

/** Each thread of a process: its name and nice value (field 19 of /proc/<pid>/task/<tid>/stat). */
function threadsOf(pid: number): { comm: string; nice: number }[] {
  const tids = existsSync(`/proc/${pid}/task`) ? readdirSync(`/proc/${pid}/task`) : [];
  return tids.map((tid) => {
    const stat = readProc(`${pid}/task/${tid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { comm: readProc(`${pid}/task/${tid}/comm`).trim(), nice: Number(fields[16]) };
  });
}

/** A /proc file, or '' when its process or thread has just gone. */
function readProc(path: string): string {
  try {
    return readFileSync(`/proc/${path}`, 'utf8');
  } catch {
    return '';
  }
}

/** A PNG signature and IHDR claiming the given size, with a valid CRC, and nothing after. */
function pngHeader(width: number, height: number): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  const type = Buffer.from('IHDR');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([type, ihdr])));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(13);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), len, type, ihdr, crc]);
}

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
