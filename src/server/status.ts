import type { TemplatedApp } from 'uWebSockets.js';
import type { CameraStatus } from '../ingest/camera-supervisor.js';
import { httpCredentials, requireRole } from './auth-guard.js';
import type { ServerContext } from './context.js';
import { handleAsync, sendJson } from './http-util.js';

export interface StatusSources {
  version: string;
  startedAt: number;
  cameras(): CameraStatus[];
  pool(): unknown;
  ws(): { total: number; slow: number; byVariant: Record<string, number> };
  streams(): { byTransport: Record<string, number>; byVariant: Record<string, number>; slow: number };
  /** The `cluster` section (nodes, cameras and viewers per node, from Redis); undefined on one node. */
  cluster?(): Promise<unknown>;
}

function merge(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** `GET /api/v1/status` and `/api/v1/status/connections`; admin-only when auth is on. */
export function registerStatus(app: TemplatedApp, ctx: ServerContext, src: StatusSources): void {
  const guarded = (path: string, body: () => unknown) =>
    app.get(path, (res, req) => {
      const credentials = httpCredentials(res, req);
      handleAsync(ctx, res, async (isAborted) => {
        await requireRole(ctx, 'status', credentials, 'admin');
        const answer = await body();
        if (!isAborted()) sendJson(res, 200, answer);
      });
    });

  const connections = () => {
    const ws = src.ws();
    const streams = src.streams();
    return {
      total: ws.total + streams.byTransport.sse! + streams.byTransport.mjpeg!,
      byTransport: { ws: ws.total, ...streams.byTransport },
      byVariant: merge(ws.byVariant, streams.byVariant),
      byState: {
        healthy: ws.total + streams.byTransport.sse! + streams.byTransport.mjpeg! - ws.slow - streams.slow,
        slow: ws.slow + streams.slow,
      },
    };
  };

  guarded('/api/v1/status', async () => ({
    version: src.version,
    uptimeSeconds: Math.round((Date.now() - src.startedAt) / 1000),
    authEnabled: ctx.auth.enabled,
    cameras: src.cameras().map(({ stderrTail: _tail, ...c }) => c),
    viewers: connections().byTransport,
    pool: src.pool(),
    cluster: await src.cluster?.(),
  }));
  guarded('/api/v1/status/connections', connections);
}
