import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { forkCase } from '../lib/fork-case.js';
import { benchDir, gitCommit, machineLine, median, type TargetCheck, writeResult } from '../lib/results.js';
import type { SweepCase, SweepResult } from './shared.js';

// Heap allocated by the WS endpoint's 100 ms sweep per idle viewer per sweep, for this tree
// and, with --before <repo root>, for another build (its dist/) measured the same way, same
// machine, same run. Each case is a fresh process; the order alternates; medians are reported.
// Usage: node dist-bench/bench/sweep/run.js [--before /path/to/old/checkout] [--viewers N] [--sweeps K] [--runs R]

const { values: args } = parseArgs({
  options: {
    before: { type: 'string' },
    viewers: { type: 'string', default: '5000' },
    sweeps: { type: 'string', default: '20' },
    runs: { type: 'string', default: '3' },
  },
});
const viewers = Number(args.viewers);
const sweeps = Number(args.sweeps);
const runs = Number(args.runs);
const trees: [string, string][] = [['this tree', resolve(benchDir, '..')]];
if (args.before) trees.unshift([`before (${gitCommit(args.before)})`, resolve(args.before)]);
const caseScript = fileURLToPath(new URL('./case.js', import.meta.url));
// Semi-spaces large enough that the window's allocations never trigger a scavenge.
const semiMb = Math.max(64, Math.ceil((viewers * sweeps * 400) / 2 ** 20) * 2);

const runCase = (spec: SweepCase) =>
  forkCase<SweepResult>(caseScript, spec, {
    execArgv: ['--expose-gc', `--min-semi-space-size=${semiMb}`, `--max-semi-space-size=${semiMb}`],
    timeoutMs: 120_000,
  });

console.log(`System: ${machineLine()}`);
console.log(
  `sweep bench: ${viewers} idle WS viewers, ${sweeps} sweeps, ${runs} run(s) per tree, semi-space ${semiMb} MiB`,
);
const startedAt = new Date().toISOString();
const results: SweepResult[] = [];
for (let run = 0; run < runs; run++) {
  for (const [tree, root] of run % 2 === 0 ? trees : [...trees].reverse()) {
    for (const n of [0, viewers]) {
      const r = await runCase({ tree, root, viewers: n, sweeps, run });
      results.push(r);
      console.log(
        `${tree} ${n} viewers run ${run + 1}/${runs}: heap +${r.heapDeltaBytes} B over ${r.sweepsRun} sweeps, ${r.gcsInWindow} GC(s)`,
      );
    }
  }
}

/** Bytes per viewer per sweep: the window's growth less the same window with no viewers. */
const perViewerSweep = (tree: string) => {
  const values = [];
  for (let run = 0; run < runs; run++) {
    const of = (n: number) => results.find((r) => r.tree === tree && r.run === run && r.viewers === n)!;
    const loaded = of(viewers);
    const empty = of(0);
    values.push(
      (loaded.heapDeltaBytes / loaded.sweepsRun - empty.heapDeltaBytes / empty.sweepsRun) / viewers,
    );
  }
  return median(values);
};
/** One decimal; a median within ±0.05 of zero (noise around nothing) shows as 0.0, not -0.0. */
const fmt = (n: number) => (Math.abs(n) < 0.05 ? 0 : n).toFixed(1);
const rows = trees.map(([tree]) => {
  const own = results.filter((r) => r.tree === tree && r.viewers === viewers);
  return [
    tree,
    fmt(perViewerSweep(tree)),
    fmt(((perViewerSweep(tree) * viewers * 10) / 2 ** 20) * (10_000 / viewers)),
    String(Math.max(...own.map((r) => r.gcsInWindow))),
  ];
});
const after = perViewerSweep('this tree');
/** What the window allocates with no viewers varies between runs: that spread, per viewer per sweep, is the noise. */
function noise(): string {
  const empty = results.filter((r) => r.viewers === 0).map((r) => r.heapDeltaBytes / r.sweepsRun);
  const spread = (Math.max(...empty) - Math.min(...empty)) / viewers;
  return `Noise: the same window with no viewers varied by ${fmt(spread)} B per viewer per sweep between runs (timers, the metrics' event-loop monitor), so a figure within that of 0 is 0.`;
}
const targets: TargetCheck[] = [
  {
    name: 'sweep: heap allocated per idle WS viewer per sweep',
    target: '0 B (nothing allocated for a viewer with no auto topic and no change)',
    measured: `${fmt(after)} B`,
    // Below one small object: what is left is the timer's own work, spread over the viewers.
    met: after < 8,
  },
];
const file = writeResult({
  bench: 'viewer-sweep',
  title: 'Viewer sweep: heap churn per idle WS viewer',
  startedAt,
  conditions: {
    command: `node dist-bench/bench/sweep/run.js${args.before ? ' --before <old checkout>' : ''} --viewers ${viewers} --sweeps ${sweeps} --runs ${runs}`,
    'idle WS viewers (in-process loopback sockets, one frame topic each)': viewers,
    'sweeps measured (100 ms each)': sweeps,
    'fresh-process runs per tree (medians)': runs,
    'V8 semi-space (no scavenge in the window)': `${semiMb} MiB`,
  },
  tables: [
    {
      caption: 'Heap allocated by the sweep (the window with viewers, less the same window with none)',
      columns: ['build', 'bytes per viewer per sweep', 'MiB/s at 10,000 viewers', 'GCs in window (max)'],
      rows,
    },
  ],
  targets,
  notes: [noise()],
  raw: results,
});
console.log(rows.map((r) => r.join(' | ')).join('\n'));
console.log(`written ${file}`);
