import { defineConfig } from 'vitest/config';

/**
 * Suites whose assertions compare latencies or load between runs. They run
 * after everything else, one file at a time, so that another suite's daemons,
 * ffmpeg and Chromium on the same 2 cores cannot skew one side of a ratio.
 */
const timed = [
  'test/slow-viewers.test.ts',
  'test/adaptive.test.ts',
  'test/bench-smoke.test.ts',
  'test/publish-fairness.test.ts',
];

const shared = {
  // Suites spawn real daemons, ffmpeg and browsers: separate processes, generous timeouts.
  pool: 'forks' as const,
  testTimeout: 30_000,
  hookTimeout: 30_000,
};

export default defineConfig({
  test: {
    reporters: ['default'],
    // After the run, merges what each suite recorded of its hostile inputs into test/RELIABILITY.md.
    globalSetup: ['test/support/reliability-report.ts'],
    // On a 2-core machine running more than two files at once only adds timeouts.
    maxWorkers: 2,
    projects: [
      {
        test: { ...shared, name: 'parallel', include: ['test/**/*.test.ts'], exclude: timed },
      },
      {
        test: {
          ...shared,
          name: 'timed',
          include: timed,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
