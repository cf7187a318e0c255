// bench:vad — per-frame energy over 16 kHz audio in 20 ms frames, one call per 1 s
// chunk: the JS loop vs the native addon (each kernel), against a plain C loop
// compiled here with -O3 -march=native -ffast-math as the ceiling. Plus the whole
// detector (processChunk) per backend, as audio seconds per CPU second.
// Every variant runs in a fresh process; the order alternates between rounds and
// each figure is the median over rounds. `--quick` is a smoke run (< 20 s).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON_PATH, nativeKernels } from '../../src/vad/backend.js';
import {
  benchDir,
  machineLine,
  median,
  type ResultTable,
  type TargetCheck,
  writeResult,
} from '../lib/results.js';

const RATE = 16_000;
const FRAME_LEN = 320;
const AUDIO_SECONDS = 60;
const quick = process.argv.includes('--quick');
const rounds = quick ? 1 : 5;
const budget = quick ? 0.15 : 0.6;
const here = dirname(fileURLToPath(import.meta.url));

console.log(`System: ${machineLine()}`);

interface Variant {
  id: string;
  label: string;
  format: 'i16' | 'f32';
  group: 'js' | 'native' | 'ceiling' | 'detector' | 'call';
  cmd: () => [string, string[]];
}

interface Measure {
  samples: number;
  calls?: number;
  wallNs: number;
  cpuNs: number;
  backend?: string;
}

/** 60 s of 16 kHz noise plus a tone, the same bytes for every variant. */
function writeData(dir: string): Record<'i16' | 'f32', string> {
  const n = AUDIO_SECONDS * RATE;
  const f32 = new Float32Array(n);
  let seed = 12345;
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    f32[i] = 0.3 * Math.sin((2 * Math.PI * 440 * i) / RATE) + 0.5 * (seed / 2 ** 32 - 0.5);
  }
  const i16 = Int16Array.from(f32, (v) => Math.round(v * 32767));
  const files = { i16: join(dir, 'audio.i16'), f32: join(dir, 'audio.f32') };
  writeFileSync(files.i16, i16);
  writeFileSync(files.f32, f32);
  return files;
}

