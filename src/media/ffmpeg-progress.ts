/**
 * ffmpeg's `-progress pipe:1` output: blocks of `key=value` lines, each ended by
 * `progress=continue` or, after the last, `progress=end`. Both `out_time_us` and `out_time_ms`
 * are microseconds (the latter is misnamed; checked on the bundled 4.1, which writes both);
 * `out_time_us` is read first, `out_time_ms` when a build lacks it, `out_time` (HH:MM:SS.micro)
 * last. Early blocks may say `N/A` or a negative time before the first frame: no time then.
 */
export interface FfmpegProgress {
  /** Output time reached, in microseconds; undefined when the block had none. */
  outTimeUs: number | undefined;
  /** Video frames written so far (`frame=`); undefined when the block had none. */
  frames: number | undefined;
  /** True for the last block (`progress=end`). */
  end: boolean;
}

/** A line longer than this is not ffmpeg's progress output: it is dropped, never buffered. */
const MAX_LINE = 1024;

/**
 * Splits progress text as it arrives (in any chunking) into blocks.
 *
 * @example
 *   const parser = new ProgressParser();
 *   parser.push('out_time_us=1500000\nprogress=cont'); // []
 *   parser.push('inue\n'); // [{ outTimeUs: 1500000, frames: undefined, end: false }]
 */
export class ProgressParser {
  private partial = '';
  private block = new Map<string, string>();

  /** Feeds stdout text; returns the blocks it completed, in order. */
  push(text: string): FfmpegProgress[] {
    const out: FfmpegProgress[] = [];
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    if (this.partial.length > MAX_LINE) this.partial = '';
    for (const raw of lines) {
      const line = raw.trim();
      const eq = line.indexOf('=');
      if (eq <= 0 || line.length > MAX_LINE) continue;
      const key = line.slice(0, eq);
      const value = line.slice(eq + 1);
      if (key !== 'progress') {
        if (this.block.size < 64) this.block.set(key, value);
        continue;
      }
      const frame = this.block.get('frame');
      out.push({
        outTimeUs: blockTime(this.block),
        frames: frame !== undefined && /^\d+$/.test(frame) ? Number(frame) : undefined,
        end: value === 'end',
      });
      this.block = new Map();
    }
    return out;
  }
}

function blockTime(block: Map<string, string>): number | undefined {
  for (const key of ['out_time_us', 'out_time_ms']) {
    const v = block.get(key);
    if (v !== undefined && /^\d+$/.test(v)) return Number(v);
  }
  const clock = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(block.get('out_time') ?? '');
  if (!clock) return undefined;
  return Math.round((Number(clock[1]) * 3600 + Number(clock[2]) * 60 + Number(clock[3])) * 1e6);
}

/**
 * The fraction done of an encode of `durationSeconds`, from a block: 0..1, 1 at the end.
 *
 * @example
 *   progressFraction({ outTimeUs: 30_000_000, frames: 900, end: false }, 60); // 0.5
 */
export function progressFraction(p: FfmpegProgress, durationSeconds: number): number | undefined {
  if (p.end) return 1;
  if (p.outTimeUs === undefined || !(durationSeconds > 0)) return undefined;
  return Math.min(1, Math.max(0, p.outTimeUs / 1e6 / durationSeconds));
}
