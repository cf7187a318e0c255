import fc from 'fast-check';
import { SignJWT } from 'jose';
import { expect } from 'vitest';
import { get, type RunningDaemon, rssBytes, startDaemon, Viewer } from '../helpers.js';
import type { Reliability } from '../support/reliability.js';
import { hex } from './hostile-msgpack.js';
import { helloWithToken, judge, type Probe } from './probe.js';

/**
 * A daemon for fuzzing over the wire, with the checks every batch of cases ends with: the
 * process is alive, `/healthz` answers 200, RSS has grown by less than `MAX_RSS_GROWTH_MIB`
 * since start, and a healthy viewer of another camera is still getting frames.
 */
export const secret = 'a-fuzz-secret-that-is-at-least-32-bytes-long';
export const sign = (claims: Record<string, unknown>) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('fuzzer')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret));

/** The bound: across all hostile input, RSS stays within 512 MiB of its start. */
export const MAX_RSS_GROWTH_MIB = 512;

/** A camera that frames arrive on whatever the fuzzer does: small and slow, so it costs little. */
const watchedCamera = { id: 'demo', source: 'test', fps: 5, width: 160, height: 120, audio: false };
/** Where the fuzzer's publishers push. */
export const pushCamera = { id: 'p1', source: 'push', fps: 30 };

/** Limits opened up so one client can send thousands of cases; the limits have their own tests. */
export function fuzzConfig(auth: boolean, extra: Record<string, unknown> = {}) {
  return {
    cameras: [watchedCamera, pushCamera],
    pool: { threads: 1 },
    ...(auth ? { auth: { hs256Secret: secret } } : {}),
    ws: {
      authTimeoutMs: 60_000,
      maxUnauthenticatedPerIp: 256,
      subscribeRatePerSecond: 1_000_000,
      subscribeBurst: 1_000_000,
    },
    viewers: { maxConnectionsPerIp: 100_000, connectRatePerIp: 1_000_000, connectBurstPerIp: 1_000_000 },
    ...extra,
  };
}

export class LiveDaemon {
  daemon!: RunningDaemon;
  private startRss = 0;
  private healthy!: Viewer;
  restarts = 0;
  adminToken = '';
  viewerToken = '';
  publisherToken = '';

  constructor(private readonly config: ReturnType<typeof fuzzConfig>) {}

  get auth(): boolean {
    return 'auth' in this.config;
  }

  async start(): Promise<void> {
    this.viewerToken = await sign({ cams: ['*'] });
    this.publisherToken = await sign({ cams: ['*'], role: 'publisher' });
    this.adminToken = await sign({ cams: ['*'], role: 'admin' });
    this.daemon = await startDaemon(this.config);
    // Frames of the push camera are only processed while someone watches it.
    this.healthy = new Viewer(
      `${this.daemon.wsUrl}?topics=cam/demo/low,cam/p1/low&token=${this.viewerToken}`,
    );
    await this.healthy.opened;
    await this.healthy.until((r) => this.demoFrames(r) > 0, 20_000);
    this.healthy.records.length = 0;
    this.startRss = rssBytes(this.daemon.proc.pid!);
    this.peakGrowthMiB = 0;
    this.batchPeakMiB = 0;
    clearInterval(this.sampler);
    this.sampler = setInterval(() => this.sample(), 50);
    this.sampler.unref();
  }

  private demoFrames(records: Record<string, unknown>[]): number {
    return records.filter((r) => r.type === 'frame' && r.topic === 'cam/demo/low').length;
  }

  get url(): string {
    return this.daemon.url;
  }

  alive(): boolean {
    return this.daemon.proc.exitCode === null && this.daemon.proc.signalCode === null;
  }

  /** What the daemon said as it died, for a failure message. */
  lastWords(): string {
    return JSON.stringify(this.daemon.logs.slice(-3)).slice(0, 1500);
  }

  /** RSS growth over the start, now. */
  rssGrowthMiB(): number {
    return (rssBytes(this.daemon.proc.pid!) - this.startRss) / 2 ** 20;
  }

  /** The largest RSS growth sampled (every 50 ms) since start: a decode that peaks between checks is still seen. */
  peakGrowthMiB = 0;
  /** The same since the last check, so a check blames the inputs of its own batch. */
  private batchPeakMiB = 0;
  private sampler: NodeJS.Timeout | undefined;

  private sample(): void {
    if (!this.alive()) return;
    try {
      const growth = this.rssGrowthMiB();
      this.peakGrowthMiB = Math.max(this.peakGrowthMiB, growth);
      this.batchPeakMiB = Math.max(this.batchPeakMiB, growth);
    } catch {
      // The process exited between the check and the read; the next check reports it.
    }
  }

