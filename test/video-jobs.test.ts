import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  get,
  metricValue,
  pollUntil,
  processAlive,
  type RunningDaemon,
  SseReader,
  startDaemon,
  Viewer,
} from './helpers.js';

/**
 * Video jobs (issue 11 part 3) through the real daemon and the bundled ffmpeg; outputs are
 * checked with Debian's ffprobe (/usr/bin/ffprobe, installed by .ci/apt-packages `ffmpeg`).
 */

const bundledFfmpeg = (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;
const FFPROBE = '/usr/bin/ffprobe';
const dir = mkdtempSync(join(tmpdir(), 'framehub-video-jobs-'));
const dataDir = join(dir, 'data');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface ErrorBody {
  error: { code: string; message: string };
}

/** Makes a test clip with the bundled ffmpeg: testsrc2 with a 440 Hz tone (or none), ultrafast. */
function makeClip(name: string, seconds: number, size: string, audio = true, extra: string[] = []): string {
  const out = join(dir, name);
  // biome-ignore format: one option and its value per line
  execFileSync(bundledFfmpeg, [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30`,
    ...(audio ? ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'] : []),
    '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    ...(audio ? ['-c:a', 'aac'] : []),
    ...extra,
    out,
  ]);
  return out;
}

interface Probe {
  format: { duration: string };
  streams: { codec_type: string; codec_name: string; duration?: string }[];
}

function ffprobe(target: string, extra: string[] = []): Probe {
  const text = execFileSync(
    FFPROBE,
    [
      '-v',
      'error',
      ...extra,
      '-show_entries',
      'format=duration:stream=codec_type,codec_name,duration',
      '-of',
      'json',
      target,
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(text) as Probe;
}

const codecs = (p: Probe) => p.streams.map((s) => s.codec_name).sort();

async function download(url: string, name: string): Promise<string> {
  const res = await fetch(url);
  expect({ url, status: res.status }).toEqual({ url, status: 200 });
  const path = join(dir, name);
  writeFileSync(path, Buffer.from(await res.arrayBuffer()));
  return path;
}

async function waitForJob(baseUrl: string, id: string, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = JSON.parse((await get(`${baseUrl}/api/v1/jobs/${id}`)).text);
    if (['done', 'failed', 'cancelled'].includes(job.state) || Date.now() > deadline) return job;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A /proc file's text, or '' when what it describes is gone. */
function readOr(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return '';
  }
}

/** Pids of the daemon's children whose command line is ffmpeg. */
function ffmpegChildren(daemonPid: number): number[] {
  const pids: number[] = [];
  for (const task of readdirSync(`/proc/${daemonPid}/task`)) {
    // A thread may exit between the listing and the read.
    const children = readOr(`/proc/${daemonPid}/task/${task}/children`).trim();
    for (const pid of children ? children.split(' ').map(Number) : []) {
      const cmd = readOr(`/proc/${pid}/cmdline`);
      if (/ffmpeg/.test(cmd)) pids.push(pid);
    }
  }
  return pids;
}

const postVideo = (baseUrl: string, body: Uint8Array, query = '') =>
  fetch(`${baseUrl}/api/v1/jobs/video${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body,
    signal: AbortSignal.timeout(60_000),
  });

/** The job events other than the JobStore's own `job` records, in order. */
const videoEvents = (types: string[]) =>
  types.filter((t) => t === 'status' || t === 'chunk_ready' || t === 'complete');

function checkOrder(events: { type: string; index?: number }[], chunks: number) {
  const types = videoEvents(events.map((e) => e.type));
  expect(types[0]).toBe('status');
  expect(types.at(-1)).toBe('complete');
  expect(types.filter((t) => t === 'complete')).toHaveLength(1);
  const indices = events.filter((e) => e.type === 'chunk_ready').map((e) => e.index);
  expect(indices).toEqual(Array.from({ length: chunks }, (_, i) => i));
  // The JobStore's `job` record saying done comes after `complete`.
  const all = events.map((e) => e.type);
  expect(all.lastIndexOf('job')).toBeGreaterThan(all.indexOf('complete'));
}

describe('video jobs (real ffmpeg)', () => {
  let daemon: RunningDaemon;
  let clip60 = '';
  let source60 = 0;

  beforeAll(async () => {
    clip60 = makeClip('clip60.mp4', 60, '1280x720');
    source60 = Number(ffprobe(clip60).format.duration);
    daemon = await startDaemon({
      cameras: [],
      jobs: { dataDir, maxActive: 4, video: { maxConcurrent: 1, maxQueued: 1, maxSeconds: 120 } },
    });
  }, 120_000);
  afterAll(async () => {
    await daemon?.stop();
  });

  it('60 s 720p clip, chunkSeconds=10: first chunk while running, playable chunks, final within 0.5 s, HLS, events in order over SSE and WS', async () => {
    const started = Date.now();
    const res = await postVideo(daemon.url, readFileSync(clip60), '?chunkSeconds=10&hls=true&thumbnails=10');
    expect(res.status).toBe(202);
    const { id, topic } = (await res.json()) as { id: string; topic: string };
    expect(topic).toBe(`job/${id}`);
    // Both clients replay the topic from its first event, so none is missed whatever the timing.
    const sse = new SseReader(
      `${daemon.url}/sse?topics=${topic}&lastEventId=${encodeURIComponent(`${topic}:0`)}`,
    );
    const ws = new Viewer(daemon.wsUrl);
    await ws.opened;
    ws.send({ type: 'hello', resume: { [topic]: 0 } });
    ws.send({ type: 'sub', topics: [topic] });

    // The first chunk_ready comes while the job still runs.
    await sse.until(() => sse.of('chunk_ready').length > 0, 60_000);
    const firstChunkMs = Date.now() - started;
    const atFirst = JSON.parse((await get(`${daemon.url}/api/v1/jobs/${id}`)).text);
    expect(atFirst.state).toBe('running');
    const first = JSON.parse(sse.of('chunk_ready')[0]!.data);
    expect(first).toMatchObject({ index: 0, start_time: 0, url: `/api/v1/jobs/${id}/chunks/0.mp4` });
    // A chunk is served as soon as it is announced.
    const early = ffprobe(await download(`${daemon.url}${first.url}`, 'early.mp4'));
    expect(codecs(early)).toEqual(['aac', 'h264']);

    await sse.until(() => sse.of('complete').length > 0, 180_000);
    const totalMs = Date.now() - started;
    await ws.until((r) => r.some((x) => x.type === 'complete'), 10_000);
    console.log(
      `video job: first chunk_ready after ${firstChunkMs} ms, complete after ${totalMs} ms (60 s 720p)`,
    );

    const sseEvents = sse.events.map((e) => JSON.parse(e.data) as { type: string; index?: number });
    const wsEvents = ws.records.filter((r) => r.topic === topic) as { type: string; index?: number }[];
    const complete = JSON.parse(sse.of('complete')[0]!.data);
    const chunks = complete.chunks as { index: number; url: string; start_time: number; end_time: number }[];
    expect(chunks).toHaveLength(6);
    checkOrder(sseEvents, 6);
    checkOrder(wsEvents, 6);
    expect(complete).toMatchObject({
      url: `/api/v1/jobs/${id}/final.mp4`,
      hls: `/api/v1/jobs/${id}/hls/master.m3u8`,
      poster: `/api/v1/jobs/${id}/poster.jpg`,
      // 60.02 s: tiles at 0, 10, … 60, in one row.
      sprite: { url: `/api/v1/jobs/${id}/sprite.jpg`, everySeconds: 10, columns: 7, rows: 1 },
    });
    sse.close();
    ws.close();

    // Every chunk plays alone: h264 + aac, about chunkSeconds long.
    for (const c of chunks) {
      const p = ffprobe(await download(`${daemon.url}${c.url}`, `chunk${c.index}.mp4`));
      expect({ index: c.index, codecs: codecs(p) }).toEqual({ index: c.index, codecs: ['aac', 'h264'] });
      expect(Math.abs(Number(p.format.duration) - (c.end_time - c.start_time))).toBeLessThan(0.5);
    }
    const final = ffprobe(await download(`${daemon.url}${complete.url}`, 'final.mp4'));
    expect(codecs(final)).toEqual(['aac', 'h264']);
    expect(Math.abs(Number(final.format.duration) - source60)).toBeLessThan(0.5);

    // Byte ranges and MIME types.
    const range = await fetch(`${daemon.url}${complete.url}`, { headers: { range: 'bytes=0-99' } });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-type')).toBe('video/mp4');
    expect((await range.arrayBuffer()).byteLength).toBe(100);
    for (const [path, mime] of [
      ['poster.jpg', 'image/jpeg'],
      ['sprite.jpg', 'image/jpeg'],
      ['hls/master.m3u8', 'application/vnd.apple.mpegurl'],
    ]) {
      const r = await fetch(`${daemon.url}/api/v1/jobs/${id}/${path}`);
      expect({ path, status: r.status, mime: r.headers.get('content-type') }).toEqual({
        path,
        status: 200,
        mime,
      });
    }

    // HLS: the variant lists every segment written, each is served, and ffprobe reads the master.
    const master = (await get(`${daemon.url}${complete.hls}`)).text;
    const variant = master.split('\n').find((l) => l.endsWith('index.m3u8'))!;
    const base = `${daemon.url}/api/v1/jobs/${id}/hls/${variant.replace('index.m3u8', '')}`;
    const playlist = (await get(`${base}index.m3u8`)).text;
    const segments = playlist.split('\n').filter((l) => l.endsWith('.m4s'));
    const onDisk = readdirSync(join(dataDir, 'videos', id, 'hls', variant.split('/')[0]!)).filter((f) =>
      f.endsWith('.m4s'),
    );
    expect(segments.sort()).toEqual(onDisk.sort());
    // Keyframes only at chunk starts: one HLS segment per chunk.
    expect(segments).toHaveLength(complete.chunks.length);
    expect(playlist).toContain('#EXT-X-MAP:URI="init.mp4"');
    for (const s of [...segments, 'init.mp4']) {
      const r = await fetch(`${base}${s}`);
      expect({ s, status: r.status }).toEqual({ s, status: 200 });
      await r.arrayBuffer();
    }
    const hls = ffprobe(`${daemon.url}${complete.hls}`, ['-protocol_whitelist', 'http,tcp,file,crypto']);
    expect(codecs(hls)).toEqual(['aac', 'h264']);
    expect(Math.abs(Number(hls.format.duration) - source60)).toBeLessThan(0.6);

    // The gauge counts what the job holds on disk.
    const metrics = (await get(`${daemon.url}/metrics`)).text;
    expect(metricValue(metrics, 'framehub_job_disk_bytes')).toBeGreaterThan(1_000_000);
  }, 300_000);

  it('never serves a path it did not make', async () => {
    const res = await postVideo(
      daemon.url,
      readFileSync(makeClip('tiny.mp4', 2, '320x240')),
      '?chunkSeconds=2',
    );
    const { id } = (await res.json()) as { id: string };
    expect((await waitForJob(daemon.url, id)).state).toBe('done');
    for (const path of [
      '../../../etc/passwd',
      '..%2f..%2f..%2fetc%2fpasswd',
      'chunks/0.mp4/../../../../etc/passwd',
      'hls/master.m3u8',
      'chunks/9.mp4',
      'renditions/720p/chunks/0.mp4',
      'renditions/..%2f/final.mp4',
      'chunks.ffconcat',
      '240p/chunks.ffconcat',
    ]) {
      const r = await fetch(`${daemon.url}/api/v1/jobs/${id}/${path}`);
      expect({ path, status: r.status }).toEqual({ path, status: 404 });
      await r.text();
    }
    expect((await fetch(`${daemon.url}/api/v1/jobs/${id}/renditions/240p/chunks/0.mp4`)).status).toBe(200);
  }, 60_000);

  it('mixes an overlay over the ducked original, and gives a silent source the overlay alone', async () => {
    const loud = makeClip('tone.mp4', 4, '320x240');
    const mute = makeClip('mute.mp4', 4, '320x240', false);
    const silence = join(dir, 'silence.wav');
    execFileSync(bundledFfmpeg, [
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'anullsrc=r=48000:cl=mono',
      '-t',
      '6',
      silence,
    ]);
    const overlayTone = join(dir, 'overlay.wav');
    execFileSync(bundledFfmpeg, [
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=1000:sample_rate=48000',
      '-t',
      '2',
      overlayTone,
    ]);
    const run = async (video: string, overlay: string, query: string) => {
      const body = Buffer.concat([readFileSync(video), readFileSync(overlay)]);
      const res = await postVideo(
        daemon.url,
        body,
        `?chunkSeconds=2&overlayAudioBytes=${readFileSync(overlay).length}${query}`,
      );
      expect(res.status).toBe(202);
      const { id } = (await res.json()) as { id: string };
      const job = await waitForJob(daemon.url, id);
      expect(job.state).toBe('done');
      return download(`${daemon.url}${job.result.url}`, `${id}.mp4`);
    };
    // The tone ducked to 0.2 under silence: about 20·log10(0.2) = −14 dB below the source.
    const ducked = await run(loud, silence, '&duck=0.2');
    expect(meanDb(ducked) - meanDb(loud)).toBeGreaterThan(-15.5);
    expect(meanDb(ducked) - meanDb(loud)).toBeLessThan(-12.5);
    // Without ducking, an overlay of silence leaves the level as it was (amix's 1/2 is undone).
    const kept = await run(loud, silence, '&duck=1');
    expect(Math.abs(meanDb(kept) - meanDb(loud))).toBeLessThan(1.5);
    // A source without audio gets the overlay alone, padded with silence to the video's length.
    const dubbed = await run(mute, overlayTone, '');
    const probe = ffprobe(dubbed);
    expect(codecs(probe)).toEqual(['aac', 'h264']);
    expect(Math.abs(Number(probe.format.duration) - 4)).toBeLessThan(0.5);
  }, 120_000);

  it('refuses bad options, empty, unknown, corrupt and too-long uploads with clear codes', async () => {
    const small = readFileSync(makeClip('small.mp4', 2, '320x240'));
    const cases: [Uint8Array, string, number, string][] = [
      [small, '?chunkSeconds=1', 400, 'INVALID_FIELD'],
      [small, '?chunkSeconds=61', 400, 'INVALID_FIELD'],
      [small, '?renditions=4k', 400, 'INVALID_FIELD'],
      [small, '?duck=2', 400, 'INVALID_FIELD'],
      [small, '?hls=yes', 400, 'INVALID_FIELD'],
      [small, '?foo=1', 400, 'INVALID_FIELD'],
      [small, `?overlayAudioBytes=${small.length}`, 400, 'INVALID_FIELD'],
      [new Uint8Array(0), '', 400, 'EMPTY_BODY'],
      [Buffer.from('\x89PNG\r\n\x1a\n'.padEnd(4096, '\0')), '', 415, 'MEDIA_UNSUPPORTED'],
      [Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) % 251)), '', 415, 'MEDIA_UNSUPPORTED'],
      // An MP4 header over noise: recognised, not decodable.
      [Buffer.concat([small.subarray(0, 32), Buffer.alloc(200_000, 0x5a)]), '', 422, 'MEDIA_DECODE_FAILED'],
      // Truncated: the moov atom is at the end (no faststart), so nothing decodes.
      [small.subarray(0, Math.floor(small.length / 2)), '', 422, 'MEDIA_DECODE_FAILED'],
      // Longer than jobs.video.maxSeconds (120 s here), from its header.
      [readFileSync(makeClip('long.mp4', 130, '64x64')), '', 422, 'MEDIA_TOO_LONG'],
      // An overlay that is no audio container.
      [Buffer.concat([small, Buffer.alloc(5000, 1)]), '?overlayAudioBytes=5000', 415, 'MEDIA_UNSUPPORTED'],
    ];
    for (const [body, query, status, code] of cases) {
      const res = await postVideo(daemon.url, body, query);
      const { error } = (await res.json()) as ErrorBody;
      expect({ query, status: res.status, code: error.code }).toEqual({ query, status, code });
      expect(error.message.length).toBeGreaterThan(10);
    }
    // An audio-only MP4 has no video stream.
    const audioOnly = join(dir, 'audio-only.m4a');
    execFileSync(bundledFfmpeg, [
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'sine',
      '-t',
      '1',
      '-c:a',
      'aac',
      audioOnly,
    ]);
    const res = await postVideo(daemon.url, readFileSync(audioOnly));
    expect(res.status).toBe(422);
    expect(((await res.json()) as ErrorBody).error.message).toMatch(/no video stream/);
  }, 120_000);

  it('queues a second job, refuses a third with 429, and a DELETE mid-job kills ffmpeg and ends it cancelled', async () => {
    const body = readFileSync(clip60);
    const a = await postVideo(daemon.url, body, '?chunkSeconds=10');
    const b = await postVideo(
      daemon.url,
      readFileSync(makeClip('queued.mp4', 2, '320x240')),
      '?chunkSeconds=2',
    );
    expect([a.status, b.status]).toEqual([202, 202]);
    const { id } = (await a.json()) as { id: string };
    const { id: queuedId } = (await b.json()) as { id: string };
    // maxConcurrent 1: the second waits queued; maxQueued 1: a third is refused before its body.
    expect(JSON.parse((await get(`${daemon.url}/api/v1/jobs/${queuedId}`)).text).state).toBe('queued');
    const c = await postVideo(daemon.url, body.subarray(0, 1000));
    expect(c.status).toBe(429);
    expect(((await c.json()) as ErrorBody).error.code).toBe('RATE_LIMITED');

    const sse = new SseReader(
      `${daemon.url}/sse?topics=job/${id}&lastEventId=${encodeURIComponent(`job/${id}:0`)}`,
    );
    await sse.until(() => sse.of('status').length > 0, 30_000);
    expect(await pollUntil(() => ffmpegChildren(daemon.proc.pid!).length > 0)).toBe(true);
    const pids = ffmpegChildren(daemon.proc.pid!);
    const del = await fetch(`${daemon.url}/api/v1/jobs/${id}`, { method: 'DELETE' });
    expect(((await del.json()) as { state: string }).state).toBe('cancelled');
    expect(await pollUntil(() => pids.every((pid) => !processAlive(pid)), 10_000)).toBe(true);
    await sse.until(() => sse.of('error').length > 0, 10_000);
    expect(JSON.parse(sse.of('error')[0]!.data)).toMatchObject({ code: 'MEDIA_CANCELLED' });
    sse.close();
    expect((await waitForJob(daemon.url, id)).state).toBe('cancelled');
    // The files go once ffmpeg has exited, which can be after the cancelled state went out.
    expect(await pollUntil(() => !existsSync(join(dataDir, 'videos', id)), 10_000)).toBe(true);
    // The queued job then runs to the end.
    expect((await waitForJob(daemon.url, queuedId)).state).toBe('done');
  }, 120_000);
});

