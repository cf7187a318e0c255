import type { TemplatedApp } from 'uWebSockets.js';
import type { HistoryEntry } from '../hub/history.js';
import { encodingOf, type Frame } from '../hub/hub.js';
import { resumeStreams } from '../hub/resume.js';
import type { VideoItem } from '../hub/video-track.js';
import type { Framing } from '../viewers/transport.js';
import {
  accessStatus,
  checkTopicAccess,
  checkVideoCodecs,
  parseCodecs,
  type ServerContext,
} from './context.js';
import type { HttpStreams } from './http-stream.js';
import { sendError } from './http-util.js';
import { lastEventId, parseLastEventId } from './last-event-id.js';
import { openViewerRequest } from './stream-open.js';

const text = (s: string) => Buffer.from(s);

/** A frame as an SSE message; JSON with the JPEG base64-encoded, or with a snapshot URL (`frames=ref`). */
function frameMessage(frame: Frame, byRef: boolean, cached: boolean): Uint8Array {
  const { topic, seq, ts, mime, width, height } = frame;
  const body = byRef
    ? // A frame topic is cam/<id>/<variant>; its snapshot is /cams/<id>/<variant>.jpg.
      { type: 'frame', topic, seq, ts, mime, width, height, url: `/cams/${topic.slice(4)}.jpg` }
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

/**
 * A live video record as an SSE message: `event: init` or `event: fragment`, JSON with the
 * bytes base64-encoded (a third larger than over WS: for clients that cannot open a WebSocket).
 * Made once per item and form, shared by every viewer.
 */
function videoMessage(item: VideoItem, cached: boolean): Uint8Array {
  const data = Buffer.from(item.data.buffer, item.data.byteOffset, item.data.byteLength).toString('base64');
  const body =
    item.kind === 'init'
      ? {
          type: 'init',
          topic: item.topic,
          seq: item.seq,
          ts: item.ts,
          codec: item.codec,
          width: item.width,
          height: item.height,
          data,
        }
      : {
          type: 'fragment',
          topic: item.topic,
          seq: item.seq,
          ts: item.ts,
          pts: item.pts,
          keyframe: item.keyframe,
          data,
        };
  if (cached) Object.assign(body, { cached: true });
  return text(`event: ${item.kind}\ndata: ${JSON.stringify(body)}\n\n`);
}

const videoLive = (item: VideoItem) => videoMessage(item, false);
const videoCached = (item: VideoItem) => videoMessage(item, true);

/** An SSE video message, cached on the item. */
function sseVideo(item: VideoItem, cached: boolean): Uint8Array {
  const key = cached ? 'sse-cached' : 'sse';
  let bytes = item.encodings.get(key);
  if (!bytes) {
    bytes = cached ? videoCached(item) : videoLive(item);
    item.encodings.set(key, bytes);
  }
  return bytes;
}

// One maker per form, made once: the fan-out calls frame() per viewer per frame, and a closure
// there would be an allocation per viewer per frame even when the bytes are already cached.
const inlineLive = (f: Frame) => frameMessage(f, false, false);
const inlineCached = (f: Frame) => frameMessage(f, false, true);
const refLive = (f: Frame) => frameMessage(f, true, false);
const refCached = (f: Frame) => frameMessage(f, true, true);

/**
 * SSE framings (base64 frames, and `frames=ref`). Frame messages are cached on the frame
 * (`Frame.encodings`), event messages on the history entry (a WeakMap keyed by it, so one
 * lives exactly as long as its entry): each is built once, whatever the number of viewers and
 * replays. An event's `id:` is its position with this process's epoch, `<topic>:<seq>:<epoch>`.
 */
export function sseFramings(epoch: string): { inline: Framing; byRef: Framing } {
  const events = new WeakMap<HistoryEntry, Uint8Array>();
  const event = (e: HistoryEntry) => {
    let bytes = events.get(e);
    if (!bytes) {
      bytes = text(`event: ${e.type}\nid: ${lastEventId(e.topic, e.seq, epoch)}\ndata: ${e.json}\n\n`);
      events.set(e, bytes);
    }
    return bytes;
  };
  const shared = {
    event,
    video: sseVideo,
    // No `id:`: a gap is not a position to resume from.
    gap: (record: object) => text(`event: gap\ndata: ${JSON.stringify(record)}\n\n`),
    variant: (requested: string, variant: string) =>
      text(`event: variant\ndata: ${JSON.stringify({ type: 'variant', topic: requested, variant })}\n\n`),
  };
  return {
    inline: {
      ...shared,
      frame: (frame, cached) =>
        cached ? encodingOf(frame, 'sse-cached', inlineCached) : encodingOf(frame, 'sse', inlineLive),
    },
    byRef: {
      ...shared,
      frame: (frame, cached) =>
        cached ? encodingOf(frame, 'sse-ref-cached', refCached) : encodingOf(frame, 'sse-ref', refLive),
    },
  };
}

/**
 * `GET /sse?topics=a,b[&frames=ref][&lastEventId=…]`. Frames resume at the latest frame;
 * events missed since `Last-Event-ID` are replayed from history, across every requested
 * topic, in publish order, after a `gap` event wherever history cannot say exactly what was
 * missed (another epoch, or a position it no longer holds).
 */
export function registerSse(app: TemplatedApp, ctx: ServerContext, streams: HttpStreams): void {
  const framings = sseFramings(ctx.hub.epoch);
  // One heartbeat per sweep that sends it, the same bytes for every stream.
  const group = streams.register('sse', {
    everyMs: ctx.sseHeartbeatMs,
    bytes: (now) => text(`: heartbeat ${now}\n\n`),
  });
  app.get('/sse', (res, req) =>
    openViewerRequest(ctx, res, req, 'sse', (principal, r) => {
      const release = () => ctx.limits.release(r.ip);
      const topics = (r.query.get('topics') ?? '').split(',').filter(Boolean);
      if (topics.length === 0) {
        release();
        return sendError(res, 400, 'BAD_TOPIC', 'give at least one topic: /sse?topics=cam/<id>/<variant>');
      }
      const tooMany = group.tooManyTopics(topics.length);
      if (tooMany) {
        release();
        return sendError(res, 400, tooMany.code, tooMany.message);
      }
      const codecs = parseCodecs(
        r.query.has('codecs') ? (r.query.get('codecs') ?? '').split(',') : undefined,
      );
      if (typeof codecs === 'string') {
        release();
        return sendError(res, 400, 'INVALID_FIELD', codecs);
      }
      for (const t of topics) {
        const checked = checkTopicAccess(ctx, principal, t);
        const access = checked.ok ? checkVideoCodecs(ctx, t, codecs) : checked;
        if (!access.ok) {
          release();
          return sendError(res, accessStatus(access.code), access.code, access.message);
        }
      }
      const unique = [...new Set(topics)];
      const last = parseLastEventId(r.headers.lastEventId || (r.query.get('lastEventId') ?? ''));
      res.cork(() => {
        res
          .writeStatus('200 OK')
          .writeHeader('Content-Type', 'text/event-stream')
          .writeHeader('Cache-Control', 'no-cache, no-transform')
          .writeHeader('X-Accel-Buffering', 'no');
        res.write(`retry: 2000\n\n`);
      });
      if (r.head) return r.endHead();
      const framing = r.query.get('frames') === 'ref' ? framings.byRef : framings.inline;
      const unknown = (t: string) => ctx.hub.nextSeqUnknown(t);
      const plan = resumeStreams(ctx.hub.history, ctx.hub.epoch, unique, last, unknown);
      streams.open(group, res, framing, r.ip, principal, unique, plan);
    }),
  );
}
