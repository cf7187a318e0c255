/**
 * H.264 codec strings (RFC 6381, `avc1.PPCCLL`): reading one from an `avcC` box and deciding
 * whether a browser that accepts some codec strings can play another. Pure: the server uses it
 * for codec negotiation, the fMP4 splitter (fmp4.ts) for the init segment.
 */

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/**
 * The RFC 6381 codec string from an avcC box payload (the bytes after its 8-byte header):
 * `avc1.` + AVCProfileIndication, profile_compatibility and AVCLevelIndication as 6 lower-case
 * hex digits. Throws a RangeError when the payload is shorter than those 4 bytes or its
 * configurationVersion is not 1; the splitter turns that into FMP4_MALFORMED.
 *
 * @example
 *   avcCodecString(Uint8Array.of(1, 0x64, 0x00, 0x1e, 0xff)); // 'avc1.64001e' (High, level 3.0)
 */
export function avcCodecString(avcC: Uint8Array): string {
  if (avcC.length < 4) throw new RangeError(`avcC is ${avcC.length} bytes, needs at least 4`);
  if (avcC[0] !== 1) throw new RangeError(`avcC configurationVersion is ${avcC[0]}, not 1`);
  return `avc1.${hex2(avcC[1] as number)}${hex2(avcC[2] as number)}${hex2(avcC[3] as number)}`;
}

interface ParsedCodec {
  /** The sample entry type: `avc1` or `avc3` (parameter sets in-band). */
  family: string;
  profile: number;
  /** constraint_set flags (constraint_set1, 0x40, marks Constrained Baseline). */
  constraints: number;
  level: number;
}

const CODEC_RE = /^(avc[13])\.([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i;

/** `avc1.64001e` → family, profile_idc and level_idc; undefined for anything else (never throws). */
function parseCodec(codec: unknown): ParsedCodec | undefined {
  if (typeof codec !== 'string' || codec.length > 64) return undefined;
  const m = CODEC_RE.exec(codec.trim());
  if (!m) return undefined;
  return {
    family: (m[1] as string).toLowerCase(),
    profile: parseInt(m[2] as string, 16),
    constraints: parseInt(m[3] as string, 16),
    level: parseInt(m[4] as string, 16),
  };
}

const BASELINE = 66;
const MAIN = 77;
const HIGH = 100;

/**
 * Whether a decoder of `decoder`'s profile decodes `stream`'s: the same profile, or a subset
 * of it. High decodes Main and Constrained Baseline; Main decodes Constrained Baseline
 * (Baseline with constraint_set1, `42e0`/`42c0`); full Baseline (FMO, ASO) only itself.
 */
function profileCovers(decoder: ParsedCodec, stream: ParsedCodec): boolean {
  if (decoder.profile === stream.profile) return true;
  const constrainedBaseline = stream.profile === BASELINE && (stream.constraints & 0x40) !== 0;
  if (decoder.profile === HIGH) return stream.profile === MAIN || constrainedBaseline;
  if (decoder.profile === MAIN) return constrainedBaseline;
  return false;
}

/**
 * Whether a viewer that accepts the `accepted` codec strings (what its
 * `MediaSource.isTypeSupported` said yes to) can play `codec`: some accepted string has the
 * same sample entry type (`avc1` and `avc3` are kept apart: a player that only probed avc1 may
 * not take in-band parameter sets), a profile that covers the stream's (High covers Main and
 * Constrained Baseline; Main covers Constrained Baseline), and a level at least the stream's.
 * Strings that are not `avcN.xxxxxx` never match, and nothing a client sends makes this throw.
 *
 * @example
 *   codecAccepted('avc1.64001e', ['avc1.42e01f', 'avc1.640028']); // true: High, 3.0 ≤ 4.0
 *   codecAccepted('avc1.640033', ['avc1.640028']); // false: level 5.1 > 4.0
 */
export function codecAccepted(codec: string, accepted: readonly string[]): boolean {
  const want = parseCodec(codec);
  if (!want || !Array.isArray(accepted)) return false;
  let best = -1;
  for (const a of accepted.slice(0, 256)) {
    const c = parseCodec(a);
    if (c && c.family === want.family && profileCovers(c, want) && c.level > best) best = c.level;
  }
  return want.level <= best;
}
