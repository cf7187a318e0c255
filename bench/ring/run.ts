import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { forkCase } from '../lib/fork-case.js';
import { machineLine, median, type ResultTable, type TargetCheck, writeResult } from '../lib/results.js';
import type { CaseResult, CaseSpec, Transport } from './shared.js';

// Ring vs postMessage for worker→main records. Every case runs in a fresh process
// (case.ts), the transport order alternates between runs, and medians are reported.
// Usage: node dist-bench/bench/ring/run.js [--quick] [--runs N] [--ring-bytes B]

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    'ring-bytes': { type: 'string' },
  },
});
const quick = args.quick === true;
const runs = Number(args.runs ?? (quick ? 2 : 5));
const ringBytes = Number(args['ring-bytes'] ?? 1 << 20);
const rate = 10_000;
const sizes = [64, 16 * 1024];
const transports: Transport[] = ['ring', 'postMessage', 'clone'];
const throughputCount = (size: number) => (size <= 1024 ? 300_000 : 30_000) / (quick ? 5 : 1);
const latencyCount = quick ? 3_000 : 10_000;
const caseScript = fileURLToPath(new URL('./case.js', import.meta.url));

const runCase = (spec: CaseSpec) => forkCase<CaseResult>(caseScript, spec, { timeoutMs: 60_000 });

const label = (size: number) => (size >= 1024 ? `${size / 1024} KB` : `${size} B`);
const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '-';

console.log(`System: ${machineLine()}`);
console.log(`ring bench: ${runs} run(s) per case, ring ${ringBytes} bytes${quick ? ', --quick' : ''}`);
const startedAt = new Date().toISOString();
const loadAtStart = os.loadavg()[0]!.toFixed(2);
const results: CaseResult[] = [];
for (const mode of ['throughput', 'latency'] as const) {
  for (const size of sizes) {
    for (let run = 0; run < runs; run++) {
      const order = run % 2 === 0 ? transports : [...transports].reverse();
      for (const transport of order) {
        const count = mode === 'throughput' ? throughputCount(size) : latencyCount;
        const r = await runCase({ transport, size, mode, count, rate, ringBytes });
        results.push(r);
        const figure =
          mode === 'throughput'
            ? `${fmt(r.msgsPerSec)} msgs/s`
            : `p50 ${fmt(r.p50us, 1)} µs, p99 ${fmt(r.p99us, 1)} µs`;
        console.log(`${mode} ${label(size)} ${transport} run ${run + 1}/${runs}: ${figure}`);
      }
    }
  }
}

