import { randomUUID } from 'node:crypto';
import type { HistoryEntry } from '../hub/history.js';
import type { Frame, Hub, RecordSink } from '../hub/hub.js';
import { parseTopic } from '../hub/topics.js';
import type { VideoItem } from '../hub/video-track.js';
import { FRAME_VARIANTS } from '../image/variant-names.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { decodeUntrusted, type FrameRecord } from '../wire/records.js';
import type { BusHooks, ClusterBus, ClusterNodeStatus, ClusterStatus } from './bus.js';
import { openRedisLinks, type RedisClient, type RedisLinks } from './redis-links.js';

/** A topic's pub/sub channel. */
const channelOf = (topic: string) => `fh:t:${topic}`;
const CHANNEL_PREFIX = 'fh:t:';
/** Where a node that just subscribed a topic says so, so the owner publishes at once. */
const CONTROL = 'fh:ctl';
const latestKey = (topic: string) => `fh:latest:${topic}`;
/** A live video topic's current init segment, for a node whose first viewer joins mid-stream. */
const initKey = (topic: string) => `fh:init:${topic}`;
const nodeKey = (id: string) => `fh:node:${id}`;
/** How often demand is reconciled (PUBSUB NUMSUB, idle unsubscribes) and the heartbeat written. */
const TICK_MS = 1000;
/** A `want` on the control channel counts as demand this long, until NUMSUB confirms it. */
const WANT_GRACE_MS = 2500;
/** The latest frame of a topic is written to Redis at most this often. */
const LATEST_EVERY_MS = 500;
/** A message's fencing token: 8 bytes, as the lease's tokens start from Redis's clock in µs. */
const TOKEN_BYTES = 8;
const MAX_TOKEN = BigInt(Number.MAX_SAFE_INTEGER);

export interface RedisBusOptions {
  /** One server's URL, or (with `redisCluster`) a comma-separated list of cluster seeds. */
  url: string;
  /** The URL names a Redis Cluster: keys route by slot, pub/sub is sharded when the servers have it. */
  redisCluster?: boolean;
  nodeId?: string | undefined;
  /** Whether this node may take cameras (false: a pure edge); shown in its heartbeat. */
  ingest: boolean;
  hub: Hub;
  metrics: Metrics;
  log: Logger;
  hooks: BusHooks;
  /** Push cameras: no lease, their frames publish wherever their publisher is. */
  pushCameras: readonly string[];
  latestFrameTtlMs: number;
  /** jobs.ttlSeconds in ms: a finished remote job's topic is forgotten here after it, as on its node. */
  jobTtlMs?: number;
  /** Called on every reconnect (leases renew before anyone tries a new acquisition). */
  onReconnect?: () => void;
  /**
   * A frame of a push camera came from another node, with its seq: the daemon's ingest numbers
   * this node's own next frame of that camera after it, should the publisher move here.
   */
  onRemoteSeq?: (camera: string, seq: number) => void;
}

/** A local job topic is polled for remote demand this long after its last event. */
const JOB_POLL_MS = 10 * 60_000;
/** `system` events of these kinds stay on their node: each node says its own bus state. */
const NODE_LOCAL_SYSTEM = new Set(['bus_up', 'bus_down']);

/**
 * What crosses Redis: a camera's frame variants, VAD events and live video (one owner: the
 * lease holder, or a push camera's publisher), job events (the node running the job), and
 * `system` events (every node; re-numbered by each receiver, since several nodes write it).
 */
type Crossing =
  | { kind: 'frame' | 'vad' | 'video'; camera: string }
  | { kind: 'job'; camera?: undefined }
  | { kind: 'system'; camera?: undefined };

/**
 * The fields of a frame from Redis that other transports use as they are: `mime` goes into
 * MJPEG part and snapshot headers, the size into records. Only what this daemon itself sends.
 */
function plausibleFrame(d: Record<string, unknown>): boolean {
  return d.mime === 'image/jpeg' && side(d.width) && side(d.height);
}

