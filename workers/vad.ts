// Piscina task: one chunk of one audio stream through the VAD. Stateless between calls
// (piscina may send a stream's next chunk to another thread): the detector state comes in
// with the task and goes back in the result. Transitions and segments go to the main thread
// as a msgpack record through this thread's ring, like every other worker output.
import { performance } from 'node:perf_hooks';
import { ringWaitMs, workerRing } from '../src/pool/ring-claim.js';
import type { VadPoolResult, VadPoolTask, VadResultRecord } from '../src/pool/tasks.js';
import { loadRmsBackend } from '../src/vad/backend.js';
import { finish, initialVadState, processChunk } from '../src/vad/detector.js';
import { encode } from '../src/wire/records.js';

/** Once per worker thread, from FRAMEHUB_VAD_BACKEND. */
const backend = loadRmsBackend();
const writer = workerRing();
const waitMs = ringWaitMs();

export default function vadTask(task: VadPoolTask): VadPoolResult {
  const started = performance.now();
  const samples = task.format === 'i16' ? new Int16Array(task.samples) : new Float32Array(task.samples);
  const r = processChunk(backend, task.config, task.state ?? initialVadState(task.config), samples);
  const f = task.end ? finish(task.config, r.state) : undefined;
  const record: VadResultRecord = {
    type: 'vad_result',
    stream: task.stream,
    chunk: task.chunk,
    transitions: f ? [...r.transitions, ...f.transitions] : r.transitions,
    segments: f ? [...r.segments, ...f.segments] : r.segments,
    frames: r.frames,
    backend: backend.name,
  };
  // Events must not be lost: a full ring makes the worker wait far longer than for a frame.
  if (!writer.write(encode(record), Math.max(waitMs, 1000))) {
    throw new Error(`result ring full for ${task.stream} chunk ${task.chunk}`);
  }
  return { state: f?.state ?? r.state, frames: r.frames, ms: performance.now() - started };
}
