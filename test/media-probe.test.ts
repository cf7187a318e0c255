import { describe, expect, it } from 'vitest';
import { AUDIO_DEMUXERS } from '../src/media/audio-containers.js';
import { fencedInputArgs } from '../src/media/input-fence.js';
import { parseProbe } from '../src/media/media-probe.js';
import { playlistKind, sniffVideoContainer, VIDEO_DEMUXERS } from '../src/media/video-containers.js';
import {
  ffconcatList,
  masterPlaylist,
  parseSegmentLine,
  pickRenditions,
  spriteLayout,
} from '../src/media/video-job-args.js';
import { catchError } from './helpers.js';

/** What the bundled 4.1 writes for `ffmpeg -hide_banner -f mov -i clip.mp4` (trimmed). */
const MP4_STDERR = `Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/tmp/clip.mp4':
  Metadata:
    major_brand     : isom
  Duration: 00:01:00.02, start: 0.000000, bitrate: 7607 kb/s
    Stream #0:0(und): Video: h264 (Constrained Baseline) (avc1 / 0x31637661), yuv420p, 1280x720 [SAR 1:1 DAR 16:9], 7546 kb/s, 30 fps, 30 tbr, 15360 tbn, 60 tbc (default)
    Metadata:
      handler_name    : VideoHandler
    Stream #0:1(und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, mono, fltp, 66 kb/s (default)
Stream mapping:
  Stream #0:0 -> #0:0 (h264 (native) -> wrapped_avframe (native))
Output #0, null, to 'pipe:':
    Stream #0:0(und): Video: wrapped_avframe, yuv420p, 320x240, q=2-31, 200 kb/s, 30 fps
`;

describe('probe parser', () => {
  it('reads duration, the video size and codec, and audio from input #0 only', () => {
    expect(parseProbe(MP4_STDERR)).toEqual({
      durationSeconds: 60.02,
      video: { width: 1280, height: 720, codec: 'h264' },
      audio: { codec: 'aac' },
    });
  });

  it('swaps the size of a video rotated by 90 degrees', () => {
    const rotated = MP4_STDERR.replace('handler_name    : VideoHandler', 'rotate          : 90');
    expect(parseProbe(rotated).video).toEqual({ width: 720, height: 1280, codec: 'h264' });
  });

  it('says nothing for N/A, no input or garbage', () => {
    expect(parseProbe("Input #0, matroska,webm, from 'x':\n  Duration: N/A, start: 0\n")).toEqual({
      durationSeconds: undefined,
      video: undefined,
      audio: undefined,
    });
    expect(parseProbe('file:/x: Invalid data found when processing input\n').video).toBeUndefined();
    expect(parseProbe('\u0000'.repeat(10_000)).durationSeconds).toBeUndefined();
  });
});

describe('video container sniff', () => {
  const box = (type: string) =>
    Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from(type), Buffer.alloc(40)]);
  it('maps first bytes to a forced demuxer', () => {
    expect(sniffVideoContainer(box('ftyp'))?.demuxer).toBe('mov');
    expect(sniffVideoContainer(box('moov'))?.demuxer).toBe('mov');
    expect(sniffVideoContainer(box('mdat'))?.demuxer).toBe('mov');
    expect(sniffVideoContainer(Buffer.from([0x1a, 0x45, 0xdf, 0xa3, ...Buffer.alloc(20)]))?.demuxer).toBe(
      'matroska',
    );
    expect(sniffVideoContainer(Buffer.from('RIFF\0\0\0\0AVI LIST0000'))?.demuxer).toBe('avi');
    const ts = Buffer.alloc(188 * 3);
    for (const at of [0, 188, 376]) ts[at] = 0x47;
    expect(sniffVideoContainer(ts)?.demuxer).toBe('mpegts');
    ts[188] = 0;
    expect(sniffVideoContainer(ts)).toBeUndefined();
  });

  it('recognises nothing else, and names playlists and manifests', () => {
    for (const text of [
      '#EXTM3U\n',
      'ffconcat version 1.0\n',
      'v=0\r\no=- 0 0 IN IP4 1.2.3.4\n',
      '<?xml?><MPD>',
      'RIFF\0\0\0\0WAVEfmt ',
    ]) {
      expect(sniffVideoContainer(Buffer.from(text.padEnd(40, ' ')))).toBeUndefined();
    }
    expect(playlistKind(Buffer.from('#EXTM3U\n#EXTINF:1,\nfile:/etc/passwd\n'))).toMatch(/HLS/);
    expect(playlistKind(Buffer.from('\uFEFFffconcat version 1.0\n'))).toMatch(/ffconcat/);
    expect(playlistKind(Buffer.from('v=0\nc=IN IP4 127.0.0.1\n'))).toMatch(/SDP/);
    expect(playlistKind(Buffer.from('<?xml version="1.0"?>\n<MPD xmlns="urn">'))).toMatch(/DASH/);
    expect(playlistKind(Buffer.alloc(100))).toBeUndefined();
  });
});

