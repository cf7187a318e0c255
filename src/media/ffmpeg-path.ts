import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * The ffmpeg binary: an explicit path (config `ffmpegPath` / env FFMPEG_PATH) wins,
 * else the static build shipped by @ffmpeg-installer (4.1-era; every flag we pass is checked against it).
 */
export function resolveFfmpegPath(explicit?: string): string {
  if (explicit) return explicit;
  const installer = require('@ffmpeg-installer/ffmpeg') as { path: string };
  return installer.path;
}

/** A font for the test pattern's clock; without one the pattern runs without a clock rather than failing. */
export function findClockFont(): string | undefined {
  const candidates = [
    '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
    '/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf',
    '/usr/share/fonts/TTF/DejaVuSans.ttf',
    '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  ];
  return candidates.find((f) => existsSync(f));
}
