import { cameraIds, type Options, parseOptions, resultFile } from './lib/args.js';
import { createContext } from './lib/context.js';
import { type LoadResult, writeLoadResult } from './lib/load-result.js';
import { churnScenario } from './scenarios/churn.js';
import { fanoutScenario } from './scenarios/fanout.js';
import { httpScenario } from './scenarios/http.js';
import { idleScenario } from './scenarios/idle.js';
import { slowScenario } from './scenarios/slow.js';

/**
 * `npm run bench -- <scenario> [options]`: runs one load scenario against framehub (started
 * here, or given by --url) and the reference servers, prints the tables and writes
 * bench/results/load-<scenario>.json. See bench/README.md.
 */
const scenarios: Record<
  Options['scenario'],
  (ctx: Awaited<ReturnType<typeof createContext>>) => Promise<LoadResult>
> = {
  http: httpScenario,
  fanout: fanoutScenario,
  slow: slowScenario,
  idle: idleScenario,
  churn: churnScenario,
};

function print(result: LoadResult): void {
  const out: string[] = [`\n${result.title}`];
  for (const t of result.tables) {
    out.push(`\n${t.caption}`);
    const widths = t.columns.map((c, i) =>
      Math.max(c.length, ...t.rows.map((r) => String(r[i] ?? '').length)),
    );
    const line = (cells: (string | number)[]) => cells.map((c, i) => String(c).padEnd(widths[i]!)).join('  ');
    out.push(line(t.columns), ...t.rows.map(line));
  }
  if (result.targets.length) {
    out.push('\nTargets');
    for (const t of result.targets)
      out.push(`  ${t.met ? 'met   ' : 'MISSED'} ${t.name}: ${t.measured} (wanted ${t.target})`);
  }
  for (const n of result.notes ?? []) out.push(`\n${n}`);
  if (result.clientBound) out.push('\nclient-bound');
  process.stdout.write(`${out.join('\n')}\n`);
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const ctx = await createContext(opts, cameraIds(opts.cameras));
  const result = await scenarios[opts.scenario](ctx);
  const file = resultFile(opts);
  writeLoadResult(file, result);
  print(result);
  process.stdout.write(`\nwrote ${file}\n`);
}

// Exiting runs the target module's exit hook, which kills any server this run started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
