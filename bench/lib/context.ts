import os from 'node:os';
import type { Options } from './args.js';
import { makeJpeg } from './frames.js';
import { fdLimits } from './proc-stats.js';
import { machineLine } from './results.js';
import { externalTarget, type RunningTarget, startTarget, type TargetName } from './target.js';

/** What every scenario needs once per invocation: the frame, the machine, the fd limits. */
export interface BenchContext {
  opts: Options;
  jpeg: Uint8Array;
  cameras: string[];
  environment: Record<string, unknown>;
  notes: string[];
}

export async function createContext(opts: Options, cameras: string[]): Promise<BenchContext> {
  const jpeg = await makeJpeg(opts.width, opts.height, opts.frameKb * 1024);
  const harness = fdLimits('self');
  const environment = {
    machine: machineLine(),
    cores: os.availableParallelism(),
    fdLimitHarness: harness,
    jpegBytes: jpeg.length,
    swarmProcs: opts.procs,
  };
  const notes: string[] = [];
  process.stdout.write(`System: ${machineLine()}\n`);
  return { opts, jpeg, cameras, environment, notes };
}

/**
 * Checks a process can hold `needed` descriptors. Node raises its soft limit to the hard
 * limit at start-up, so the hard limit is what counts; raise it with `ulimit -Hn` (or
 * LimitNOFILE under systemd) before the run.
 */
export function checkFds(
  who: string,
  limits: { soft: number; hard: number },
  needed: number,
): string | undefined {
  if (!(limits.soft < needed)) return undefined;
  return `${who}: open-file limit ${limits.soft} (hard ${limits.hard}) is below the ${needed} needed; raise it with \`ulimit -n ${needed + 1024}\``;
}

/**
 * The order of fresh-process runs: targets alternate direction on every repeat
 * (A B C, C B A, ...), as hono's compare.sh does, so warm-up and drift do not favour one.
 */
export function runOrder(targets: TargetName[], repeat: number): { target: TargetName; repeat: number }[] {
  const out: { target: TargetName; repeat: number }[] = [];
  for (let r = 0; r < repeat; r++) {
    const order = r % 2 === 0 ? targets : [...targets].reverse();
    for (const target of order) out.push({ target, repeat: r });
  }
  return out;
}

export async function launch(ctx: BenchContext, name: TargetName): Promise<RunningTarget> {
  const { opts } = ctx;
  if (name === 'external') return externalTarget(opts.url!, opts.pid);
  return startTarget(name, {
    cameras: ctx.cameras,
    fps: opts.fps,
    width: opts.width,
    height: opts.height,
    framehubConfig: opts.framehubConfig,
    beforeDir: opts.beforeDir,
  });
}
