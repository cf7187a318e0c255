import { describe, expect, it } from 'vitest';
import { ProgressParser, progressFraction } from '../src/media/ffmpeg-progress.js';

/** One block as the bundled 4.1 writes it with `-progress pipe:1 -nostats`. */
const block = (us: string, progress = 'continue', frame = '30') =>
  [
    `frame=${frame}`,
    'fps=29.97',
    'stream_0_0_q=28.0',
    'bitrate=1234.5kbits/s',
    'total_size=524288',
    `out_time_us=${us}`,
    `out_time_ms=${us}`,
    'out_time=00:00:01.000000',
    'dup_frames=0',
    'drop_frames=0',
    'speed=2.01x',
    `progress=${progress}`,
    '',
  ].join('\n');

describe('ffmpeg -progress parser', () => {
  it('reads out_time_us (microseconds) and the end block, in any chunking', () => {
    const text = block('1000000') + block('2500000') + block('3000000', 'end', '90');
    for (const size of [1, 3, 17, text.length]) {
      const parser = new ProgressParser();
      const out = [];
      for (let at = 0; at < text.length; at += size) out.push(...parser.push(text.slice(at, at + size)));
      expect(out).toEqual([
        { outTimeUs: 1_000_000, frames: 30, end: false },
        { outTimeUs: 2_500_000, frames: 30, end: false },
        { outTimeUs: 3_000_000, frames: 90, end: true },
      ]);
    }
  });

  it('falls back to out_time_ms (also microseconds), then to out_time', () => {
    const parser = new ProgressParser();
    expect(parser.push('out_time_ms=4200000\nprogress=continue\n')).toEqual([
      { outTimeUs: 4_200_000, frames: undefined, end: false },
    ]);
    expect(parser.push('out_time=00:01:02.500000\nprogress=continue\n')[0]?.outTimeUs).toBe(62_500_000);
  });

  it('gives no time for N/A or a negative time before the first frame', () => {
    const parser = new ProgressParser();
    const out = parser.push(
      'out_time_us=N/A\nout_time_ms=N/A\nout_time=N/A\nprogress=continue\nout_time_us=-9223372036854775807\nprogress=continue\n',
    );
    expect(out.map((p) => p.outTimeUs)).toEqual([undefined, undefined]);
  });

  it('keeps no unbounded line and ignores junk', () => {
    const parser = new ProgressParser();
    expect(parser.push('x'.repeat(100_000))).toEqual([]);
    expect(parser.push('\nnot a pair\n=\nout_time_us=5\nprogress=end\n')).toEqual([
      { outTimeUs: 5, frames: undefined, end: true },
    ]);
  });

  it('turns a block into a fraction of the duration', () => {
    expect(progressFraction({ outTimeUs: 30_000_000, frames: 1, end: false }, 60)).toBe(0.5);
    expect(progressFraction({ outTimeUs: 90_000_000, frames: 1, end: false }, 60)).toBe(1);
    expect(progressFraction({ outTimeUs: undefined, frames: 1, end: true }, 60)).toBe(1);
    expect(progressFraction({ outTimeUs: undefined, frames: 1, end: false }, 60)).toBeUndefined();
    expect(progressFraction({ outTimeUs: 1, frames: 1, end: false }, 0)).toBeUndefined();
  });
});