/** A live video init or fragment from Redis: the codec string a player is given, its size, its time. */
function plausibleVideo(d: Record<string, unknown>): boolean {
  if (d.type === 'fragment') return Number.isFinite(d.pts);
  return (
    typeof d.codec === 'string' &&
    /^avc[13]\.[0-9A-Fa-f]{6}$/.test(d.codec) &&
    side(d.width) &&
    side(d.height)
  );
}

const side = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0 && (v as number) <= 65_535;

const FINAL_JOB_STATES = new Set<unknown>(['done', 'failed', 'cancelled']);

function crossing(topic: string): Crossing | undefined {
  const t = parseTopic(topic);
  if (!t) return undefined;
  if (t.kind === 'frame' || t.kind === 'vad' || t.kind === 'video') return { kind: t.kind, camera: t.camera };
  if (t.kind === 'job' || t.kind === 'system') return { kind: t.kind };
  return undefined;
}

const cameraTopics = (camera: string) => [
  ...FRAME_VARIANTS.map((v) => `cam/${camera}/${v}`),
  `cam/${camera}/vad`,
  `cam/${camera}/video`,
];

/**
 * The Redis bus. Two connections: one for commands (PUBLISH, SET, the lease scripts) and one
 * in subscriber mode. Demand decides everything that crosses:
 *
 * - A node SUBSCRIBEs `fh:t:<topic>` when a local viewer first receives a topic it does not
 *   make itself (ViewerContext.demand): a frame variant, VAD or live video of a camera another
 *   node ingests, a job's events, `system`. It GETs a frame topic's latest frame (a video
 *   topic's init) for a first frame at once, and says `want` on `fh:ctl`. Once a second it UNSUBSCRIBEs topics no local viewer
 *   receives any more (so a channel outlives its last viewer by up to 1 s).
 * - The owner PUBLISHes a topic only while another node subscribes it: `PUBSUB NUMSUB` over its
 *   cameras' topics, its recent job topics and `system`, one command a second (stale by up to 1 s: a topic a remote viewer left is
 *   published up to 1 s longer), made immediate for new demand by the `want` message. The
 *   same demand makes its FrameIngest produce the variant.
 * - A message is `[n][n bytes of origin: node id and process nonce][8 bytes: the owner's fencing token][record]`:
 *   the record is the hub's msgpack bytes as they are (frames: the WS frame record; events: the
 *   event record). The receiver decodes it once to rebuild the Frame and publishes it into its
 *   own hub with the owner's seq. A new token for a camera (a new owner) restarts its topics in
 *   the receiver's hub, so a new owner that numbers lower is still heard (an epoch change).
 */
export class RedisBus implements ClusterBus, RecordSink {
  readonly nodeId: string;
  private readonly origin: string;
  private readonly header: Buffer;
  private readonly links: RedisLinks;
  /** Topics whose channel this node subscribes (local viewers, camera ingested elsewhere). */
  private readonly subscribed = new Set<string>();
  /** Cameras this node ingests (holds the lease of). */
  private readonly owned = new Set<string>();
  /** Topic → other nodes subscribing it, from the last NUMSUB. */
  private readonly numsub = new Map<string, number>();
  /** Topic → when another node last said `want`. */
  private readonly wantedAt = new Map<string, number>();
  private readonly latestSetAt = new Map<string, number>();
  /** Camera → the fencing token of its lease here (owned cameras); push cameras send 0. */
  private readonly tokens = new Map<string, number>();
  /** Camera → the token of the last message taken from it, and when. */
  private readonly heard = new Map<string, { token: number; origin: string; at: number }>();
  /** Job topics this node published events of, and when last: polled for remote demand. */
  private readonly localJobs = new Map<string, number>();
  /** True while a remote `system` event is re-published here: the sink must not send it back. */
  private delivering = false;
  private readonly pushCameras: Set<string>;
  private timer: NodeJS.Timeout | undefined;
  /** Two PINGs in a row unanswered for the command timeout: Redis is hung (stopped, swapping), taken as down. */
  private hung = false;
  private missedPings = 0;
  private pinging = false;
  private beating = false;
  private counting = false;
  private beatAgain = false;
  private wasUp = false;
  /** Set at the first connect: only a later one is a reconnect. */
  private everUp = false;
  private stopped = false;
  private readonly out;
  private readonly in;

