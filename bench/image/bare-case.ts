import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { bareSharp } from './bare.js';
import { closedLoop, coreSharePct, cpuEdge, machineBusyPct } from './load.js';
import type { BareSpec, WindowResult } from './shared.js';

// Bare sharp in a fresh process (run.ts forks it): the baseline of the job path. Set up as
// framehub's image workers are (src/image/variants.ts, loaded in every pool worker): one libvips
// thread per pipeline and no operation cache, with `clients` pipelines in flight on libuv's
// threads (4 by default, so 2 never wait for one). Sources are read into memory first, as the
// daemon holds an upload in memory.

sharp.concurrency(1);
sharp.cache(false);

const spec = JSON.parse(process.argv[2]!) as BareSpec;
const inputs = spec.files.map((f) => readFileSync(f));
let next = 0;

const outcome = await closedLoop(
  spec.window,
  async () => {
    const input = inputs[next++ % inputs.length]!;
    const out = await bareSharp(sharp(input, { failOn: 'error' }), spec.op).toBuffer();
    return { bytes: out.length };
  },
  () => cpuEdge(process.pid),
);

const [from, to] = outcome.edges;
const images = outcome.inWindow.length;
const cpuMs = to.totalMs - from.totalMs;
const result: WindowResult = {
  images,
  imagesPerSecond: images / outcome.seconds,
  latencyMs: outcome.inWindow.map((s) => s.endMs - s.startMs),
  outputBytes: outcome.inWindow.reduce((sum, s) => sum + s.bytes, 0) / images,
  cpuMsPerImage: cpuMs / images,
  mainThreadCpuMsPerImage: (to.mainThreadMs - from.mainThreadMs) / images,
  machineBusyPct: machineBusyPct(from, to),
  ownBusyPct: coreSharePct(cpuMs, outcome.seconds),
};
process.send!(result);
