import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadRmsBackend, nativeKernels } from '../src/vad/backend.js';
import { DEFAULT_VAD_CONFIG, resolveVadConfig, type VadConfig } from '../src/vad/config.js';
import { meanSquareToDbfs, rmsToDbfs } from '../src/vad/dbfs.js';
import { initialVadState, processChunk } from '../src/vad/detector.js';
import { jsBackend } from '../src/vad/energy.js';
import { at, runStream } from './fixtures/vad-run.js';
import { type SignalSpec, signal, switchedTone, toInt16 } from './fixtures/vad-signals.js';

const backend = loadRmsBackend();
const RATE = 16_000;
const cfg16 = resolveVadConfig({ sampleRate: RATE });
const { preRollMs, hangoverMs } = DEFAULT_VAD_CONFIG;

/** Each burst found once, its start within pre-roll (+1 frame) before onset and 60 ms after, its end likewise. */
function expectSegmentsMatch(cfg: VadConfig, spec: SignalSpec) {
  const samples = toInt16(signal(spec));
  const r = runStream(backend, cfg, samples);
  const frame = at(cfg.sampleRate, cfg.frameMs);
  expect(r.segments).toHaveLength(spec.bursts.length);
  for (const [i, b] of spec.bursts.entries()) {
    const s = r.segments[i]!;
    expect(s.startSample).toBeGreaterThanOrEqual(at(cfg.sampleRate, b.onMs - preRollMs) - frame);
    expect(s.startSample).toBeLessThanOrEqual(at(cfg.sampleRate, b.onMs + 60));
    expect(s.endSample).toBeGreaterThanOrEqual(at(cfg.sampleRate, b.offMs));
    expect(s.endSample).toBeLessThanOrEqual(at(cfg.sampleRate, b.offMs + hangoverMs) + frame);
    expect(s.peakDbfs).toBeCloseTo(b.dbfs, 0);
  }
  expect(r.transitions.map((t) => t.state)).toEqual(spec.bursts.flatMap(() => ['speech', 'silence']));
  expect(r.transitions.map((t) => t.atSample)).toEqual(
    r.segments.flatMap((s) => [s.startSample, s.endSample]),
  );
  return r;
}

describe('dBFS helpers', () => {
  it('puts a full-scale square at 0 dBFS and a full-scale sine at -3.01', () => {
    expect(meanSquareToDbfs(1)).toBe(0);
    expect(rmsToDbfs(Math.SQRT1_2)).toBeCloseTo(-3.0103, 4);
    expect(meanSquareToDbfs(0)).toBe(-120);
  });
});

describe('detector on a switched 440 Hz tone', () => {
  it('finds every burst over faint noise, and the floor sits at the noise', () => {
    const spec = { rate: RATE, durationMs: 11_000, noiseDbfs: -60, bursts: switchedTone(1000, 1000, 5) };
    const r = expectSegmentsMatch(cfg16, spec);
    for (const t of r.transitions) expect(t.floor).toBeGreaterThan(-63);
    for (const t of r.transitions) expect(t.floor).toBeLessThan(-58);
  });

  it('finds every burst over digital silence (floor clamped to minFloorDbfs)', () => {
    const r = expectSegmentsMatch(cfg16, {
      rate: RATE,
      durationMs: 9000,
      bursts: switchedTone(2000, 1500, 2),
    });
    expect(r.transitions[0]!.floor).toBe(DEFAULT_VAD_CONFIG.minFloorDbfs);
  });

  it('works at 48 kHz with 10 and 30 ms frames and at 8 kHz', () => {
    for (const [sampleRate, frameMs] of [
      [48_000, 10],
      [48_000, 30],
      [8000, 20],
    ] as const) {
      const cfg = resolveVadConfig({ sampleRate, frameMs });
      expectSegmentsMatch(cfg, {
        rate: sampleRate,
        durationMs: 8000,
        noiseDbfs: -50,
        bursts: switchedTone(1500, 1000, 2),
      });
    }
  });

  it('gives the same decisions on int16 and float32 input', () => {
    const x = signal({ rate: RATE, durationMs: 7000, noiseDbfs: -55, bursts: switchedTone(1200, 900, 3) });
    const a = runStream(backend, cfg16, toInt16(x));
    const b = runStream(
      backend,
      cfg16,
      Float32Array.from(toInt16(x), (v) => v / 32768),
    );
    expect(b.segments.map((s) => [s.startSample, s.endSample])).toEqual(
      a.segments.map((s) => [s.startSample, s.endSample]),
    );
  });
});

