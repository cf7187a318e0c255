import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  metricValue,
  type RunningDaemon,
  SseReader,
  startDaemon,
  Viewer,
  videoTestCamera,
} from './helpers.js';

/**
 * Live H.264 on `cam/<id>/video` from a real camera ffmpeg (libx264 over a test pattern),
 * through the real daemon: init + fragments over WS and SSE, the GOP cache, codec
 * negotiation, and the keyframe skip of a stalled viewer. Every wait is on records received or
 * on /metrics, never a sleep.
 */
const FFPROBE = '/usr/bin/ffprobe';
const FPS = 15;
const GOP_SECONDS = 2;

let daemon: RunningDaemon;
let dir: string;
const viewers: Viewer[] = [];

const videoCamera = (id: string, extra: Record<string, unknown> = {}) => ({
  ...videoTestCamera(id, FPS, GOP_SECONDS),
  ...extra,
});

function viewer(topic: string): Viewer {
  const v = new Viewer(`${daemon.wsUrl}`);
  viewers.push(v);
  v.ws.once('open', () => v.send({ type: 'sub', topics: [topic] }));
  return v;
}

const fragments = (v: Viewer) => v.of('fragment');
const bytes = (r: Record<string, unknown>) => r.data as Uint8Array;

/** ffprobe's view of a file: its streams, with frames counted. */
function probe(
  file: string,
): { codec_name: string; width: number; height: number; nb_read_frames: string }[] {
  const out = execFileSync(FFPROBE, ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', file], {
    encoding: 'utf8',
  });
  return JSON.parse(out).streams;
}

/** The bundled ffmpeg: makes the H.264 file the `copy` camera remuxes. */
const FFMPEG = (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'framehub-live-video-'));
  const h264File = join(dir, 'h264.mp4');
  // biome-ignore format: one option and its value per line
  execFileSync(FFMPEG, [
    '-hide_banner', '-loglevel', 'error',
    '-f', 'lavfi', '-i', 'testsrc2=size=256x144:rate=10',
    '-t', '4',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '10', '-pix_fmt', 'yuv420p',
    h264File,
  ]);
  const mpeg4File = join(dir, 'mpeg4.mp4');
  // biome-ignore format: one option and its value per line
  execFileSync(FFMPEG, [
    '-hide_banner', '-loglevel', 'error',
    '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=10',
    '-t', '3',
    '-c:v', 'mpeg4',
    mpeg4File,
  ]);
  daemon = await startDaemon({
    cameras: [
      // `copy` of a stream that is not H.264: the video is turned off, the MJPEG goes on.
      { id: 'mpeg4', source: mpeg4File, fps: 10, width: 160, height: 90, video: 'copy' },
      videoCamera('again'),
      // `copy`: the file's own H.264, remuxed, never decoded for the video (MJPEG still is).
      { id: 'copied', source: h264File, fps: 10, width: 256, height: 144, video: 'copy' },
      videoCamera('v'),
      videoCamera('nocache', { videoGopCache: false }),
      // Fast enough to fill a stalled viewer's socket buffers within seconds.
      videoCamera('fast', { width: 640, height: 360, fps: 30, videoBitrateKbps: 20_000 }),
      { id: 'plain', source: 'test', fps: 5, width: 160, height: 90, audio: false },
    ],
    viewers: { softBufferBytes: 64 * 1024, hardBufferBytes: 64 * 1024 * 1024, slowCloseMs: 120_000 },
  });
}, 60_000);

