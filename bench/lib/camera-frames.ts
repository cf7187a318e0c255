import { execFileSync } from 'node:child_process';
import { JpegSplitter } from '../../src/ingest/jpeg-splitter.js';
import { resolveFfmpegPath } from '../../src/media/ffmpeg-path.js';

/**
 * `count` camera frames as the default camera makes them: ffmpeg's testsrc2 at the given size,
 * encoded with the camera's MJPEG settings (src/media/camera-args.ts: yuvj420p, -q:v 5) and
 * split by the daemon's own JpegSplitter. Throws unless ffmpeg gave exactly `count`.
 */
export function testsrcFrames(width: number, height: number, count: number): Uint8Array[] {
  const mjpeg = execFileSync(
    resolveFfmpegPath(),
    [
      ...['-hide_banner', '-loglevel', 'error'],
      ...['-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=15`],
      ...['-frames:v', String(count), '-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-q:v', '5'],
      ...['-f', 'mjpeg', 'pipe:1'],
    ],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  const frames: Uint8Array[] = [];
  new JpegSplitter((jpeg) => frames.push(new Uint8Array(jpeg))).push(mjpeg);
  if (frames.length !== count) throw new Error(`ffmpeg gave ${frames.length} frames, wanted ${count}`);
  return frames;
}
