import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createRing, RingReader, startDraining } from '../../src/pool/ring-buffer.js';
import { quantile } from '../lib/results.js';
import { type BenchRecord, type CaseResult, type CaseSpec, nowUs, packr } from './shared.js';

// One bench case in a fresh process (run.ts forks one per case): the main-thread side.
// Both transports decode the msgpack record on receipt, so they do the same work.

const spec = JSON.parse(process.argv[2]!) as CaseSpec;
const producer = fileURLToPath(new URL('./producer.js', import.meta.url));
const ring = spec.transport === 'ring' ? createRing(spec.ringBytes) : undefined;
const reader = ring ? new RingReader(ring) : undefined;
const worker = new Worker(producer, { workerData: { spec, ring } });

const warm = Math.floor(spec.count / 10);
const latencies = new Float64Array(spec.count - warm);
let received = 0;
let expected = spec.count;
let warmAt = 0;
let warmElu = performance.eventLoopUtilization();
let encodedBytes: [number, number] = [0, 0];
let producerDrops = 0;
let stopDraining = () => {};

function onRecord(record: BenchRecord): void {
  const at = nowUs();
  if (received >= warm) latencies[received - warm] = at - record.ts;
  if (++received === warm) {
    warmAt = at;
    warmElu = performance.eventLoopUtilization();
  }
  if (received === expected) finish(at);
}

function finish(at: number): void {
  stopDraining();
  const stats = reader?.stats();
  const measured = received - warm;
  const elu = performance.eventLoopUtilization(warmElu);
  const result: CaseResult = {
    spec,
    msgsPerSec: measured / ((at - warmAt) / 1e6),
    mainBusyUs: (elu.active * 1000) / measured,
    // Under a flat-out producer latency is only queueing time: not reported.
    p50us: spec.mode === 'latency' ? quantile(latencies.subarray(0, measured), 0.5) : Number.NaN,
    p99us: spec.mode === 'latency' ? quantile(latencies.subarray(0, measured), 0.99) : Number.NaN,
    received,
    encodedBytes,
    fullEvents: stats?.fullEvents ?? 0,
    drops: producerDrops,
  };
  void worker.terminate().then(() => {
    if (process.send) process.send(result, () => process.exit(0));
    else {
      console.log(JSON.stringify(result));
      process.exit(0);
    }
  });
}

worker.on('error', (err) => {
  console.error(err);
  process.exit(1);
});
worker.on('message', (msg: unknown) => {
  if (msg instanceof Uint8Array) return onRecord(packr.unpack(msg) as BenchRecord);
  const control = msg as {
    ready?: true;
    encodedBytes?: [number, number];
    done?: true;
    drops?: number;
  } & BenchRecord;
  if (control.ready) {
    encodedBytes = control.encodedBytes!;
    if (reader) stopDraining = startDraining(reader, (r) => onRecord(packr.unpack(r) as BenchRecord)).stop;
    worker.postMessage('start');
  } else if (control.done) {
    producerDrops = control.drops!;
    expected = spec.count - producerDrops;
    if (received === expected) finish(nowUs());
  } else {
    onRecord(control);
  }
});
