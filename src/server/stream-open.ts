import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { RetryLaterError } from '../errors.js';
import type { Principal } from './auth.js';
import { httpCredentials, requireRole } from './auth-guard.js';
import { requestAddress } from './client-address.js';
import type { ServerContext } from './context.js';
import type { StreamTransport } from './http-stream.js';
import { answerError } from './http-util.js';

export interface StreamRequest {
  /** The client's address (the peer, or behind a trusted proxy the one it forwarded; client-address.ts). */
  ip: string;
  query: URLSearchParams;
  headers: { lastEventId: string; ifNoneMatch: string; ifModifiedSince: string };
  isAborted(): boolean;
  /**
   * A HEAD request. `res` is then a HEAD response (see headResponse): what the handler writes
   * keeps only its status and headers. A stream writes its headers as for GET, then calls
   * endHead() instead of opening a viewer.
   */
  head: boolean;
  /** Ends a HEAD stream after its headers, and gives back its connection-limit slot. */
  endHead(): void;
}

/**
 * The common start of every authenticated viewer request (SSE, MJPEG, snapshots): copy what
 * is needed out of the uWS request before any await, admit it against the connection limits
 * (streams only), pass the auth gate (requireRole, role viewer), then call `start` with the
 * principal. A refused admission is thrown (to the routing layer) before anything else; an auth
 * refusal, and whatever `start` throws (a FramehubError to refuse the request), is answered
 * through answerError like every other HTTP error, and the stream's connection slot given back.
 */
export function openViewerRequest(
  ctx: ServerContext,
  res: HttpResponse,
  req: HttpRequest,
  transport: StreamTransport | 'snapshot',
  start: (principal: Principal, r: StreamRequest) => void,
): void {
  const rawQuery = req.getQuery() ?? '';
  const credentials = httpCredentials(res, req);
  const headers = {
    lastEventId: req.getHeader('last-event-id'),
    ifNoneMatch: req.getHeader('if-none-match'),
    ifModifiedSince: req.getHeader('if-modified-since'),
  };
  const ip = requestAddress(res, req, ctx.proxy);
  let aborted = false;
  const streaming = transport !== 'snapshot';
  res.onAborted(() => {
    aborted = true;
  });
  if (streaming) {
    const admission = ctx.limits.admit(ip);
    if (!admission.ok) {
      ctx.metrics.limitRejections.labels(admission.limit).inc();
      const { code, status, limit, retryAfterSeconds } = admission;
      throw new RetryLaterError(code, `${limit} limit reached`, status, retryAfterSeconds);
    }
  }
  /** Gives the admission back once, whichever of endHead, an abort or a refusal comes first. */
  let admitted = streaming;
  const release = () => {
    if (admitted) ctx.limits.release(ip);
    admitted = false;
  };
  const request: StreamRequest = {
    ip,
    query: new URLSearchParams(rawQuery),
    headers,
    isAborted: () => aborted,
    head: req.getMethod() === 'head',
    endHead: () => {
      release();
      res.cork(() => res.endWithoutBody());
    },
  };
  requireRole(ctx, transport, credentials, 'viewer')
    .then((principal) => {
      if (aborted) return release();
      start(principal, request);
    })
    .catch((err: unknown) => {
      release();
      answerError(ctx, res, err, { aborted });
    });
}
