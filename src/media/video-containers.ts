/**
 * The video containers an upload may be, recognised by their first bytes, each with the
 * ffmpeg demuxer forced to read it (never ffmpeg's own probe, which would take a playlist or a
 * manifest and open the URLs and files it names). Every demuxer here is in the bundled 4.1.
 */
export interface VideoContainer {
  /** What the client is told the body looked like. */
  name: string;
  /** ffmpeg's `-f` for it. */
  demuxer: string;
}

const ascii = (b: Buffer, from: number, to: number) => b.toString('latin1', from, to);

/** ISO BMFF boxes a QuickTime/MP4 file may start with (besides `ftyp`). */
const MOV_FIRST_BOXES = new Set(['ftyp', 'moov', 'mdat', 'free', 'wide', 'skip', 'pnot']);

const CONTAINERS: (VideoContainer & { matches: (b: Buffer) => boolean })[] = [
  { name: 'mp4/mov/3gp', demuxer: 'mov', matches: (b) => MOV_FIRST_BOXES.has(ascii(b, 4, 8)) },
  { name: 'matroska/webm', demuxer: 'matroska', matches: (b) => b.readUInt32BE(0) === 0x1a45dfa3 },
  {
    name: 'avi',
    demuxer: 'avi',
    matches: (b) => ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'AVI ',
  },
  // Three sync bytes a packet apart: one 0x47 is far too common to mean MPEG-TS.
  { name: 'mpeg-ts', demuxer: 'mpegts', matches: (b) => b[0] === 0x47 && b[188] === 0x47 && b[376] === 0x47 },
];

/** Every demuxer a video upload may use, for `-format_whitelist`. */
export const VIDEO_DEMUXERS: readonly string[] = CONTAINERS.map((c) => c.demuxer);

/** The names clients may send, for error messages. */
export const VIDEO_CONTAINER_NAMES = 'mp4/mov/3gp, matroska/webm, avi, mpeg-ts';

/**
 * What a refused body looks like when it is a playlist or manifest: named in the refusal, so
 * a client learns that these are never accepted rather than that its file was damaged.
 */
const PLAYLISTS: [RegExp, string][] = [
  [/^#EXTM3U/, 'an HLS playlist (#EXTM3U)'],
  [/^ffconcat/, 'an ffconcat list'],
  [/^v=0\r?\n/, 'an SDP description (v=0)'],
  [/<MPD[\s>]/, 'a DASH manifest (<MPD>)'],
];

/** The playlist or manifest a body is, or undefined. Looks at the first 1 KiB only. */
export function playlistKind(body: Buffer): string | undefined {
  const head = ascii(body, 0, Math.min(body.length, 1024))
    .replace(/^\uFEFF|^\xEF\xBB\xBF/, '')
    .trimStart();
  return PLAYLISTS.find(([pattern]) => pattern.test(head))?.[1];
}

/**
 * The container a body starts like, or undefined (refused before ffmpeg runs).
 *
 * @example
 *   sniffVideoContainer(readFileSync('clip.mp4')); // { name: 'mp4/mov/3gp', demuxer: 'mov' }
 */
export function sniffVideoContainer(body: Buffer): VideoContainer | undefined {
  if (body.length < 12) return undefined;
  const hit = CONTAINERS.find((c) => (c.demuxer === 'mpegts' ? body.length > 376 : true) && c.matches(body));
  return hit && { name: hit.name, demuxer: hit.demuxer };
}
