import { join } from 'node:path';
import { type FencedInput, fencedInputArgs, MAX_SOURCE_PIXELS } from './input-fence.js';

/**
 * Pure argument builders for a video job's three ffmpeg steps: the chunk encode (one process
 * for every rendition, the poster and the sprite), the final concat (no re-encode) and the
 * HLS remux (no re-encode). Every flag is checked against the bundled 4.1 (`-h muxer=segment`,
 * `-h muxer=hls`, `-h filter=amix`, `-h filter=tile`).
 */

/** The renditions a job may ask for: name → height and the bitrate ceiling of its video. */
export const RENDITIONS = {
  '240p': { height: 240, maxKbps: 400 },
  '360p': { height: 360, maxKbps: 800 },
  '480p': { height: 480, maxKbps: 1400 },
  '720p': { height: 720, maxKbps: 2800 },
  '1080p': { height: 1080, maxKbps: 5000 },
} as const;

export type RenditionName = keyof typeof RENDITIONS;
export const RENDITION_NAMES = Object.keys(RENDITIONS) as RenditionName[];

export interface Rendition {
  /** A RENDITIONS name, or `source` for a source smaller than the smallest of them. */
  name: string;
  height: number;
  maxKbps: number;
}

/**
 * The renditions to make for a source `sourceHeight` pixels tall: those asked for that do not
 * upscale, smallest first; with none asked (or none left), the largest listed rendition no
 * taller than the source and 720p, or the source's own height (`source`) below 240p.
 *
 * @example
 *   pickRenditions(['480p', '1080p'], 720) // [{ name: '480p', height: 480, maxKbps: 1400 }]
 *   pickRenditions(undefined, 1080)       // [{ name: '720p', height: 720, maxKbps: 2800 }]
 */
export function pickRenditions(
  asked: readonly RenditionName[] | undefined,
  sourceHeight: number,
): Rendition[] {
  const fits = (asked ?? [])
    .filter((name, i, all) => all.indexOf(name) === i && RENDITIONS[name].height <= sourceHeight)
    .map((name) => ({ name, ...RENDITIONS[name] }))
    .sort((a, b) => a.height - b.height);
  if (fits.length) return fits;
  const cap = Math.min(sourceHeight, 720);
  const best = RENDITION_NAMES.filter((n) => RENDITIONS[n].height <= cap).at(-1);
  if (best) return [{ name: best, ...RENDITIONS[best] }];
  return [{ name: 'source', height: Math.max(2, sourceHeight - (sourceHeight % 2)), maxKbps: 300 }];
}

/** The sprite sheet's layout: one tile of `width` px every `everySeconds`, at most 100 tiles. */
export interface SpriteLayout {
  everySeconds: number;
  columns: number;
  rows: number;
  /** One tile's size. */
  width: number;
  height: number;
}

/** Tiles in a sprite sheet at most: a long video gets a longer interval instead. */
const MAX_TILES = 100;
const TILE_WIDTH = 160;

/**
 * The sprite layout for `everySeconds` over a source of this duration and size.
 *
 * @example
 *   spriteLayout(5, 60, 1280, 720) // { everySeconds: 5, columns: 10, rows: 2, width: 160, height: 90 }
 */
export function spriteLayout(
  everySeconds: number,
  durationSeconds: number,
  width: number,
  height: number,
): SpriteLayout {
  const every = Math.max(everySeconds, Math.ceil(durationSeconds / MAX_TILES));
  const tiles = Math.max(1, Math.ceil(durationSeconds / every));
  const columns = Math.min(10, tiles);
  const tileHeight = Math.max(2, 2 * Math.round((TILE_WIDTH * height) / Math.max(1, width) / 2));
  return {
    everySeconds: every,
    columns,
    rows: Math.ceil(tiles / columns),
    width: TILE_WIDTH,
    height: tileHeight,
  };
}

export interface ChunkEncodePlan {
  ffmpegInput: FencedInput;
  /** An overlay audio upload mixed over the source's audio (or alone when it has none). */
  overlay: FencedInput | undefined;
  sourceHasAudio: boolean;
  /** The source's duration (from its header), to trim the padded overlay. */
  durationSeconds: number;
  /** The source is read no further than this (jobs.video.maxSeconds). */
  maxSeconds: number;
  renditions: readonly Rendition[];
  chunkSeconds: number;
  /** Volume of the source's audio under an overlay, 0..1. */
  duck: number;
  preset: string;
  threads: number;
  /** The job's directory (absolute): `<rendition>/chunk_NNN.mp4`, `poster.jpg`, `sprite.jpg`. */
  dir: string;
  /** Where in the source the poster is taken from, in seconds. */
  posterAt: number;
  sprite: SpriteLayout | undefined;
}

