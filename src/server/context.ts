import type { ErrorCode } from '../errors.js';
import type { ViewerContext } from '../viewers/viewer-group.js';
import { type Authenticator, canView, type Principal } from './auth.js';
import type { ConnectionBudget, ConnectionLimits } from './limits.js';

/** What every viewer endpoint needs (the viewer core's context, and auth and limits); built once in daemon.ts. */
export interface ServerContext extends ViewerContext {
  auth: Authenticator;
  limits: ConnectionLimits;
  sseHeartbeatMs: number;
  /** Sockets still waiting for their `hello` token: their own budget, apart from the viewer limits. */
  unauthenticated: ConnectionBudget;
}

export type TopicAccess = { ok: true } | { ok: false; code: ErrorCode; message: string };

/** The HTTP status of a refused topic: 403 not granted, 404 no such camera, 400 malformed. */
export function accessStatus(code: ErrorCode): 400 | 403 | 404 {
  return code === 'FORBIDDEN' ? 403 : code === 'UNKNOWN_TOPIC' ? 404 : 400;
}

/** Checks a requested topic is valid, exists, and is visible to the principal. */
export function checkTopicAccess(ctx: ServerContext, principal: Principal, name: unknown): TopicAccess {
  const check = ctx.hub.check(name);
  if (!check.ok) return check;
  const topic = check.topic;
  if ('camera' in topic && !canView(principal, topic.camera)) {
    return { ok: false, code: 'FORBIDDEN', message: `token does not grant camera "${topic.camera}"` };
  }
  return { ok: true };
}
