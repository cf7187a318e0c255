/**
 * A tus upload of a 20 MB JPEG against the real daemon, with tus-js-client in 1 MiB chunks:
 * interrupted, previewed before completion, carried across a daemon restart, resumed, and
 * turned into an image job whose result is served.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as tus from 'tus-js-client';
import { afterAll, describe, expect, it } from 'vitest';
import { get, type RunningDaemon, startDaemon, Viewer } from './helpers.js';

const MiB = 1024 * 1024;
/** A config of its own data directory: a restart with it finds the uploads the last daemon left. */
const config = () => ({
  cameras: [],
  jobs: { dataDir: mkdtempSync(join(tmpdir(), 'framehub-uploads-')), maxUploadBytes: 64 * MiB },
  uploads: { maxUploadBytes: 64 * MiB },
});
const daemons: RunningDaemon[] = [];
afterAll(async () => {
  for (const d of daemons) await d.stop();
});

async function daemon(cfg: ReturnType<typeof config>): Promise<RunningDaemon> {
  const d = await startDaemon(cfg);
  daemons.push(d);
  return d;
}

/** About 20 MB of baseline JPEG: noise at q100 compresses badly, on purpose. */
async function bigJpeg(): Promise<Buffer> {
  const width = 3200;
  const height = 2400;
  const raw = Buffer.alloc(width * height * 3);
  let x = 12345;
  for (let i = 0; i < raw.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    raw[i] = (x >>> 16) & 0xff;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
    .toBuffer();
}

/** Uploads until `stopAt` bytes were accepted, then aborts; resolves with the upload URL. */
function uploadUntil(data: Buffer, endpoint: string, stopAt: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let stopped = false;
    const upload = new tus.Upload(data, {
      endpoint,
      chunkSize: MiB,
      retryDelays: null,
      metadata: { format: 'webp', widths: '640' },
      onChunkComplete: (_size, accepted) => {
        if (stopped || accepted < stopAt) return;
        stopped = true;
        upload.abort().then(() => resolve(upload.url ?? ''), reject);
      },
      onSuccess: () => reject(new Error('completed before it was stopped')),
      onError: (err) => (stopped ? undefined : reject(err)),
    });
    upload.start();
  });
}

function resume(data: Buffer, uploadUrl: string): Promise<void> {
  return new Promise((resolve, reject) => {
    new tus.Upload(data, {
      uploadUrl,
      chunkSize: MiB,
      retryDelays: null,
      onSuccess: () => resolve(),
      onError: reject,
    }).start();
  });
}

describe('tus upload → image job', () => {
  it('checks the job options at creation, ignoring what tus clients add by themselves', async () => {
    const d = await daemon(config());
    const create = (metadata: string) =>
      fetch(`${d.url}/api/v1/uploads/`, {
        method: 'POST',
        headers: { 'tus-resumable': '1.0.0', 'upload-length': '1000', 'upload-metadata': metadata },
      });
    const b64 = (v: string) => Buffer.from(v).toString('base64');
    const uppy = await create(
      `filename ${b64('cat.jpg')},filetype ${b64('image/jpeg')},format ${b64('webp')}`,
    );
    expect(uppy.status).toBe(201);
    const bad = await create(`format ${b64('bmp')}`);
    expect([bad.status, ((await bad.json()) as { error: { code: string } }).error.code]).toEqual([
      400,
      'INVALID_FIELD',
    ]);
  });

  it('previews before completion, survives a restart mid-upload, resumes and completes the job', async () => {
    const data = await bigJpeg();
    expect(data.length).toBeGreaterThan(15 * MiB);
    const cfg = config();
    let d = await daemon(cfg);
    const uploadUrl = await uploadUntil(data, `${d.url}/api/v1/uploads/`, Math.ceil(data.length * 0.4));
    const id = uploadUrl.split('/').pop()!;

    // The preview of the 40 % that arrived: published on the job's topic, a real JPEG.
    const v = new Viewer(`${d.wsUrl}?topics=job/${id}`);
    await v.until(
      (rs) => rs.some((r) => r.stage === 'previewing' && typeof r.previewUrl === 'string'),
      30_000,
    );
    const event = v.of('job').find((r) => r.stage === 'previewing' && r.previewUrl)!;
    expect(event.progress).toBeGreaterThanOrEqual(0.25);
    expect(event.progress).toBeLessThan(1);
    v.close();
    const preview = await fetch(`${d.url}${event.previewUrl as string}`);
    expect(preview.headers.get('content-type')).toBe('image/jpeg');
    const meta = await sharp(Buffer.from(await preview.arrayBuffer())).metadata();
    expect([meta.format, meta.width]).toEqual(['jpeg', 320]);

    const head = await fetch(`${d.url}/api/v1/uploads/${id}`, {
      method: 'HEAD',
      headers: { 'tus-resumable': '1.0.0' },
    });
    const offset = Number(head.headers.get('upload-offset'));
    expect(offset).toBeGreaterThanOrEqual(Math.ceil(data.length * 0.4));

    // Restart mid-upload: the new process finds the upload where the old one left it.
    await d.stop();
    d = await daemon(cfg);
    const again = await fetch(`${d.url}/api/v1/uploads/${id}`, {
      method: 'HEAD',
      headers: { 'tus-resumable': '1.0.0' },
    });
    expect(Number(again.headers.get('upload-offset'))).toBe(offset);
    const wrong = await fetch(`${d.url}/api/v1/uploads/${id}`, {
      method: 'PATCH',
      headers: {
        'tus-resumable': '1.0.0',
        'upload-offset': '0',
        'content-type': 'application/offset+octet-stream',
      },
      body: data.subarray(0, 10),
    });
    expect(wrong.status).toBe(409);

    const watcher = new Viewer(`${d.wsUrl}?topics=job/${id}`);
    await resume(data, `${d.url}/api/v1/uploads/${id}`);
    await watcher.until((rs) => rs.some((r) => r.type === 'job' && r.stage === 'complete'), 60_000);
    const last = watcher.of('job').at(-1)!;
    expect([last.state, last.stage]).toEqual(['done', 'complete']);
    watcher.close();

    const job = JSON.parse((await get(`${d.url}/api/v1/jobs/${id}`)).text) as {
      state: string;
      result: { outputs: { url: string; format: string; width: number }[] };
    };
    expect(job.state).toBe('done');
    const out = job.result.outputs[0]!;
    expect([out.format, out.width]).toEqual(['webp', 640]);
    const result = await fetch(`${d.url}${out.url}`);
    expect((await sharp(Buffer.from(await result.arrayBuffer())).metadata()).format).toBe('webp');
  }, 180_000);
});
