// Piscina task: one chunk of one stream through the VAD. Stateless between calls
// (piscina may send a camera's next chunk to another thread): the detector state
// comes in with the task and goes back in the result.
import { loadRmsBackend } from '../native/index.js';
import type { VadConfig } from '../src/vad/config.js';
import {
  finish,
  initialVadState,
  processChunk,
  type VadSegment,
  type VadState,
  type VadTransition,
} from '../src/vad/detector.js';

/** Once per worker thread, from FRAMEHUB_VAD_BACKEND. */
const backend = loadRmsBackend();

export interface VadTask {
  /** Transferred, not copied. Int16 (format 'i16') or Float32 ('f32') samples, native byte order. */
  samples: ArrayBuffer;
  format: 'i16' | 'f32';
  /** Resolved once at configure time (resolveVadConfig); not validated here. */
  config: VadConfig;
  /** null for the first chunk of a stream. */
  state: VadState | null;
  /** Set on the last chunk of a job: closes an open segment at the end of the input. */
  end?: boolean;
}

export interface VadTaskResult {
  state: VadState;
  transitions: VadTransition[];
  segments: VadSegment[];
  frames: number;
  backend: 'native' | 'js';
}

export default function vadTask(task: VadTask): VadTaskResult {
  const samples = task.format === 'i16' ? new Int16Array(task.samples) : new Float32Array(task.samples);
  const r = processChunk(backend, task.config, task.state ?? initialVadState(task.config), samples);
  if (!task.end) return { ...r, backend: backend.name };
  const f = finish(task.config, r.state);
  return {
    state: f.state,
    transitions: [...r.transitions, ...f.transitions],
    segments: [...r.segments, ...f.segments],
    frames: r.frames,
    backend: backend.name,
  };
}
