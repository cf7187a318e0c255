// @ts-check
/** Text for durations and sizes shown on tiles. DOM-free. */

/**
 * @param {number} ms
 * @example fmtMs(42) // '42 ms'; fmtMs(1500) // '1.5 s'; fmtMs(12_000) // '12 s'
 */
export const fmtMs = (ms) =>
  ms >= 10_000
    ? `${(ms / 1000).toFixed(0)} s`
    : ms >= 1000
      ? `${(ms / 1000).toFixed(1)} s`
      : `${Math.round(ms)} ms`;
