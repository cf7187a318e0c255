import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { summaryOf } from './lib/load-result.js';
import { type BenchResult, rawFileFor, resultsDir, writeSummary } from './lib/results.js';

/**
 * `npm run bench:summarize`: derives every committed bench/results/<bench>.json again from its
 * raw companion in bench/results/raw/, without rerunning anything. A result file that still
 * holds raw samples (written before results were split) is first moved to raw/. Run it after
 * changing what a summary keeps, then `npm run bench:report`.
 */
const { values } = parseArgs({ options: { 'results-dir': { type: 'string', default: resultsDir } } });
const dir = values['results-dir'];
const rawDir = join(dir, 'raw');
const jsonIn = (d: string) =>
  existsSync(d)
    ? readdirSync(d)
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];
const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as BenchResult & { runs?: unknown };

for (const name of jsonIn(dir)) {
  const file = join(dir, name);
  const r = read(file);
  if (r.runs === undefined && r.raw === undefined) continue;
  if (existsSync(rawFileFor(file))) {
    throw new Error(`${name} holds raw samples and raw/${name} exists too: keep one of them`);
  }
  mkdirSync(rawDir, { recursive: true });
  renameSync(file, rawFileFor(file));
  console.log(`moved ${relative(process.cwd(), file)} to raw/`);
}

const names = jsonIn(rawDir);
for (const name of names) {
  writeSummary(join(dir, name), summaryOf(read(join(rawDir, name))));
}
console.log(
  `${names.length} summar${names.length === 1 ? 'y' : 'ies'} written in ${relative(process.cwd(), dir)}`,
);
