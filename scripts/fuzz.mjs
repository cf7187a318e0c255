#!/usr/bin/env node
/**
 * The long fuzz run: `npm run fuzz -- --minutes N [--seed S]`.
 *
 * Runs every file in test/fuzz/ (not the corpus) one at a time, each target for its share of
 * the N minutes, from a random seed printed first so that a failure can be replayed with
 * `--seed`. `npm test` runs the same targets with fixed seeds and a fixed number of cases;
 * test/fuzz/budget.ts is where the two modes part. Counts go to test/.reliability/long-run/ and
 * are summed at the end; the checked-in test/RELIABILITY.md is left alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: { minutes: { type: 'string', default: '5' }, seed: { type: 'string' } },
  strict: true,
});
const minutes = Number(values.minutes);
if (!(minutes > 0)) {
  console.error(`--minutes must be a positive number, got ${values.minutes}`);
  process.exit(2);
}
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isInteger(seed)) {
  console.error(`--seed must be an integer, got ${values.seed}`);
  process.exit(2);
}

const fuzzDir = join(root, 'test', 'fuzz');
const files = readdirSync(fuzzDir).filter((f) => f.endsWith('.test.ts'));
const longRunDir = join(root, 'test', '.reliability', 'long-run');
rmSync(longRunDir, { recursive: true, force: true });

console.log(`fuzz: ${minutes} min over ${files.length} files (${files.join(', ')}), seed ${seed}`);
console.log(`fuzz: replay with  npm run fuzz -- --minutes ${minutes} --seed ${seed}`);

const run = (cmd, args, env = {}) =>
  spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1;

// The live targets spawn the daemon from dist/.
if (run('npx', ['tsc', '-p', 'tsconfig.build.json']) !== 0) process.exit(1);
const status = run('npx', ['vitest', 'run', 'test/fuzz', '--project', 'parallel', '--no-file-parallelism'], {
  FUZZ_MINUTES: String(minutes),
  FUZZ_SEED: String(seed),
  FUZZ_FILES: String(files.length),
});

if (existsSync(longRunDir)) {
  const classes = readdirSync(longRunDir)
    .filter((f) => f.endsWith('.json'))
    .flatMap((f) => JSON.parse(readFileSync(join(longRunDir, f), 'utf8')).classes);
  let total = 0;
  console.log('\nfuzz: cases per target');
  for (const c of classes) {
    total += c.cases;
    const down = c.daemonUp === false ? '  DAEMON DOWN' : '';
    const rss = c.rssGrowthMiB === undefined ? '' : `  max RSS growth ${c.rssGrowthMiB} MiB`;
    console.log(`  ${String(c.cases).padStart(9)}  ${c.class}${rss}${down}`);
  }
  console.log(`  ${String(total).padStart(9)}  in all (seed ${seed})`);
}
process.exit(status);
