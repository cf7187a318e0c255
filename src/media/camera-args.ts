import { spawnSync } from 'node:child_process';
import type { CameraConfig, FfmpegCameraConfig } from '../config/schema.js';
import { hasCredentials } from './source-credentials.js';

export interface CameraArgsOptions {
  /** TTF file for the test pattern's clock; omitted means no clock. */
  clockFont?: string | undefined;
  /** The ffmpeg's `movie` filter takes `format_opts` (ffmpeg 5.1 and later; not the bundled 4.1). */
  movieFormatOptions?: boolean;
}

export interface CameraCommand {
  args: string[];
  /**
   * A filtergraph to write to the child's fd 4 (`-filter_complex_script pipe:4`): how a URL
   * with credentials reaches ffmpeg without appearing in its argv (`/proc/<pid>/cmdline`).
   */
  script: string | undefined;
  /** The source's credentials are in `args`: this ffmpeg offers no other way for this source. */
  credentialsInArgs: boolean;
}

/** The fd the supervisor opens as a pipe and writes `script` to. */
export const SCRIPT_FD = 4;
/** The fd the camera's live H.264 comes out of, as fragmented MP4 (when `video` is set). */
export const VIDEO_FD = 5;

/**
 * ffmpeg arguments that turn a camera source into an MJPEG stream on stdout (pipe:1),
 * scaled to the configured size and rate. Checked against ffmpeg 4.1 (the @ffmpeg-installer build).
 *
 * A URL with user info is opened by the `movie` filter of a graph read from a pipe instead of
 * `-i`, so the password is not in argv. RTSP needs `format_opts` for `-rtsp_transport tcp`,
 * which ffmpeg 4.1 lacks: without it the demuxer tries UDP first and falls back to TCP only
 * after 10 s, past the supervisor's stall timeout. So with 4.1 an RTSP URL with credentials
 * stays in argv (`credentialsInArgs`), and the supervisor says so in its log.
 *
 * @example
 *   buildCameraCommand({ id: 'demo', source: 'test', fps: 15, width: 640, height: 360, quality: 5 }).args
 */