  /** After a case killed it: a fresh daemon, so the remaining targets still run. */
  async ensureUp(): Promise<void> {
    if (this.alive()) return;
    this.restarts++;
    this.healthy.close();
    await this.start();
  }

  /** The checks after a batch; records the daemon's state and RSS growth against `cls`. */
  async check(rel: Reliability, cls: string): Promise<void> {
    const peak = this.note(rel, cls);
    if (!this.alive())
      expect.fail(
        `daemon exited (${this.daemon.proc.exitCode ?? this.daemon.proc.signalCode}): ${this.lastWords()}`,
      );
    expect((await get(`${this.url}/healthz`)).status).toBe(200);
    expect(peak, 'peak RSS growth in MiB since the last check').toBeLessThan(MAX_RSS_GROWTH_MIB);
    await this.healthy.until((r) => this.demoFrames(r) > 0, 15_000);
    // Each check waits for a frame after the previous one; the records would only grow the test process.
    this.healthy.records.length = 0;
  }

  /**
   * Records whether the daemon is up and the batch's RSS peak against `cls`, and starts a new
   * batch; returns the peak. `check` asserts on it; a batch that already failed only notes it.
   */
  note(rel: Reliability, cls: string): number {
    this.sample();
    const peak = this.batchPeakMiB;
    this.batchPeakMiB = 0;
    rel.daemon(cls, this.alive(), peak);
    return peak;
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    this.healthy?.close();
    await this.daemon?.stop();
  }
}

/**
 * Runs one case on a probe that may be closed or replaced, judges it, records the outcome,
 * and throws with the case in hex when it broke an invariant.
 */
export async function runCase(opts: {
  live: LiveDaemon;
  rel: Reliability;
  cls: string;
  bytes: Uint8Array;
  probe: () => Promise<Probe>;
  silentTypes: ReadonlySet<string>;
}): Promise<string> {
  const { live, rel, cls, bytes } = opts;
  const probe = await opts.probe();
  const result = await probe.send(bytes, helloWithToken(bytes));
  // A close that coincides with the daemon's death is the death, not a close code.
  if (result.closed || result.timedOut) await new Promise((r) => setTimeout(r, 50));
  const verdict = judge(result, bytes, opts.silentTypes, live.alive());
  rel.record(cls, verdict.problem ? `${verdict.outcome} (WRONG)` : verdict.outcome);
  if (verdict.outcome === 'daemon-exit') rel.daemon(cls, false);
  if (verdict.problem)
    throw new Error(
      `${verdict.problem}\n  case (hex): ${hex(bytes)}\n  daemon: ${live.alive() ? 'up' : live.lastWords()}`,
    );
  return verdict.outcome;
}

/** A failing case is reported as short hex, not as thousands of comma-separated bytes. */
const shownAsHex = (b: Uint8Array) => Object.assign(b, { [fc.toStringMethod]: () => `hex ${hex(b, 64)}` });

/** Cases between health checks (and between fresh connections, so subscriptions do not pile up). */
const CHECK_EVERY = 250;

/**
 * One live fuzz target: every case goes through `runCase`, the daemon is checked every
 * CHECK_EVERY cases and at the end, and the probe is replaced whenever the daemon closed it.
 */
export async function fuzzLive(opts: {
  live: LiveDaemon;
  rel: Reliability;
  cls: string;
  cases: fc.Arbitrary<Uint8Array>;
  connect: () => Promise<Probe>;
  silentTypes: ReadonlySet<string>;
  params: fc.Parameters<unknown>;
  /** The target is about clients before auth. */
  anonymous?: boolean;
}): Promise<void> {
  const { live, rel, cls } = opts;
  let probe: Probe | undefined;
  let n = 0;
  const current = async () => {
    if (!probe || probe.closed) probe = await opts.connect();
    return probe;
  };
  try {
    await fc.assert(
      fc.asyncProperty(opts.cases.map(shownAsHex), async (bytes) => {
        const answered = await runCase({
          live,
          rel,
          cls,
          bytes,
          probe: current,
          silentTypes: opts.silentTypes,
        });
        // An anonymous target stays anonymous: a socket a valid hello authenticated is replaced.
        if (opts.anonymous && answered === 'hello') {
          probe?.close();
          probe = undefined;
        }
        if (++n % CHECK_EVERY === 0) {
          probe?.close();
          probe = undefined;
          await live.check(rel, cls);
        }
      }),
      opts.params,
    );
  } catch (err) {
    // The failing case's daemon state and memory peak still go into the report.
    live.note(rel, cls);
    throw err;
  } finally {
    probe?.close();
  }
  await live.check(rel, cls);
}