export const AUDIO_KBPS = 128;

/**
 * Mono stays mono and more channels are mixed down to stereo: what every browser plays. Not
 * `-ac 2`, which upmixes mono with the centre at −3 dB, so a mono source would come out quieter.
 */
const AUDIO_LAYOUT = 'aformat=channel_layouts=mono|stereo';

/** A chunk's file name: the same pattern the encode writes and the server answers for. */
export const chunkName = (n: number) => `chunk_${String(n).padStart(3, '0')}.mp4`;

/**
 * One ffmpeg for every output: the source is decoded once, split into one scaled copy per
 * rendition (libx264 with a bitrate ceiling, AAC), each cut by the segment muxer into chunks of
 * `chunkSeconds` that are playable alone (a forced keyframe at every boundary, `+faststart`,
 * timestamps reset), and each chunk's name and times written as a csv line to fd 3 + the
 * rendition's index the moment it is closed. A poster and a sprite sheet (fps=1/N, scale,
 * tile) are two more outputs of the same decode. With an overlay, the source's audio is set to
 * `duck` and mixed with the overlay padded to the source's length: amix scales its inputs by
 * 1/2 (in 4.1, with weights 1 1 and both inputs always active thanks to the pad), so
 * `volume=2` after it puts both back at the intended level.
 *
 * @example
 *   buildChunkEncodeArgs({ ...plan, renditions: pickRenditions(['480p', '720p'], 720) })
 *   // ffmpeg writes <dir>/480p/chunk_000.mp4 …, csv lines on fd 3 (480p) and 4 (720p)
 */
export function buildChunkEncodeArgs(p: ChunkEncodePlan): string[] {
  const n = p.renditions.length;
  const videoOuts = p.renditions.map((_, i) => `[v${i}]`);
  const graph: string[] = [];
  const splits = [...videoOuts.map((_, i) => `[s${i}]`), '[sp]', ...(p.sprite ? ['[ss]'] : [])];
  graph.push(`[0:v]split=${splits.length}${splits.join('')}`);
  for (const [i, r] of p.renditions.entries()) graph.push(`[s${i}]scale=-2:${r.height}${videoOuts[i]}`);
  graph.push(`[sp]trim=start=${p.posterAt.toFixed(3)},setpts=PTS-STARTPTS[poster]`);
  if (p.sprite) {
    const s = p.sprite;
    graph.push(
      `[ss]fps=1/${s.everySeconds},scale=${s.width}:${s.height},tile=${s.columns}x${s.rows}[sprite]`,
    );
  }
  const audioOuts = p.renditions.map((_, i) => `[a${i}]`);
  const hasAudio = p.sourceHasAudio || p.overlay !== undefined;
  if (p.overlay && p.sourceHasAudio) {
    graph.push(
      `[0:a]volume=${p.duck}[ducked]`,
      '[1:a]apad[padded]',
      `[ducked][padded]amix=inputs=2:duration=first:dropout_transition=0,volume=2,${AUDIO_LAYOUT},asplit=${n}${audioOuts.join('')}`,
    );
  } else if (p.overlay) {
    graph.push(
      `[1:a]apad,atrim=end=${p.durationSeconds.toFixed(3)},${AUDIO_LAYOUT},asplit=${n}${audioOuts.join('')}`,
    );
  } else if (p.sourceHasAudio) {
    graph.push(`[0:a]${AUDIO_LAYOUT},asplit=${n}${audioOuts.join('')}`);
  }
  const threads = String(p.threads);
  // biome-ignore format: one option and its value per line
  const args = [
    '-hide_banner', '-nostdin', '-nostats',
    '-loglevel', 'error',
    '-progress', 'pipe:1',
    ...fencedInputArgs({
      ...p.ffmpegInput,
      options: ['-threads', threads, '-max_pixels', String(MAX_SOURCE_PIXELS), '-t', String(p.maxSeconds)],
    }),
    ...(p.overlay ? fencedInputArgs(p.overlay) : []),
    '-filter_complex', graph.join(';'),
    '-filter_complex_threads', threads,
  ];
  p.renditions.forEach((r, i) => {
    // biome-ignore format: one option and its value per line
    args.push(
      '-map', videoOuts[i]!,
      ...(hasAudio ? ['-map', audioOuts[i]!] : []),
      '-c:v', 'libx264',
      '-preset', p.preset,
      '-crf', '23',
      '-maxrate', `${r.maxKbps}k`,
      '-bufsize', `${2 * r.maxKbps}k`,
      '-pix_fmt', 'yuv420p',
      '-threads', threads,
      '-force_key_frames', `expr:gte(t,n_forced*${p.chunkSeconds})`,
      // Keyframes only at chunk starts: x264's own (every 250 frames, scene cuts) would make
      // the HLS remux cut segments that are not the chunks.
      '-g', '100000',
      '-sc_threshold', '0',
      ...(hasAudio ? ['-c:a', 'aac', '-b:a', `${AUDIO_KBPS}k`] : []),
      '-f', 'segment',
      '-segment_time', String(p.chunkSeconds),
      '-segment_format', 'mp4',
      '-segment_format_options', 'movflags=+faststart',
      '-reset_timestamps', '1',
      '-segment_list', `pipe:${3 + i}`,
      '-segment_list_type', 'csv',
      join(p.dir, r.name, 'chunk_%03d.mp4'),
    );
  });
  args.push('-map', '[poster]', '-frames:v', '1', '-q:v', '3', '-y', join(p.dir, 'poster.jpg'));
  if (p.sprite) args.push('-map', '[sprite]', '-frames:v', '1', '-q:v', '5', '-y', join(p.dir, 'sprite.jpg'));
  return args;
}

