import type { HttpResponse } from 'uWebSockets.js';
import { parseTopic } from '../hub/topics.js';
import type { ErrorCode } from './protocol.js';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  202: '202 Accepted',
  204: '204 No Content',
  206: '206 Partial Content',
  304: '304 Not Modified',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  416: '416 Range Not Satisfiable',
  422: '422 Unprocessable Entity',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? String(status);
}

/** Writes a whole JSON response in one corked batch. */
export function sendJson(
  res: HttpResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('Content-Type', 'application/json');
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    res.end(JSON.stringify(body));
  });
}

/** The one error shape for HTTP: `{error:{code,message}}` with the matching status. */
export function sendError(
  res: HttpResponse,
  status: number,
  code: ErrorCode,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

/**
 * Runs an async handler safely: marks the response aborted before any await (uWS forbids
 * touching an aborted response) and turns a thrown error into a 500 with a code.
 */
export function handleAsync(res: HttpResponse, work: (isAborted: () => boolean) => Promise<void>): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  work(() => aborted).catch((err: Error) => {
    if (!aborted) sendError(res, 500, 'INTERNAL', err.message);
  });
}

/** The peer address as text; read synchronously, before any await (uWS frees it after). */
export function remoteIp(res: HttpResponse): string {
  return Buffer.from(res.getRemoteAddressAsText()).toString();
}

/** Tallies a requested frame topic by variant (`auto` included) for the connections census. */
export function countVariant(counts: Record<string, number>, requested: string): void {
  const t = parseTopic(requested);
  const key = t?.kind === 'auto' ? 'auto' : t?.kind === 'frame' ? t.variant : undefined;
  if (key) counts[key] = (counts[key] ?? 0) + 1;
}

/** Body too large for the endpoint; answered as 413. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body over ${limit} bytes`);
  }
}

/**
 * Collects a request body up to `maxBytes`. Must be called synchronously in the handler
 * (uWS delivers body chunks only to a reader attached before the handler returns). uWS hands
 * out chunks that are only valid during the callback, so each is copied.
 */
export function readBody(res: HttpResponse, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((chunk, isLast) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > maxBytes) {
        failed = true;
        reject(new BodyTooLargeError(maxBytes));
        return;
      }
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) resolve(Buffer.concat(chunks));
    });
  });
}
