/**
 * Minimum statistics: the background level is the lowest smoothed frame level seen
 * over the last window. Speech pauses between words and phrases reach down to the
 * background, so speech barely moves the minimum, while a louder background raises
 * it within one window. The window is split into SUBWINDOWS slots that each keep the
 * minimum of their part, so the state is a handful of numbers instead of a history.
 *
 *   mins: [ s0 | s1 | s2 | s3 | s4 | s5 ]   slot = the one being filled, `count` frames in;
 *            the others hold the minima of the last SUBWINDOWS-1 complete slots
 *
 * The minimum sits below the mean of the noise (by ~1 dB for white noise, more for
 * bursty noise); startDb/stopDb are measured from it and absorb that bias.
 */
export interface FloorState {
  /** Smoothed frame level in dBFS; meaningful once `primed`. */
  smoothed: number;
  primed: boolean;
  mins: number[];
  slot: number;
  count: number;
  /** Complete slots so far, up to SUBWINDOWS. */
  filled: number;
  /** The floor after the last frame, in dBFS. */
  db: number;
}

export const SUBWINDOWS = 6;

export function initialFloor(minFloorDbfs: number): FloorState {
  return {
    smoothed: minFloorDbfs,
    primed: false,
    mins: new Array<number>(SUBWINDOWS).fill(0),
    slot: 0,
    count: 0,
    filled: 0,
    db: minFloorDbfs,
  };
}

/** Precomputed per config, so the per-frame update is arithmetic only. */
export interface FloorParams {
  alpha: number;
  slotFrames: number;
  minFloorDbfs: number;
}

export function floorParams(
  frameDurationMs: number,
  floorSmoothMs: number,
  floorWindowMs: number,
  minFloorDbfs: number,
): FloorParams {
  return {
    alpha: floorSmoothMs > 0 ? 1 - Math.exp(-frameDurationMs / floorSmoothMs) : 1,
    slotFrames: Math.max(1, Math.round(floorWindowMs / frameDurationMs / SUBWINDOWS)),
    minFloorDbfs,
  };
}

/**
 * Feeds one frame's level; mutates `f` and returns the new floor in dBFS. The level
 * is smoothed in dB, not in power: after a loud sound a power average needs
 * ln(10^4) = 9 time constants to fall 40 dB, a dB average falls the same 40 dB in
 * about three, so short pauses in speech still reach the background.
 */
export function updateFloor(f: FloorState, p: FloorParams, dbfs: number): number {
  f.smoothed = f.primed ? f.smoothed + p.alpha * (dbfs - f.smoothed) : dbfs;
  f.primed = true;
  const level = f.smoothed;
  const { mins, slot } = f;
  mins[slot] = f.count === 0 ? level : Math.min(mins[slot]!, level);
  let floor = mins[slot]!;
  for (let j = 0; j < SUBWINDOWS; j++) {
    if (j !== slot && j < f.filled) floor = Math.min(floor, mins[j]!);
  }
  if (++f.count === p.slotFrames) {
    f.slot = (slot + 1) % SUBWINDOWS;
    f.count = 0;
    f.filled = Math.min(SUBWINDOWS, f.filled + 1);
  }
  f.db = Math.max(p.minFloorDbfs, floor);
  return f.db;
}
