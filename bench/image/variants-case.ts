import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { benchDir } from '../lib/results.js';
import type { VariantsResult, VariantsSpec } from './shared.js';
import { HD } from './sources.js';

// One camera's live variant set, in a fresh process (run.ts forks it): makeVariants from the
// product build, as an image worker calls it, one frame at a time. Loading variants.js sets
// sharp as the workers run it (one libvips thread per pipeline, no cache). The cost is the
// process's CPU time (every thread: the variants of a frame run in parallel on libuv threads),
// so other tenants on the machine slow the wall clock but not the figure.

const variantsModule = pathToFileURL(join(benchDir, '..', 'dist', 'src', 'image', 'variants.js')).href;
const { makeVariants } = (await import(variantsModule)) as typeof import('../../src/image/variants.js');

const spec = JSON.parse(process.argv[2]!) as VariantsSpec;
const frames = spec.files.map((f) => readFileSync(f));
const annotation = { label: 'Front door', ts: Date.now(), speech: true };
let n = 0;

async function frame(): Promise<void> {
  const jpeg = frames[n++ % frames.length]!;
  const images = await makeVariants({ jpeg, ...HD, maxPixels: 40_000_000 }, spec.variants, { annotation });
  if (images.length !== spec.variants.length) throw new Error(`made ${images.length} variants`);
}

for (let i = 0; i < spec.warmupFrames; i++) await frame();
const start = { t: performance.now(), cpu: process.cpuUsage() };
let made = 0;
const elapsed = () => (performance.now() - start.t) / 1000;
while (made < spec.maxFrames && (made < spec.minFrames || elapsed() < spec.minSeconds)) {
  await frame();
  made++;
}
const seconds = elapsed();
const cpu = process.cpuUsage(start.cpu);
const cpuMs = (cpu.user + cpu.system) / 1000;
const result: VariantsResult = {
  spec,
  frames: made,
  cpuMsPerFrame: cpuMs / made,
  framesPerCpuSecond: (made * 1000) / cpuMs,
  wallMsPerFrame: (seconds * 1000) / made,
};
process.send!(result);
