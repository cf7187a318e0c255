import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, afterEach } from 'vitest';

/**
 * What one input class did in one suite. This is the shape every suite writes to
 * `test/.reliability/<suite>.json` (inside `ReliabilityFile`), and what
 * `reliability-report.ts` merges into `test/RELIABILITY.md` after the run.
 */
export interface ClassResult {
  /** The input class, e.g. "/ws before auth: random msgpack values". */
  class: string;
  /** Inputs tried. */
  cases: number;
  /** Outcome label (a status, an error code, a close code, "accepted") → how many inputs got it. */
  outcomes: Record<string, number>;
  /** The daemon was alive after every input of the class; null for in-process targets. */
  daemonUp: boolean | null;
  /** Largest daemon RSS growth seen over its start while the class ran, in MiB. */
  rssGrowthMiB?: number;
}

export interface ReliabilityFile {
  suite: string;
  /** ISO time the file was last written. */
  writtenAt: string;
  /** Set when the run was `npm run fuzz` (a time budget and a random seed), not `npm test`. */
  longRun?: { seed: number; minutes: number };
  classes: ClassResult[];
}

export const reliabilityDir = resolve(import.meta.dirname, '..', '.reliability');

/** The long fuzz run writes apart, so its counts never land in the checked-in report. */
const outDir = () => (process.env.FUZZ_MINUTES ? join(reliabilityDir, 'long-run') : reliabilityDir);

/**
 * Counts the outcomes of one suite's hostile inputs per input class. Create one per test file;
 * it flushes after every test and after the file, so a suite that fails half-way still
 * reports what it tried.
 *
 * @example
 *   const rel = reliability('fuzz-ws');
 *   rel.record('/ws before auth: random bytes', 'error:BAD_MESSAGE');
 *   rel.daemon('/ws before auth: random bytes', true, 12.5);
 */
export function reliability(suite: string): Reliability {
  const rel = new Reliability(suite);
  afterEach(() => rel.write());
  afterAll(() => rel.write());
  return rel;
}

export class Reliability {
  private readonly classes = new Map<string, ClassResult>();

  constructor(readonly suite: string) {}

  private entry(className: string): ClassResult {
    let c = this.classes.get(className);
    if (!c) {
      c = { class: className, cases: 0, outcomes: {}, daemonUp: null };
      this.classes.set(className, c);
    }
    return c;
  }

  /** One input of `className` ended with `outcome`. */
  record(className: string, outcome: string, count = 1): void {
    const c = this.entry(className);
    c.cases += count;
    c.outcomes[outcome] = (c.outcomes[outcome] ?? 0) + count;
  }

  /** The daemon's state after a batch of the class: up stays false once it was seen down. */
  daemon(className: string, up: boolean, rssGrowthMiB?: number): void {
    const c = this.entry(className);
    c.daemonUp = c.daemonUp === false ? false : up;
    if (rssGrowthMiB !== undefined)
      c.rssGrowthMiB = Math.max(
        c.rssGrowthMiB ?? Number.NEGATIVE_INFINITY,
        Math.round(rssGrowthMiB * 10) / 10,
      );
  }

  write(): void {
    if (this.classes.size === 0) return;
    const minutes = Number(process.env.FUZZ_MINUTES);
    const file: ReliabilityFile = {
      suite: this.suite,
      writtenAt: new Date().toISOString(),
      ...(minutes ? { longRun: { seed: Number(process.env.FUZZ_SEED), minutes } } : {}),
      classes: [...this.classes.values()],
    };
    const dir = outDir();
    mkdirSync(dir, { recursive: true });
    // Written whole and renamed, so the report never reads half a file.
    const path = join(dir, `${this.suite}.json`);
    writeFileSync(`${path}.tmp`, `${JSON.stringify(file, null, 2)}\n`);
    renameSync(`${path}.tmp`, path);
  }
}
