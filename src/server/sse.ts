import type { TemplatedApp } from 'uWebSockets.js';
import type { HistoryEntry } from '../hub/history.js';
import { encodingOf, type Frame } from '../hub/hub.js';
import { parseTopic } from '../hub/topics.js';
import { accessStatus, checkTopicAccess, type ServerContext } from './context.js';
import { type HttpStreams, type StreamFraming, StreamViewer } from './http-stream.js';
import { sendError } from './http-util.js';
import { parseLastEventId } from './last-event-id.js';
import { openViewerRequest } from './stream-open.js';

const text = (s: string) => Buffer.from(s);

/** A frame as an SSE message; JSON with the JPEG base64-encoded, or with a snapshot URL (`frames=ref`). */
function frameMessage(frame: Frame, byRef: boolean, cached: boolean): Uint8Array {
  const { topic, seq, ts, mime, width, height } = frame;
  const t = parseTopic(topic);
  const body =
    byRef && t?.kind === 'frame'
      ? { type: 'frame', topic, seq, ts, mime, width, height, url: `/cams/${t.camera}/${t.variant}.jpg` }
      : {
          type: 'frame',
          topic,
          seq,
          ts,
          mime,
          width,
          height,
          data: Buffer.from(frame.data).toString('base64'),
        };
  if (cached) Object.assign(body, { cached: true });
  // No `id:` on frames: frames are never replayed, and an id here would become the browser's
  // Last-Event-ID, so a reconnect would name a frame and replay none of the missed events.
  return text(`event: frame\ndata: ${JSON.stringify(body)}\n\n`);
}

const sseFraming: StreamFraming = {
  frame: (frame, viewer, cached) =>
    viewer.framesByRef
      ? encodingOf(frame, cached ? 'sse-ref-cached' : 'sse-ref', (f) => frameMessage(f, true, cached))
      : encodingOf(frame, cached ? 'sse-cached' : 'sse', (f) => frameMessage(f, false, cached)),
  event: (e: HistoryEntry) => text(`event: ${e.type}\nid: ${e.topic}:${e.seq}\ndata: ${e.json}\n\n`),
  variant: (requested, variant) =>
    text(`event: variant\ndata: ${JSON.stringify({ type: 'variant', topic: requested, variant })}\n\n`),
  keepAlive: () => text(`: heartbeat ${Date.now()}\n\n`),
};

/**
 * `GET /sse?topics=a,b[&frames=ref][&lastEventId=…]`. Frames resume at the latest frame;
 * events missed since `Last-Event-ID` are replayed from history, across every requested
 * topic, in publish order.
 */
export function registerSse(app: TemplatedApp, ctx: ServerContext, streams: HttpStreams): void {
  app.get('/sse', (res, req) =>
    openViewerRequest(ctx, res, req, 'sse', (principal, r) => {
      const release = () => ctx.limits.release(r.ip);
      const topics = (r.query.get('topics') ?? '').split(',').filter(Boolean);
      if (topics.length === 0) {
        release();
        return sendError(res, 400, 'BAD_TOPIC', 'give at least one topic: /sse?topics=cam/<id>/<variant>');
      }
      if (topics.length > ctx.maxTopicsPerConnection) {
        release();
        ctx.metrics.limitRejections.labels('topics_per_connection').inc();
        return sendError(
          res,
          400,
          'TOO_MANY_TOPICS',
          `at most ${ctx.maxTopicsPerConnection} topics per connection`,
        );
      }
      for (const t of topics) {
        const access = checkTopicAccess(ctx, principal, t);
        if (!access.ok) {
          release();
          return sendError(res, accessStatus(access.code), access.code, access.message);
        }
      }
      const unique = [...new Set(topics)];
      const last = parseLastEventId(r.headers.lastEventId || (r.query.get('lastEventId') ?? ''));
      const afterOrder = last ? ctx.hub.history.orderOf(last.topic, last.seq) : undefined;
      const replay = afterOrder === undefined ? [] : ctx.hub.history.since(unique, afterOrder);

      const viewer = new StreamViewer(res, 'sse', sseFraming, r.ip, ctx, r.query.get('frames') === 'ref');
      viewer.expiresAtMs = principal.expiresAtMs;
      res.onAborted(() => streams.close(viewer));
      res.cork(() => {
        res
          .writeStatus('200 OK')
          .writeHeader('Content-Type', 'text/event-stream')
          .writeHeader('Cache-Control', 'no-cache, no-transform')
          .writeHeader('X-Accel-Buffering', 'no');
        res.write(`retry: 2000\n\n`);
      });
      streams.open(viewer, unique, replay);
    }),
  );
}