afterAll(async () => {
  for (const v of viewers) v.close();
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('live video over WS', () => {
  it('sends init, then fragments whose concatenation ffprobe reads as H.264 MP4', async () => {
    const v = viewer('cam/v/video');
    await v.until((rs) => rs.filter((r) => r.type === 'fragment').length >= 3 * FPS, 30_000);
    const [init] = v.of('init');
    expect(init).toMatchObject({ topic: 'cam/v/video', width: 320, height: 180 });
    expect(init!.codec).toMatch(/^avc1\.[0-9a-f]{6}$/);
    expect(v.records.findIndex((r) => r.type === 'init')).toBeLessThan(
      v.records.findIndex((r) => r.type === 'fragment'),
    );
    const frs = fragments(v);
    // The first fragment a viewer gets is a keyframe: the cached GOP starts at one.
    expect(frs[0]!.keyframe).toBe(true);
    const seqs = frs.map((f) => f.seq as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
    for (const f of frs) {
      expect(typeof f.ts).toBe('number');
      expect(typeof f.pts).toBe('number');
    }
    // A keyframe every GOP_SECONDS × FPS fragments (the first may be cached mid-way).
    const keyIdx = frs.flatMap((f, i) => (f.keyframe ? [i] : []));
    expect(keyIdx.length).toBeGreaterThanOrEqual(2);
    for (let i = 2; i < keyIdx.length; i++) expect(keyIdx[i]! - keyIdx[i - 1]!).toBe(GOP_SECONDS * FPS);

    const file = join(dir, 'ws.mp4');
    writeFileSync(file, Buffer.concat([bytes(init!), ...frs.map(bytes)]));
    const [stream] = probe(file);
    expect(stream).toMatchObject({ codec_name: 'h264', width: 320, height: 180 });
    expect(Number(stream!.nb_read_frames)).toBe(frs.length);
  }, 60_000);

  it('a viewer joining mid-GOP gets the init and the cached GOP from its keyframe at once', async () => {
    const first = viewer('cam/v/video');
    // Mid-GOP: the first viewer has seen a keyframe and then at least 5 more fragments.
    await first.until((rs) => {
      const frs = rs.filter((r) => r.type === 'fragment');
      const lastKey = frs.findLastIndex((f) => f.keyframe === true);
      return lastKey >= 0 && frs.length - lastKey >= 6 && frs.length - lastKey < GOP_SECONDS * FPS - 3;
    }, 30_000);
    const late = viewer('cam/v/video');
    await late.until((rs) => rs.some((r) => r.type === 'fragment' && r.cached !== true), 10_000);
    const frs = fragments(late);
    expect(frs[0]).toMatchObject({ keyframe: true, cached: true });
    // The whole cached GOP (the keyframe and at least the 5 fragments the first viewer saw
    // after it) came before anything live, contiguous with it.
    const firstLive = frs.findIndex((f) => f.cached !== true);
    expect(firstLive).toBeGreaterThanOrEqual(6);
    const seqs = frs.map((f) => f.seq as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
  }, 60_000);

  it('without the GOP cache a late viewer gets the init and then waits for the next keyframe', async () => {
    const first = viewer('cam/nocache/video');
    await first.until((rs) => rs.some((r) => r.type === 'fragment' && r.keyframe === true), 30_000);
    const late = viewer('cam/nocache/video');
    await late.until((rs) => rs.some((r) => r.type === 'fragment'), 10_000);
    expect(late.records.find((r) => r.type === 'init')).toBeDefined();
    const [f] = fragments(late);
    expect(f).toMatchObject({ keyframe: true });
    expect(f!.cached).toBeUndefined();
  }, 60_000);

  it('answers a codec the browser cannot play with UNSUPPORTED_CODEC, and a playable one with the init', async () => {
    const ref = viewer('cam/v/video');
    await ref.until((rs) => rs.some((r) => r.type === 'init'), 30_000);
    const codec = ref.of('init')[0]!.codec as string;

    const baseline = new Viewer(daemon.wsUrl);
    viewers.push(baseline);
    await baseline.opened;
    baseline.send({ type: 'sub', topics: ['cam/v/video'], codecs: ['avc1.42e01e'] });
    await baseline.until((rs) => rs.some((r) => r.type === 'error'));
    expect(baseline.of('error')[0]).toMatchObject({ code: 'UNSUPPORTED_CODEC', topic: 'cam/v/video' });
    expect(baseline.of('init')).toHaveLength(0);

    baseline.send({ type: 'sub', topics: ['cam/v/video'], codecs: ['avc1.42e01e', codec] });
    await baseline.until((rs) => rs.some((r) => r.type === 'init'));
    expect(baseline.of('init')[0]!.codec).toBe(codec);

    baseline.send({ type: 'sub', topics: ['cam/v/video'], codecs: 'avc1' });
    await baseline.until((rs) => rs.filter((r) => r.type === 'error').length >= 2);
    expect(baseline.of('error')[1]).toMatchObject({ code: 'BAD_MESSAGE' });
  }, 60_000);

  it('copy: remuxes an H.264 file source without re-encoding it', async () => {
    const v = viewer('cam/copied/video');
    await v.until((rs) => rs.filter((r) => r.type === 'fragment').length >= 12, 30_000);
    const init = v.of('init')[0]!;
    expect(init).toMatchObject({ width: 256, height: 144 });
    // ultrafast encodes Constrained Baseline: the copied stream keeps the file's profile.
    expect(init.codec).toMatch(/^avc1\.42/);
    const frs = fragments(v);
    expect(frs[0]!.keyframe).toBe(true);
    expect(frs.filter((f) => f.keyframe).length).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('refuses video on a camera without it, and over MJPEG', async () => {
    const v = viewer('cam/plain/video');
    await v.until((rs) => rs.some((r) => r.type === 'error'));
    expect(v.of('error')[0]).toMatchObject({ code: 'UNKNOWN_TOPIC' });
    const mjpeg = await get(`${daemon.url}/cams/v/video.mjpeg`);
    expect(mjpeg.status).toBe(400);
    expect(JSON.parse(mjpeg.text).error.code).toBe('BAD_TOPIC');
  });

  it('a stalled viewer skips fragments (counted) and resumes on a keyframe, never mid-GOP', async () => {
    const v = viewer('cam/fast/video');
    await v.until((rs) => rs.filter((r) => r.type === 'fragment').length >= 5, 30_000);
    const socket = (v.ws as unknown as { _socket: net.Socket })._socket;
    const skipped = async () =>
      metricValue(
        (await get(`${daemon.url}/metrics`)).text,
        'framehub_frames_dropped_total{reason="keyframe_wait",transport="ws"}',
      ) ?? 0;
    const before = await skipped();
    socket.pause();
    // Wait until the server has counted fragments this viewer skipped.
    const deadline = Date.now() + 60_000;
    while ((await skipped()) <= before) {
      if (Date.now() > deadline) throw new Error('the stalled viewer was never marked slow');
      await new Promise((r) => setTimeout(r, 200));
    }
    const seen = fragments(v).length;
    socket.resume();
    // Find the first seq gap after the stall: the fragment after it must be a keyframe.
    await v.until((rs) => {
      const frs = rs.filter((r) => r.type === 'fragment');
      return frs
        .slice(seen)
        .some((f, i, all) => i > 0 && (f.seq as number) !== (all[i - 1]!.seq as number) + 1);
    }, 60_000);
    const frs = fragments(v);
    const gap = frs.findIndex((f, i) => i > 0 && (f.seq as number) !== (frs[i - 1]!.seq as number) + 1);
    expect(gap).toBeGreaterThan(0);
    expect(frs[gap]!.keyframe).toBe(true);
  }, 120_000);
});

describe('live video across camera trouble', () => {
  it('copy of a source that is not H.264 turns the video off and keeps the MJPEG', async () => {
    const status = async () =>
      (JSON.parse((await get(`${daemon.url}/api/v1/status`)).text).cameras as Record<string, unknown>[]).find(
        (c) => c.id === 'mpeg4',
      )!;
    const deadline = Date.now() + 30_000;
    let cam = await status();
    while (!(cam.videoOff && cam.up)) {
      if (Date.now() > deadline)
        throw new Error(`camera never came up without video: ${JSON.stringify(cam)}`);
      await new Promise((r) => setTimeout(r, 200));
      cam = await status();
    }
    expect(String(cam.videoOff)).toMatch(/not H\.264/);
    const jpg = await fetch(`${daemon.url}/cams/mpeg4/raw.jpg`);
    expect(jpg.status).toBe(200);
  }, 60_000);

  it('after an ffmpeg restart subscribers get the init again and a timeline that goes on', async () => {
    const v = viewer('cam/again/video');
    await v.until((rs) => rs.filter((r) => r.type === 'fragment').length >= 10, 30_000);
    const cams = JSON.parse((await get(`${daemon.url}/api/v1/status`)).text).cameras as Record<
      string,
      unknown
    >[];
    const pid = cams.find((c) => c.id === 'again')!.pid as number;
    const before = fragments(v).length;
    const lastPts = fragments(v).at(-1)!.pts as number;
    process.kill(pid, 'SIGKILL');
    await v.until((rs) => rs.filter((r) => r.type === 'init').length >= 2, 30_000);
    await v.until((rs) => rs.filter((r) => r.type === 'fragment').length >= before + 20, 30_000);
    const secondInit = v.records.findLastIndex((r) => r.type === 'init');
    const after = v.records.slice(secondInit).filter((r) => r.type === 'fragment');
    expect(after[0]!.keyframe).toBe(true);
    // The new run's media time starts past the old run's last fragment, not at 0.
    expect(after[0]!.pts as number).toBeGreaterThan(lastPts);
    for (let i = 1; i < after.length; i++)
      expect(after[i]!.pts as number).toBeGreaterThan(after[i - 1]!.pts as number);
  }, 90_000);
});

describe('live video over SSE', () => {
  it('streams init and fragments as base64 JSON, a keyframe first', async () => {
    const sse = new SseReader(`${daemon.url}/sse?topics=cam/v/video`);
    try {
      await sse.until(() => sse.events.filter((e) => e.event === 'fragment').length >= 3, 30_000);
      const init = sse.events.find((e) => e.event === 'init')!;
      const body = JSON.parse(init.data);
      expect(body).toMatchObject({ type: 'init', topic: 'cam/v/video', width: 320, height: 180 });
      expect(Buffer.from(body.data, 'base64').subarray(4, 8).toString()).toBe('ftyp');
      const first = JSON.parse(sse.events.find((e) => e.event === 'fragment')!.data);
      expect(first.keyframe).toBe(true);
      expect(Buffer.from(first.data, 'base64').subarray(4, 8).toString()).toBe('moof');
    } finally {
      sse.close();
    }
  }, 60_000);

  it('refuses codecs the stream is not with 406 UNSUPPORTED_CODEC', async () => {
    const ref = viewer('cam/v/video');
    await ref.until((rs) => rs.some((r) => r.type === 'init'), 30_000);
    const res = await get(`${daemon.url}/sse?topics=cam/v/video&codecs=avc1.42e01e`);
    expect(res.status).toBe(406);
    expect(JSON.parse(res.text).error.code).toBe('UNSUPPORTED_CODEC');
  }, 60_000);
});
