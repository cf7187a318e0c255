import fc from 'fast-check';

/**
 * How hard each fuzz target runs. Under `npm test`: a fixed seed per target and a fixed
 * number of cases, so a failure replays exactly. Under `npm run fuzz -- --minutes N`
 * (scripts/fuzz.mjs sets FUZZ_MINUTES, FUZZ_SEED and FUZZ_FILES): a random seed, printed by
 * the runner, and each target runs until its share of the time is spent.
 */
const minutes = Number(process.env.FUZZ_MINUTES ?? 0);
export const longRun = minutes > 0;
const runSeed = Number(process.env.FUZZ_SEED ?? 0);
const files = Math.max(1, Number(process.env.FUZZ_FILES ?? 1));

export interface FileBudget {
  /**
   * fast-check parameters for target `index` (its seed under npm test), with `numRuns` cases.
   * `shrink` for in-process targets, where a smaller counterexample costs microseconds; a live
   * target stops at its first failure, since every shrink step against a crashed daemon would
   * need a restart.
   */
  params(index: number, seed: number, numRuns: number, opts?: { shrink?: boolean }): fc.Parameters<unknown>;
  /** vitest timeout for one target's test. */
  timeoutMs: number;
}

/**
 * The budget of a fuzz file with `targets` targets (its `fc.assert` calls). Files run one at a
 * time in the long run, so a file's share is the total over the number of files, split evenly
 * between its targets.
 *
 * @example
 *   const budget = fileBudget(3);
 *   await fc.assert(property, budget.params(0, 0x5eed01, 1000));
 */
export function fileBudget(targets: number, defaultTimeoutMs = 30_000): FileBudget {
  if (!longRun) {
    return {
      params: (_index, seed, numRuns, opts) => ({ seed, numRuns, endOnFailure: !opts?.shrink }),
      timeoutMs: defaultTimeoutMs,
    };
  }
  const perTargetMs = Math.max(1000, (minutes * 60_000) / files / targets);
  return {
    params: (index, _seed, _numRuns, opts) => ({
      seed: (runSeed + index * 7919) | 0,
      numRuns: Number.MAX_SAFE_INTEGER,
      endOnFailure: !opts?.shrink,
      plugins: [fc.interruptAfterTimeLimit(perTargetMs)],
    }),
    // A test holds at most two targets; a case in flight when the time is up still finishes,
    // and the daemon checks follow.
    timeoutMs: 2 * perTargetMs + 60_000,
  };
}
