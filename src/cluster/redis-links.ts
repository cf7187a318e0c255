import { Cluster, Command, Redis } from 'ioredis';

/** A connection that runs commands: one Redis server, or a Redis Cluster routing by key. */
export type RedisClient = Redis | Cluster;

/**
 * How frames cross: `plain` is PUBLISH/SUBSCRIBE (one Redis server, or a Redis Cluster whose
 * servers lack sharded pub/sub, where every PUBLISH is broadcast to every cluster node);
 * `sharded` is SPUBLISH/SSUBSCRIBE (Redis 7 Cluster: a message stays in its channel's shard).
 */
export type PubSubMode = 'plain' | 'sharded';

/**
 * What the bus needs from Redis, whichever deployment it is: commands, pub/sub on channels,
 * subscriber counts over all of Redis, and the keys matching a pattern over all of Redis.
 */
export interface RedisLinks {
  /** The command connection: keys, scripts. */
  readonly cmd: RedisClient;
  /** Undefined until the first connect has found out. */
  readonly mode: PubSubMode | undefined;
  /** Both connections ready (commands and pub/sub). */
  up(): boolean;
  connect(): Promise<void>;
  disconnect(): void;
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  publish(channel: string, message: Buffer): Promise<unknown>;
  /** Subscribers of each channel, counted on every server that can hold one. */
  numsub(channels: string[]): Promise<Map<string, number>>;
  /** Every key matching `pattern`, on every server that holds keys. */
  scan(pattern: string): Promise<string[]>;
  /** Resolves when every server that holds keys or channels answers a PING. */
  ping(): Promise<void>;
  /** A message on a subscribed channel, as bytes. */
  onMessage(handler: (channel: Buffer, message: Buffer) => void): void;
  /** Up/down edges of `up()`; `closed` is a connection lost after it was ready (counted). */
  onChange(handler: (closed: boolean) => void): void;
}

const common = {
  // A Redis that accepts commands and never answers (stopped, swapping) must not hold them
  // forever: each fails after 2 s, so at most 2 s of frames are ever waiting for replies.
  commandTimeout: 2000,
  maxRetriesPerRequest: 0,
  // Subscriptions are the bus's to restore (on `ready`), with its current set.
  autoResubscribe: false,
};

const backoff = (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000);

/** Opens the links `cluster` asks for: `url` is one server, or a comma-separated list of cluster seeds. */
export function openRedisLinks(url: string, cluster: boolean, name: string): RedisLinks {
  return cluster ? new ClusterLinks(url, name) : new ServerLinks(url, name);
}

/** One Redis server: a command connection and a connection in subscriber mode. */
class ServerLinks implements RedisLinks {
  readonly cmd: Redis;
  private readonly sub: Redis;
  readonly mode = 'plain' as const;
  private changed: (closed: boolean) => void = () => {};

  constructor(url: string, name: string) {
    const options = {
      ...common,
      lazyConnect: true,
      // Fail fast while Redis is away: a frame is not queued for later, it is simply not sent.
      enableOfflineQueue: false,
      retryStrategy: backoff,
    };
    this.cmd = new Redis(url, { ...options, connectionName: `framehub:${name}` });
    this.sub = new Redis(url, { ...options, connectionName: `framehub-sub:${name}` });
    for (const conn of [this.cmd, this.sub]) {
      let ready = false;
      conn.on('ready', () => {
        ready = true;
        this.changed(false);
      });
      conn.on('close', () => {
        const was = ready;
        ready = false;
        this.changed(was);
      });
      // ioredis reports every failed reconnect; the bus's state change says it once.
      conn.on('error', () => {});
    }
  }

  up(): boolean {
    return this.cmd.status === 'ready' && this.sub.status === 'ready';
  }

  async connect(): Promise<void> {
    await Promise.all([this.cmd.connect().catch(() => {}), this.sub.connect().catch(() => {})]);
  }

  disconnect(): void {
    this.cmd.disconnect();
    this.sub.disconnect();
  }

  subscribe(channel: string) {
    return this.sub.subscribe(channel);
  }

  unsubscribe(channel: string) {
    return this.sub.unsubscribe(channel);
  }

  publish(channel: string, message: Buffer) {
    return this.cmd.publish(channel, message);
  }

  async numsub(channels: string[]): Promise<Map<string, number>> {
    return countReply(await this.cmd.call('PUBSUB', 'NUMSUB', ...channels));
  }

