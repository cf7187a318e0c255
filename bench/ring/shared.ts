import { Packr } from 'msgpackr';

/** One bench case: which transport carries the records, how big they are, how they are sent. */
export interface CaseSpec {
  transport: Transport;
  /** Encoded record size in bytes (the msgpack record is padded to about this). */
  size: number;
  mode: 'throughput' | 'latency';
  /** Records to send; the first tenth warms up and is not measured. */
  count: number;
  /** Paced send rate in records/s (latency mode only). */
  rate: number;
  ringBytes: number;
}

export type Transport = 'ring' | 'postMessage' | 'clone';

export interface CaseResult {
  spec: CaseSpec;
  msgsPerSec: number;
  /** Main-thread event-loop active time per measured record. */
  mainBusyUs: number;
  p50us: number;
  p99us: number;
  received: number;
  /** Encoded size of the first and the last record. */
  encodedBytes: [number, number];
  fullEvents: number;
  drops: number;
}

export interface BenchRecord {
  seq: number;
  ts: number;
  body: Uint8Array;
}

/** The same options as the daemon's codec (src/wire/records.ts): plain msgpack maps. */
export const packr = new Packr({ useRecords: false, moreTypes: false });

/** Microseconds on the monotonic clock every thread of the process shares. */
export function nowUs(): number {
  return Number(process.hrtime.bigint()) / 1000;
}

/** A body length that makes the encoded record `size` bytes at the largest seq it will carry. */
export function bodyBytesFor(size: number): number {
  const probe = (n: number) =>
    packr.pack({ seq: 2 ** 31, ts: nowUs() + 0.5, body: new Uint8Array(n) }).length;
  let n = Math.max(0, size - (probe(0) + 2));
  while (n > 0 && probe(n) > size) n--;
  return n;
}
