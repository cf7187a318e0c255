import { execFile, execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDaemon, startDaemon, Viewer } from './helpers.js';

/**
 * Uploads that would make ffmpeg open local files or reach the network (issue 11): an HLS
 * playlist, an ffconcat list, an SDP description and a DASH manifest, bare and behind the
 * first bytes of an accepted container, for video jobs, their overlay audio, and audio jobs
 * alike. Each must fail with a code, and the test proves nothing was opened: a FIFO whose open
 * the test sees (a reader on it lets a non-blocking writer open), a canary file whose atime
 * would move (its atime is set before its mtime, so even relatime updates it on a read), and a
 * TCP server and a UDP socket that count every contact.
 */

const bundledFfmpeg = (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;
const dir = mkdtempSync(join(tmpdir(), 'framehub-hostile-media-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface ErrorBody {
  error: { code: string; message: string };
}

/** Words of ffmpeg's stderr that would tell a client what exists where. */
const STDERR_WORDS = /whitelist|127\.0\.0\.1|file:|https?:|pipe:|\[|@ 0x|errno|fifo|canary/i;

const hls = (target: string) => `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n${target}\n#EXT-X-ENDLIST\n`;
const ffconcat = (target: string) => `ffconcat version 1.0\nfile ${target}\n`;
const dash = (target: string) =>
  `<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" type="static" mediaPresentationDuration="PT1S" minBufferTime="PT1S"><Period><AdaptationSet mimeType="video/mp4"><Representation id="v" bandwidth="1000" mimeType="video/mp4"><BaseURL>${target}</BaseURL></Representation></AdaptationSet></Period></MPD>\n`;
const sdp = (port: number) =>
  `v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video ${port} RTP/AVP 96\na=rtpmap:96 H264/90000\n`;

/** The first bytes of each accepted container, for a payload to hide behind. */
const MP4_HEAD = Buffer.concat([
  Buffer.from([0, 0, 0, 24]),
  Buffer.from('ftypisom\0\0\x02\0isomiso2', 'latin1'),
]);
const MKV_HEAD = Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01]);
const ID3 = Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1');
/** A payload with MPEG-TS sync bytes at 0, 188 and 376 (and text between). */
function tsLike(text: string): Buffer {
  const b = Buffer.from(text.padEnd(600, '\n'));
  for (const at of [0, 188, 376]) b[at] = 0x47;
  return b;
}

describe('hostile playlists and manifests (video and audio jobs)', () => {
  let watcher: Viewer;
  let watchedFrom = 0;
  let daemon: RunningDaemon;
  let upstream: http.Server;
  let udp: dgram.Socket;
  let tcpContacts = 0;
  let udpContacts = 0;
  let fifoOpened = false;
  let fifoPoll: NodeJS.Timeout | undefined;
  let port = 0;
  let udpPort = 0;
  const fifo = join(dir, 'fifo.mp4');
  const canary = join(dir, 'canary.mp4');
  let validVideo: Buffer;
  const OLD = new Date('2001-01-01T00:00:00Z');

  beforeAll(async () => {
    execFileSync('mkfifo', [fifo]);
    // A real video as the canary, so a demuxer that reached it would find something to read.
    const clip = join(dir, 'clip.mp4');
    execFileSync(bundledFfmpeg, [
      ...['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=10'],
      ...[
        '-f',
        'lavfi',
        '-i',
        'sine',
        '-t',
        '1',
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-c:a',
        'aac',
        clip,
      ],
    ]);
    validVideo = readFileSync(clip);
    writeFileSync(canary, validVideo);
    utimesSync(canary, OLD, new Date());
    // A reader on the FIFO lets a non-blocking writer open it; without one the open fails (ENXIO).
    fifoPoll = setInterval(() => {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
        fifoOpened = true;
      } catch {
        // ENXIO: nobody has it open for reading.
      }
    }, 5);
    upstream = http.createServer((_req, res) => res.end(validVideo));
    upstream.on('connection', () => tcpContacts++);
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    port = (upstream.address() as net.AddressInfo).port;
    udp = dgram.createSocket('udp4');
    udp.on('message', () => udpContacts++);
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    udpPort = udp.address().port;
    daemon = await startDaemon({
      // A live camera with video beside the hostile uploads: its viewer must not notice them.
      cameras: [
        { id: 'v', source: 'test', fps: 10, width: 160, height: 90, audio: false, video: 'transcode' },
      ],
      jobs: { dataDir: join(dir, 'data'), maxActive: 2 },
    });
    watcher = new Viewer(`${daemon.wsUrl}?topics=cam/v/video`);
    await watcher.until((rs) => rs.some((r) => r.type === 'fragment'), 30_000);
    watchedFrom = watcher.records.length;
  }, 60_000);
  afterAll(async () => {
    watcher?.close();
    clearInterval(fifoPoll);
    await daemon?.stop();
    upstream?.close();
    udp?.close();
  });

  /** Every playlist, aimed at the FIFO, the canary and the TCP server (SDP: RTP to the UDP port's pair). */
  const playlists = () => {
    const targets = [fifo, `file:${canary}`, canary, `http://127.0.0.1:${port}/clip.mp4`];
    return [
      ...targets.flatMap((t) => [hls(t), ffconcat(t), dash(t)]),
      // RTP on port − 1 sends its RTCP to the UDP socket's port.
      sdp(udpPort - 1),
      sdp(port),
    ];
  };

  const post = async (kind: 'video' | 'audio', body: Buffer, query = '') => {
    const started = Date.now();
    const res = await fetch(`${daemon.url}/api/v1/jobs/${kind}${query}`, {
      method: 'POST',
      body,
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    const error = (JSON.parse(text) as Partial<ErrorBody>).error;
    // A reader blocked on the FIFO would hold the request until the probe's deadline.
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(text).not.toMatch(STDERR_WORDS);
    return { status: res.status, code: error?.code, message: error?.message ?? '' };
  };

  it('has detectors that trip when ffmpeg is not fenced (a control)', async () => {
    const control = join(dir, 'control.mp4');
    writeFileSync(control, validVideo);
    utimesSync(control, OLD, new Date());
    const unfenced = async (text: string, name: string) => {
      const list = join(dir, name);
      writeFileSync(list, text);
      // Unfenced on purpose: no forced demuxer, no format whitelist.
      await new Promise<void>((resolve) => {
        execFile(
          bundledFfmpeg,
          ['-hide_banner', '-nostdin', '-i', list, '-t', '0.1', '-f', 'null', '-'],
          { timeout: 20_000 },
          () => resolve(),
        );
      });
    };
    await unfenced(hls(control), 'control.m3u8');
    expect(statSync(control).atimeMs).toBeGreaterThan(OLD.getTime());
    // An HLS playlist in a file may only name files in 4.1; a DASH manifest names any URL.
    await unfenced(dash(`http://127.0.0.1:${port}/clip.mp4`), 'control.mpd');
    expect(tcpContacts).toBeGreaterThan(0);
    await unfenced(hls(fifo), 'control-fifo.m3u8');
    expect(fifoOpened).toBe(true);
    tcpContacts = 0;
    fifoOpened = false;
  }, 60_000);

  it('refuses them bare: 415, named as playlists for video jobs', async () => {
    for (const text of playlists()) {
      const video = await post('video', Buffer.from(text));
      expect({ text, status: video.status, code: video.code }).toEqual({
        text,
        status: 415,
        code: 'MEDIA_UNSUPPORTED',
      });
      expect(video.message).toMatch(/playlists and manifests are never accepted/);
      const audio = await post('audio', Buffer.from(text));
      expect({ text, status: audio.status, code: audio.code }).toEqual({
        text,
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
      });
    }
  }, 120_000);

  it('fails them behind an accepted container header with a decode code, for video and audio', async () => {
    for (const text of playlists()) {
      for (const [head, name] of [
        [MP4_HEAD, 'mp4'],
        [MKV_HEAD, 'mkv'],
      ] as const) {
        const body = Buffer.concat([head, Buffer.from(text)]);
        const video = await post('video', body);
        expect({ name, text, status: video.status, code: video.code }).toEqual({
          name,
          text,
          status: 422,
          code: 'MEDIA_DECODE_FAILED',
        });
        const audio = await post('audio', body);
        expect({ name, text, status: audio.status, code: audio.code }).toEqual({
          name,
          text,
          status: 422,
          code: 'DECODE_FAILED',
        });
      }
      const ts = await post('video', tsLike(text));
      expect({ text, status: ts.status, code: ts.code }).toEqual({
        text,
        status: 422,
        code: 'MEDIA_DECODE_FAILED',
      });
    }
  }, 300_000);

  it('refuses them as overlay audio, bare (415) or behind an ID3 tag (422)', async () => {
    for (const text of playlists()) {
      for (const [overlay, status, code] of [
        [Buffer.from(text), 415, 'MEDIA_UNSUPPORTED'],
        [Buffer.concat([ID3, Buffer.from(text)]), 422, 'MEDIA_DECODE_FAILED'],
      ] as const) {
        const body = Buffer.concat([validVideo, overlay]);
        const r = await post('video', body, `?overlayAudioBytes=${overlay.length}`);
        expect({ text, status: r.status, code: r.code }).toEqual({ text, status, code });
      }
    }
  }, 300_000);

  it('never opened the FIFO or the canary, and never contacted the TCP server or the UDP port', async () => {
    // The FIFO poll runs every 5 ms; give it a few more turns before the verdict.
    await new Promise((r) => setTimeout(r, 50));
    expect(fifoOpened).toBe(false);
    expect(statSync(canary).atimeMs).toBe(OLD.getTime());
    expect(tcpContacts).toBe(0);
    expect(udpContacts).toBe(0);
  });

  it('kept a live video viewer fed throughout: no fragment skipped, new ones still coming', async () => {
    const seen = watcher.records.length;
    await watcher.until((rs) => rs.length >= seen + 10, 30_000);
    const seqs = watcher.records
      .slice(watchedFrom)
      .filter((r) => r.type === 'fragment')
      .map((r) => r.seq as number);
    // Every batch above ran while this viewer watched, from its first fragment to ten past now.
    expect(seqs.length).toBeGreaterThanOrEqual(10);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
  }, 60_000);
});