export function buildCameraCommand(cam: FfmpegCameraConfig, opts: CameraArgsOptions = {}): CameraCommand {
  const size = `${cam.width}x${cam.height}`;
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error'];
  const filters: string[] = [];
  const audio = cameraHasAudio(cam);
  const rtsp = /^rtsps?:\/\//i.test(cam.source);
  const url = rtsp || /^(https?|rtmp):\/\//i.test(cam.source);
  const credentials = url && hasCredentials(cam.source);
  const video = cam.video !== undefined;
  const videoSize = `${cam.videoWidth ?? cam.width}:${cam.videoHeight ?? cam.height}`;

  // `copy` needs the source's own packets, which a `movie` filter (decoded frames) cannot give.
  if (credentials && (!rtsp || opts.movieFormatOptions) && cam.video !== 'copy') {
    const input = [`filename=${filterValue(cam.source)}`, `s=${audio ? 'dv+da' : 'dv'}`];
    if (rtsp) input.push('format_opts=rtsp_transport=tcp');
    const pictures = video
      ? `fps=${cam.fps},split[fv][vv];[fv]scale=${cam.width}:${cam.height}[v];[vv]scale=${videoSize}[h264]`
      : `fps=${cam.fps},scale=${cam.width}:${cam.height}[v]`;
    const script = `movie=${input.join(':')}[src_v]${audio ? '[src_a]' : ''};[src_v]${pictures}`;
    args.push('-filter_complex_script', `pipe:${SCRIPT_FD}`, '-map', '[v]');
    args.push(...mjpegOutput(cam));
    if (audio) args.push('-map', '[src_a]', ...pcmOutput(cam));
    if (video) args.push('-map', '[h264]', ...videoOutput(cam));
    return { args, script, credentialsInArgs: false };
  }

  if (cam.source === 'test') {
    // -re paces lavfi to real time; without it the pattern is produced as fast as the CPU allows.
    args.push('-re', '-f', 'lavfi', '-i', `${cam.pattern ?? 'testsrc2'}=size=${size}:rate=${cam.fps}`);
    if (opts.clockFont) {
      // Escaped for the filter graph: the colons inside %{localtime} options must not end the option list.
      filters.push(
        `drawtext=fontfile=${opts.clockFont}:text='%{localtime\\:%T} ${cam.id}':x=16:y=16:fontsize=${Math.max(12, Math.round(cam.height / 20))}:fontcolor=white:box=1:boxcolor=black@0.5`,
      );
    }
  } else if (rtsp) {
    args.push('-rtsp_transport', 'tcp', '-i', cam.source);
    filters.push(`fps=${cam.fps}`, `scale=${cam.width}:${cam.height}`);
  } else if (url) {
    args.push('-i', cam.source);
    filters.push(`fps=${cam.fps}`, `scale=${cam.width}:${cam.height}`);
  } else {
    const path = cam.source.replace(/^file:\/\//i, '');
    args.push('-re', '-stream_loop', '-1', '-i', path);
    filters.push(`fps=${cam.fps}`, `scale=${cam.width}:${cam.height}`);
  }

  if (audio && cam.source === 'test') {
    // The demo's "voice": a 440 Hz tone on for 2 s, off for 2 s, over faint noise (a realistic floor).
    args.push('-re', '-f', 'lavfi', '-i', `aevalsrc=exprs=${TEST_TONE}:s=${cam.audioRate}:c=mono`);
  }

  args.push('-map', '0:v:0');
  if (filters.length) args.push('-vf', filters.join(','));
  args.push(...mjpegOutput(cam));
  if (audio) args.push('-map', cam.source === 'test' ? '1:a:0' : '0:a:0', ...pcmOutput(cam));
  if (video) {
    args.push('-map', '0:v:0');
    // Each output filters on its own: the H.264 gets the same pictures, at its own size.
    if (cam.video === 'transcode') {
      const videoFilters = filters.filter((f) => !f.startsWith('scale='));
      args.push('-vf', [...videoFilters, `scale=${videoSize}`].join(','));
    }
    args.push(...videoOutput(cam));
  }
  return { args, script: undefined, credentialsInArgs: credentials };
}

/**
 * Fragmented MP4 on fd 5: an init segment (ftyp+moov, written at once by `empty_moov`), then
 * one moof+mdat per frame (`frag_every_frame`), each flushed to the pipe as it is made, so a
 * frame reaches viewers one frame after it was encoded. `default_base_moof` is what MSE wants.
 * `transcode`: libx264 veryfast with zerolatency (no B-frames, no lookahead: a frame leaves the
 * encoder at once), a keyframe every `videoGopSeconds` exactly (no scene-cut keyframes, so the
 * GOP cache and the keyframe skip see a steady GOP), and a capped bitrate. Checked against 4.1.
 */
function videoOutput(cam: FfmpegCameraConfig): string[] {
  const fmp4 = [
    ...['-an', '-f', 'mp4'],
    ...['-movflags', 'frag_keyframe+empty_moov+default_base_moof+frag_every_frame'],
    `pipe:${VIDEO_FD}`,
  ];
  if (cam.video === 'copy') return ['-c:v', 'copy', ...fmp4];
  const gop = String(Math.max(1, Math.round(cam.fps * (cam.videoGopSeconds ?? DEFAULT_GOP_SECONDS))));
  const kbps = cam.videoBitrateKbps ?? defaultVideoKbps(cam);
  // biome-ignore format: one option and its value per line
  return [
    '-c:v', 'libx264',
    '-preset', 'veryfast',
    '-tune', 'zerolatency',
    '-pix_fmt', 'yuv420p',
    '-g', gop,
    '-keyint_min', gop,
    '-sc_threshold', '0',
    '-b:v', `${kbps}k`,
    '-maxrate', `${kbps}k`,
    '-bufsize', `${kbps}k`,
    ...fmp4,
  ];
}

/** Seconds between keyframes of a `transcode` camera without `videoGopSeconds`. */
const DEFAULT_GOP_SECONDS = 2;

/** About 0.07 bits per pixel per frame: 250 kbit/s at 640×360 and 15 fps, 1 Mbit/s at 720p. */
export function defaultVideoKbps(cam: FfmpegCameraConfig): number {
  const pixels = (cam.videoWidth ?? cam.width) * (cam.videoHeight ?? cam.height);
  return Math.max(50, Math.round((pixels * cam.fps * 0.07) / 1000));
}

/** yuvj420p is what browsers and sharp decode fastest; -q:v sets a fixed JPEG quality. */
const mjpegOutput = (cam: FfmpegCameraConfig) => [
  ...['-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-q:v', String(cam.quality)],
  ...['-f', 'mjpeg', 'pipe:1'],
];

/** Second output: mono PCM for the VAD on fd 3 (the supervisor opens it as a pipe). */
const pcmOutput = (cam: FfmpegCameraConfig) => [
  ...['-ac', '1', '-ar', String(cam.audioRate)],
  ...['-c:a', 'pcm_s16le', '-f', 's16le', 'pipe:3'],
];

/**
 * A filter option value as a filtergraph script must spell it: escaped once for the option
 * list (`\`, `'`, `:`) and once more for the graph (`\`, `'`, `[`, `]`, `,`, `;`), whitespace
 * included at both levels so none is trimmed.
 */
function filterValue(value: string): string {
  const backslash = (text: string, special: RegExp) => text.replace(special, (c) => `\\${c}`);
  return backslash(backslash(value, /[\\':\s]/g), /[\\'[\],;\s]/g);
}

const movieOptionCache = new Map<string, boolean>();

/**
 * Whether this ffmpeg's `movie` filter takes `format_opts` (5.1 and later), read once per
 * binary from its own help: a short synchronous run at start-up, only for a camera that needs it.
 */
export function movieTakesFormatOptions(ffmpegPath: string): boolean {
  let known = movieOptionCache.get(ffmpegPath);
  if (known === undefined) {
    const help = spawnSync(ffmpegPath, ['-hide_banner', '-h', 'filter=movie'], {
      encoding: 'utf8',
      timeout: 5000,
    });
    known = /\bformat_opts\b/.test(`${help.stdout ?? ''}`);
    movieOptionCache.set(ffmpegPath, known);
  }
  return known;
}

/** The test tone: 0.3 amplitude while mod(t, 4) < 2, plus noise at about -60 dBFS. Commas escaped for the filter graph. */
const TEST_TONE = '0.3*sin(2*PI*440*t)*lt(mod(t\\,4)\\,2)+0.001*(2*random(0)-1)';

/** The test tone's period: on for the first half of each period, measured from ffmpeg's start. */
export const TEST_TONE_PERIOD_MS = 4000;

/** Whether the camera's own ffmpeg decodes audio for the VAD (never for a push camera: its publisher sends it). */
export function cameraHasAudio(cam: CameraConfig): boolean {
  return cam.audio ?? cam.source === 'test';
}