describe('input fence', () => {
  it('forces the demuxer, whitelists the accepted formats and only the file or pipe protocol', () => {
    expect(fencedInputArgs({ demuxer: 'mov', accepted: VIDEO_DEMUXERS, from: '/data/work/x.video' })).toEqual(
      [
        '-max_alloc',
        String(64 * 1024 * 1024),
        '-protocol_whitelist',
        'file',
        '-format_whitelist',
        'mov,matroska,avi,mpegts',
        '-f',
        'mov',
        '-i',
        'file:/data/work/x.video',
      ],
    );
    const stdin = fencedInputArgs({
      demuxer: 'wav',
      accepted: AUDIO_DEMUXERS,
      from: 'stdin',
      options: ['-t', '5'],
    });
    expect(stdin.slice(0, 4)).toEqual([
      '-max_alloc',
      String(64 * 1024 * 1024),
      '-protocol_whitelist',
      'pipe',
    ]);
    expect(stdin.slice(-4)).toEqual(['-t', '5', '-i', 'pipe:0']);
    expect(
      catchError(() => fencedInputArgs({ demuxer: 'hls', accepted: VIDEO_DEMUXERS, from: '/x' })),
    ).toBeInstanceOf(Error);
    expect(
      catchError(() => fencedInputArgs({ demuxer: 'mov', accepted: VIDEO_DEMUXERS, from: 'x.mp4' })),
    ).toBeInstanceOf(Error);
  });
});

describe('video job plans', () => {
  it('never upscales; defaults to the source height capped at 720p', () => {
    expect(pickRenditions(['720p', '480p', '1080p', '480p'], 720).map((r) => r.name)).toEqual([
      '480p',
      '720p',
    ]);
    expect(pickRenditions(undefined, 1080).map((r) => r.name)).toEqual(['720p']);
    expect(pickRenditions(undefined, 500).map((r) => r.name)).toEqual(['480p']);
    expect(pickRenditions(['1080p'], 360).map((r) => r.name)).toEqual(['360p']);
    expect(pickRenditions(undefined, 121)).toEqual([{ name: 'source', height: 120, maxKbps: 300 }]);
  });

  it('lays a sprite out in rows of 10, at most 100 tiles', () => {
    expect(spriteLayout(5, 60, 1280, 720)).toEqual({
      everySeconds: 5,
      columns: 10,
      rows: 2,
      width: 160,
      height: 90,
    });
    expect(spriteLayout(1, 3600, 640, 480)).toMatchObject({
      everySeconds: 36,
      columns: 10,
      rows: 10,
      height: 120,
    });
    expect(spriteLayout(10, 4, 640, 360)).toMatchObject({ columns: 1, rows: 1 });
  });

  it('parses only its own segment list lines', () => {
    expect(parseSegmentLine('chunk_002.mp4,20.000000,30.033333')).toEqual({
      index: 2,
      start: 20,
      end: 30.033333,
    });
    expect(parseSegmentLine('../chunk_002.mp4,1,2')).toBeUndefined();
    expect(parseSegmentLine('chunk_002.mp4,1')).toBeUndefined();
  });

  it('writes the concat list and master playlist from names it makes', () => {
    expect(ffconcatList(2)).toBe('ffconcat version 1.0\nfile chunk_000.mp4\nfile chunk_001.mp4\n');
    expect(masterPlaylist([{ name: '720p', width: 1280, height: 720, bandwidth: 2.5e6 }])).toBe(
      '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720\n720p/index.m3u8\n',
    );
  });
});