/** Median of one figure over the runs of one (transport, size, mode) case. */
function med(transport: Transport, size: number, mode: CaseSpec['mode'], pick: (r: CaseResult) => number) {
  const own = results.filter(
    (r) => r.spec.transport === transport && r.spec.size === size && r.spec.mode === mode,
  );
  const values = own.map(pick);
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

const throughput: ResultTable = {
  caption: `Throughput, producer flat out (msgs/s, median of ${runs} fresh-process runs)`,
  columns: [
    'record',
    'transport',
    'msgs/s',
    'min–max',
    'vs postMessage',
    'main thread busy µs/record',
    'writer blocked on full ring (times)',
  ],
  rows: [],
};
const latency: ResultTable = {
  caption: `Latency at ${fmt(rate)} msgs/s, send → decoded on main (µs, median of ${runs} runs)`,
  columns: [
    'record',
    'transport',
    'p50',
    'p99',
    'p99 min–max',
    'p99 vs postMessage',
    'main thread busy µs/record',
  ],
  rows: [],
};
const targets: TargetCheck[] = [];
for (const size of sizes) {
  const baseRate = med('postMessage', size, 'throughput', (r) => r.msgsPerSec).median;
  const baseP99 = med('postMessage', size, 'latency', (r) => r.p99us).median;
  for (const transport of transports) {
    const t = med(transport, size, 'throughput', (r) => r.msgsPerSec);
    const full = med(transport, size, 'throughput', (r) => r.fullEvents).median;
    const busy = (mode: CaseSpec['mode']) => fmt(med(transport, size, mode, (r) => r.mainBusyUs).median, 2);
    throughput.rows.push([
      label(size),
      transport,
      fmt(t.median),
      `${fmt(t.min)}–${fmt(t.max)}`,
      `${(t.median / baseRate).toFixed(2)}×`,
      busy('throughput'),
      transport === 'ring' ? fmt(full) : '-',
    ]);
    const p50 = med(transport, size, 'latency', (r) => r.p50us);
    const p99 = med(transport, size, 'latency', (r) => r.p99us);
    latency.rows.push([
      label(size),
      transport,
      fmt(p50.median, 1),
      fmt(p99.median, 1),
      `${fmt(p99.min, 1)}–${fmt(p99.max, 1)}`,
      `${(p99.median / baseP99).toFixed(2)}×`,
      busy('latency'),
    ]);
  }
  const ratio = med('ring', size, 'throughput', (r) => r.msgsPerSec).median / baseRate;
  const wanted = size <= 1024 ? 2.5 : 1.3;
  targets.push({
    name: `ring msgs/s vs postMessage, ${label(size)}`,
    target: `≥ ${wanted}×`,
    measured: `${ratio.toFixed(2)}×`,
    met: ratio >= wanted,
  });
  const ringP99 = med('ring', size, 'latency', (r) => r.p99us).median;
  targets.push({
    name: `ring p99 latency at ${fmt(rate)} msgs/s, ${label(size)}`,
    target: '≤ postMessage p99',
    measured: `${fmt(ringP99, 1)} µs vs ${fmt(baseP99, 1)} µs`,
    met: ringP99 <= baseP99,
  });
}

const encodedRange = (size: number) => {
  const all = results.filter((r) => r.spec.size === size).flatMap((r) => r.encodedBytes);
  return `${Math.min(...all)}–${Math.max(...all)} B`;
};
const encoded = sizes.map(encodedRange).join(', ');
const drops = results.reduce((sum, r) => sum + r.drops, 0);
const file = writeResult({
  bench: 'ring',
  title: 'Worker→main SharedArrayBuffer ring vs postMessage',
  startedAt,
  conditions: {
    quick,
    runs,
    'ring capacity (bytes)': ringBytes,
    'records per throughput run': sizes.map((s) => `${fmt(throughputCount(s))} × ${label(s)}`).join(', '),
    'latency run': `${fmt(latencyCount)} records paced at ${fmt(rate)}/s`,
    'encoded record sizes': encoded,
    'first tenth of each run': 'warm-up, not measured',
    'load average at start': loadAtStart,
    'records dropped by the ring writer (all runs)': drops,
  },
  tables: [throughput, latency],
  targets,
  notes: [
    'Same work on both sides: the worker msgpack-encodes each record {seq, ts, body} with msgpackr and the main thread decodes it with msgpackr, whether it came through the ring or postMessage. Only the transport differs.',
    "postMessage posts a tight copy of the encoded bytes and transfers its ArrayBuffer: posting pack()'s result directly would structured-clone msgpackr's whole reusable buffer.",
    'The ring writer copies the record into the SharedArrayBuffer; the reader copies it out into private 8-aligned memory before decoding (records ≤ 1 KB share a 64 KB slab, larger ones get their own buffer).',
    '"clone" is a reference only, not part of any target: postMessage of the plain object (structured clone), with no msgpack on either side.',
    'Main thread busy is event-loop active time (performance.eventLoopUtilization) per measured record: what each transport costs the thread that also serves viewers.',
    'Latency is taken on the monotonic clock all threads share (process.hrtime), from just before encoding to just after decoding on the main thread. The paced producer sleeps with Atomics.wait between records (no spinning).',
  ],
  raw: results,
});
console.log(`wrote ${file}`);
for (const t of targets)
  console.log(`${t.met ? 'met ' : 'MISS'} ${t.name}: ${t.measured} (wanted ${t.target})`);
const report = spawnSync(process.execPath, [fileURLToPath(new URL('../report.js', import.meta.url))], {
  stdio: 'inherit',
});
if (report.status !== 0) process.exitCode = 1;