  scan(pattern: string): Promise<string[]> {
    return scanServer(this.cmd, pattern);
  }

  async ping(): Promise<void> {
    await this.cmd.ping();
  }

  onMessage(handler: (channel: Buffer, message: Buffer) => void): void {
    this.sub.on('messageBuffer', handler);
  }

  onChange(handler: (closed: boolean) => void): void {
    this.changed = handler;
  }
}

/**
 * A Redis Cluster. Commands route by key (the lease scripts' keys share a hash tag). Pub/sub is
 * sharded when the servers have SPUBLISH (Redis 7): ioredis keeps one subscriber connection
 * per shard, and a message is copied only inside its channel's shard. Without it, plain pub/sub
 * on one subscriber connection, with every PUBLISH broadcast over the whole cluster.
 */
class ClusterLinks implements RedisLinks {
  readonly cmd: Cluster;
  /** Decided once, at the first connect that could ask every master; kept across reconnects. */
  mode: PubSubMode | undefined;
  private ready = false;
  private detecting = false;
  private readonly retry: NodeJS.Timeout;
  /** Subscriber connections already watched for `close` (ioredis makes new ones as shards move). */
  private readonly watched = new WeakSet<Redis>();
  /** Channels subscribed through ioredis (see subscribe). */
  private readonly channels = new Set<string>();
  private changed: (closed: boolean) => void = () => {};

