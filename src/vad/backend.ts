// The single place that decides which VAD energy backend runs: the native addon
// (SIMD, built by scripts/build-native.mjs) or the pure-JS loop in src/vad/energy.ts.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ConfigError, VadBackendUnavailableError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { jsBackend, type RmsBackend, type VadBackendName } from './energy.js';

export type { RmsBackend, VadBackendName } from './energy.js';
export type VadBackendChoice = 'auto' | VadBackendName;

interface NativeKernel {
  name: string;
  frameEnergyI16(samples: Int16Array, frameLen: number, out: Float64Array): number;
  frameEnergyF32(samples: Float32Array, frameLen: number, out: Float64Array): number;
}

// The addon is found from the package root, so this works from src/ under vitest and from dist/ once built.
export const ADDON_PATH = join(packageRoot, 'native', 'build', 'Release', 'framehub_vad.node');

let addon: { kernels: NativeKernel[] } | Error | undefined;

function loadAddon(): { kernels: NativeKernel[] } | Error {
  if (addon === undefined) {
    try {
      addon = createRequire(import.meta.url)(ADDON_PATH) as { kernels: NativeKernel[] };
    } catch (err) {
      addon = err instanceof Error ? err : new Error(String(err));
    }
  }
  return addon;
}

/** Kernels the addon can run on this CPU, fastest first; [] when the addon does not load. */
export function nativeKernels(): string[] {
  const a = loadAddon();
  return a instanceof Error ? [] : a.kernels.map((k) => k.name);
}

function envChoice(): VadBackendChoice {
  const v = process.env.FRAMEHUB_VAD_BACKEND ?? 'auto';
  if (v === 'auto' || v === 'native' || v === 'js') return v;
  throw new ConfigError(`FRAMEHUB_VAD_BACKEND must be auto, native or js, got "${v}"`);
}

function nativeBackend(k: NativeKernel): RmsBackend {
  return {
    name: 'native',
    kernel: k.name,
    detail: `native (${k.name})`,
    frameEnergyI16: k.frameEnergyI16,
    frameEnergyF32: k.frameEnergyF32,
  };
}

/**
 * Picks the VAD energy backend once, at start-up. `choice` defaults to
 * FRAMEHUB_VAD_BACKEND, else 'auto': native when the addon loads, JS otherwise.
 * 'native' throws VadBackendUnavailableError rather than fall back. `kernel` forces
 * one SIMD kernel (tests and benches); by default the fastest this CPU supports.
 * Log `backend.detail`: it says what runs and, after a fallback, why.
 *
 * @example
 *   const backend = loadRmsBackend();
 *   log.info({ backend: backend.name, detail: backend.detail }, 'vad backend');
 */
export function loadRmsBackend(choice: VadBackendChoice = envChoice(), kernel?: string): RmsBackend {
  if (choice === 'js') return jsBackend;
  const a = loadAddon();
  if (a instanceof Error) {
    if (choice === 'native') throw new VadBackendUnavailableError(a.message);
    return { ...jsBackend, detail: `js (native addon not loaded: ${a.message.split('\n')[0]})` };
  }
  const k = kernel === undefined ? a.kernels[0] : a.kernels.find((x) => x.name === kernel);
  if (k === undefined) {
    throw new VadBackendUnavailableError(
      `kernel "${kernel}" not supported here (have: ${nativeKernels().join(', ')})`,
    );
  }
  return nativeBackend(k);
}