/** One csv line of the segment list: `chunk_000.mp4,0.000000,10.066667`. */
export interface SegmentLine {
  index: number;
  start: number;
  end: number;
}

/**
 * Parses a segment list line; undefined for anything but `chunk_NNN.mp4,<start>,<end>`.
 *
 * @example
 *   parseSegmentLine('chunk_002.mp4,20.000000,30.033333') // { index: 2, start: 20, end: 30.033333 }
 */
export function parseSegmentLine(line: string): SegmentLine | undefined {
  const m = /^chunk_(\d{3,6})\.mp4,(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)$/.exec(line.trim());
  if (!m) return undefined;
  return { index: Number(m[1]), start: Number(m[2]), end: Number(m[3]) };
}

/**
 * The ffconcat list of a rendition's chunks, by name only: written by the daemon next to the
 * chunks it made, never from anything an uploader sent.
 *
 * @example
 *   ffconcatList(2) // 'ffconcat version 1.0\nfile chunk_000.mp4\nfile chunk_001.mp4\n'
 */
export function ffconcatList(chunks: number): string {
  const lines = ['ffconcat version 1.0'];
  for (let i = 0; i < chunks; i++) lines.push(`file ${chunkName(i)}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The concat of a rendition's chunks into one progressive MP4, without re-encoding. Only the
 * concat demuxer (and mov for the chunks) may open, only files, and `-safe` keeps its default
 * (1): the list can name nothing but plain relative names.
 */
export function buildConcatArgs(listPath: string, output: string): string[] {
  // biome-ignore format: one option and its value per line
  return [
    '-hide_banner', '-nostdin',
    '-loglevel', 'error',
    ...fencedInputArgs({ demuxer: 'concat', accepted: ['concat', 'mov'], from: listPath }),
    '-map', '0',
    '-c', 'copy',
    '-movflags', '+faststart',
    '-y', output,
  ];
}

/**
 * HLS of one rendition's final file: fMP4 segments, a VOD playlist. The segments are the
 * chunks: `-hls_time` a little under `chunkSeconds` makes the muxer cut at each chunk's forced
 * keyframe (at exactly `chunkSeconds` 4.1 skips the first one and makes a segment of two chunks).
 */
export function buildHlsArgs(finalPath: string, outDir: string, chunkSeconds: number): string[] {
  // biome-ignore format: one option and its value per line
  return [
    '-hide_banner', '-nostdin',
    '-loglevel', 'error',
    ...fencedInputArgs({ demuxer: 'mov', accepted: ['mov'], from: finalPath }),
    '-map', '0',
    '-c', 'copy',
    '-f', 'hls',
    '-hls_time', String(chunkSeconds - 0.1),
    '-hls_segment_type', 'fmp4',
    '-hls_playlist_type', 'vod',
    '-hls_fmp4_init_filename', 'init.mp4',
    '-hls_segment_filename', join(outDir, 'seg_%03d.m4s'),
    '-y', join(outDir, 'index.m3u8'),
  ];
}

/**
 * The master playlist over the renditions' playlists (`<name>/index.m3u8`), bandwidth in bits/s.
 *
 * @example
 *   masterPlaylist([{ name: '720p', width: 1280, height: 720, bandwidth: 3_000_000 }])
 */
export function masterPlaylist(
  variants: readonly { name: string; width: number; height: number; bandwidth: number }[],
): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const v of variants) {
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${Math.max(1, Math.round(v.bandwidth))},RESOLUTION=${v.width}x${v.height}`,
      `${v.name}/index.m3u8`,
    );
  }
  return `${lines.join('\n')}\n`;
}
