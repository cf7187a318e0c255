/**
 * dBFS in this project is relative to a full-scale square wave: a mean square of
 * 1.0 (int16 ±32768, float ±1.0) is 0 dBFS, so a full-scale sine is -3.01 dBFS.
 * Digital silence would be -Infinity, which JSON cannot carry; it is clamped to MIN_DBFS.
 */
export const MIN_DBFS = -120;

const MIN_MEAN_SQUARE = 10 ** (MIN_DBFS / 10);

/**
 * @example meanSquareToDbfs(0.5) // -3.0103 (full-scale sine)
 */
export function meanSquareToDbfs(meanSquare: number): number {
  return meanSquare > MIN_MEAN_SQUARE ? 10 * Math.log10(meanSquare) : MIN_DBFS;
}

/** @example dbfsToMeanSquare(-20) // 0.01 */
export function dbfsToMeanSquare(dbfs: number): number {
  return 10 ** (dbfs / 10);
}

/** @example rmsToDbfs(Math.SQRT1_2) // -3.0103 */
export function rmsToDbfs(rms: number): number {
  return meanSquareToDbfs(rms * rms);
}
