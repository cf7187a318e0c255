import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { sleep } from '../lib/clock.js';
import { sampleProc } from '../lib/proc-stats.js';
import { quantile } from '../lib/results.js';

/**
 * Scraping /metrics the way Prometheus does, and what one scrape costs: client wall time from
 * the request to the last body byte, the body's size and series, and the daemon's CPU per
 * scrape from /proc. Used by run.ts once per daemon setup, so every setup is measured alike.
 */

/** What Prometheus 2.x/3.x sends; the daemon answers the text format whatever it asks for. */
const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1';

export interface Scrape {
  /** Request written → last body byte read, ms. */
  ms: number;
  body: Buffer;
}

/** One keep-alive connection, as Prometheus keeps one per target between scrapes. */
export class Scraper {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(private readonly port: number) {}

  scrape(timeoutMs = 10_000): Promise<Scrape> {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const req = http.get(
        {
          host: '127.0.0.1',
          port: this.port,
          path: '/metrics',
          agent: this.agent,
          headers: { accept: PROMETHEUS_ACCEPT },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.once('error', reject);
          res.once('end', () => {
            const ms = performance.now() - started;
            if (res.statusCode !== 200) reject(new Error(`/metrics: HTTP ${res.statusCode}`));
            else resolve({ ms, body: Buffer.concat(chunks) });
          });
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`/metrics: no answer in ${timeoutMs} ms`)));
      req.once('error', reject);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface Family {
  name: string;
  type: string;
  /** Sample lines (a histogram's buckets, _sum and _count each count). */
  series: number;
  /** Bytes of its lines, # HELP and # TYPE included. */
  bytes: number;
}

export interface Exposition {
  bytes: number;
  /** Sample lines: what Prometheus stores one time series for. */
  series: number;
  families: Family[];
}

const SUFFIX = /_(bucket|sum|count|created|total)$/;

/** Counts the series and bytes of a text-format exposition, per metric family. */
export function parseExposition(body: Buffer): Exposition {
  const families = new Map<string, Family>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: 'untyped', series: 0, bytes: 0 };
      families.set(name, f);
    }
    return f;
  };
  let series = 0;
  for (const line of body.toString('utf8').split('\n')) {
    if (!line) continue;
    if (line.startsWith('#')) {
      const [, kind, name, type] = line.split(' ', 4);
      if (!name) continue;
      const f = family(name);
      f.bytes += line.length + 1;
      if (kind === 'TYPE' && type) f.type = type;
      continue;
    }
    const end = line.search(/[{ ]/);
    const name = end < 0 ? line : line.slice(0, end);
    // A histogram's _bucket/_sum/_count lines belong to the family its # TYPE line named.
    const f = families.get(name) ?? families.get(name.replace(SUFFIX, '')) ?? family(name);
    f.series++;
    f.bytes += line.length + 1;
    series++;
  }
  return { bytes: body.length, series, families: [...families.values()] };
}

export interface ScrapeCost {
  /** Client wall time of the paced scrapes, ms, in order. */
  timings: number[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  exposition: Exposition;
  /** The daemon's CPU while idle between bursts, ms per wall second (1000 = one core). */
  backgroundCpuMsPerSec: number;
  /** Back-to-back scrapes in the CPU burst, its wall time and the daemon's CPU over it. */
  burstScrapes: number;
  burstWallMs: number;
  burstCpuMs: number;
  /** burstCpuMs less the background rate over the burst's wall time, per scrape. */
  cpuMsPerScrape: number;
}

export interface ScrapeCostOptions {
  /** Timed scrapes, one at a time with `gapMs` between them. */
  scrapes: number;
  gapMs: number;
  /** Back-to-back scrapes whose CPU is read from /proc before and after. */
  burst: number;
  /** Length of each of the two quiet windows around the burst that give the background CPU. */
  backgroundMs: number;
}

/**
 * Times `scrapes` paced scrapes (a gap between them, so each finds the daemon as a scrape at
 * an interval would, not still busy with the one before), then measures the CPU of a burst of
 * back-to-back ones. The daemon keeps doing its other work (frames in, frames out) during the
 * burst, so its background rate, read over a quiet window before and after, is subtracted.
 * /proc counts CPU in ticks of 10 ms: a burst of 200 scrapes makes that ±0.05 ms per scrape.
 */
export async function measureScrapeCost(
  scraper: Scraper,
  pid: number,
  opts: ScrapeCostOptions,
): Promise<ScrapeCost> {
  const timings: number[] = [];
  let last: Scrape | undefined;
  for (let i = 0; i < opts.scrapes; i++) {
    last = await scraper.scrape();
    timings.push(last.ms);
    await sleep(opts.gapMs);
  }
  const cpu = () => {
    const s = sampleProc(pid);
    if (!s) throw new Error(`daemon ${pid} is gone`);
    return { at: performance.now(), cpuMs: s.cpuSeconds * 1000 };
  };
  const a = cpu();
  await sleep(opts.backgroundMs);
  const b = cpu();
  for (let i = 0; i < opts.burst; i++) await scraper.scrape();
  const c = cpu();
  await sleep(opts.backgroundMs);
  const d = cpu();
  const backgroundCpuMsPerSec =
    ((b.cpuMs - a.cpuMs + d.cpuMs - c.cpuMs) / (b.at - a.at + d.at - c.at)) * 1000;
  const burstWallMs = c.at - b.at;
  const burstCpuMs = c.cpuMs - b.cpuMs;
  return {
    timings,
    p50Ms: quantile(timings, 0.5),
    p99Ms: quantile(timings, 0.99),
    maxMs: Math.max(...timings),
    exposition: parseExposition(last!.body),
    backgroundCpuMsPerSec,
    burstScrapes: opts.burst,
    burstWallMs,
    burstCpuMs,
    cpuMsPerScrape: (burstCpuMs - (backgroundCpuMsPerSec * burstWallMs) / 1000) / opts.burst,
  };
}
