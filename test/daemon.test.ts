import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { get, metricValue, type RunningDaemon, startDaemon, testCamera, Viewer } from './helpers.js';

let daemon: RunningDaemon;

beforeAll(async () => {
  daemon = await startDaemon({ cameras: [testCamera('demo', 15)] });
});
afterAll(async () => {
  await daemon?.stop();
});

describe('frames end to end (camera → pool → ring → hub → ws)', () => {
  it('delivers at least 10 low frames in 5 s, 320 px wide, seq strictly increasing', async () => {
    const v = new Viewer(`${daemon.wsUrl}?topics=cam/demo/low`);
    await v.until((r) => r.filter((x) => x.type === 'frame').length >= 10, 5000);
    v.close();
    const frames = v.of('frame');
    for (const f of frames) {
      expect(f.topic).toBe('cam/demo/low');
      expect(f.mime).toBe('image/jpeg');
      const meta = await sharp(f.data as Uint8Array).metadata();
      expect(meta.format).toBe('jpeg');
      expect(meta.width).toBe(320);
      expect(f.width).toBe(320);
      expect(f.height).toBe(meta.height);
      expect(Math.abs(Date.now() - (f.ts as number))).toBeLessThan(10_000);
    }
    const seqs = frames.map((f) => f.seq as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
  });

  it('serves every variant at its size, raw untouched at the camera size', async () => {
    const v = new Viewer(daemon.wsUrl);
    await v.opened;
    v.send({ type: 'sub', topics: ['cam/demo/raw', 'cam/demo/medium', 'cam/demo/high'] });
    await v.until((r) => new Set(r.filter((x) => x.type === 'frame').map((x) => x.topic)).size === 3);
    v.close();
    const widthOf = (t: string) => v.of('frame').find((f) => f.topic === t)!.width;
    expect(widthOf('cam/demo/raw')).toBe(640);
    expect(widthOf('cam/demo/medium')).toBe(640);
    // high (1280) is wider than the 640 px source: never upscaled.
    expect(widthOf('cam/demo/high')).toBe(640);
  });

  it('gives a late subscriber the cached latest frame within 200 ms', async () => {
    const warm = new Viewer(`${daemon.wsUrl}?topics=cam/demo/low`);
    await warm.until((r) => r.some((x) => x.type === 'frame'));
    const late = new Viewer(daemon.wsUrl);
    await late.opened;
    const t0 = performance.now();
    late.send({ type: 'sub', topics: ['cam/demo/low'] });
    await late.until((r) => r.some((x) => x.type === 'frame'), 200);
    expect(performance.now() - t0).toBeLessThan(200);
    warm.close();
    late.close();
  });

  it('answers ping with pong carrying the id', async () => {
    const v = new Viewer(daemon.wsUrl);
    await v.opened;
    v.send({ type: 'ping', id: 42 });
    await v.until((r) => r.some((x) => x.type === 'pong'));
    expect(v.of('pong')[0]).toMatchObject({ type: 'pong', id: 42 });
    v.close();
  });

  it('unsub stops frames for that topic', async () => {
    const v = new Viewer(`${daemon.wsUrl}?topics=cam/demo/low`);
    await v.until((r) => r.some((x) => x.type === 'frame'));
    v.send({ type: 'unsub', topics: ['cam/demo/low'] });
    await new Promise((r) => setTimeout(r, 150));
    const n = v.of('frame').length;
    await new Promise((r) => setTimeout(r, 400));
    expect(v.of('frame').length).toBe(n);
    v.close();
  });
});

describe('malformed WebSocket input', () => {
  it('answers each kind of bad record with an error code and keeps the connection and other viewers alive', async () => {
    const healthy = new Viewer(`${daemon.wsUrl}?topics=cam/demo/low`);
    const hostile = new Viewer(daemon.wsUrl);
    await hostile.opened;
    const before = healthy.of('frame').length;

    hostile.ws.send(Buffer.from([0xc1, 0xff, 0x00, 0x13])); // 0xc1 is never valid msgpack
    hostile.ws.send('{"type":"sub"}'); // text frame
    hostile.send([1, 2, 3]); // not a map
    hostile.send({ type: 'launch' });
    hostile.send({ type: 'sub', topics: 'cam/demo/low' }); // wrong type
    hostile.send({ type: 'sub', topics: ['cam/../etc', 'cam/nope/low', 'cam/demo/ultra', 42] });
    hostile.send({ type: 'ping', id: 'still-alive' });
    await hostile.until((r) => r.some((x) => x.type === 'pong'));

    const codes = hostile.of('error').map((e) => e.code);
    expect(codes).toEqual([
      'BAD_MESSAGE',
      'BAD_MESSAGE',
      'BAD_MESSAGE',
      'UNKNOWN_TYPE',
      'BAD_MESSAGE',
      'BAD_TOPIC',
      'UNKNOWN_TOPIC',
      'BAD_TOPIC',
      'BAD_TOPIC',
    ]);
    expect(hostile.of('error').find((e) => e.code === 'UNKNOWN_TOPIC')).toMatchObject({
      topic: 'cam/nope/low',
    });
    expect(hostile.ws.readyState).toBe(WebSocket.OPEN);

    // Random bytes: each either decodes to something wrong or fails to decode; never a crash.
    for (let i = 0; i < 50; i++)
      hostile.ws.send(Buffer.from(Array.from({ length: 1 + i * 7 }, () => (Math.random() * 256) | 0)));
    hostile.send({ type: 'ping', id: 'after-noise' });
    await hostile.until((r) => r.some((x) => x.type === 'pong' && x.id === 'after-noise'));

    await healthy.until((r) => r.filter((x) => x.type === 'frame').length >= before + 5);
    healthy.close();
    hostile.close();
  });

  it('closes a connection that sends an oversized payload with 1009, and others keep receiving', async () => {
    const healthy = new Viewer(`${daemon.wsUrl}?topics=cam/demo/low`);
    await healthy.until((r) => r.some((x) => x.type === 'frame'));
    const big = new Viewer(daemon.wsUrl);
    await big.opened;
    big.ws.send(Buffer.alloc(65 * 1024 + 1));
    const closed = await big.closed;
    expect(closed.code).toBe(1009);
    // Past twice the limit uWS cuts the connection before buffering the message.
    const huge = new Viewer(daemon.wsUrl);
    await huge.opened;
    huge.ws.send(Buffer.alloc(200 * 1024));
    expect((await huge.closed).code).toBe(1006);
    const n = healthy.of('frame').length;
    await healthy.until((r) => r.filter((x) => x.type === 'frame').length >= n + 3);
    healthy.close();
  });
});

describe('HTTP', () => {
  it('serves /healthz, /readyz, the viewer page and a JSON 404', async () => {
    expect((await get(`${daemon.url}/healthz`)).status).toBe(200);
    expect(JSON.parse((await get(`${daemon.url}/readyz`)).text)).toEqual({ status: 'ready' });
    const page = await get(`${daemon.url}/`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('src="viewer.js"');
    expect((await get(`${daemon.url}/vendor/msgpackr.js`)).status).toBe(200);
    const missing = await get(`${daemon.url}/nope`);
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text)).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });

  it('exports the backbone metrics', async () => {
    const { text } = await get(`${daemon.url}/metrics`);
    for (const name of [
      'framehub_connections',
      'framehub_camera_frames_in_total',
      'framehub_frames_sent_total',
      'framehub_frames_dropped_total',
      'framehub_pool_task_duration_seconds_bucket',
      'framehub_ring_fill_ratio',
      'framehub_ring_full_total',
      'framehub_camera_up',
      'framehub_nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toContain(name);
    }
    expect(metricValue(text, 'framehub_camera_frames_in_total{camera="demo"}')).toBeGreaterThan(0);
    expect(metricValue(text, 'framehub_camera_up{camera="demo"}')).toBe(1);
    expect(metricValue(text, 'framehub_frames_sent_total{transport="ws"}')).toBeGreaterThan(0);
  });
});

describe('camera supervision', () => {
  it('restarts ffmpeg after SIGKILL: frames resume, restarts counted, camera_up back to 1', async () => {
    const before = await get(`${daemon.url}/metrics`);
    expect(metricValue(before.text, 'framehub_camera_restarts_total{camera="demo"}')).toBe(0);
    const started = await daemon.waitForLog((l) => l.msg === 'camera ffmpeg started');
    process.kill(started.ffmpegPid as number, 'SIGKILL');
    await daemon.waitForLog((l) => l.msg === 'camera ffmpeg exited' && l.signal === 'SIGKILL');

    const v = new Viewer(`${daemon.wsUrl}?topics=cam/demo/low`);
    await v.opened;
    const after = Date.now();
    await v.until((r) => r.some((x) => x.type === 'frame' && (x.ts as number) > after), 8000);
    v.close();
    const { text } = await get(`${daemon.url}/metrics`);
    expect(metricValue(text, 'framehub_camera_restarts_total{camera="demo"}')).toBe(1);
    expect(metricValue(text, 'framehub_camera_up{camera="demo"}')).toBe(1);
  });
});

describe('graceful shutdown', () => {
  it('on SIGTERM closes viewers with 1001 and exits 0 within 5 s', async () => {
    const d = await startDaemon({ cameras: [testCamera('demo', 10)] });
    const v = new Viewer(`${d.wsUrl}?topics=cam/demo/low`);
    await v.until((r) => r.some((x) => x.type === 'frame'));
    const t0 = Date.now();
    const code = await d.stop();
    expect(Date.now() - t0).toBeLessThan(5000);
    // On failure, say how it ended: a signal, or the forced exit's logged reason.
    const forced = d.logs.find((l) => l.msg?.startsWith('forced exit'));
    const stderr = d.proc.signalCode ? d.stderr().slice(-2000) : '';
    expect({ code, signal: d.proc.signalCode, forced, stderr }).toEqual({
      code: 0,
      signal: null,
      forced: undefined,
      stderr: '',
    });
    expect((await v.closed).code).toBe(1001);
    await expect(fetch(`${d.url}/healthz`)).rejects.toThrow();
  });
});
