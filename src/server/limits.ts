export interface LimitOptions {
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** Sustained new viewer connections per second per IP (token bucket refill rate). */
  connectRatePerIp: number;
  /** Bucket size: connections an IP may open at once before the rate applies. */
  connectBurstPerIp: number;
}

export type LimitName = 'connections' | 'connections_per_ip' | 'connect_rate';

export type Admission =
  | { ok: true }
  | {
      ok: false;
      limit: LimitName;
      code: 'TOO_MANY_CONNECTIONS' | 'RATE_LIMITED';
      status: 503 | 429;
      retryAfterSeconds: number;
    };

interface IpState {
  open: number;
  tokens: number;
  refilledAt: number;
}

/**
 * A token bucket's level after `elapsedMs` at `ratePerSecond`, capped at `burst`. Never lower
 * than before: a clock that went back must not take tokens away.
 */
export function refilled(tokens: number, elapsedMs: number, ratePerSecond: number, burst: number): number {
  return Math.min(burst, tokens + (Math.max(0, elapsedMs) / 1000) * ratePerSecond);
}

/** Past this many tracked IPs, idle entries are swept at once (bounds memory under address spraying). */
const MAX_TRACKED_IPS = 100_000;

/**
 * Viewer connection limits shared by WS, SSE and MJPEG: total, per IP, and a per-IP
 * connect rate. admit() on connect and release() on close must pair up.
 */
export class ConnectionLimits {
  private open = 0;
  private readonly ips = new Map<string, IpState>();

  constructor(private readonly opts: LimitOptions) {}

  // Token buckets run on the monotonic clock: a wall-clock step back (NTP) must not drain them.
  admit(ip: string, now = performance.now()): Admission {
    if (this.open >= this.opts.maxConnections) {
      return {
        ok: false,
        limit: 'connections',
        code: 'TOO_MANY_CONNECTIONS',
        status: 503,
        retryAfterSeconds: 5,
      };
    }
    const state = this.ipState(ip, now);
    if (state.open >= this.opts.maxConnectionsPerIp) {
      return {
        ok: false,
        limit: 'connections_per_ip',
        code: 'TOO_MANY_CONNECTIONS',
        status: 429,
        retryAfterSeconds: 5,
      };
    }
    if (state.tokens < 1) {
      const wait = Math.ceil((1 - state.tokens) / this.opts.connectRatePerIp);
      return {
        ok: false,
        limit: 'connect_rate',
        code: 'RATE_LIMITED',
        status: 429,
        retryAfterSeconds: Math.max(1, wait),
      };
    }
    state.tokens -= 1;
    state.open++;
    this.open++;
    return { ok: true };
  }

  release(ip: string): void {
    const state = this.ips.get(ip);
    if (!state || state.open === 0) return;
    state.open--;
    this.open--;
  }

  get openConnections(): number {
    return this.open;
  }

  /** Forgets IPs with no open connection and a full bucket; called periodically. */
  sweep(now = performance.now()): void {
    for (const [ip, state] of this.ips) {
      this.refill(state, now);
      if (state.open === 0 && state.tokens >= this.opts.connectBurstPerIp) this.ips.delete(ip);
    }
  }

  private ipState(ip: string, now: number): IpState {
    let state = this.ips.get(ip);
    if (!state) {
      if (this.ips.size >= MAX_TRACKED_IPS) this.sweep(now);
      state = { open: 0, tokens: this.opts.connectBurstPerIp, refilledAt: now };
      this.ips.set(ip, state);
    }
    this.refill(state, now);
    return state;
  }

  private refill(state: IpState, now: number): void {
    state.tokens = refilled(
      state.tokens,
      now - state.refilledAt,
      this.opts.connectRatePerIp,
      this.opts.connectBurstPerIp,
    );
    state.refilledAt = now;
  }
}

/**
 * A plain count of open sockets, in total and per IP, with no rate: for sockets that are not
 * viewers yet (waiting for their token). Entries of IPs with nothing open are deleted at once,
 * so the map never holds more than `total` IPs.
 */
export class ConnectionBudget {
  private open = 0;
  private readonly perIp = new Map<string, number>();

  constructor(
    private readonly total: number,
    private readonly perIpMax: number,
  ) {}

  take(ip: string): boolean {
    const mine = this.perIp.get(ip) ?? 0;
    if (this.open >= this.total || mine >= this.perIpMax) return false;
    this.perIp.set(ip, mine + 1);
    this.open++;
    return true;
  }

  give(ip: string): void {
    const mine = this.perIp.get(ip);
    if (!mine) return;
    if (mine === 1) this.perIp.delete(ip);
    else this.perIp.set(ip, mine - 1);
    this.open--;
  }

  get size(): number {
    return this.open;
  }
}
