/** Which implementation computes frame energies; the loader in ./backend.ts picks one. */
export type VadBackendName = 'native' | 'js';

/**
 * Per-frame energy over a whole chunk in one call. The VAD's only hot loop, and the
 * interface both the native addon and the JS fallback implement.
 *
 * Each method writes the mean square of every complete frame of `frameLen` samples
 * to `out[0..n)`, normalised so that full scale is 1.0 (int16 is divided by 32768²),
 * and returns n = floor(samples.length / frameLen). The trailing partial frame is
 * not included: the caller carries it into the next chunk. `out` must hold n values.
 *
 * @example
 *   const out = new Float64Array(50);
 *   const n = backend.frameEnergyI16(chunk, 320, out); // 16 kHz, 20 ms frames
 *   const dbfs = meanSquareToDbfs(out[0]!);
 */
export interface RmsBackend {
  readonly name: VadBackendName;
  /** The kernel in use: 'avx512' | 'avx2' | 'sse2' | 'neon' | 'scalar' for native, 'js' for JS. */
  readonly kernel: string;
  /** One line for the startup log: what runs and, after a fallback, why. */
  readonly detail: string;
  frameEnergyI16(samples: Int16Array, frameLen: number, out: Float64Array): number;
  frameEnergyF32(samples: Float32Array, frameLen: number, out: Float64Array): number;
}

/** Longest frame either backend accepts; past 2^23 an int16 sum of squares is no longer exact in a double. */
export const MAX_FRAME_LEN = 2 ** 20;

const INV_I16_FULL_SCALE_2 = 1 / (32768 * 32768);

function frameCount(length: number, frameLen: number, out: Float64Array): number {
  if (!(out instanceof Float64Array)) throw new TypeError('out must be a Float64Array');
  if (!Number.isInteger(frameLen) || frameLen < 1 || frameLen > MAX_FRAME_LEN) {
    throw new RangeError('frameLen must be an integer in [1, 2^20]');
  }
  const frames = Math.floor(length / frameLen);
  if (out.length < frames) throw new RangeError('out is shorter than the number of complete frames');
  return frames;
}

// Four accumulators let V8 overlap the multiply-adds (about 1.5x over one). Int16
// squares are integers below 2^31 and frame sums stay below 2^53, so the sum is
// exact and matches the native addon bit for bit; then the same divide and scale.
// The two loops are copies on purpose: one shared loop over both array types would
// be polymorphic in V8 and measurably slower.
function sumSquaresI16(x: Int16Array, frameLen: number, out: Float64Array, n: number): void {
  let p = 0;
  for (let f = 0; f < n; f++) {
    const end = p + frameLen;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (; p + 3 < end; p += 4) {
      const a = x[p]!;
      const b = x[p + 1]!;
      const c = x[p + 2]!;
      const d = x[p + 3]!;
      s0 += a * a;
      s1 += b * b;
      s2 += c * c;
      s3 += d * d;
    }
    for (; p < end; p++) {
      const a = x[p]!;
      s0 += a * a;
    }
    out[f] = ((s0 + s1 + (s2 + s3)) / frameLen) * INV_I16_FULL_SCALE_2;
  }
}

function sumSquaresF32(x: Float32Array, frameLen: number, out: Float64Array, n: number): void {
  let p = 0;
  for (let f = 0; f < n; f++) {
    const end = p + frameLen;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (; p + 3 < end; p += 4) {
      const a = x[p]!;
      const b = x[p + 1]!;
      const c = x[p + 2]!;
      const d = x[p + 3]!;
      s0 += a * a;
      s1 += b * b;
      s2 += c * c;
      s3 += d * d;
    }
    for (; p < end; p++) {
      const a = x[p]!;
      s0 += a * a;
    }
    out[f] = (s0 + s1 + (s2 + s3)) / frameLen;
  }
}

/** The pure-JS backend: always available, and the reference the addon is tested against. */
export const jsBackend: RmsBackend = {
  name: 'js',
  kernel: 'js',
  detail: 'js',
  frameEnergyI16(samples, frameLen, out) {
    if (!(samples instanceof Int16Array)) throw new TypeError('samples must be an Int16Array');
    const n = frameCount(samples.length, frameLen, out);
    sumSquaresI16(samples, frameLen, out, n);
    return n;
  },
  frameEnergyF32(samples, frameLen, out) {
    if (!(samples instanceof Float32Array)) throw new TypeError('samples must be a Float32Array');
    const n = frameCount(samples.length, frameLen, out);
    sumSquaresF32(samples, frameLen, out, n);
    return n;
  },
};
