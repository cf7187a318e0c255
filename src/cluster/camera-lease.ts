import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import type { RedisClient } from './redis-links.js';

// A camera's keys share a hash tag (`{camera}`): in a Redis Cluster they are in one slot, as a
// script that touches several keys requires.
const leaseKey = (camera: string) => `fh:lease:{${camera}}`;
const fenceKey = (camera: string) => `fh:fence:{${camera}}`;
const seqKey = (camera: string) => `fh:seq:{${camera}}`;
const graceKey = (camera: string) => `fh:grace:{${camera}}`;

/**
 * The next fencing token: one above the last, and at least Redis's clock in microseconds. So a
 * token stays above every earlier one when Redis lost the fence (restarted empty) or went back
 * to an older one (a replica that missed the last takeovers was promoted), as long as its clock
 * does not go back. Written with %.0f: Lua prints a 16-digit number in exponent form otherwise
 * (exact: below 2^53 until the year 2255).
 */
const NEXT_TOKEN = `
local function next_token(key)
  local t = redis.call('TIME')
  local token = math.max(tonumber(redis.call('GET', key) or '0') + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('SET', key, string.format('%.0f', token))
  return token
end`;

/**
 * Takes a free lease: `SET NX PX`, then a new fencing token and the seqs the previous owner
 * last recorded. Nil when another node holds it. Two more cases:
 * - The lease is already ours: an earlier ACQUIRE of ours ran although we saw it time out (a
 *   hung Redis answering late). It is adopted, with the token it got, instead of left to expire.
 * - The fence is missing (Redis lost its data): no node acquires for ARGV[3] ms, so the owners
 *   before the loss take their leases back first (RENEW) and no camera moves for nothing.
 */
const ACQUIRE = `${NEXT_TOKEN}
local function taken(token)
  local s = redis.call('HMGET', KEYS[3], 'frame', 'vad')
  return {token, s[1] or '0', s[2] or '0'}
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return taken(tonumber(redis.call('GET', KEYS[2]) or '0'))
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], '0')
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
end
if redis.call('EXISTS', KEYS[4]) == 1 then return false end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return taken(next_token(KEYS[2]))
end
return false`;

/**
 * Renews a lease only while it is still ours, recording the seqs reached. A lease that expired
 * with nobody taking it (Redis restarted empty, or a renewal came late) is taken again, with a
 * new token: 0 another node holds it, 1 renewed, the new token when taken again.
 */
const RENEW = `${NEXT_TOKEN}
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[3], 'frame', ARGV[3], 'vad', ARGV[4])
  return 1
end
if owner then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local token = next_token(KEYS[2])
redis.call('HSET', KEYS[3], 'frame', ARGV[3], 'vad', ARGV[4])
return {token}`;

/** Gives a lease back on a graceful stop (only if still ours), so another node need not wait it out. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[3], 'frame', ARGV[3], 'vad', ARGV[4])
  return redis.call('DEL', KEYS[1])
end
return 0`;

/** The last seqs a camera's owner recorded: a new owner continues after them. */
export interface CameraSeqs {
  frame: number;
  vad: number;
}

export interface LeaseEvents {
  /** The lease is ours (`token` its fencing token): start ingesting, continuing after `seqs`. */
  acquired(camera: string, token: number, seqs: CameraSeqs): void;
  /**
   * The lease had expired and this node took it again with a new token (Redis lost it): the
   * camera goes on, its messages carry the new token.
   */
  retaken(camera: string, token: number): void;
  /** The lease is another node's: stop ingesting at once. */
  lost(camera: string): void;
  /**
   * Whether a free lease may be taken now: not while the bus is down or Redis hangs, when a
   * camera taken could not be published (default: always).
   */
  mayAcquire?(): boolean;
  /** Where the camera's frame and VAD seqs are now, recorded at each renewal. */
  seqs(camera: string): CameraSeqs;
}

