// A piscina worker for the pool tests: holds its thread for `ms` like a CPU-bound task would
// (Atomics.wait blocks without spinning the core), or, given a `gate` (a SharedArrayBuffer),
// until the test opens it; then returns `id`.
const cell = new Int32Array(new SharedArrayBuffer(4));
/** A gate never opened (a test that failed first) still lets the thread go after this. */
const GATE_LIMIT_MS = 60_000;

export default function hold({ id, ms = 0, gate }) {
  if (gate) Atomics.wait(new Int32Array(gate), 0, 0, GATE_LIMIT_MS);
  const until = performance.now() + ms;
  // Atomics.wait may return a little early; loop until the full time has passed.
  for (let left = ms; left > 0; left = until - performance.now()) Atomics.wait(cell, 0, 0, left);
  return id;
}