describe('detector durations', () => {
  it('ignores a burst shorter than minSpeechMs', () => {
    const r = runStream(
      backend,
      cfg16,
      toInt16(
        signal({
          rate: RATE,
          durationMs: 3000,
          noiseDbfs: -60,
          bursts: [{ onMs: 1500, offMs: 1540, dbfs: -10 }],
        }),
      ),
    );
    expect(r.segments).toEqual([]);
    expect(r.transitions).toEqual([]);
  });

  it('bridges a pause shorter than minSilenceMs and splits at a longer one', () => {
    const bursts = [
      { onMs: 1000, offMs: 1500, dbfs: -20 },
      { onMs: 1700, offMs: 2200, dbfs: -20 }, // 200 ms pause: bridged
      { onMs: 2700, offMs: 3200, dbfs: -20 }, // 500 ms pause: split
    ];
    const r = runStream(
      backend,
      cfg16,
      toInt16(signal({ rate: RATE, durationMs: 4500, noiseDbfs: -60, bursts })),
    );
    expect(r.segments).toHaveLength(2);
    expect(r.segments[0]!.endSample).toBeGreaterThanOrEqual(at(RATE, 2200));
    expect(r.segments[1]!.startSample).toBeGreaterThanOrEqual(r.segments[0]!.endSample);
  });

  it('never starts pre-roll before the previous segment ended', () => {
    const cfg = resolveVadConfig({ sampleRate: RATE, preRollMs: 400 });
    const bursts = [
      { onMs: 1000, offMs: 1500, dbfs: -20 },
      { onMs: 1850, offMs: 2300, dbfs: -20 },
    ];
    const r = runStream(
      backend,
      cfg,
      toInt16(signal({ rate: RATE, durationMs: 3500, noiseDbfs: -60, bursts })),
    );
    expect(r.segments).toHaveLength(2);
    expect(r.segments[1]!.startSample).toBe(r.segments[0]!.endSample);
  });

  it('splits at maxSegmentMs without a state change', () => {
    const cfg = resolveVadConfig({ sampleRate: RATE, maxSegmentMs: 1000 });
    const r = runStream(
      backend,
      cfg,
      toInt16(
        signal({
          rate: RATE,
          durationMs: 4500,
          noiseDbfs: -60,
          bursts: [{ onMs: 1000, offMs: 3500, dbfs: -20 }],
        }),
      ),
    );
    expect(r.segments.length).toBe(3);
    expect(r.segments[0]!.endSample - r.segments[0]!.startSample).toBe(at(RATE, 1000));
    expect(r.segments[1]!.startSample).toBe(r.segments[0]!.endSample);
    expect(r.segments[1]!.endSample - r.segments[1]!.startSample).toBe(at(RATE, 1000));
    expect(r.transitions.map((t) => t.state)).toEqual(['speech', 'silence']);
  });

  it('finish() closes a segment still open at the end of the input', () => {
    const x = toInt16(
      signal({
        rate: RATE,
        durationMs: 3010,
        noiseDbfs: -60,
        bursts: [{ onMs: 1000, offMs: 5000, dbfs: -20 }],
      }),
    );
    const r = runStream(backend, cfg16, x);
    expect(r.segments).toHaveLength(1);
    expect(r.segments[0]!.endSample).toBe(x.length); // hangover clamped to the input, incomplete frame included
    expect(r.transitions.at(-1)).toMatchObject({ state: 'silence', atSample: x.length });
    expect(r.state.speaking).toBe(false);
  });
});