  constructor(url: string, name: string) {
    const seeds = url.split(',').map((u) => new URL(u.trim()));
    const first = seeds[0]!;
    this.cmd = new Cluster(
      // An IPv6 host keeps its brackets in a URL, not in a socket address.
      seeds.map((u) => ({ host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port || 6379) })),
      {
        lazyConnect: true,
        enableOfflineQueue: false,
        shardedSubscribers: true,
        clusterRetryStrategy: backoff,
        redisOptions: {
          ...common,
          connectionName: `framehub:${name}`,
          username: decodeURIComponent(first.username) || undefined,
          password: decodeURIComponent(first.password) || undefined,
          tls: first.protocol === 'rediss:' ? {} : undefined,
        },
      },
    );
    this.cmd.on('ready', () => void this.detect());
    this.cmd.on('close', () => {
      const was = this.ready;
      this.ready = false;
      this.changed(was);
    });
    this.cmd.on('error', () => {});
    this.cmd.on('nodeError', () => {});
    // A master that did not answer the detection is asked again: the Cluster may stay `ready`
    // and never say so a second time.
    this.retry = setInterval(() => {
      if (!this.ready && this.cmd.status === 'ready') void this.detect();
      this.watchSubscribers();
    }, 1000);
    this.retry.unref();
  }

  /**
   * Whether every master has sharded pub/sub (SPUBLISH is a known command: Redis ≥ 7). Nodes
   * that chose differently (a mixed 6/7 cluster) would not hear each other, so it is every
   * master or none, decided once.
   */
  private async detect(): Promise<void> {
    if (this.detecting || this.ready) return;
    this.detecting = true;
    try {
      if (this.mode === undefined) {
        const masters = this.cmd.nodes('master');
        const infos = await Promise.all(masters.map((m) => m.call('COMMAND', 'INFO', 'SPUBLISH')));
        const sharded = infos.every((info) => Array.isArray(info) && info[0]);
        this.mode = masters.length > 0 && sharded ? 'sharded' : 'plain';
      }
      this.ready = true;
      this.watchSubscribers();
      this.changed(false);
    } catch {
      // A master did not answer: the timer asks again.
    } finally {
      this.detecting = false;
    }
  }

  /**
   * The subscriber connections (one per shard, or the one of plain pub/sub) reconnect inside
   * ioredis, which tells the Cluster nothing: each one lost after it was ready is reported as a
   * disconnect (Redis dropping it over its output-buffer limit, a master restarting). They are
   * reached through ioredis internals, pinned with the version.
   */
  private watchSubscribers(): void {
    const internals = this.cmd as unknown as {
      subscriber?: { getInstance(): Redis | undefined };
      shardedSubscribers?: { shardedSubscribers?: Map<string, { getInstance(): Redis | null }> };
    };
    const connections = [
      internals.subscriber?.getInstance(),
      ...[...(internals.shardedSubscribers?.shardedSubscribers?.values() ?? [])].map((s) => s.getInstance()),
    ];
    for (const conn of connections) {
      if (!conn || this.watched.has(conn)) continue;
      this.watched.add(conn);
      let ready = conn.status === 'ready';
      conn.on('ready', () => {
        ready = true;
      });
      conn.on('close', () => {
        if (ready) this.changed(true);
        ready = false;
      });
    }
  }

  up(): boolean {
    return this.ready && this.cmd.status === 'ready';
  }

  async connect(): Promise<void> {
    await this.cmd.connect().catch(() => {});
  }

  disconnect(): void {
    clearInterval(this.retry);
    this.cmd.disconnect();
  }

  /**
   * Sharded: once per channel. ioredis records a sharded channel when it sends SSUBSCRIBE and
   * restores it on every reconnect itself (appending a channel subscribed twice to its list
   * again), so the bus's own re-subscribe on every up edge is skipped. Plain: always sent, since
   * ioredis restores only what Redis acknowledged.
   */
  subscribe(channel: string) {
    if (this.mode !== 'sharded') return this.cmd.subscribe(channel);
    if (this.channels.has(channel)) return Promise.resolve();
    this.channels.add(channel);
    return this.cmd.ssubscribe(channel).catch((err: unknown) => {
      this.channels.delete(channel);
      throw err;
    });
  }

  unsubscribe(channel: string) {
    if (this.mode !== 'sharded') return this.cmd.unsubscribe(channel);
    this.channels.delete(channel);
    return this.cmd.sunsubscribe(channel);
  }

  publish(channel: string, message: Buffer) {
    return this.mode === 'sharded' ? this.cmd.spublish(channel, message) : this.cmd.publish(channel, message);
  }

  /**
   * Sharded: each channel asked of the master that owns its slot (a server counts only its own
   * clients' subscriptions), one command per shard; a shard that does not answer leaves its
   * channels out of the reply (the bus keeps their last counts). Plain: summed over every node,
   * since a subscriber may be connected to any; all of them must answer.
   */
  async numsub(channels: string[]): Promise<Map<string, number>> {
    const total = new Map<string, number>();
    if (this.mode !== 'sharded') {
      const replies = await Promise.all(
        this.cmd.nodes('all').map((node) => node.call('PUBSUB', 'NUMSUB', ...channels).then(countReply)),
      );
      for (const counts of replies)
        for (const [channel, n] of counts) total.set(channel, (total.get(channel) ?? 0) + n);
      return total;
    }
    const masters = new Map(this.cmd.nodes('master').map((m) => [`${m.options.host}:${m.options.port}`, m]));
    const byShard = new Map<Redis, string[]>();
    for (const channel of channels) {
      const owner = this.cmd.slots[new Command('spublish', [channel, '']).getSlot() ?? -1]?.[0];
      const master = owner === undefined ? undefined : masters.get(owner);
      if (master) byShard.set(master, [...(byShard.get(master) ?? []), channel]);
    }
    const replies = await Promise.allSettled(
      [...byShard].map(([master, chs]) => master.call('PUBSUB', 'SHARDNUMSUB', ...chs).then(countReply)),
    );
    for (const reply of replies)
      if (reply.status === 'fulfilled') for (const [c, n] of reply.value) total.set(c, n);
    return total;
  }

  async scan(pattern: string): Promise<string[]> {
    const perNode = await Promise.all(this.cmd.nodes('master').map((node) => scanServer(node, pattern)));
    return perNode.flat();
  }

  /** Every master: one that is down takes its shard's topics and keys with it (see README). */
  async ping(): Promise<void> {
    await Promise.all(this.cmd.nodes('master').map((node) => node.ping()));
  }

  onMessage(handler: (channel: Buffer, message: Buffer) => void): void {
    this.cmd.on('messageBuffer', handler);
    this.cmd.on('smessageBuffer', handler);
  }

  onChange(handler: (closed: boolean) => void): void {
    this.changed = handler;
  }
}

/** `PUBSUB NUMSUB` / `SHARDNUMSUB`'s flat reply as channel → subscribers. */
function countReply(reply: unknown): Map<string, number> {
  const flat = reply as (string | number)[];
  const counts = new Map<string, number>();
  for (let i = 0; i + 1 < flat.length; i += 2) counts.set(String(flat[i]), Number(flat[i + 1]));
  return counts;
}

async function scanServer(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 200);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}
