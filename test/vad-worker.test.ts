// workers/vad.ts as piscina calls it: state in, state out, samples transferred.
import { describe, expect, it } from 'vitest';
import { loadRmsBackend } from '../native/index.js';
import { resolveVadConfig } from '../src/vad/config.js';
import type { VadState } from '../src/vad/detector.js';
import vadTask, { type VadTask, type VadTaskResult } from '../workers/vad.js';
import { runStream } from './fixtures/vad-run.js';
import { signal, switchedTone, toInt16 } from './fixtures/vad-signals.js';

const cfg = resolveVadConfig({ sampleRate: 16_000 });
const x = toInt16(
  signal({ rate: 16_000, durationMs: 6000, noiseDbfs: -55, bursts: switchedTone(800, 700, 3, 600) }),
);

/** Posts chunks through structuredClone with transfer, the way a worker message travels. */
function viaWorker(samples: Int16Array | Float32Array, format: 'i16' | 'f32', chunk: number) {
  let state: VadState | null = null;
  const out: VadTaskResult[] = [];
  for (let from = 0; from < samples.length; from += chunk) {
    const part = samples.slice(from, from + chunk);
    const task: VadTask = {
      samples: part.buffer,
      format,
      config: cfg,
      state,
      end: from + chunk >= samples.length,
    };
    const sent = structuredClone(task, { transfer: [task.samples] });
    expect(part.length).toBe(0); // transferred, not copied
    const result = structuredClone(vadTask(sent));
    state = result.state;
    out.push(result);
  }
  return out;
}

describe('workers/vad.ts', () => {
  it('matches the detector run in-process, with state carried through messages', () => {
    const results = viaWorker(x, 'i16', 5333);
    const direct = runStream(loadRmsBackend(), cfg, x, 5333);
    expect(results.flatMap((r) => r.segments)).toEqual(direct.segments);
    expect(results.flatMap((r) => r.transitions)).toEqual(direct.transitions);
    expect(results.at(-1)!.state.speaking).toBe(false);
    expect(results[0]!.backend).toBe(loadRmsBackend().name);
  });

  it('takes float32 samples', () => {
    const f = Float32Array.from(x, (v) => v / 32768);
    const results = viaWorker(f, 'f32', 16_000);
    expect(results.flatMap((r) => r.segments)).toHaveLength(3);
  });
});
