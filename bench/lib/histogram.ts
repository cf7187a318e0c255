/**
 * A log-linear latency histogram in microseconds: exact below 256 µs, then 128 sub-buckets
 * per power of two, so any recorded value is within 0.8% of its bucket. Millions of samples
 * cost a fixed 20 KB and merge across processes by adding counts, which is why the swarm
 * uses it instead of sample arrays (HdrHistogram's idea, without its dependency).
 */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
/** Enough buckets for values up to ~2^31 µs (35 min); larger values are clamped. */
const BUCKETS = SUB * (31 - SUB_BITS) + 2 * SUB;
const MAX_US = 2 ** 31 - 1;

function indexOf(us: number): number {
  const v = Math.min(MAX_US, Math.max(0, Math.round(us)));
  if (v < 2 * SUB) return v;
  const e = 31 - Math.clz32(v) - SUB_BITS;
  return SUB * e + (v >>> e);
}

/** Midpoint of a bucket, in µs. */
function bucketValue(index: number): number {
  if (index < 2 * SUB) return index;
  const e = Math.floor(index / SUB) - 1;
  const sub = index - SUB * e;
  return (sub << e) + ((1 << e) - 1) / 2;
}

/** [value in ms, count] pairs of non-empty buckets: the wire and JSON form of a histogram. */
export type SparseHistogram = [number, number][];

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  max = 0;
  min = Number.POSITIVE_INFINITY;

  /** Records one latency in milliseconds (fractions kept to the µs). */
  recordMs(ms: number): void {
    const us = ms * 1000;
    this.counts[indexOf(us)]! += 1;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
    if (ms < this.min) this.min = ms;
  }

  merge(other: SparseHistogram | Histogram): void {
    const sparse = other instanceof Histogram ? other.toSparse() : other;
    for (const [ms, n] of sparse) {
      this.counts[indexOf(ms * 1000)]! += n;
      this.count += n;
      this.sum += ms * n;
      if (ms > this.max) this.max = ms;
      if (ms < this.min) this.min = ms;
    }
  }

  /** Value in ms at quantile q (0..1); NaN when empty. */
  quantileMs(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(bucketValue(i) / 1000, this.max);
    }
    return this.max;
  }

  toSparse(): SparseHistogram {
    const out: SparseHistogram = [];
    for (let i = 0; i < BUCKETS; i++) {
      const n = this.counts[i]!;
      if (n) out.push([bucketValue(i) / 1000, n]);
    }
    return out;
  }

  static fromSparse(sparse: SparseHistogram): Histogram {
    const h = new Histogram();
    h.merge(sparse);
    return h;
  }

  /** The summary every scenario reports for a latency: ms, rounded to µs. */
  summary(): LatencySummary {
    const r = (v: number) => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);
    return {
      count: this.count,
      mean: this.count ? r(this.sum / this.count) : null,
      p50: r(this.quantileMs(0.5)),
      p99: r(this.quantileMs(0.99)),
      p999: r(this.quantileMs(0.999)),
      max: this.count ? r(this.max) : null,
    };
  }
}

/** Latency figures in milliseconds; null when nothing was recorded. */
export interface LatencySummary {
  count: number;
  mean: number | null;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}