/**
 * Camera ownership: exactly one node ingests a camera, the one holding `fh:lease:<camera>`.
 * Every `periodMs / 3` a node renews the leases it holds and tries to take the free ones. A
 * dead owner's lease expires within one period, and another node takes it at its next try:
 * within `periodMs + periodMs / 3` of the last renewal. A renewal that finds another owner
 * stops the camera at once. A renewal that fails because Redis is unreachable keeps the camera
 * (local viewers keep their picture; nobody else can take a lease from an unreachable Redis
 * either): see README "Scaling out" for the partition case this leaves open.
 */
export class CameraLeases {
  private readonly held = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  /** After a reconnect, owners renew first: no new acquisition before this time. */
  private acquireAfter = 0;

  /**
   * The lease's value: the node id and this process's own nonce, so two processes started with
   * the same `--node-id` (a copied config) never both hold a camera.
   */
  private readonly holder: string;

  constructor(
    private readonly redis: RedisClient,
    private readonly nodeId: string,
    private readonly cameras: readonly string[],
    private readonly periodMs: number,
    private readonly events: LeaseEvents,
    private readonly log: Logger,
  ) {
    this.holder = `${nodeId}/${randomUUID().slice(0, 8)}`;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(this.periodMs / 3)));
    this.timer.unref();
    void this.tick();
  }

  /** Redis is back: let the previous owners renew (taking back their expired leases) first. */
  reconnected(): void {
    this.acquireAfter = Date.now() + this.graceMs();
  }

  /** Long enough for every owner to renew once: a third of the period, plus a round trip. */
  private graceMs(): number {
    return Math.floor(this.periodMs / 3) + 200;
  }

  /** The lease value this process writes (its node id and nonce). */
  get holderId(): string {
    return this.holder;
  }

  /** Cameras held, with their fencing tokens. */
  holding(): ReadonlyMap<string, number> {
    return this.held;
  }

  /** Stops renewing and gives every lease back. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(
      [...this.held.keys()].map((camera) =>
        this.redis.eval(RELEASE, 3, ...this.keys(camera), ...this.args(camera)).catch(() => {}),
      ),
    );
    this.held.clear();
  }

  private keys(camera: string): [string, string, string] {
    return [leaseKey(camera), fenceKey(camera), seqKey(camera)];
  }

  private args(camera: string): [string, number, number, number] {
    const s = this.events.seqs(camera);
    return [this.holder, this.periodMs, s.frame, s.vad];
  }

  private async tick(): Promise<void> {
    if (this.busy || this.redis.status !== 'ready') return;
    this.busy = true;
    try {
      for (const camera of this.cameras) {
        if (this.held.has(camera)) await this.renew(camera);
        else if (Date.now() >= this.acquireAfter && (this.events.mayAcquire?.() ?? true))
          await this.acquire(camera);
      }
    } finally {
      this.busy = false;
    }
  }

  private async renew(camera: string): Promise<void> {
    let result: unknown;
    try {
      result = await this.redis.eval(RENEW, 3, ...this.keys(camera), ...this.args(camera));
    } catch (err) {
      this.log.debug({ err, camera }, 'lease renewal failed (Redis unreachable): still ingesting');
      return;
    }
    if (result === 0) {
      this.held.delete(camera);
      this.log.warn({ camera, node: this.nodeId }, 'camera lease lost: stopped ingesting');
      this.events.lost(camera);
    } else if (Array.isArray(result)) {
      const token = Number(result[0]);
      this.held.set(camera, token);
      this.log.info({ camera, node: this.nodeId, token }, 'camera lease had expired: taken again');
      this.events.retaken(camera, token);
    }
  }

  private async acquire(camera: string): Promise<void> {
    let result: unknown;
    try {
      result = await this.redis.eval(
        ACQUIRE,
        4,
        ...this.keys(camera),
        graceKey(camera),
        this.holder,
        this.periodMs,
        this.graceMs(),
      );
    } catch {
      return;
    }
    if (!Array.isArray(result)) return;
    const [token, frame, vad] = result.map(Number) as [number, number, number];
    this.held.set(camera, token);
    this.log.info({ camera, node: this.nodeId, token }, 'camera lease taken: ingesting');
    this.events.acquired(camera, token, { frame, vad });
  }
}
