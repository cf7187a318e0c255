import { parentPort, workerData } from 'node:worker_threads';
import { RingWriter } from '../../src/pool/ring-buffer.js';
import { type BenchRecord, bodyBytesFor, type CaseSpec, nowUs, packr } from './shared.js';

// The worker side of one bench case: sends spec.count records over the chosen transport,
// flat out (throughput) or paced at spec.rate (latency), each stamped with its send time.

const spec = workerData.spec as CaseSpec;
const port = parentPort!;
const writer = spec.transport === 'ring' ? new RingWriter(workerData.ring as SharedArrayBuffer) : undefined;
const body = new Uint8Array(bodyBytesFor(spec.size)).fill(0x5a);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
let drops = 0;

function send(seq: number): void {
  const record: BenchRecord = { seq, ts: nowUs(), body };
  if (spec.transport === 'clone') {
    port.postMessage(record);
    return;
  }
  const encoded = packr.pack(record);
  if (writer) {
    if (!writer.write(encoded, 10_000)) drops++;
    return;
  }
  // pack() returns a view into msgpackr's reusable buffer; posting it would clone that whole
  // buffer. A tight copy, transferred, is the cheapest way to post the bytes.
  const tight = new Uint8Array(encoded);
  port.postMessage(tight, [tight.buffer]);
}

function run(): void {
  if (spec.mode === 'throughput') {
    for (let seq = 0; seq < spec.count; seq++) send(seq);
  } else {
    // Paced: send every record that is due, then sleep (Atomics.wait, no spinning) until
    // the next one is. A late wake-up sends two back to back, each stamped when it leaves.
    const intervalUs = 1e6 / spec.rate;
    const start = nowUs();
    for (let seq = 0; seq < spec.count; ) {
      const now = nowUs();
      const due = start + seq * intervalUs;
      if (now >= due) send(seq++);
      else if (due - now > 20) Atomics.wait(sleeper, 0, 0, (due - now) / 1000);
    }
  }
  port.postMessage({ done: true, drops });
}

port.once('message', run);
const encodedAt = (seq: number) => packr.pack({ seq, ts: nowUs() + 0.5, body }).length;
// seq is a msgpack int, so records grow by a few bytes as it does.
port.postMessage({ ready: true, encodedBytes: [encodedAt(0), encodedAt(spec.count - 1)] });
