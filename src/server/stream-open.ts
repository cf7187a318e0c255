import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { extractToken, type Principal, recordAuthFailure } from './auth.js';
import type { ServerContext } from './context.js';
import type { StreamTransport } from './http-stream.js';
import { remoteIp, sendError } from './http-util.js';

export interface StreamRequest {
  ip: string;
  query: URLSearchParams;
  headers: { lastEventId: string; ifNoneMatch: string; ifModifiedSince: string };
  isAborted(): boolean;
}

/**
 * The common start of every authenticated viewer request (SSE, MJPEG, snapshots): copy what
 * is needed out of the uWS request before any await, admit it against the connection limits
 * (streams only), verify the token, then call `start` with the principal. Rejections are
 * answered here with the right status and code.
 */
export function openViewerRequest(
  ctx: ServerContext,
  res: HttpResponse,
  req: HttpRequest,
  transport: StreamTransport | 'snapshot',
  start: (principal: Principal, r: StreamRequest) => void,
): void {
  const rawQuery = req.getQuery() ?? '';
  const { token } = extractToken({ authorization: req.getHeader('authorization'), query: rawQuery });
  const headers = {
    lastEventId: req.getHeader('last-event-id'),
    ifNoneMatch: req.getHeader('if-none-match'),
    ifModifiedSince: req.getHeader('if-modified-since'),
  };
  const ip = remoteIp(res);
  let aborted = false;
  const streaming = transport !== 'snapshot';
  res.onAborted(() => {
    aborted = true;
  });
  if (streaming) {
    const admission = ctx.limits.admit(ip);
    if (!admission.ok) {
      ctx.metrics.limitRejections.labels(admission.limit).inc();
      sendError(res, admission.status, admission.code, `${admission.limit} limit reached`, {
        'Retry-After': String(admission.retryAfterSeconds),
      });
      return;
    }
  }
  const request: StreamRequest = {
    ip,
    query: new URLSearchParams(rawQuery),
    headers,
    isAborted: () => aborted,
  };
  ctx.auth.verify(token).then(
    (principal) => {
      if (aborted) {
        if (streaming) ctx.limits.release(ip);
        return;
      }
      start(principal, request);
    },
    (err: Error) => {
      if (streaming) ctx.limits.release(ip);
      recordAuthFailure(ctx, transport, err);
      // verify() rejects only with AuthError, whose message is the generic client text.
      if (!aborted) sendError(res, 401, 'UNAUTHORIZED', err.message);
    },
  );
}
