import type { CameraConfig } from '../config/schema.js';

export interface CameraArgsOptions {
  /** TTF file for the test pattern's clock; omitted means no clock. */
  clockFont?: string | undefined;
}

/**
 * ffmpeg arguments that turn a camera source into an MJPEG stream on stdout (pipe:1),
 * scaled to the configured size and rate. Checked against ffmpeg 4.1 (the @ffmpeg-installer build).
 *
 * @example
 *   buildCameraArgs({ id: 'demo', source: 'test', fps: 15, width: 640, height: 360, quality: 5 })
 */
export function buildCameraArgs(cam: CameraConfig, opts: CameraArgsOptions = {}): string[] {
  const size = `${cam.width}x${cam.height}`;
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error'];
  const filters: string[] = [];

  if (cam.source === 'test') {
    // -re paces lavfi to real time; without it the pattern is produced as fast as the CPU allows.
    args.push('-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${cam.fps}`);
    if (opts.clockFont) {
      // Escaped for the filter graph: the colons inside %{localtime} options must not end the option list.
      filters.push(
        `drawtext=fontfile=${opts.clockFont}:text='%{localtime\\:%T} ${cam.id}':x=16:y=16:fontsize=${Math.max(12, Math.round(cam.height / 20))}:fontcolor=white:box=1:boxcolor=black@0.5`,
      );
    }
  } else if (/^rtsps?:\/\//i.test(cam.source)) {
    args.push('-rtsp_transport', 'tcp', '-i', cam.source);
    filters.push(`fps=${cam.fps}`, `scale=${cam.width}:${cam.height}`);
  } else if (/^(https?|rtmp):\/\//i.test(cam.source)) {
    args.push('-i', cam.source);
    filters.push(`fps=${cam.fps}`, `scale=${cam.width}:${cam.height}`);
  } else {
    const path = cam.source.replace(/^file:\/\//i, '');
    args.push('-re', '-stream_loop', '-1', '-i', path);
    filters.push(`fps=${cam.fps}`, `scale=${cam.width}:${cam.height}`);
  }

  const audio = cameraHasAudio(cam);
  if (audio && cam.source === 'test') {
    // The demo's "voice": a 440 Hz tone on for 2 s, off for 2 s, over faint noise (a realistic floor).
    args.push('-re', '-f', 'lavfi', '-i', `aevalsrc=exprs=${TEST_TONE}:s=${cam.audioRate}:c=mono`);
  }

  args.push('-map', '0:v:0');
  if (filters.length) args.push('-vf', filters.join(','));
  // yuvj420p is what browsers and sharp decode fastest; -q:v sets a fixed JPEG quality.
  args.push('-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-q:v', String(cam.quality), '-f', 'mjpeg', 'pipe:1');
  if (audio) {
    // Second output: mono PCM for the VAD on fd 3 (the supervisor opens it as a pipe).
    args.push('-map', cam.source === 'test' ? '1:a:0' : '0:a:0', '-ac', '1', '-ar', String(cam.audioRate));
    args.push('-c:a', 'pcm_s16le', '-f', 's16le', 'pipe:3');
  }
  return args;
}

/** The test tone: 0.3 amplitude while mod(t, 4) < 2, plus noise at about -60 dBFS. Commas escaped for the filter graph. */
const TEST_TONE = '0.3*sin(2*PI*440*t)*lt(mod(t\\,4)\\,2)+0.001*(2*random(0)-1)';

/** The test tone's period: on for the first half of each period, measured from ffmpeg's start. */
export const TEST_TONE_PERIOD_MS = 4000;

export function cameraHasAudio(cam: CameraConfig): boolean {
  return cam.audio ?? cam.source === 'test';
}