describe('detector noise floor', () => {
  it('follows a background that gets 30 dB louder within floorWindowMs', () => {
    const spec: SignalSpec = {
      rate: RATE,
      durationMs: 12_000,
      noiseDbfs: -60,
      noiseSteps: [{ atMs: 3000, dbfs: -30 }],
      bursts: [{ onMs: 9000, offMs: 10_000, dbfs: -10 }],
    };
    const r = runStream(backend, cfg16, toInt16(signal(spec)));
    // The step itself looks like speech until the floor catches up, then the burst is found.
    const stepSeg = r.segments.find((s) => s.startSample < at(RATE, 3500));
    expect(stepSeg).toBeDefined();
    expect(stepSeg!.endSample).toBeLessThan(at(RATE, 3000 + DEFAULT_VAD_CONFIG.floorWindowMs + 500));
    const burst = r.segments.find((s) => s.startSample > at(RATE, 8000));
    expect(burst?.startSample).toBeGreaterThan(at(RATE, 9000 - preRollMs - 40));
    expect(r.transitions.at(-1)!.floor).toBeGreaterThan(-32);
  });
});

describe('detector state across chunks', () => {
  const x = toInt16(
    signal({ rate: RATE, durationMs: 8000, noiseDbfs: -50, bursts: switchedTone(700, 600, 5, 500), seed: 7 }),
  );
  const whole = runStream(backend, cfg16, x, x.length);

  it('gives identical results wherever the chunks are cut, with the state serialised between them', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: x.length - 1 }), { maxLength: 40 }),
        fc.constantFrom('json', 'clone', 'none'),
        (cuts, how) => {
          const carry =
            how === 'json'
              ? (s: object) => JSON.parse(JSON.stringify(s))
              : how === 'clone'
                ? structuredClone
                : undefined;
          const r = runStream(backend, cfg16, x, cuts, carry);
          expect(r.segments).toEqual(whole.segments);
          expect(r.transitions).toEqual(whole.transitions);
          expect(r.frames).toBe(whole.frames);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('handles chunks smaller than a frame', () => {
    const cuts = Array.from({ length: Math.floor(x.length / 97) }, (_, i) => (i + 1) * 97);
    expect(runStream(backend, cfg16, x, cuts).segments).toEqual(whole.segments);
  });

  it('does not modify the state it is given', () => {
    const s0 = processChunk(backend, cfg16, initialVadState(cfg16), x.subarray(0, 24_321)).state;
    const copy = structuredClone(s0);
    processChunk(backend, cfg16, s0, x.subarray(24_321, 60_000));
    expect(s0).toEqual(copy);
  });

  it.runIf(nativeKernels().length > 0 && process.env.FRAMEHUB_VAD_BACKEND !== 'js')(
    'native and js make the same decisions',
    () => {
      expect(runStream(loadRmsBackend('native'), cfg16, x)).toEqual(runStream(jsBackend, cfg16, x));
    },
  );
});

describe('detector errors', () => {
  it('rejects a chunk whose sample type differs from the stream (VAD_STREAM_MISMATCH)', () => {
    const s = processChunk(backend, cfg16, initialVadState(cfg16), new Int16Array(500)).state;
    expect(() => processChunk(backend, cfg16, s, new Float32Array(500))).toThrow(
      expect.objectContaining({ code: 'VAD_STREAM_MISMATCH' }),
    );
  });

  it('rejects a state made for a different frame length (VAD_STREAM_MISMATCH)', () => {
    const s = initialVadState(cfg16);
    expect(() => processChunk(backend, { ...cfg16, frameMs: 10 }, s, new Int16Array(500))).toThrow(
      expect.objectContaining({ code: 'VAD_STREAM_MISMATCH' }),
    );
  });

  it('rejects bad config with BAD_CONFIG', () => {
    const bad: Partial<VadConfig>[] = [
      { frameMs: 25 as 20 },
      { sampleRate: 0 },
      { startDb: 3, stopDb: 6 },
      { minSilenceMs: -1 },
      { maxSegmentMs: 10 },
      { startDb: Number.NaN },
    ];
    for (const b of bad) {
      expect(() => resolveVadConfig({ sampleRate: RATE, ...b })).toThrow(
        expect.objectContaining({ code: 'BAD_CONFIG' }),
      );
    }
  });
});
