// A piscina worker for the pool tests: holds its thread for `ms` like a CPU-bound task would
// (Atomics.wait blocks without spinning the core), or, given a `gate` (a SharedArrayBuffer),
// until the test opens it; then returns `id`. A message on `cancel` (the port WorkerPool.runJob
// moves in with every job) ends the hold with an error, as a killed job process ends a real
// job's task.
import { receiveMessageOnPort } from 'node:worker_threads';

const cell = new Int32Array(new SharedArrayBuffer(4));
/** A gate never opened (a test that failed first) still lets the thread go after this. */
const GATE_LIMIT_MS = 60_000;
/** How often a held task looks at its cancel port. */
const POLL_MS = 10;

export default function hold({ id, ms = 0, gate, cancel }) {
  const cancelled = () => cancel !== undefined && receiveMessageOnPort(cancel) !== undefined;
  const gateUntil = performance.now() + GATE_LIMIT_MS;
  while (gate && Atomics.load(new Int32Array(gate), 0) === 0 && performance.now() < gateUntil) {
    if (cancelled()) throw new Error(`${id} cancelled`);
    Atomics.wait(new Int32Array(gate), 0, 0, POLL_MS);
  }
  const until = performance.now() + ms;
  // Atomics.wait may return a little early; loop until the full time has passed.
  for (let left = ms; left > 0; left = until - performance.now()) {
    if (cancelled()) throw new Error(`${id} cancelled`);
    Atomics.wait(cell, 0, 0, Math.min(left, POLL_MS));
  }
  cancel?.close();
  return id;
}
