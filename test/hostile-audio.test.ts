import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sniffContainer } from '../src/media/audio-containers.js';
import {
  get,
  metricValue,
  pollUntil,
  processAlive,
  type RunningDaemon,
  startDaemon,
  wav,
} from './helpers.js';

/**
 * Audio uploads from issue #8: bodies that make ffmpeg fetch URLs or read local files (3),
 * decodes that stall and keep their slot and process (4), headers that turn a few KB into
 * hours of audio (5), and uploads trickled in to hold every slot (7).
 */

const bundledFfmpeg = (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;
const dir = mkdtempSync(join(tmpdir(), 'framehub-hostile-audio-'));

interface ErrorBody {
  error: { code: string; message: string };
}

const postAudio = (baseUrl: string, body: Uint8Array, query = '', signal?: AbortSignal) =>
  fetch(`${baseUrl}/api/v1/jobs/audio${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body,
    signal: signal ?? AbortSignal.timeout(20_000),
  });

async function waitForJob(baseUrl: string, id: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = JSON.parse((await get(`${baseUrl}/api/v1/jobs/${id}`)).text);
    if (['done', 'failed', 'cancelled'].includes(job.state) || Date.now() > deadline) return job;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until no job slot is held (framehub_job_slots_used is 0). */
async function slotsFree(baseUrl: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const used = metricValue((await get(`${baseUrl}/metrics`)).text, 'framehub_job_slots_used');
    if (used === 0) return;
    if (Date.now() > deadline) throw new Error(`job slots still used after ${timeoutMs} ms: ${used}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A mono s16le tone; `declaredRate` lets a header lie about the rate. */
function toneWav(seconds: number, rate: number): Buffer {
  const samples = new Int16Array(Math.round(seconds * rate));
  for (let i = 0; i < samples.length; i++)
    samples[i] = Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / Math.max(rate, 1000)));
  return wav(samples, rate);
}

/** Encodes `input` with the bundled ffmpeg, so every container is one the daemon's ffmpeg can write. */
function encode(input: string, name: string, args: string[]): string {
  const out = join(dir, name);
  execFileSync(bundledFfmpeg, ['-hide_banner', '-loglevel', 'error', '-y', '-i', input, ...args, out]);
  return out;
}

const ID3 = Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1');
const dash = (url: string) =>
  `<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" type="static" mediaPresentationDuration="PT1S" minBufferTime="PT1S"><Period><AdaptationSet mimeType="audio/mp4"><Representation id="a" bandwidth="1000" mimeType="audio/mp4"><BaseURL>${url}</BaseURL></Representation></AdaptationSet></Period></MPD>\n`;
const hls = (url: string) => `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1,\n${url}\n#EXT-X-ENDLIST\n`;
const ffconcat = (url: string) => `ffconcat version 1.0\nfile ${url}\n`;
const sdp = (port: number) =>
  `v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio ${port} RTP/AVP 0\n`;

