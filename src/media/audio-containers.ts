/**
 * The audio containers an upload may be, recognised by their first bytes, each with the
 * ffmpeg demuxer that must read it. Forcing that demuxer (and allowing no other) is what keeps
 * ffmpeg from probing a body as a playlist or manifest: DASH, HLS, ffconcat and SDP make it
 * open URLs and local files of the attacker's choosing. Every name here is a demuxer of the
 * bundled 2018 ffmpeg (`ffmpeg -demuxers`).
 */
export interface AudioContainer {
  /** What the client is told the body looked like. */
  name: string;
  /** ffmpeg's `-f` for it. */
  demuxer: string;
  /** The sample rate its header declares, where that is cheap to read; undefined when unknown. */
  declaredRate?: (b: Buffer) => number | undefined;
}

interface Entry extends AudioContainer {
  matches: (b: Buffer) => boolean;
}

const ascii = (b: Buffer, from: number, to: number) => b.toString('latin1', from, to);

/** Chunks walked looking for a header before giving up: a real file has its header in the first few. */
const MAX_CHUNKS = 64;

/** RIFF/WAVE: the `fmt ` chunk holds the rate at byte 4 of its data (after format tag and channels). */
function wavRate(b: Buffer): number | undefined {
  let at = 12;
  for (let i = 0; i < MAX_CHUNKS && at + 8 <= b.length; i++) {
    const size = b.readUInt32LE(at + 4);
    if (ascii(b, at, at + 4) === 'fmt ') return at + 16 <= b.length ? b.readUInt32LE(at + 12) : undefined;
    at += 8 + size + (size % 2);
  }
  return undefined;
}

/** AIFF/AIFC: the `COMM` chunk holds the rate as an 80-bit IEEE extended float at byte 8 of its data. */
function aiffRate(b: Buffer): number | undefined {
  let at = 12;
  for (let i = 0; i < MAX_CHUNKS && at + 8 <= b.length; i++) {
    const size = b.readUInt32BE(at + 4);
    if (ascii(b, at, at + 4) === 'COMM') return at + 26 <= b.length ? extended80(b, at + 16) : undefined;
    at += 8 + size + (size % 2);
  }
  return undefined;
}

/** An 80-bit extended float: sign and 15-bit exponent, then a 64-bit mantissa with an explicit integer bit. */
function extended80(b: Buffer, at: number): number {
  const exponent = b.readUInt16BE(at) & 0x7fff;
  const mantissa = b.readUInt32BE(at + 2) * 2 ** 32 + b.readUInt32BE(at + 6);
  if (exponent === 0 && mantissa === 0) return 0;
  if (exponent === 0x7fff) return Number.POSITIVE_INFINITY;
  const value = mantissa * 2 ** (exponent - 16383 - 63);
  return b[at]! & 0x80 ? -value : value;
}

/** FLAC: STREAMINFO is the first metadata block; its rate is 20 bits at byte 10 of the block. */
function flacRate(b: Buffer): number | undefined {
  if (b.length < 21 || (b[4]! & 0x7f) !== 0) return undefined;
  return (b[18]! << 12) | (b[19]! << 4) | (b[20]! >> 4);
}

const CONTAINERS: Entry[] = [
  {
    name: 'wav',
    demuxer: 'wav',
    matches: (b) => ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WAVE',
    declaredRate: wavRate,
  },
  {
    name: 'aiff',
    demuxer: 'aiff',
    matches: (b) => ascii(b, 0, 4) === 'FORM' && /^AIF[FC]$/.test(ascii(b, 8, 12)),
    declaredRate: aiffRate,
  },
  { name: 'ogg', demuxer: 'ogg', matches: (b) => ascii(b, 0, 4) === 'OggS' },
  { name: 'flac', demuxer: 'flac', matches: (b) => ascii(b, 0, 4) === 'fLaC', declaredRate: flacRate },
  // ADTS AAC shares mp3's 11-bit frame sync; its layer bits are 00, which mp3 never uses. Before
  // the demuxer was forced, ffmpeg's probe told them apart; now the sniff must.
  { name: 'aac', demuxer: 'aac', matches: (b) => b[0] === 0xff && ((b[1] ?? 0) & 0xf6) === 0xf0 },
  {
    name: 'mp3',
    demuxer: 'mp3',
    matches: (b) => ascii(b, 0, 3) === 'ID3' || (b[0] === 0xff && ((b[1] ?? 0) & 0xe0) === 0xe0),
  },
  // ffmpeg's demuxer is named "mov,mp4,m4a,3gp,3g2,mj2"; `-f mov` and a whitelist entry "mov" select it.
  { name: 'mp4', demuxer: 'mov', matches: (b) => ascii(b, 4, 8) === 'ftyp' },
  { name: 'webm', demuxer: 'matroska', matches: (b) => b.readUInt32BE(0) === 0x1a45dfa3 },
  {
    name: 'caf',
    demuxer: 'caf',
    matches: (b) => ascii(b, 0, 4) === 'caff',
    // The `desc` chunk must come first (CAF spec): its mSampleRate is a big-endian float64.
    declaredRate: (b) => (b.length >= 28 && ascii(b, 8, 12) === 'desc' ? b.readDoubleBE(20) : undefined),
  },
  {
    name: 'au',
    demuxer: 'au',
    matches: (b) => ascii(b, 0, 4) === '.snd',
    declaredRate: (b) => (b.length >= 20 ? b.readUInt32BE(16) : undefined),
  },
];

/** Every demuxer an upload may use, for `-format_whitelist`. */
export const AUDIO_DEMUXERS: readonly string[] = CONTAINERS.map((c) => c.demuxer);

/** The names clients may send, for error messages. */
export const AUDIO_CONTAINER_NAMES = 'wav, aiff, ogg, flac, aac (ADTS), mp3, mp4/m4a, webm, caf, au';

/** The container a body starts like, or undefined (refused before ffmpeg runs). */
export function sniffContainer(body: Buffer): AudioContainer | undefined {
  if (body.length < 12) return undefined;
  return CONTAINERS.find((c) => c.matches(body));
}
