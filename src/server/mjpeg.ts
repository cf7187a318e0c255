import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { encodingOf, type Frame } from '../hub/hub.js';
import { type FrameVariant, isRefreshed } from '../image/variant-names.js';
import type { Framing } from '../viewers/transport.js';
import { accessStatus, checkTopicAccess, type ServerContext } from './context.js';
import type { HttpStreams } from './http-stream.js';
import { sendError, statusLine } from './http-util.js';
import { openViewerRequest } from './stream-open.js';

const BOUNDARY = 'framehubframe';

/** One multipart part: headers, the JPEG, CRLF. Built once per frame and shared by all MJPEG viewers. */
function part(frame: Frame): Uint8Array {
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Type: ${frame.mime}\r\nContent-Length: ${frame.data.byteLength}\r\n` +
      `X-Topic: ${frame.topic}\r\nX-Seq: ${frame.seq}\r\nX-Timestamp: ${frame.ts}\r\n\r\n`,
  );
  return Buffer.concat([head, frame.data, Buffer.from('\r\n')]);
}

/** MJPEG carries frames only: no events, gaps or variant records, and no keep-alive. */
const mjpegFraming: Framing = {
  frame: (frame) => encodingOf(frame, 'mjpeg', part),
  event: () => undefined,
  gap: () => undefined,
  variant: () => undefined,
  video: () => undefined,
};

const FILE = /^([a-z]+)\.(mjpeg|jpg)$/;

/**
 * `GET /cams/<id>/<variant>.mjpeg` (multipart/x-mixed-replace, plays in a plain <img>) and
 * `GET /cams/<id>/<variant>.jpg` (the latest frame, with ETag/Last-Modified and 304s).
 */
export function registerMjpeg(app: TemplatedApp, ctx: ServerContext, streams: HttpStreams): void {
  const group = streams.register('mjpeg');
  app.get('/cams/:camera/:file', (res, req) => {
    const camera = req.getParameter(0) ?? '';
    const m = FILE.exec(req.getParameter(1) ?? '');
    if (!m) return sendError(res, 404, 'NOT_FOUND', 'use /cams/<camera>/<variant>.mjpeg or .jpg');
    const [, variant, ext] = m as unknown as [string, string, 'mjpeg' | 'jpg'];
    const topic = `cam/${camera}/${variant}`;
    if (ext === 'jpg' && variant === 'auto')
      return sendError(res, 400, 'BAD_TOPIC', 'snapshots need a concrete variant');
    if (variant === 'vad') return sendError(res, 400, 'BAD_TOPIC', '"vad" carries events, not frames');
    if (variant === 'video')
      return sendError(
        res,
        400,
        'BAD_TOPIC',
        '"video" is H.264: subscribe to cam/<id>/video over /ws or /sse',
      );

    openViewerRequest(ctx, res, req, ext === 'jpg' ? 'snapshot' : 'mjpeg', (principal, r) => {
      const access = checkTopicAccess(ctx, principal, topic);
      if (!access.ok) {
        if (ext === 'mjpeg') ctx.limits.release(r.ip);
        return sendError(res, accessStatus(access.code), access.code, access.message);
      }
      if (ext === 'jpg') {
        const answer = () => {
          if (!r.isAborted()) snapshot(ctx, res, topic, r.headers);
        };
        const freshened = ctx.snapshotSource?.freshen(topic);
        if (freshened) freshened.then(answer, answer);
        else answer();
        return;
      }

      res.cork(() => {
        res
          .writeStatus('200 OK')
          .writeHeader('Content-Type', `multipart/x-mixed-replace; boundary=${BOUNDARY}`)
          .writeHeader('Cache-Control', 'no-cache, no-store')
          .writeHeader('Pragma', 'no-cache');
      });
      if (r.head) return r.endHead();
      streams.open(group, res, mjpegFraming, r.ip, principal, [topic]);
    });
  });
}

function snapshot(
  ctx: ServerContext,
  res: HttpResponse,
  topic: string,
  headers: { ifNoneMatch: string; ifModifiedSince: string },
): void {
  const frame = ctx.hub.latest(topic);
  if (!frame) {
    const variant = topic.slice(topic.lastIndexOf('/') + 1);
    // A variant made only while watched has no frame to wait for: retrying would not help.
    if (!isRefreshed(variant as FrameVariant)) {
      const stream = `/cams/${topic.split('/')[1]}/${variant}.mjpeg`;
      sendError(res, 503, 'NO_FRAME_YET', `${variant} is made only while someone watches it: open ${stream}`);
    } else sendError(res, 503, 'NO_FRAME_YET', `no frame on ${topic} yet`, { 'Retry-After': '1' });
    return;
  }
  const etag = `"${frame.seq}-${frame.ts}"`;
  const lastModified = new Date(frame.ts).toUTCString();
  const since = Date.parse(headers.ifModifiedSince);
  const notModified = headers.ifNoneMatch
    ? // Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
      headers.ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag || t.trim() === '*')
    : Number.isFinite(since) && Math.floor(frame.ts / 1000) * 1000 <= since;
  res.cork(() => {
    res
      .writeStatus(statusLine(notModified ? 304 : 200))
      .writeHeader('ETag', etag)
      .writeHeader('Last-Modified', lastModified)
      .writeHeader('Cache-Control', 'no-cache')
      .writeHeader('X-Seq', String(frame.seq))
      .writeHeader('X-Timestamp', String(frame.ts));
    if (notModified) res.endWithoutBody();
    else res.writeHeader('Content-Type', frame.mime).end(frame.data);
  });
}