/**
 * A wrapper around the real ffmpeg whose chunk encode stalls: it starts a child that never
 * ends, records both pids, and writes nothing to its segment list (a stalled pipe). The probe
 * runs the real ffmpeg.
 */
function stallingFfmpeg(): { path: string; pids: () => number[][] } {
  const pidFile = join(dir, 'stall.pids');
  const path = join(dir, 'stall.sh');
  writeFileSync(
    path,
    `#!/bin/sh\ncase "$*" in *segment*) sleep 1000 & echo "$$ $!" >> "${pidFile}"; wait;; esac\nexec "${bundledFfmpeg}" "$@"\n`,
  );
  chmodSync(path, 0o755);
  const pids = () =>
    existsSync(pidFile)
      ? readFileSync(pidFile, 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split(' ').map(Number))
      : [];
  return { path, pids };
}

describe('a stalled encode (jobs.video.timeoutSeconds 2)', () => {
  let daemon: RunningDaemon;
  const fake = stallingFfmpeg();
  beforeAll(async () => {
    daemon = await startDaemon(
      { cameras: [], jobs: { dataDir: join(dir, 'stall-data'), video: { timeoutSeconds: 2 } } },
      [],
      { FFMPEG_PATH: fake.path },
    );
  });
  afterAll(async () => {
    await daemon?.stop();
    for (const pid of fake.pids().flat()) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  });

  it('is killed at the deadline with MEDIA_TIMEOUT, its whole process group with it', async () => {
    const res = await postVideo(daemon.url, readFileSync(makeClip('stall.mp4', 2, '320x240')));
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    expect(await pollUntil(() => fake.pids().length > 0)).toBe(true);
    const job = await waitForJob(daemon.url, id, 30_000);
    expect(job).toMatchObject({ state: 'failed', error: { code: 'MEDIA_TIMEOUT' } });
    expect(await pollUntil(() => fake.pids()[0]!.every((pid) => !processAlive(pid)), 10_000)).toBe(true);
  }, 60_000);

  it('leaves no child behind on SIGTERM while an encode hangs', async () => {
    const before = fake.pids().length;
    const res = await postVideo(daemon.url, readFileSync(join(dir, 'stall.mp4')));
    expect(res.status).toBe(202);
    expect(await pollUntil(() => fake.pids().length > before)).toBe(true);
    const pids = fake.pids()[before]!;
    expect(pids.every(processAlive)).toBe(true);
    await daemon.stop();
    expect(await pollUntil(() => pids.every((pid) => !processAlive(pid)), 10_000)).toBe(true);
  }, 60_000);
});

/** Mean volume in dB of a file's audio (ffmpeg's volumedetect, which reports on stderr). */
function meanDb(file: string): number {
  const r = spawnSync(
    bundledFfmpeg,
    ['-hide_banner', '-nostats', '-i', file, '-map', '0:a:0', '-af', 'volumedetect', '-f', 'null', '-'],
    { encoding: 'utf8' },
  );
  const m = /mean_volume: (-?[\d.]+) dB/.exec(r.stderr);
  if (!m) throw new Error(`no volume for ${file}: ${r.stderr.slice(-500)}`);
  return Number(m[1]);
}