function compileCeiling(dir: string): string {
  const exe = join(dir, 'ceiling');
  const flags = ['-O3', '-march=native', '-ffast-math'];
  execFileSync('gcc', [...flags, '-o', exe, join(benchDir, 'vad', 'ceiling.c')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return exe;
}

function measure(v: Variant): Measure {
  const [cmd, args] = v.cmd();
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${v.id} failed: ${r.stderr || r.error?.message}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Measure;
}

const dir = mkdtempSync(join(tmpdir(), 'framehub-bench-vad-'));
const notes: string[] = [];
try {
  const files = writeData(dir);
  let ceiling: string | undefined;
  try {
    ceiling = compileCeiling(dir);
  } catch (err) {
    notes.push(
      `C ceiling not built (gcc missing or failed: ${(err as Error).message.split('\n')[0]}); no ceiling ratios.`,
    );
  }
  const kernels = nativeKernels();
  if (kernels.length === 0)
    notes.push(`Native addon not loaded from ${ADDON_PATH}: only the JS backend was measured.`);
  const node = (backend: string, kernel: string, format: string, mode: string) => (): [string, string[]] => [
    process.execPath,
    [join(here, 'variant.js'), backend, kernel, format, mode, files[format as 'i16' | 'f32'], String(budget)],
  ];
  const variants: Variant[] = [];
  for (const format of ['i16', 'f32'] as const) {
    variants.push({
      id: `js-${format}`,
      label: 'js',
      format,
      group: 'js',
      cmd: node('js', '-', format, 'energy'),
    });
    for (const k of quick ? kernels.slice(0, 1) : kernels) {
      variants.push({
        id: `native-${k}-${format}`,
        label: `native ${k}`,
        format,
        group: 'native',
        cmd: node('native', k, format, 'energy'),
      });
    }
    if (ceiling) {
      const exe = ceiling;
      const kinds = format === 'i16' ? ['i16'] : quick ? ['f32'] : ['f32', 'f32d'];
      for (const kind of kinds) {
        const label =
          kind === 'f32d' ? 'C ceiling, double sum' : kind === 'f32' ? 'C ceiling, float sum' : 'C ceiling';
        variants.push({
          id: `c-${kind}`,
          label,
          format,
          group: 'ceiling',
          cmd: () => [exe, [files[format], kind, String(FRAME_LEN), String(RATE), String(budget)]],
        });
      }
    }
  }
  variants.push({
    id: 'detector-js',
    label: 'detector, js',
    format: 'i16',
    group: 'detector',
    cmd: node('js', '-', 'i16', 'detector'),
  });
  if (kernels.length) {
    variants.push({
      id: 'detector-native',
      label: `detector, native ${kernels[0]}`,
      format: 'i16',
      group: 'detector',
      cmd: node('native', '-', 'i16', 'detector'),
    });
  }

  variants.push({
    id: 'call-js',
    label: 'js',
    format: 'f32',
    group: 'call',
    cmd: node('js', '-', 'f32', 'call'),
  });
  if (kernels.length) {
    variants.push({
      id: 'call-native',
      label: `native ${kernels[0]}`,
      format: 'f32',
      group: 'call',
      cmd: node('native', '-', 'f32', 'call'),
    });
  }

  const runs = new Map<string, Measure[]>();
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const m = measure(v);
      runs.set(v.id, [...(runs.get(v.id) ?? []), m]);
      const rate =
        v.group === 'call'
          ? `${(m.cpuNs / m.calls!).toFixed(0)} CPU ns per call`
          : `${(m.samples / m.wallNs).toFixed(3)} G samples/s, ${(m.samples / m.cpuNs).toFixed(3)} per CPU-s`;
      console.log(`round ${round + 1}/${rounds} ${v.id.padEnd(22)} ${rate}`);
    }
  }

  /**
   * Medians of wall throughput, CPU throughput and realtime factor. Ratios use CPU
   * time: other jobs share the cores, and a descheduled process keeps its wall clock
   * running but not its CPU clock.
   */
  const stat = (id: string) => {
    const ms = runs.get(id);
    if (!ms) return undefined;
    return {
      wall: median(ms.map((m) => m.samples / m.wallNs)),
      cpu: median(ms.map((m) => m.samples / m.cpuNs)),
      rtf: median(ms.map((m) => m.samples / RATE / (m.cpuNs / 1e9))),
    };
  };
  const fmtG = (x: number) => x.toFixed(3);
  const fmtRtf = (x: number) => Math.round(x).toLocaleString('en-US');
  const targets: TargetCheck[] = [];
  const energyRows: (string | number)[][] = [];
  for (const format of ['i16', 'f32'] as const) {
    const js = stat(`js-${format}`)!;
    const ceil = stat(format === 'i16' ? 'c-i16' : 'c-f32');
    for (const v of variants.filter(
      (x) => x.format === format && (x.group === 'js' || x.group === 'native' || x.group === 'ceiling'),
    )) {
      const s = stat(v.id)!;
      energyRows.push([
        format,
        v.label,
        fmtG(s.wall),
        fmtG(s.cpu),
        `${(s.cpu / js.cpu).toFixed(2)}x`,
        ceil ? `${((100 * s.cpu) / ceil.cpu).toFixed(0)}%` : 'n/a',
        fmtRtf(s.rtf),
      ]);
    }
    const best = kernels.length ? stat(`native-${kernels[0]}-${format}`) : undefined;
    targets.push({
      name: `native ${format} vs JS`,
      target: '>= 4x',
      measured: best ? `${(best.cpu / js.cpu).toFixed(2)}x` : 'addon not built',
      met: best !== undefined && best.cpu / js.cpu >= 4,
    });
    targets.push({
      name: `native ${format} vs C ceiling${format === 'f32' ? ' (float sum)' : ''}`,
      target: '>= 70%',
      measured: best && ceil ? `${((100 * best.cpu) / ceil.cpu).toFixed(0)}%` : 'n/a',
      met: best !== undefined && ceil !== undefined && best.cpu / ceil.cpu >= 0.7,
    });
  }
  const detectorRows = variants
    .filter((v) => v.group === 'detector')
    .map((v) => {
      const s = stat(v.id)!;
      return [v.label, fmtG(s.wall), fmtG(s.cpu), fmtRtf(s.rtf)];
    });
  const callRows = variants
    .filter((v) => v.group === 'call')
    .map((v) => [v.label, median(runs.get(v.id)!.map((m) => m.cpuNs / m.calls!)).toFixed(0)]);
  const tables: ResultTable[] = [
    {
      caption: 'Frame energy: 16 kHz, 20 ms frames (320 samples), one call per 1 s chunk',
      columns: [
        'format',
        'variant',
        'G samples/s (wall)',
        'G samples/CPU-s',
        'vs JS',
        'vs C ceiling',
        'audio s per CPU s',
      ],
      rows: energyRows,
    },
    {
      caption: 'Whole detector (processChunk), int16, 1 s chunks',
      columns: ['variant', 'G samples/s (wall)', 'G samples/CPU-s', 'audio s per CPU s'],
      rows: detectorRows,
    },
    {
      caption: 'Fixed cost of one frameEnergyF32 call on an empty chunk (subarray + call + argument checks)',
      columns: ['backend', 'CPU ns per call'],
      rows: callRows,
    },
  ];
  for (const t of tables) {
    console.log(`\n${t.caption}\n${t.columns.join(' | ')}`);
    for (const r of t.rows) console.log(r.join(' | '));
  }
  console.log('');
  for (const t of targets)
    console.log(`${t.met ? 'met    ' : 'MISSED '} ${t.name}: ${t.measured} (want ${t.target})`);
  notes.push(
    'Ratios (vs JS, vs C ceiling) are of CPU-time throughput; wall throughput is shown too and agrees on an idle machine.',
    'The C ceiling loop has no per-chunk call; the addon pays one N-API call per 1 s chunk (see the fixed-cost table) against ~750 ns of float32 work, which is most of the gap to the ceiling. Its kernels alone, timed in C on the same data, run at the C loop speed.',
    'For int16, gcc widens every product to 64 bits; the addon adds pmaddwd pairs and widens once per pair, hence above 100%.',
    'Float32 precision: the addon adds at most 4 float32 squares per lane before widening to double (<= 3.6e-7 relative, see native/src/kernels.h); the float-sum C loop rounds in float32 across the whole frame; the double-sum C row widens every sample.',
  );
  if (quick) notes.push('Quick smoke run (--quick): one round, 0.15 s per variant; not for comparison.');
  const file = writeResult({
    bench: 'vad',
    title: 'VAD frame energy: JS vs native addon vs C ceiling',
    conditions: {
      audio: `${AUDIO_SECONDS} s at ${RATE} Hz (${(AUDIO_SECONDS * RATE * 2) / 2 ** 20} MiB int16, ${(AUDIO_SECONDS * RATE * 4) / 2 ** 20} MiB float32), looped`,
      frames: `${FRAME_LEN} samples (20 ms), one call per ${RATE}-sample (1 s) chunk`,
      method: `fresh process per variant, order alternating, median of ${rounds} round(s) of >= ${budget} s after a 0.2 s warm-up`,
      ceiling: ceiling ? 'gcc -O3 -march=native -ffast-math, compiled at bench time' : 'not built',
      kernels: kernels.join(', ') || 'none',
      quick,
    },
    tables,
    targets,
    notes,
    raw: Object.fromEntries(runs),
  });
  console.log(`wrote ${file}`);
  const report = spawnSync(process.execPath, [join(here, '..', 'report.js')], { stdio: 'inherit' });
  if (report.status !== 0) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