/** Words of ffmpeg's stderr that would tell a client what exists where. */
const STDERR_WORDS = /dash|hls|whitelist|127\.0\.0\.1|file:|https?:|pipe:|invalid|\[|@ 0x|seek|errno/i;

describe('through a real ffmpeg (jobs.maxActive 1)', () => {
  let daemon: RunningDaemon;
  let upstream: http.Server;
  let connections = 0;
  let port = 0;
  const localWav = join(dir, 'local.wav');
  let localMp4 = '';

  beforeAll(async () => {
    writeFileSync(localWav, toneWav(1, 16_000));
    localMp4 = encode(localWav, 'local.mp4', ['-c:a', 'aac', '-movflags', '+faststart']);
    upstream = http.createServer((_req, res) => res.end(readFileSync(localWav)));
    upstream.on('connection', () => connections++);
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    port = (upstream.address() as net.AddressInfo).port;
    daemon = await startDaemon({
      cameras: [],
      jobs: { maxActive: 1, maxAudioSeconds: 2, uploadGraceSeconds: 1, minUploadBytesPerSecond: 64 * 1024 },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    upstream?.close();
  });

  it('never lets a playlist or manifest reach a URL or a local file, and never shows ffmpeg stderr', async () => {
    const url = `http://127.0.0.1:${port}/a.wav`;
    const [mp4, wavFile] = [`file://${localMp4}`, `file://${localWav}`];
    const playlists = [
      dash(url),
      dash(mp4),
      dash(wavFile),
      hls(url),
      hls(mp4),
      ffconcat(mp4),
      ffconcat(wavFile),
      sdp(port),
    ];
    // Behind an ID3 tag each passes the mp3 sniff: ffmpeg's probe skips ID3 and would see a DASH
    // manifest (which fetched the URL and decoded the mp4 before the fix), HLS, ffconcat or SDP.
    const disguised = playlists.map((text) => Buffer.concat([ID3, Buffer.from(text)]));
    for (const body of disguised) {
      const res = await postAudio(daemon.url, body);
      const text = await res.text();
      const { error } = JSON.parse(text) as Partial<ErrorBody>;
      expect({ status: res.status, code: error?.code }).toEqual({ status: 422, code: 'DECODE_FAILED' });
      expect(error?.message).toBe('the body starts like mp3 but does not decode as mp3');
      expect(text).not.toMatch(STDERR_WORDS);
    }
    // Bare, they look like no audio container at all: refused before ffmpeg runs.
    for (const text of playlists) {
      const res = await postAudio(daemon.url, Buffer.from(text));
      expect(res.status).toBe(415);
      expect(((await res.json()) as ErrorBody).error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
    expect(connections).toBe(0);
    // What ffmpeg said went to the operator's log instead.
    const logged = await daemon.waitForLog(
      (l) => l.msg === 'audio decode failed' && l.code === 'DECODE_FAILED',
    );
    expect(String(logged.detail).length).toBeGreaterThan(0);
  });

  it('still decodes every accepted container with its demuxer forced', async () => {
    const source = join(dir, 'one-second.wav');
    writeFileSync(source, toneWav(1, 16_000));
    const files = {
      wav: source,
      mp3: encode(source, 's.mp3', ['-c:a', 'libmp3lame']),
      m4a: encode(source, 's.m4a', ['-c:a', 'aac', '-movflags', '+faststart']),
      aac: encode(source, 's.aac', ['-c:a', 'aac', '-f', 'adts']),
      ogg: encode(source, 's.ogg', ['-c:a', 'libvorbis']),
      flac: encode(source, 's.flac', []),
      aiff: encode(source, 's.aiff', []),
      webm: encode(source, 's.webm', ['-c:a', 'libopus']),
      au: encode(source, 's.au', []),
    };
    const durations: Record<string, number> = {};
    for (const [name, file] of Object.entries(files)) {
      const res = await postAudio(daemon.url, readFileSync(file));
      expect({ name, status: res.status }).toEqual({ name, status: 202 });
      const job = await waitForJob(daemon.url, ((await res.json()) as { id: string }).id);
      expect({ name, state: job.state }).toEqual({ name, state: 'done' });
      durations[name] = job.result.durationSeconds;
    }
    for (const seconds of Object.values(durations)) expect(Math.abs(seconds - 1)).toBeLessThan(0.15);
    // The header rates read before decoding agree with what ffmpeg wrote.
    for (const name of ['wav', 'flac', 'aiff', 'au'] as const) {
      const container = sniffContainer(readFileSync(files[name]));
      expect({ name, rate: container?.declaredRate?.(readFileSync(files[name])) }).toEqual({
        name,
        rate: 16_000,
      });
    }
  });

  it('refuses a header declaring a rate too low to upsample, before decoding', async () => {
    // 20 KB declaring 1 Hz: 10,000 s of audio at 16 kHz (about 8 s of CPU) before the fix.
    const lowWav = toneWav(10_000, 1);
    const au = Buffer.alloc(24 + 20_000);
    au.write('.snd', 0, 'latin1');
    au.writeUInt32BE(24, 4);
    au.writeUInt32BE(20_000, 8);
    au.writeUInt32BE(3, 12); // 16-bit linear PCM
    au.writeUInt32BE(1, 16); // 1 Hz
    au.writeUInt32BE(1, 20);
    // CAF keeps its rate as a float64 in the `desc` chunk (found by review: it was not read).
    const wavFile = join(dir, 'for-caf.wav');
    writeFileSync(wavFile, toneWav(1.25, 8000));
    const caf = readFileSync(encode(wavFile, 'low.caf', ['-c:a', 'pcm_s16le']));
    expect(caf.toString('latin1', 8, 12)).toBe('desc');
    caf.writeDoubleBE(1, 20);
    for (const body of [lowWav, au, caf, toneWav(1, 1999)]) {
      const started = Date.now();
      const res = await postAudio(daemon.url, body);
      const { error } = (await res.json()) as Partial<ErrorBody>;
      expect({ status: res.status, code: error?.code }).toEqual({ status: 422, code: 'SAMPLE_RATE_TOO_LOW' });
      expect(Date.now() - started).toBeLessThan(3000);
    }
    // 16 kHz / 8 = 2 kHz is the lowest rate accepted by default.
    const ok = await postAudio(daemon.url, toneWav(1, 2000));
    expect(ok.status).toBe(202);
    expect((await waitForJob(daemon.url, ((await ok.json()) as { id: string }).id)).state).toBe('done');
  });

  it('stops a decode that runs past jobs.maxAudioSeconds (2 s here)', async () => {
    const fiveSeconds = join(dir, 'five.wav');
    writeFileSync(fiveSeconds, toneWav(5, 8000));
    // A WAV at 8 kHz (upsampled 2x) and an Ogg, whose header rate is not read: both are cut by counting.
    for (const file of [fiveSeconds, encode(fiveSeconds, 'five.ogg', ['-c:a', 'libvorbis'])]) {
      const res = await postAudio(daemon.url, readFileSync(file));
      // The limit may be hit before the first samples are handed over (422) or after (a failed job).
      const code =
        res.status === 202
          ? (await waitForJob(daemon.url, ((await res.json()) as { id: string }).id)).error?.code
          : ((await res.json()) as ErrorBody).error.code;
      expect({ file, code }).toEqual({ file, code: 'AUDIO_TOO_LONG' });
    }
  });

  it('cuts an upload slower than jobs.minUploadBytesPerSecond and frees its slot', async () => {
    const { port: daemonPort } = new URL(daemon.url);
    const socket = net.connect(Number(daemonPort), '127.0.0.1');
    let reply = '';
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('data', (d: Buffer) => {
      reply += d.toString('latin1');
    });
    socket.on('error', () => {}); // a reset while still sending is one way of being cut off
    const started = Date.now();
    socket.write(
      'POST /api/v1/jobs/audio HTTP/1.1\r\nhost: test\r\ncontent-type: application/octet-stream\r\n' +
        `content-length: ${10 * 1024 * 1024}\r\n\r\n`,
    );
    // 1 KB every 100 ms: 10 KB/s against a 64 KiB/s minimum, holding the only slot meanwhile.
    const drip = setInterval(() => socket.write(Buffer.alloc(1024)), 100);
    const cut = await Promise.race([
      closed.then(() => true),
      new Promise((r) => setTimeout(r, 10_000, false)),
    ]);
    clearInterval(drip);
    socket.destroy();
    expect(cut).toBe(true);
    expect(Date.now() - started).toBeLessThan(8000);
    if (reply) {
      expect(reply).toMatch(/^HTTP\/1\.1 408/);
      expect(reply).toContain('UPLOAD_TOO_SLOW');
    }
    const metrics = (await get(`${daemon.url}/metrics`)).text;
    expect(metricValue(metrics, 'framehub_limit_rejections_total{limit="upload_rate"}')).toBe(1);
    const next = await postAudio(daemon.url, toneWav(0.5, 16_000));
    expect(next.status).toBe(202);
    await waitForJob(daemon.url, ((await next.json()) as { id: string }).id);
  });
});

/**
 * A stand-in for ffmpeg that stalls: it starts a child that never ends, records both pids and
 * waits, writing nothing. Given a body that starts with an ID3 tag it first writes 2 s of
 * silence, so the job is accepted (202) and then stalls. It looks at the body, not at its
 * arguments, so it behaves the same whatever arguments the daemon passes.
 */
function fakeFfmpeg(name: string): { path: string; pids: () => [number, number][] } {
  const pidFile = join(dir, `${name}.pids`);
  const path = join(dir, `${name}.sh`);
  writeFileSync(
    path,
    `#!/bin/sh\nsleep 1000 &\necho "$$ $!" >> "${pidFile}"\n[ "$(head -c 3)" = ID3 ] && head -c 64000 /dev/zero\nwait\n`,
  );
  chmodSync(path, 0o755);
  const pids = (): [number, number][] =>
    existsSync(pidFile)
      ? readFileSync(pidFile, 'utf8')
          .trim()
          .split('\n')
          .map((line) => line.split(' ').map(Number) as [number, number])
      : [];
  return { path, pids };
}

/** The [ffmpeg, sleep] pids the next fake recorded, after the `before` already there. */
async function nextPids(fake: ReturnType<typeof fakeFfmpeg>, before: number): Promise<[number, number]> {
  expect(await pollUntil(() => fake.pids().length > before)).toBe(true);
  return fake.pids()[before]!;
}

const gone = ([ffmpegPid, sleepPid]: [number, number], timeoutMs?: number) =>
  pollUntil(() => !processAlive(ffmpegPid) && !processAlive(sleepPid), timeoutMs);

const mp3ish = Buffer.concat([ID3, Buffer.alloc(1000, 0x41)]);

/** Kills what a failed test left behind (the fake's processes are this suite's own). */
function reap(pids: number[][]) {
  for (const pid of pids.flat()) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
}

describe('stalled decodes (fake ffmpeg, jobs.timeoutSeconds 2, maxActive 1)', () => {
  let daemon: RunningDaemon;
  const fake = fakeFfmpeg('stall-timeout');
  beforeAll(async () => {
    daemon = await startDaemon({ cameras: [], jobs: { timeoutSeconds: 2, maxActive: 1 } }, [], {
      FFMPEG_PATH: fake.path,
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    reap(fake.pids());
  });

  it('times out a decode that never starts: 504 JOB_TIMEOUT, process group killed, slot free', async () => {
    const before = fake.pids().length;
    const started = Date.now();
    const res = await postAudio(daemon.url, toneWav(1, 16_000));
    const { error } = (await res.json()) as Partial<ErrorBody>;
    expect({ status: res.status, code: error?.code }).toEqual({ status: 504, code: 'JOB_TIMEOUT' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(await gone(await nextPids(fake, before))).toBe(true);
  });

  it('fails a job that stalls after its 202 with JOB_TIMEOUT and kills its process group', async () => {
    const before = fake.pids().length;
    const res = await postAudio(daemon.url, mp3ish);
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const job = await waitForJob(daemon.url, id);
    expect(job).toMatchObject({ state: 'failed', error: { code: 'JOB_TIMEOUT' } });
    expect(await gone(await nextPids(fake, before))).toBe(true);
  });
});

describe('stalled decodes (fake ffmpeg, no deadline in reach, maxActive 1)', () => {
  let daemon: RunningDaemon;
  const fake = fakeFfmpeg('stall-cancel');
  beforeAll(async () => {
    daemon = await startDaemon({ cameras: [], jobs: { maxActive: 1 } }, [], { FFMPEG_PATH: fake.path });
  });
  afterAll(async () => {
    await daemon?.stop();
    reap(fake.pids());
  });

  it('kills the decode and frees the slot when the client leaves before the 202', async () => {
    const before = fake.pids().length;
    const leave = new AbortController();
    const pending = postAudio(daemon.url, toneWav(1, 16_000), '', leave.signal).catch((e: Error) => e);
    const pids = await nextPids(fake, before);
    leave.abort();
    expect(await pending).toBeInstanceOf(Error);
    expect(await gone(pids)).toBe(true);
    // The slot comes back once the decode has failed, just after its process died: wait for
    // the gauge (it throws if the slot is never given back), then a stalling upload gets in.
    await slotsFree(daemon.url);
    const next = new AbortController();
    const accepted = postAudio(daemon.url, toneWav(1, 16_000), '', next.signal).catch((e: Error) => e);
    const nextOnes = await nextPids(fake, before + 1);
    next.abort();
    await accepted;
    expect(await gone(nextOnes)).toBe(true);
  });

  it('kills the process group on DELETE, and the slot is free again', async () => {
    // The previous case's slot is given back once its decode has failed, just after its process died.
    await slotsFree(daemon.url);
    const before = fake.pids().length;
    const res = await postAudio(daemon.url, mp3ish);
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const pids = await nextPids(fake, before);
    const del = await fetch(`${daemon.url}/api/v1/jobs/${id}`, { method: 'DELETE' });
    expect(((await del.json()) as { state: string }).state).toBe('cancelled');
    expect(await gone(pids)).toBe(true);
    await slotsFree(daemon.url);
    const again = await postAudio(daemon.url, mp3ish);
    expect(again.status).toBe(202);
    await fetch(`${daemon.url}/api/v1/jobs/${((await again.json()) as { id: string }).id}`, {
      method: 'DELETE',
    });
  });

  it('leaves no child behind on SIGTERM while a job hangs', async () => {
    const before = fake.pids().length;
    const res = await postAudio(daemon.url, mp3ish);
    expect(res.status).toBe(202);
    const pids = await nextPids(fake, before);
    expect(pids.every(processAlive)).toBe(true);
    await daemon.stop();
    expect(await gone(pids, 5000)).toBe(true);
  });
});
