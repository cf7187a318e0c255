// The contract suite for every native kernel this CPU runs, and the differential
// property that native and JS agree. Skips (and says why) when the addon is off.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ADDON_PATH, loadRmsBackend, nativeKernels } from '../src/vad/backend.js';
import { jsBackend, type RmsBackend } from '../src/vad/energy.js';
import { ODD_FRAME_LENGTHS, runEnergyContract } from './fixtures/vad-energy-contract.js';

const forcedJs = process.env.FRAMEHUB_VAD_BACKEND === 'js';
const kernels = forcedJs ? [] : nativeKernels();
const skipReason = forcedJs
  ? 'FRAMEHUB_VAD_BACKEND=js'
  : kernels.length === 0
    ? `addon not built (${ADDON_PATH})`
    : '';

describe('native VAD backend', () => {
  if (skipReason) {
    it.skip(`skipped: ${skipReason}`, () => {});
    if (process.env.FRAMEHUB_VAD_BACKEND === 'native') {
      it('FRAMEHUB_VAD_BACKEND=native requires the addon', () => {
        expect.fail(`native backend forced but ${skipReason}`);
      });
    }
    return;
  }

  it('loads by default and reports the fastest kernel', () => {
    const b = loadRmsBackend('auto');
    expect(b.name).toBe('native');
    expect(b.kernel).toBe(kernels[0]);
    expect(kernels.at(-1)).toBe('scalar');
  });

  it('throws VAD_BACKEND_UNAVAILABLE for a kernel this CPU lacks', () => {
    expect(() => loadRmsBackend('native', 'no-such-kernel')).toThrow(
      expect.objectContaining({ code: 'VAD_BACKEND_UNAVAILABLE' }),
    );
  });

  for (const kernel of kernels) {
    const backend = (): RmsBackend => loadRmsBackend('native', kernel);
    runEnergyContract(`native/${kernel}`, backend);

    describe(`native/${kernel} agrees with js`, () => {
      const frameLen = fc.oneof(fc.constantFrom(...ODD_FRAME_LENGTHS), fc.integer({ min: 1, max: 700 }));

      it('int16: bit-identical on random buffers, frame lengths and offsets', () => {
        fc.assert(
          fc.property(fc.int16Array({ maxLength: 4000 }), frameLen, fc.nat(7), (data, len, skip) => {
            const view = data.subarray(Math.min(skip, data.length));
            const frames = Math.floor(view.length / len);
            const a = new Float64Array(frames);
            const b = new Float64Array(frames);
            expect(backend().frameEnergyI16(view, len, a)).toBe(jsBackend.frameEnergyI16(view, len, b));
            expect(a).toEqual(b);
          }),
          { numRuns: 300 },
        );
      });

      it('float32: within 1e-6 relative on random buffers, frame lengths and offsets', () => {
        fc.assert(
          fc.property(
            fc.float32Array({ maxLength: 4000, noNaN: true, noDefaultInfinity: true }),
            frameLen,
            fc.nat(7),
            (data, len, skip) => {
              const view = data.subarray(Math.min(skip, data.length));
              const frames = Math.floor(view.length / len);
              const a = new Float64Array(frames);
              const b = new Float64Array(frames);
              expect(backend().frameEnergyF32(view, len, a)).toBe(jsBackend.frameEnergyF32(view, len, b));
              for (let f = 0; f < frames; f++) {
                expect(Math.abs(a[f]! - b[f]!)).toBeLessThanOrEqual(
                  1e-6 * Math.max(Math.abs(a[f]!), Math.abs(b[f]!)),
                );
              }
            },
          ),
          { numRuns: 300 },
        );
      });
    });
  }
});
