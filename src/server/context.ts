import type { ClusterBus } from '../cluster/bus.js';
import type { ErrorCode } from '../errors.js';
import { isVideoTopic } from '../hub/topics.js';
import { codecAccepted } from '../media/fmp4.js';
import type { WsErrorCode } from '../metrics/label-values.js';
import type { ViewerContext } from '../viewers/viewer-group.js';
import { type Authenticator, canView, type Principal } from './auth.js';
import type { ProxyTrust } from './client-address.js';
import type { ConnectionBudget, ConnectionLimits } from './limits.js';

/** What every viewer endpoint needs (the viewer core's context, and auth and limits); built once in daemon.ts. */
export interface ServerContext extends ViewerContext {
  auth: Authenticator;
  limits: ConnectionLimits;
  sseHeartbeatMs: number;
  /** Sockets still waiting for their `hello` token: their own budget, apart from the viewer limits. */
  unauthenticated: ConnectionBudget;
  /**
   * `trustProxy` and `authOffTrustsProxy` (client-address.ts): whose forwarding headers name
   * the client. Undefined (tools and benches that build a context) trusts no proxy.
   */
  proxy?: ProxyTrust;
  /** Several nodes on Redis: brings a snapshot's frame up to date first (ClusterBus.freshen). */
  snapshotSource?: Pick<ClusterBus, 'freshen'>;
}

export type TopicAccess = { ok: true } | { ok: false; code: WsErrorCode; message: string };

/** The HTTP status of a refused topic: 403 not granted, 404 no such camera, 406 codec, 400 malformed. */
export function accessStatus(code: ErrorCode): 400 | 403 | 404 | 406 {
  if (code === 'UNSUPPORTED_CODEC') return 406;
  return code === 'FORBIDDEN' ? 403 : code === 'UNKNOWN_TOPIC' ? 404 : 400;
}

/** The most codec strings a client may offer, and their longest: enough for every avc1 profile and level. */
export const MAX_CODECS = 32;
const MAX_CODEC_LENGTH = 64;

/**
 * Reads a client's codec list (WS `sub.codecs`, SSE `?codecs=`): the codec strings its
 * `MediaSource.isTypeSupported` accepts. undefined when absent; a string when malformed.
 */
export function parseCodecs(value: unknown): string[] | undefined | string {
  if (value === undefined) return undefined;
  const wrong = `"codecs" must be a list of at most ${MAX_CODECS} codec strings (like "avc1.64001f")`;
  if (!Array.isArray(value) || value.length > MAX_CODECS) return wrong;
  for (const c of value)
    if (typeof c !== 'string' || c.length === 0 || c.length > MAX_CODEC_LENGTH) return wrong;
  return value as string[];
}

/**
 * Codec negotiation for a video topic: refused when the client named the codecs it can play
 * and the stream's codec (known once its first init segment arrived) is none of them. A
 * client that names none, or a stream not started yet, is let through: the client checks the
 * init's `codec` itself.
 */
export function checkVideoCodecs(
  ctx: ServerContext,
  topic: string,
  accepted: readonly string[] | undefined,
): TopicAccess {
  if (!accepted || !isVideoTopic(topic)) return { ok: true };
  const codec = ctx.hub.videoTrack(topic)?.init?.codec;
  if (codec === undefined || codecAccepted(codec, accepted)) return { ok: true };
  return {
    ok: false,
    code: 'UNSUPPORTED_CODEC',
    message: `the stream is ${codec}, which none of the offered codecs can play`,
  };
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
