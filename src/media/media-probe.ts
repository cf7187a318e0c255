import { MediaError } from '../errors.js';
import { runFfmpeg } from './ffmpeg-run.js';
import { type FencedInput, fencedInputArgs } from './input-fence.js';

/** What a probe learnt of a source from ffmpeg's own description of its input. */
export interface MediaInfo {
  /** Seconds, from the container's `Duration:`; undefined when it says N/A. */
  durationSeconds: number | undefined;
  /** The first video stream's size as displayed (a 90° rotation swaps them); undefined without video. */
  video: { width: number; height: number; codec: string } | undefined;
  audio: { codec: string } | undefined;
}

/** Bytes of stderr a probe reads: the description of a sane file is a few KiB. */
const MAX_PROBE_STDERR = 64 * 1024;

/**
 * Parses what `ffmpeg -i` writes to stderr about input #0 (the bundled build has no ffprobe):
 * its `Duration:` line and the first `Video:` and `Audio:` stream lines, with a stream's
 * `rotate` metadata. Pure; lines of any other input are ignored.
 *
 * @example
 *   parseProbe('  Duration: 00:01:00.02, start: 0.000000, bitrate: 2800 kb/s\n' +
 *     '    Stream #0:0(und): Video: h264 (High), yuv420p, 1280x720 [SAR 1:1 DAR 16:9], 30 fps\n')
 *   // { durationSeconds: 60.02, video: { width: 1280, height: 720, codec: 'h264' }, audio: undefined }
 */
export function parseProbe(stderr: string): MediaInfo {
  const info: MediaInfo = { durationSeconds: undefined, video: undefined, audio: undefined };
  let input = -1;
  let inVideo = false;
  for (const line of stderr.split('\n')) {
    const header = /^Input #(\d+),/.exec(line);
    if (header) input = Number(header[1]);
    if (/^Output #\d+/.test(line) || /^Stream mapping:/.test(line)) input = -1;
    if (input !== 0) continue;
    const duration = /^\s+Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)/.exec(line);
    if (duration && info.durationSeconds === undefined) {
      info.durationSeconds = Number(duration[1]) * 3600 + Number(duration[2]) * 60 + Number(duration[3]);
    }
    const stream = /^\s+Stream #0:\d+.*?: (Video|Audio): ([A-Za-z0-9_]+)(.*)$/.exec(line);
    if (stream) {
      inVideo = false;
      if (stream[1] === 'Video' && !info.video) {
        const size = /, (\d{1,5})x(\d{1,5})[\s,]/.exec(`${stream[3]} `);
        if (size) {
          info.video = { width: Number(size[1]), height: Number(size[2]), codec: stream[2]! };
          inVideo = true;
        }
      }
      if (stream[1] === 'Audio' && !info.audio) info.audio = { codec: stream[2]! };
      continue;
    }
    if (/^\s+Stream #/.test(line)) inVideo = false;
    const rotate = /^\s+rotate\s+:\s+(-?\d+)/.exec(line);
    if (rotate && inVideo && info.video && Math.abs(Number(rotate[1])) % 180 === 90) {
      info.video = { ...info.video, width: info.video.height, height: info.video.width };
      inVideo = false;
    }
  }
  return info;
}

export interface ProbeOptions {
  ffmpegPath: string;
  input: FencedInput;
  timeoutMs: number;
  signal?: AbortSignal;
  /** The stream the upload must have, and whose first frame must decode. Default `video`. */
  need?: 'video' | 'audio';
  /** What the client calls it in a refusal: `upload` (default), `overlay audio`. */
  what?: string;
  /** How far below the daemon the probe runs (jobs.nice): it is an uploader's work too. */
  nice?: number;
}

/**
 * Probes an upload through the input fence and decodes its first video frame, so a file whose
 * header is fine but whose video is not is refused before a job exists. Rejects with
 * MEDIA_DECODE_FAILED (422) when ffmpeg cannot open it, it has no video stream or no frame of
 * it decodes; MEDIA_TIMEOUT past `timeoutMs`.
 *
 * @example
 *   const info = await probeMedia({ ffmpegPath, input: { demuxer: 'mov', accepted: VIDEO_DEMUXERS, from: path }, timeoutMs: 20_000 });
 */
export async function probeMedia(o: ProbeOptions): Promise<MediaInfo> {
  const need = o.need ?? 'video';
  let frames = 0;
  let outTime = 0;
  // biome-ignore format: one option and its value per line
  const args = [
    '-hide_banner', '-nostdin', '-nostats',
    '-progress', 'pipe:1',
    ...fencedInputArgs(o.input),
    '-map', need === 'video' ? '0:v:0' : '0:a:0',
    need === 'video' ? '-frames:v' : '-frames:a', '1',
    '-f', 'null', '-',
  ];
  const run = runFfmpeg({
    ffmpegPath: o.ffmpegPath,
    args,
    timeoutMs: o.timeoutMs,
    timeoutMessage: `probing the upload took over ${Math.round(o.timeoutMs / 1000)} s`,
    ...(o.nice !== undefined && { nice: o.nice }),
    ...(o.signal && { signal: o.signal }),
    onProgress: (p) => {
      if (p.frames !== undefined) frames = p.frames;
      if (p.outTimeUs !== undefined) outTime = p.outTimeUs;
    },
  });
  let stderr = '';
  run.child.process.stderr.on('data', (text: string) => {
    if (stderr.length < MAX_PROBE_STDERR) stderr += text;
  });
  let failure: unknown;
  await run.done.catch((err: unknown) => {
    failure = err;
  });
  if (run.stopped) throw run.stopped;
  if (failure instanceof MediaError && failure.code === 'MEDIA_FAILED') throw failure;
  const info = parseProbe(stderr);
  const detail = failure instanceof MediaError ? failure.detail : '';
  if (!info[need]) {
    const what = stderr.includes('Input #0') ? `has no ${need} stream` : 'could not be opened';
    throw new MediaError('MEDIA_DECODE_FAILED', `the ${o.what ?? 'upload'} ${what}`, 422, detail);
  }
  // Video counts frames; an audio output reports only its time.
  if (failure || (need === 'video' ? frames === 0 : outTime === 0)) {
    const message = `no ${need} of the ${o.what ?? 'upload'} could be decoded`;
    throw new MediaError('MEDIA_DECODE_FAILED', message, 422, detail);
  }
  return info;
}
