import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, metricValue, noiseJpeg, pack, type RunningDaemon, startDaemon, Viewer } from './helpers.js';

const RING_BYTES = 64 * 1024; // the schema's minimum
let daemon: RunningDaemon;
let publisher: Viewer;
let timer: NodeJS.Timeout;

afterAll(async () => {
  clearInterval(timer);
  publisher?.close();
  await daemon?.stop();
});

describe('frames larger than the result ring', () => {
  beforeAll(async () => {
    daemon = await startDaemon({
      cameras: [{ id: 'big', source: 'push', fps: 5 }],
      pool: { threads: 1, ringBytes: RING_BYTES },
    });
  });

  it('drop only the records that cannot fit: low still arrives, the rest count as too_large', async () => {
    // 1280x720 noise: about 280 KB raw, so raw, high (the source itself) and medium cannot fit
    // a 64 KiB ring, while low (320 wide) can.
    const jpeg = await noiseJpeg(1280, 720);
    expect(jpeg.length).toBeGreaterThan(RING_BYTES);
    const low = new Viewer(`${daemon.wsUrl}?topics=cam/big/low`);
    await low.opened;
    publisher = new Viewer(`${daemon.url.replace('http', 'ws')}/publish`);
    await publisher.opened;
    timer = setInterval(
      () => publisher.ws.send(pack({ type: 'frame', camera: 'big', ts: Date.now(), data: jpeg })),
      200,
    );

    await low.until((rs) => rs.filter((r) => r.type === 'frame').length >= 3, 15_000);
    const frame = low.of('frame')[0]!;
    expect(frame.topic).toBe('cam/big/low');
    expect(frame.width).toBe(320);
    expect((frame.data as Uint8Array).length).toBeLessThan(RING_BYTES);

    const metrics = (await get(`${daemon.url}/metrics`)).text;
    expect(metricValue(metrics, 'framehub_frames_dropped_total{reason="too_large"}')).toBeGreaterThan(0);
    // The task no longer fails as a whole.
    expect(metricValue(metrics, 'framehub_frames_dropped_total{reason="worker_error"}') ?? 0).toBe(0);
    expect(metricValue(metrics, 'framehub_image_bytes_out_total')).toBeGreaterThan(0);
    expect((await get(`${daemon.url}/cams/big/low.jpg`)).status).toBe(200);
    low.close();
  });
});

describe('camera frames over the 16 MiB splitter limit', () => {
  let cam: RunningDaemon | undefined;
  afterAll(async () => {
    await cam?.stop();
  });

  it('are counted as too_large, warned once, and named in the camera lastError', async () => {
    // A stand-in for ffmpeg that ignores its arguments and writes two frames that each run past
    // 16 MiB without an end marker (start marker, 20 MiB of zeros), then idles.
    const dir = mkdtempSync(join(tmpdir(), 'framehub-oversize-'));
    const fakeFfmpeg = join(dir, 'ffmpeg');
    const oversizedFrame = "printf '\\377\\330'\nhead -c 20971520 /dev/zero\n";
    writeFileSync(fakeFfmpeg, `#!/bin/sh\n${oversizedFrame}${oversizedFrame}exec sleep 60\n`);
    chmodSync(fakeFfmpeg, 0o755);
    cam = await startDaemon({
      ffmpegPath: fakeFfmpeg,
      cameras: [{ id: 'huge', source: 'test', audio: false }],
    });

    const warned = await cam.waitForLog(
      (l) => l.camera === 'huge' && /frame over 16 MiB discarded/.test(String(l.msg)),
    );
    expect(warned.maxFrameBytes).toBe(16 * 1024 * 1024);
    const tooLarge = async () =>
      metricValue(
        (await get(`${cam!.url}/metrics`)).text,
        'framehub_frames_dropped_total{reason="too_large"}',
      );
    const deadline = Date.now() + 10_000;
    while ((await tooLarge()) !== 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await tooLarge()).toBe(2);
    expect(cam.logs.filter((l) => /frame over 16 MiB discarded/.test(String(l.msg)))).toHaveLength(1);
    const status = JSON.parse((await get(`${cam.url}/api/v1/status`)).text) as {
      cameras: { id: string; up: boolean; lastError: string }[];
    };
    const huge = status.cameras.find((c) => c.id === 'huge')!;
    expect(huge.up).toBe(false);
    expect(huge.lastError).toMatch(/frame over 16 MiB discarded/);
  });
});
