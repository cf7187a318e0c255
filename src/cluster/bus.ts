/**
 * The cluster bus: how frames and events of a camera ingested on one node reach viewers on
 * another. Two implementations: `LocalBus` (one node, no Redis: nothing crosses, nothing costs)
 * and `RedisBus` (README "Scaling out"). The daemon talks to this interface only.
 */

/** One node as its heartbeat key in Redis describes it (`/api/v1/status` `cluster.nodes`). */
export interface ClusterNodeStatus {
  id: string;
  /** Cameras whose lease this node holds: the ones it ingests. */
  cameras: string[];
  /** Viewer connections open on the node. */
  viewers: number;
  /** false: a pure edge (`--ingest=false`). */
  ingest: boolean;
}

/** The `cluster` section of `/api/v1/status`. */
export interface ClusterStatus {
  nodeId: string;
  busUp: boolean;
  /** How frames cross Redis: `plain` PUBLISH/SUBSCRIBE or `sharded` SPUBLISH/SSUBSCRIBE (Redis Cluster). */
  pubsub?: 'plain' | 'sharded' | undefined;
  /** Cameras this node ingests now (from memory, not Redis: right even while Redis is down). */
  ingesting: string[];
  /** Every node whose heartbeat is in Redis (empty while Redis is down). */
  nodes: ClusterNodeStatus[];
}

/** What the daemon tells the bus about its viewers; called from timers, never per frame. */
export interface BusHooks {
  /** Local viewers receiving a concrete topic (every transport, slow ones included). */
  localSubscribers(topic: string): number;
  /** Viewer connections open on this node. */
  viewers(): number;
}

export interface ClusterBus {
  readonly nodeId: string;
  /** Whether other nodes can be reached now; always true for the local bus. */
  up(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A local viewer started receiving a concrete topic (the first one subscribes its channel). */
  wanted(topic: string): void;
  /** Whether a viewer on another node receives `topic`: the owner's ingest makes that variant. */
  remoteDemand(topic: string): boolean;
  /**
   * This node took (`true`, with the lease's fencing token) or gave up (`false`) a camera: its
   * topics stop or start crossing in.
   */
  setOwned(camera: string, owned: boolean, token?: number): void;
  status(): Promise<ClusterStatus | undefined>;
  /**
   * Brings the hub's latest frame of `topic` up to the one in Redis when this node neither makes
   * nor receives that topic live (a snapshot behind a load balancer); resolves at once otherwise.
   */
  freshen(topic: string): Promise<void>;
}
