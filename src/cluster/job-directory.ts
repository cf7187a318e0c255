import { FramehubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RedisClient } from './redis-links.js';

/** A job as GET /api/v1/jobs/<id> answers it, plus the node that runs it. */
export type RemoteJobView = { id: string; state: string; node: string } & Record<string, unknown>;

/**
 * Where any node finds a job another node runs (README "Scaling out"): each change of a job's
 * state is written to `fh:job:<id>` as the JSON GET /api/v1/jobs/<id> answers, so a client
 * behind a load balancer can poll any node. Written at most once per 5 % of progress (the job
 * store's event rate), and kept `ttlMs` after the job ends, like the job itself; while it runs
 * the key is refreshed by each change and lives `runningTtlMs` (a node that dies mid-job leaves
 * a `running` entry that expires then). Only the metadata: result files stay on the node that
 * made them, and a DELETE must reach that node.
 */
export class JobDirectory {
  constructor(
    private readonly redis: RedisClient,
    private readonly nodeId: string,
    private readonly ttlMs: number,
    private readonly log: Pick<Logger, 'warn'>,
    private readonly runningTtlMs = 24 * 3600 * 1000,
  ) {}

  /** Records a job's latest view; a Redis failure is logged and ignored (local GET still works). */
  record(view: { id: string; state: string } & object, final: boolean): void {
    const entry = JSON.stringify({ ...view, node: this.nodeId });
    this.redis
      .set(key(view.id), entry, 'PX', final ? this.ttlMs : this.runningTtlMs)
      .catch((err: unknown) => this.log.warn({ err, job: view.id }, 'could not record a job in Redis'));
  }

  /**
   * A job another node runs, or undefined (unknown or expired). Throws 503 `NOT_READY` while
   * Redis is unreachable: the job may well exist, so a 404 would be a lie.
   */
  async get(id: string): Promise<RemoteJobView | undefined> {
    let text: string | null;
    try {
      text = await this.redis.get(key(id));
    } catch {
      throw new FramehubError(
        'NOT_READY',
        'the cluster bus (Redis) is unreachable: jobs of other nodes cannot be looked up now',
        503,
      );
    }
    return text ? (JSON.parse(text) as RemoteJobView) : undefined;
  }
}

/** Job ids are UUIDs the daemon made; anything else never reaches Redis. */
const key = (id: string) => `fh:job:${id}`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether `id` could name a job at all: the GET route asks Redis only then. */
export const isJobId = (id: string): boolean => UUID.test(id);