  constructor(private readonly opts: RedisBusOptions) {
    this.nodeId = opts.nodeId ?? randomUUID().slice(0, 8);
    // The node id and a nonce of this process: a restarted process (same id) is another origin.
    this.origin = `${this.nodeId}/${randomUUID().slice(0, 8)}`;
    const id = Buffer.from(this.origin);
    this.header = Buffer.concat([Buffer.from([id.length]), id]);
    this.pushCameras = new Set(opts.pushCameras);
    // Events of a camera or a job may now be numbered elsewhere: a resume may have to wait for
    // the next one to know what the client missed (Hub.nextSeqUnknown).
    opts.hub.clustered = true;
    this.out = opts.metrics.busMessages.labels('out');
    this.in = opts.metrics.busMessages.labels('in');
    this.links = openRedisLinks(opts.url, opts.redisCluster === true, this.nodeId);
    this.links.onChange((closed) => {
      if (closed) {
        opts.metrics.busDisconnects.inc();
        opts.log.warn({ node: this.nodeId }, 'cluster: a Redis connection closed (reconnecting)');
        // Events published until it is back never reach this node (a Redis Cluster's subscriber
        // may drop while the bus stays up): a resume must not take history as complete.
        for (const topic of this.subscribed) opts.hub.interruptTopic(topic);
      }
      this.stateChanged();
    });
    this.links.onMessage((channel, message) => this.onMessage(channel, message));
  }

  /** The command connection, for the camera leases and the job directory. */
  get redis(): RedisClient {
    return this.links.cmd;
  }

  up(): boolean {
    return this.links.up() && !this.hung;
  }

