import fc from 'fast-check';
import { SignJWT } from 'jose';
import { Unpackr } from 'msgpackr';
import { expect } from 'vitest';
import WebSocket from 'ws';
import { validPingId } from '../../src/server/protocol.js';
import { get, pack, type RunningDaemon, rssBytes, startDaemon, Viewer } from '../helpers.js';
import type { Reliability } from '../support/reliability.js';
import { hex, readAsRecord } from './hostile-msgpack.js';

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
export const pushCamera = { id: 'p1', source: 'push', fps: 30, width: 64, height: 48 };

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
  private sampler: NodeJS.Timeout | undefined;

  private sample(): void {
    if (!this.alive()) return;
    try {
      this.peakGrowthMiB = Math.max(this.peakGrowthMiB, this.rssGrowthMiB());
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
    if (!this.alive()) {
      rel.daemon(cls, false);
      expect.fail(
        `daemon exited (${this.daemon.proc.exitCode ?? this.daemon.proc.signalCode}): ${this.lastWords()}`,
      );
    }
    this.sample();
    rel.daemon(cls, true, this.peakGrowthMiB);
    expect((await get(`${this.url}/healthz`)).status).toBe(200);
    expect(this.peakGrowthMiB, 'peak RSS growth in MiB').toBeLessThan(MAX_RSS_GROWTH_MIB);
    await this.healthy.until((r) => this.demoFrames(r) > 0, 15_000);
    // Each check waits for a frame after the previous one; the records would only grow the test process.
    this.healthy.records.length = 0;
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    this.healthy?.close();
    await this.daemon?.stop();
  }
}

/** Close codes the README documents for a client that sent something wrong. */
export const DOCUMENTED_CLOSE = new Set([1009, 4001, 1008, 1013]);
/** Server records that are pushes (a subscription's traffic), not answers to a message. */
const PUSHES = new Set(['frame', 'variant', 'vad', 'segment', 'system', 'job']);

interface Answer {
  type: string;
  code?: unknown;
  message?: unknown;
  id?: unknown;
}

export interface ProbeResult {
  answers: Answer[];
  closed: { code: number; reason: string } | undefined;
  timedOut: boolean;
}

const serverRecords = new Unpackr({ mapsAsObjects: true });

/**
 * One WebSocket that sends a case and then a ping sentinel, and collects what came back in
 * between: messages are handled in order, so everything before the sentinel's pong answers the
 * case. A close ends the probe instead (the caller opens a new one).
 */
export class Probe {
  private readonly ws: WebSocket;
  private answers: Answer[] = [];
  closed: { code: number; reason: string } | undefined;
  private wake: (() => void) | undefined;
  private next = 0;

  private constructor(url: string, headers: Record<string, string>) {
    this.ws = new WebSocket(url, { headers, maxPayload: 64 * 1024 * 1024 });
    this.ws.on('error', () => {});
    this.ws.on('message', (data: Buffer) => {
      let r: Answer;
      try {
        r = serverRecords.unpack(data) as Answer;
      } catch {
        r = { type: '__undecodable' };
      }
      if (!PUSHES.has(r?.type)) this.answers.push(r);
      this.wake?.();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake?.();
    });
  }

  /** Opens and waits for the upgrade; a socket refused at open comes back already closed. */
  static async open(url: string, token?: string): Promise<Probe> {
    const p = new Probe(url, token ? { authorization: `Bearer ${token}` } : {});
    await new Promise<void>((resolve) => {
      p.ws.once('open', () => resolve());
      p.ws.once('close', () => resolve());
    });
    return p;
  }

  /**
   * Sends `bytes` and waits for its answers. `needsAnswer`: the sentinel alone does not mark
   * the end (a `hello` with a token is answered once the token is verified, asynchronously).
   */
  async send(bytes: Uint8Array, needsAnswer: boolean, timeoutMs = 10_000): Promise<ProbeResult> {
    const id = `sentinel-${this.next++}`;
    // Answers that came since the last case (those sent at open included) count for this one.
    if (!this.closed) {
      this.ws.send(bytes, { binary: true });
      this.ws.send(pack({ type: 'ping', id }), { binary: true });
    }
    const isSentinel = (a: Answer) => a.type === 'pong' && a.id === id;
    const done = () =>
      this.closed !== undefined ||
      (this.answers.some(isSentinel) && (!needsAnswer || this.answers.some((a) => !isSentinel(a))));
    let timedOut = false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timedOut = true;
        resolve();
      }, timeoutMs);
      this.wake = () => {
        if (!done()) return;
        clearTimeout(timer);
        resolve();
      };
      this.wake();
    });
    this.wake = undefined;
    const answers = this.answers.filter((a) => !isSentinel(a));
    this.answers = [];
    return { answers, closed: this.closed, timedOut };
  }

  close(): void {
    this.ws.close();
  }
}

export interface Verdict {
  outcome: string;
  problem?: string;
}

/**
 * Whether what came back is one of the documented answers to `bytes`: error records with a
 * code, a documented close code, a pong with a valid id, a hello, or (only for a record of a
 * type that is answered by silence when accepted) nothing at all.
 */
export function judge(
  result: ProbeResult,
  bytes: Uint8Array,
  silentTypes: ReadonlySet<string>,
  alive: boolean,
): Verdict {
  if (!alive) return { outcome: 'daemon-exit', problem: 'the daemon exited' };
  if (result.closed && !DOCUMENTED_CLOSE.has(result.closed.code)) {
    const { code, reason } = result.closed;
    return { outcome: `close:${code}`, problem: `closed with undocumented code ${code} (${reason})` };
  }
  const errors = result.answers.filter((a) => a.type === 'error');
  for (const e of errors) {
    if (typeof e.code !== 'string' || !/^[A-Z][A-Z_]+$/.test(e.code) || typeof e.message !== 'string')
      return { outcome: 'malformed error', problem: `error record without a code: ${JSON.stringify(e)}` };
  }
  for (const a of result.answers) {
    if (a.type === 'pong' && !validPingId(a.id))
      return {
        outcome: 'echoed id',
        problem: `pong echoed an id that is not a short string or safe integer`,
      };
    if (!['error', 'pong', 'hello'].includes(a.type))
      return {
        outcome: `answer:${String(a.type).slice(0, 20)}`,
        problem: `unexpected answer ${JSON.stringify(a).slice(0, 200)}`,
      };
  }
  if (errors.length) return { outcome: `error:${errors[0]!.code}` };
  if (result.answers.length) return { outcome: result.answers[0]!.type };
  if (result.closed) return { outcome: `close:${result.closed.code}` };
  if (result.timedOut)
    return { outcome: 'no answer', problem: 'neither an answer nor the sentinel pong came back' };
  const type = readAsRecord(bytes)?.type;
  return typeof type === 'string' && silentTypes.has(type)
    ? { outcome: 'accepted' }
    : { outcome: 'silent', problem: 'no error record for a message that is not an accepted record' };
}

/** Whether a message is a `hello` carrying a string token: answered only once it is verified. */
export function helloWithToken(bytes: Uint8Array): boolean {
  const r = readAsRecord(bytes);
  return r?.type === 'hello' && typeof r.token === 'string';
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
  rel.record(cls, verdict.outcome);
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
  } finally {
    probe?.close();
  }
  await live.check(rel, cls);
}
