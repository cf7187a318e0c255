// @ts-check
/**
 * MJPEG transport: `GET cams/<id>/<variant>.mjpeg` read with fetch and split into parts here,
 * rather than played in an <img>. An <img> fires "load" for the first part only and exposes
 * neither the parts' `X-Seq` and `X-Timestamp` nor the end of the stream, so a wall built on
 * it can show no drops, no latency and no seq, and notices a dead stream only when the
 * picture stops changing. Read this way, MJPEG tiles are measured like the others and see a
 * cut connection at once. The cost: one JS copy of each JPEG (the <img> decoded in C++), and
 * the wall no longer shows that a plain <img> plays the stream (test/wall.e2e.test.ts checks
 * that separately). MJPEG carries no events: the tile gets its voice dot from the page's
 * shared event socket.
 */

import { boundaryOf, MultipartError, MultipartReader } from './multipart.js';
import { describeHttpError } from './net.js';
import { readFrameFields } from './records.js';

/** @type {import('./transport.js').OpenTransport} */
export function open(host) {
  const ctl = new AbortController();
  const url = host.url(`cams/${encodeURIComponent(host.camera)}/${host.variant}.mjpeg`);
  /** Topics whose first part was seen on this connection. */
  const seen = new Set();

  /** @param {import('./multipart.js').Part} part */
  const onPart = (part) => {
    host.alive();
    const h = part.headers;
    const fields = readFrameFields({
      topic: h.get('x-topic'),
      seq: Number(h.get('x-seq')),
      ts: Number(h.get('x-timestamp')),
      // The part carries no size; the tile reads it from the decoded picture.
      width: 0,
      height: 0,
      mime: h.get('content-type'),
      // No flag in MJPEG: the first part of a topic is the server's cached frame (up to
      // about 1 s old), so the seq gap after it is no loss.
      cached: !seen.has(h.get('x-topic')),
    });
    if (typeof fields === 'string') return host.malformed('mjpeg part', fields);
    seen.add(fields.topic);
    host.frame({ ...fields, bytes: part.body });
  };

  (async () => {
    const res = await fetch(url, {
      signal: ctl.signal,
      cache: 'no-store',
      headers: host.token ? { Authorization: `Bearer ${host.token}` } : {},
    });
    if (!res.ok) return host.fail(`mjpeg: ${await describeHttpError(res)}`);
    const boundary = boundaryOf(res.headers.get('content-type'));
    if (!boundary || !res.body) {
      host.malformed('mjpeg stream', `not multipart/x-mixed-replace: ${res.headers.get('content-type')}`);
      return host.fail('mjpeg: not a multipart stream');
    }
    host.alive();
    const reader = new MultipartReader(boundary, onPart);
    const body = res.body.getReader();
    for (;;) {
      const { done, value } = await body.read();
      if (done) return host.fail('mjpeg stream ended');
      reader.push(value);
    }
  })().catch((err) => {
    if (ctl.signal.aborted) return; // closed by the tile
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof MultipartError) host.malformed('mjpeg stream', message);
    host.fail(`mjpeg: ${message}`);
  });

  return { close: () => ctl.abort() };
}
