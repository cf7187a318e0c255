import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { open } from 'node:fs/promises';
import { FramehubError } from '../errors.js';
import { statusLine } from './http-util.js';

/** Read and sent at a time: a large result never sits in memory whole. */
const CHUNK_BYTES = 256 * 1024;

/** A file to answer with: what GET needs to know before opening it. */
export interface ServedFile {
  path: string;
  bytes: number;
  mime: string;
  /** A strong validator (quoted), the same for the same bytes. */
  etag: string;
}

/** The request headers a file answer depends on; read them before any await. */
export interface FileRequest {
  range: string;
  ifNoneMatch: string;
}

export const fileRequest = (req: HttpRequest): FileRequest => ({
  range: req.getHeader('range'),
  ifNoneMatch: req.getHeader('if-none-match'),
});

/**
 * `bytes=a-b`, `bytes=a-` or `bytes=-n` (one range; RFC 9110 14.1.2) as inclusive offsets.
 * undefined when the header is absent or not a single byte range (the whole file is sent, as
 * RFC 9110 allows for a range it does not understand); 'unsatisfiable' for a range past the end.
 */
export function parseRange(
  header: string,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/**
 * Answers with a file that never changes (a job result): ETag and immutable caching, 304 for
 * a matching If-None-Match, one byte range (206, or 416 past the end), and the body read in
 * 256 KiB chunks under uWS backpressure, so a slow client holds one chunk, not the file.
 * Call inside the request's async handler; `isAborted` stops the reading once the client left.
 */
export async function sendFile(
  res: HttpResponse,
  file: ServedFile,
  request: FileRequest,
  isAborted: () => boolean,
  whenAborted: (fn: () => void) => void,
): Promise<void> {
  // A client that leaves while a chunk waits for onWritable is never called back by uWS:
  // this settles the wait, so the file handle is closed at once.
  let wake: (() => void) | undefined;
  whenAborted(() => wake?.());
  const common = (r: HttpResponse) =>
    r
      .writeHeader('ETag', file.etag)
      .writeHeader('Cache-Control', 'private, max-age=31536000, immutable')
      .writeHeader('Accept-Ranges', 'bytes');
  if (request.ifNoneMatch?.split(',').some((t) => t.trim() === file.etag)) {
    res.cork(() => common(res.writeStatus(statusLine(304))).endWithoutBody());
    return;
  }
  const range = parseRange(request.range, file.bytes);
  if (range === 'unsatisfiable') {
    throw new FramehubError('BAD_REQUEST', `range not satisfiable: the file has ${file.bytes} bytes`, 416);
  }
  const { start, end } = range ?? { start: 0, end: file.bytes - 1 };
  const total = end - start + 1;
  const handle = await open(file.path, 'r');
  try {
    if (isAborted()) return;
    res.cork(() => {
      res.writeStatus(statusLine(range ? 206 : 200));
      common(res).writeHeader('Content-Type', file.mime);
      if (range) res.writeHeader('Content-Range', `bytes ${start}-${end}/${file.bytes}`);
    });
    let sent = 0;
    while (sent < total || total === 0) {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, total - sent));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, start + sent);
      if (isAborted()) return;
      if (bytesRead !== chunk.length) throw new Error(`${file.path} shrank while being sent`);
      if (await writeChunk(res, chunk, total, isAborted, (fn) => (wake = fn))) return;
      sent += chunk.length;
    }
  } finally {
    await handle.close();
  }
}

/**
 * tryEnd's contract: a chunk uWS could not take whole is retried from where it stopped once
 * the socket drains. Resolves true when the response is done (all sent, or the client gone).
 */
function writeChunk(
  res: HttpResponse,
  chunk: Buffer,
  total: number,
  isAborted: () => boolean,
  onAbortWake: (wake: () => void) => void,
): Promise<boolean> {
  const startOffset = res.getWriteOffset();
  let ok = false;
  let done = false;
  res.cork(() => {
    [ok, done] = res.tryEnd(chunk, total);
  });
  if (done || chunk.length === 0) return Promise.resolve(true);
  if (ok) return Promise.resolve(false);
  return new Promise((resolve) => {
    onAbortWake(() => resolve(true));
    res.onWritable((offset) => {
      if (isAborted()) {
        resolve(true);
        return true;
      }
      let retried = false;
      [retried, done] = res.tryEnd(chunk.subarray(offset - startOffset), total);
      if (done) resolve(true);
      else if (retried) resolve(false);
      return retried;
    });
  });
}
