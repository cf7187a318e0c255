import { ConfigError } from '../errors.js';

/**
 * Tuning of the voice-activity detector. Levels are in dB, durations in ms.
 * `resolveVadConfig` fills in DEFAULT_VAD_CONFIG and validates; the detector
 * itself trusts the object it is given.
 *
 * @example
 *   const cfg = resolveVadConfig({ sampleRate: 16_000, frameMs: 20, startDb: 12 });
 */
export interface VadConfig {
  sampleRate: number;
  frameMs: 10 | 20 | 30;
  /** A frame this far above the noise floor can start speech. */
  startDb: number;
  /** Speech goes on while frames stay this far above the floor; below startDb, which is the hysteresis. */
  stopDb: number;
  /**
   * The floor is the minimum of the smoothed level over this window, so it follows a
   * louder background within one window. The cost: a steady sound lasting longer
   * than the window (a held tone) becomes background and ends as speech.
   */
  floorWindowMs: number;
  /** Time constant of the smoothing applied to the level before its minimum is taken. */
  floorSmoothMs: number;
  /** The floor never goes below this, so on digital silence dither and clicks stay silence. */
  minFloorDbfs: number;
  /** Loud frames must last this long (with no frame under stopDb) before speech starts. */
  minSpeechMs: number;
  /** Quiet must last this long before speech ends; shorter pauses stay inside the segment. */
  minSilenceMs: number;
  /** A segment starts this long before its first loud frame (never before the previous segment's end). */
  preRollMs: number;
  /** A segment ends this long after its last loud frame (at most minSilenceMs). */
  hangoverMs: number;
  /** A segment this long is closed and a new one opened at once; the state stays speech. */
  maxSegmentMs: number;
}

/**
 * Tuned on espeak-ng speech in white, pink and brown noise and 50 Hz hum at 5-20 dB
 * SNR (test/vad-accuracy.test.ts; F1 moved by under 0.01 across startDb 8-10,
 * stopDb 5-6, smoothing 60-150 ms, so these sit in the middle of a flat region) and
 * on a 440 Hz tone switched on and off over silence or faint noise.
 */
export const DEFAULT_VAD_CONFIG: Omit<VadConfig, 'sampleRate'> = {
  frameMs: 20,
  startDb: 9,
  stopDb: 6,
  floorWindowMs: 3000,
  floorSmoothMs: 100,
  minFloorDbfs: -70,
  minSpeechMs: 60,
  minSilenceMs: 300,
  preRollMs: 100,
  hangoverMs: 100,
  maxSegmentMs: 30_000,
};

/** Frame length in samples; 22.05 kHz at 10 ms rounds 220.5 to 221. */
export function frameLength(cfg: Pick<VadConfig, 'sampleRate' | 'frameMs'>): number {
  return Math.round((cfg.sampleRate * cfg.frameMs) / 1000);
}

/** Converts a duration to whole frames, rounding to nearest. */
export function msToFrames(cfg: VadConfig, ms: number): number {
  return Math.round((ms * cfg.sampleRate) / 1000 / frameLength(cfg));
}

export function msToSamples(cfg: VadConfig, ms: number): number {
  return Math.round((ms * cfg.sampleRate) / 1000);
}

/** Merges defaults into `partial` and validates the result; throws ConfigError naming the field. */
export function resolveVadConfig(partial: Partial<VadConfig> & Pick<VadConfig, 'sampleRate'>): VadConfig {
  const cfg: VadConfig = { ...DEFAULT_VAD_CONFIG, ...partial };
  const { sampleRate, frameMs } = cfg;
  if (!Number.isInteger(sampleRate) || sampleRate < 1000 || sampleRate > 384_000) {
    throw new ConfigError(`vad.sampleRate must be an integer in [1000, 384000], got ${sampleRate}`);
  }
  if (frameMs !== 10 && frameMs !== 20 && frameMs !== 30) {
    throw new ConfigError(`vad.frameMs must be 10, 20 or 30, got ${frameMs}`);
  }
  for (const key of ['startDb', 'stopDb', 'minFloorDbfs'] as const) {
    if (!Number.isFinite(cfg[key])) throw new ConfigError(`vad.${key} must be a finite number`);
  }
  if (cfg.stopDb > cfg.startDb) throw new ConfigError('vad.stopDb must not exceed vad.startDb');
  const durations = [
    'floorWindowMs',
    'floorSmoothMs',
    'minSpeechMs',
    'minSilenceMs',
    'preRollMs',
    'hangoverMs',
    'maxSegmentMs',
  ] as const;
  for (const key of durations) {
    if (!Number.isFinite(cfg[key]) || cfg[key] < 0) throw new ConfigError(`vad.${key} must be a number >= 0`);
  }
  if (cfg.maxSegmentMs < 2 * frameMs) throw new ConfigError('vad.maxSegmentMs must be at least two frames');
  if (cfg.floorWindowMs < 4 * frameMs)
    throw new ConfigError('vad.floorWindowMs must be at least four frames');
  return cfg;
}