  /** Connects (waiting at most 2 s: a node starts without Redis and connects later). */
  async start(): Promise<void> {
    this.opts.metrics.busUp.set(0);
    await Promise.race([this.links.connect(), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    this.stateChanged();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.up()) await this.redis.del(nodeKey(this.nodeId)).catch(() => {});
    this.links.disconnect();
  }

  wanted(topic: string): void {
    const c = crossing(topic);
    if (!c || (c.camera !== undefined && this.owned.has(c.camera)) || this.subscribed.has(topic)) return;
    this.subscribed.add(topic);
    if (this.up()) void this.subscribeTopic(topic);
  }

  async freshen(topic: string): Promise<void> {
    const c = crossing(topic);
    if (c?.kind !== 'frame' || this.owned.has(c.camera!) || this.subscribed.has(topic) || !this.up()) return;
    try {
      const latest = await this.redis.getBuffer(latestKey(topic));
      // An older frame than the hub's is dropped there as stale.
      if (latest) this.deliver(topic, latest, true);
    } catch {
      // Redis went away meanwhile: the snapshot answers from what this node has.
    }
  }

  remoteDemand(topic: string): boolean {
    if ((this.numsub.get(topic) ?? 0) > 0) return true;
    const at = this.wantedAt.get(topic);
    return at !== undefined && Date.now() - at < WANT_GRACE_MS;
  }

  setOwned(camera: string, owned: boolean, token = 0): void {
    // This node starts or stops numbering the camera's VAD: what its history holds is not known
    // to continue into the next event. (A new token for a camera held already is not a change.)
    if (owned !== this.owned.has(camera)) this.opts.hub.interruptTopic(`cam/${camera}/vad`);
    if (owned) {
      this.owned.add(camera);
      this.tokens.set(camera, token);
      for (const topic of cameraTopics(camera)) {
        if (!this.subscribed.delete(topic)) continue;
        this.links.unsubscribe(channelOf(topic)).catch(() => {});
      }
    } else {
      this.owned.delete(camera);
      this.tokens.delete(camera);
      for (const topic of cameraTopics(camera)) {
        this.numsub.delete(topic);
        if (this.opts.hooks.localSubscribers(topic) > 0) this.wanted(topic);
      }
    }
    // The status API of every node shows the change now, not at the next tick.
    if (this.up()) this.heartbeat();
  }

  async status(): Promise<ClusterStatus> {
    const nodes: ClusterNodeStatus[] = [];
    if (this.up()) {
      try {
        const keys = await this.links.scan('fh:node:*');
        // One GET per key: in a Redis Cluster the keys live on different shards.
        const values = await Promise.all(keys.map((key) => this.redis.get(key)));
        for (const v of values) if (v) nodes.push(JSON.parse(v) as ClusterNodeStatus);
        nodes.sort((a, b) => a.id.localeCompare(b.id));
      } catch (err) {
        this.opts.log.debug({ err }, 'cluster status: could not read the nodes');
      }
    }
    return {
      nodeId: this.nodeId,
      busUp: this.up(),
      pubsub: this.links.mode,
      ingesting: [...this.owned].sort(),
      nodes,
    };
  }

  // RecordSink: what this node's hub publishes, sent on when another node wants it.

  publishFrame(frame: Frame): void {
    if (frame.remote || !this.up()) return;
    const now = Date.now();
    const demanded = this.remoteDemand(frame.topic);
    const due = now - (this.latestSetAt.get(frame.topic) ?? 0) >= LATEST_EVERY_MS;
    if (!demanded && !due) return;
    const message = this.message(frame.topic, frame.record);
    if (demanded) this.send(frame.topic, message);
    if (due) {
      this.latestSetAt.set(frame.topic, now);
      this.redis.set(latestKey(frame.topic), message, 'PX', this.opts.latestFrameTtlMs).catch(() => {});
    }
  }

  publishEvent(entry: HistoryEntry): void {
    if (entry.remote || this.delivering) return;
    const c = crossing(entry.topic);
    if (!c || c.kind === 'frame' || c.kind === 'video') return;
    if (c.kind === 'job') this.localJobs.set(entry.topic, Date.now());
    if (
      c.kind === 'system' &&
      NODE_LOCAL_SYSTEM.has(String((JSON.parse(entry.json) as { kind?: unknown }).kind))
    )
      return;
    if (!this.up() || !this.remoteDemand(entry.topic)) return;
    this.send(entry.topic, this.message(entry.topic, entry.msgpack));
  }

  /** Origin, token, then the record's bytes as the hub has them (one copy, no re-encode). */
  private message(topic: string, record: Uint8Array): Buffer {
    const token = Buffer.allocUnsafe(TOKEN_BYTES);
    token.writeBigUInt64BE(BigInt(this.tokens.get(crossing(topic)?.camera ?? '') ?? 0));
    return Buffer.concat([this.header, token, record]);
  }

  /**
   * Live video: each init is also kept in Redis (re-written every tick while the track has it),
   * so a node whose first viewer joins mid-stream can start at the next keyframe.
   */
  publishVideo(item: VideoItem): void {
    if (item.remote || !this.up()) return;
    if (item.kind === 'init') this.storeInit(item);
    if (this.remoteDemand(item.topic)) this.send(item.topic, this.message(item.topic, item.record));
  }

  private storeInit(init: VideoItem): void {
    const ttl = Math.max(10 * TICK_MS, this.opts.latestFrameTtlMs);
    this.redis.set(initKey(init.topic), this.message(init.topic, init.record), 'PX', ttl).catch(() => {});
  }

  private send(topic: string, message: Buffer): void {
    this.out.inc();
    this.links.publish(channelOf(topic), message).catch(() => {});
  }

  private async subscribeTopic(topic: string): Promise<void> {
    try {
      await this.links.subscribe(channelOf(topic));
      // Subscribed first, then the latest frame: nothing published in between is missed (an
      // older latest frame is then dropped by the hub as stale).
      const kind = crossing(topic)?.kind;
      if (kind === 'frame' || kind === 'video') {
        const latest = await this.redis.getBuffer(kind === 'frame' ? latestKey(topic) : initKey(topic));
        if (latest && this.subscribed.has(topic)) this.deliver(topic, latest, true);
      }
      // The sender's header first: the node that sends a want must not take it as demand itself
      // (a push camera's publishing node also subscribes its channel while it has viewers).
      await this.links.publish(CONTROL, Buffer.concat([this.header, Buffer.from(topic)]));
    } catch (err) {
      // Redis went away meanwhile: `ready` subscribes every wanted topic again.
      this.opts.log.debug({ err, topic }, 'cluster: subscribe failed; retried on reconnect');
    }
  }

  private onMessage(channel: Buffer, message: Buffer): void {
    const name = channel.toString();
    if (name === CONTROL) {
      const idLength = message[0] ?? 0;
      if (message.toString('utf8', 1, 1 + idLength) === this.origin) return;
      const topic = message.toString('utf8', 1 + idLength);
      const c = crossing(topic);
      // A job topic is taken whether or not its job has published yet: a viewer may subscribe
      // as soon as it has the id, before the job's first event on whichever node runs it.
      const ours =
        c?.camera !== undefined
          ? this.owned.has(c.camera) || this.pushCameras.has(c.camera)
          : c !== undefined;
      if (ours) this.wantedAt.set(topic, Date.now());
      return;
    }
    if (!name.startsWith(CHANNEL_PREFIX)) return;
    this.deliver(name.slice(CHANNEL_PREFIX.length), message, false);
  }

  /** Publishes a message from another node into this node's hub, with the owner's seq. */
  private deliver(topic: string, message: Buffer, fromLatest: boolean): void {
    const idLength = message[0] ?? 0;
    const origin = message.toString('utf8', 1, 1 + idLength);
    // A node's own message comes back only for a push camera it both publishes and watches.
    if (!fromLatest && origin === this.origin) return;
    if (message.length < 1 + idLength + TOKEN_BYTES) return;
    const token = message.readBigUInt64BE(1 + idLength);
    if (token > MAX_TOKEN) return;
    const record = message.subarray(1 + idLength + TOKEN_BYTES);
    const c = crossing(topic);
    try {
      // Redis is a trust boundary (anyone who can write to it reaches every node's viewers):
      // the same scan and limits as a client's message, and the fields every kind relies on.
      const decoded = decodeUntrusted(record) as Record<string, unknown>;
      if (decoded.topic !== topic || !Number.isSafeInteger(decoded.seq) || typeof decoded.type !== 'string')
        return;
      if ((c?.kind === 'frame' || c?.kind === 'video') && !(decoded.data instanceof Uint8Array)) return;
      if (!Number.isFinite(decoded.ts)) return;
      if (c?.kind === 'frame' && !plausibleFrame(decoded)) return;
      if (c?.kind === 'video' && !plausibleVideo(decoded)) return;
      // Only a message that passed every check may tell who owns the camera.
      if (c?.camera !== undefined && !this.sameOwner(c.camera, Number(token), origin)) return;
      this.in.inc();
      if (c?.kind === 'video') {
        this.deliverVideo(decoded, record);
      } else if (c?.kind === 'system') {
        // Several nodes write `system`: each receiver numbers the event in its own sequence.
        const { topic: _topic, seq: _seq, ...body } = decoded;
        this.delivering = true;
        try {
          this.opts.hub.publishEvent('system', {
            ...(body as { type: string }),
            node: origin.split('/')[0],
          });
        } finally {
          this.delivering = false;
        }
      } else if (decoded.type === 'frame') {
        const f = decoded as unknown as FrameRecord;
        if (this.pushCameras.has(c!.camera!)) this.opts.onRemoteSeq?.(c!.camera!, f.seq);
        this.opts.hub.publishFrame({
          topic,
          seq: f.seq,
          ts: f.ts,
          width: f.width,
          height: f.height,
          mime: f.mime,
          data: f.data,
          record,
          remote: true,
        });
      } else {
        this.opts.hub.publishRemoteEvent(topic, decoded.seq as number, record, decoded as { type: string });
        if (c?.kind === 'job' && FINAL_JOB_STATES.has(decoded.state)) this.forgetJobLater(topic);
      }
    } catch (err) {
      this.opts.log.warn({ err, topic }, 'cluster: undecodable message ignored');
    }
  }

  /**
   * A remote job's last event: its topic's history and seq are dropped here `jobTtlMs` later,
   * as the job's own node does, or every job a viewer here watched would stay in memory.
   */
  private forgetJobLater(topic: string): void {
    setTimeout(() => this.opts.hub.forgetTopic(topic), this.opts.jobTtlMs ?? 3_600_000).unref();
  }

  /** An init or fragment of another node's live video, into this node's track with its seq. */
  private deliverVideo(d: Record<string, unknown>, record: Uint8Array): void {
    const base = {
      topic: d.topic as string,
      seq: d.seq as number,
      ts: d.ts as number,
      data: d.data as Uint8Array,
    };
    if (d.type === 'init') {
      this.opts.hub.publishRemoteVideo({
        kind: 'init',
        ...base,
        codec: d.codec as string,
        width: d.width as number,
        height: d.height as number,
        record,
        encodings: new Map(),
        remote: true,
      });
    } else if (d.type === 'fragment') {
      this.opts.hub.publishRemoteVideo({
        kind: 'fragment',
        ...base,
        pts: d.pts as number,
        keyframe: d.keyframe === true,
        record,
        encodings: new Map(),
        remote: true,
      });
    }
  }

  /**
   * Whether a message of `camera` with `token` is taken. A new owner's token restarts the
   * camera's topics here (its seq may start lower: Redis restarted empty). A lower token while
   * the current owner is heard from (within 1 s) is a late message of the previous owner,
   * which may publish until its next renewal tells it the lease is gone: dropped.
   */
  private sameOwner(camera: string, token: number, origin: string): boolean {
    const now = Date.now();
    const heard = this.heard.get(camera);
    // A push camera has no lease (token 0): its owner is the node its publisher is on, and a
    // publisher that moves (a reconnect through a load balancer) makes a new owner, taken once
    // the previous one has been silent 1 s (two publishers at once would otherwise flap).
    const moved = heard !== undefined && this.pushCameras.has(camera) && heard.origin !== origin;
    if (heard && (heard.token !== token || moved)) {
      if ((token < heard.token || moved) && now - heard.at < 1000) return false;
      // The same process with a new token took its own lease again (Redis lost it): its
      // numbering, its video init and its history go on, so nothing restarts.
      if (heard.origin !== origin) {
        for (const t of cameraTopics(camera)) this.opts.hub.restartTopic(t);
        this.opts.log.info({ camera, token, origin }, 'cluster: camera has a new owner');
      }
    }
    this.heard.set(camera, { token, origin, at: now });
    return true;
  }

  /** Up/down edges: metrics, the `system` event, and restoring subscriptions after a reconnect. */
  private stateChanged(): void {
    if (this.stopped) return;
    const up = this.up();
    this.opts.metrics.busUp.set(up ? 1 : 0);
    if (up === this.wasUp) return;
    this.wasUp = up;
    const kind = up ? 'bus_up' : 'bus_down';
    if (up) {
      this.opts.log.info({ node: this.nodeId }, 'cluster bus up');
      this.links.subscribe(CONTROL).catch(() => {});
      for (const topic of this.subscribed) void this.subscribeTopic(topic);
      if (this.everUp) this.opts.onReconnect?.();
      this.everUp = true;
      this.tick();
    } else {
      this.opts.log.warn({ node: this.nodeId }, 'cluster bus down: remote cameras stop until Redis is back');
      this.numsub.clear();
      // Events published meanwhile never reach this node: its history of them stops here.
      for (const topic of this.subscribed) this.opts.hub.interruptTopic(topic);
    }
    this.opts.hub.publishEvent('system', { type: 'system', kind, node: this.nodeId });
  }

  /** Once a second: Redis pinged, idle channels dropped, remote demand polled, heartbeat written. */
  private tick(): void {
    this.watch();
    if (!this.up()) return;
    for (const topic of this.subscribed) {
      if (this.opts.hooks.localSubscribers(topic) > 0) continue;
      this.subscribed.delete(topic);
      this.links.unsubscribe(channelOf(topic)).catch(() => {});
      // Its later events are not recorded here: a resume on it waits for the next one it gets.
      this.opts.hub.interruptTopic(topic);
    }
    const now = Date.now();
    for (const [topic, at] of this.localJobs) if (now - at > JOB_POLL_MS) this.localJobs.delete(topic);
    for (const [topic, at] of this.wantedAt) if (now - at > WANT_GRACE_MS) this.wantedAt.delete(topic);
    const topics = [
      ...[...this.owned, ...this.pushCameras].flatMap(cameraTopics),
      ...this.localJobs.keys(),
      'system',
    ];
    // An init outlives its key only while the track still has it (a stopped camera's expires).
    for (const camera of this.owned) {
      const init = this.opts.hub.videoTrack(`cam/${camera}/video`)?.init;
      if (init) this.storeInit(init);
    }
    if (topics.length && !this.counting) {
      this.counting = true;
      this.links
        .numsub(topics.map(channelOf))
        .then((counts) => {
          // Rebuilt over the topics polled, so the ones no longer polled (old jobs) are
          // forgotten; a topic the reply lacks (its shard did not answer) keeps its last count.
          const last = new Map(this.numsub);
          this.numsub.clear();
          for (const topic of topics) {
            const n = counts.get(channelOf(topic));
            const count = n === undefined ? last.get(topic) : n - (this.subscribed.has(topic) ? 1 : 0);
            if (count !== undefined) this.numsub.set(topic, count);
          }
        })
        .catch(() => {})
        .finally(() => {
          // One poll at a time: a slow reply must not land after a newer one.
          this.counting = false;
        });
    }
    this.heartbeat();
  }

  /**
   * A connection can stay open to a Redis that answers nothing (SIGSTOP, swap death): ioredis
   * then never says `close`. Two PINGs in a row unanswered within the command timeout (2 s
   * each) mark the bus down (`bus_down`, `/readyz` degraded) until one is answered again; one
   * alone may be this process's own event loop stalling past the timeout. On a Redis Cluster
   * every master is pinged: one that is down holds a share of the topics.
   */
  private watch(): void {
    if (this.pinging || !this.links.up()) return;
    this.pinging = true;
    this.links
      .ping()
      .then(
        () => {
          this.missedPings = 0;
          this.setHung(false);
        },
        () => {
          this.missedPings++;
          if (this.missedPings >= 2) this.setHung(true);
        },
      )
      .finally(() => {
        this.pinging = false;
      });
  }

  private setHung(hung: boolean): void {
    if (hung === this.hung) return;
    this.hung = hung;
    if (hung) this.opts.log.warn({ node: this.nodeId }, 'cluster: Redis does not answer (PING timed out)');
    this.stateChanged();
  }

  /**
   * `fh:node:<id>`: what this node ingests and serves, gone 3 s after its last write. One write
   * at a time, the next one taking the state of its own moment: two in flight can land out of
   * order (a Redis Cluster client retries one while its slot map loads), and an older state
   * would then stand for a second.
   */
  private heartbeat(): void {
    if (this.beating) {
      this.beatAgain = true;
      return;
    }
    this.beating = true;
    const heartbeat: ClusterNodeStatus = {
      id: this.nodeId,
      cameras: [...this.owned].sort(),
      viewers: this.opts.hooks.viewers(),
      ingest: this.opts.ingest,
    };
    this.redis
      .set(nodeKey(this.nodeId), JSON.stringify(heartbeat), 'PX', 3 * TICK_MS)
      .catch(() => {})
      .finally(() => {
        this.beating = false;
        if (!this.beatAgain) return;
        this.beatAgain = false;
        if (this.up()) this.heartbeat();
      });
  }
}
