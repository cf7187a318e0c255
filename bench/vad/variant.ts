// One bench:vad variant in a fresh process (run.ts starts one per variant and round).
//   node dist-bench/bench/vad/variant.js <js|native> <kernel|-> <i16|f32> <energy|detector|call> <file> <seconds>
// `call` passes empty chunks, to time the fixed cost of a call.
// Prints one JSON line: {"samples":N,"calls":N,"wallNs":N,"cpuNs":N,"backend":"..."}
import { readFileSync } from 'node:fs';
import { loadRmsBackend } from '../../src/vad/backend.js';
import { resolveVadConfig } from '../../src/vad/config.js';
import { initialVadState, processChunk } from '../../src/vad/detector.js';

export const RATE = 16_000;
export const FRAME_LEN = 320;
export const CHUNK = RATE;

const [backendName, kernel, format, mode, file, seconds] = process.argv.slice(2);
const backend = loadRmsBackend(backendName as 'js' | 'native', kernel === '-' ? undefined : kernel);
const bytes = readFileSync(file!);
// A fresh, aligned copy, so the typed array does not view Node's pooled buffer.
const buf = new ArrayBuffer(bytes.byteLength);
new Uint8Array(buf).set(bytes);
const data = format === 'i16' ? new Int16Array(buf) : new Float32Array(buf);
const chunks = Math.floor(data.length / CHUNK);
const out = new Float64Array(CHUNK / FRAME_LEN);
const cfg = resolveVadConfig({ sampleRate: RATE });
let state = initialVadState(cfg);
let check = 0;

function pass(): void {
  const len = mode === 'call' ? 0 : CHUNK;
  for (let c = 0; c < chunks; c++) {
    const chunk = data.subarray(c * CHUNK, c * CHUNK + len);
    if (mode === 'detector') {
      const r = processChunk(backend, cfg, state, chunk);
      state = r.state;
      check += r.transitions.length;
    } else {
      if (chunk instanceof Int16Array) backend.frameEnergyI16(chunk, FRAME_LEN, out);
      else backend.frameEnergyF32(chunk, FRAME_LEN, out);
      check += out[0]!;
    }
  }
}

// Warm up (lets V8 optimise the JS loops), then whole passes until the budget is spent.
const warmUntil = performance.now() + 200;
while (performance.now() < warmUntil) pass();
const budgetMs = Number(seconds) * 1000;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let calls = 0;
do {
  pass();
  calls += chunks;
} while (performance.now() - t0 < budgetMs);
const wallNs = (performance.now() - t0) * 1e6;
const cpu = process.cpuUsage(cpu0);
const samples = mode === 'call' ? 0 : calls * CHUNK;
console.log(
  JSON.stringify({
    samples,
    calls,
    wallNs,
    cpuNs: (cpu.user + cpu.system) * 1000,
    backend: backend.detail,
    check,
  }),
);
