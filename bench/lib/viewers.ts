import http from 'node:http';
import type { Socket } from 'node:net';
import { nowMs } from './clock.js';
import { peekRecord, TruncatedError } from './msgpack-peek.js';
import { WsLite } from './ws-lite.js';

export type Transport = 'ws' | 'sse' | 'mjpeg';

/** What a viewer reports; the swarm turns these into counters and histograms. */
export interface ViewerSink {
  onOpen(viewer: ViewerConn): void;
  /** One frame: capture ts (ms), server seq (NaN when the transport has none), payload bytes. */
  onFrame(viewer: ViewerConn, ts: number, seq: number, bytes: number): void;
  /** The connection ended; byServer is false when we closed it ourselves. */
  onClose(viewer: ViewerConn, code: number, byServer: boolean): void;
  onError(viewer: ViewerConn, err: Error): void;
}

export interface ViewerTarget {
  port: number;
  camera: string;
  variant: string;
}

/** One viewer connection over any transport, with pause/resume for slow-viewer modes. */
export interface ViewerConn {
  readonly transport: Transport;
  readonly startedAt: number;
  /** Set by the swarm; the viewer itself never reads it. */
  tag: number;
  close(): void;
  /** Stops reading from the socket, so the kernel buffers fill and the server sees backpressure. */
  pause(): void;
  resume(): void;
}

export function openViewer(transport: Transport, t: ViewerTarget, sink: ViewerSink): ViewerConn {
  switch (transport) {
    case 'ws':
      return new WsViewer(t, sink);
    case 'sse':
      return new SseViewer(t, sink);
    case 'mjpeg':
      return new MjpegViewer(t, sink);
  }
}

class WsViewer implements ViewerConn {
  readonly transport = 'ws';
  readonly startedAt = nowMs();
  tag = 0;
  private byUs = false;
  private readonly ws: WsLite;

  constructor(t: ViewerTarget, sink: ViewerSink) {
    const topic = `cam/${t.camera}/${t.variant}`;
    this.ws = new WsLite(t.port, `/ws?topics=${encodeURIComponent(topic)}`, {
      onOpen: () => sink.onOpen(this),
      onMessage: (chunks, length, binary) => {
        if (!binary) return;
        const peek = peekChunks(chunks);
        if (peek?.type === 'frame') sink.onFrame(this, peek.ts, peek.seq, length);
      },
      onClose: (code) => sink.onClose(this, code, !this.byUs),
      onError: (err) => sink.onError(this, err),
    });
  }

  close(): void {
    this.byUs = true;
    this.ws.close();
  }
  pause(): void {
    this.ws.socket.pause();
  }
  resume(): void {
    this.ws.socket.resume();
  }
}

function peekChunks(chunks: Buffer[]) {
  const first = chunks[0];
  if (!first) return undefined;
  try {
    return peekRecord(first);
  } catch (err) {
    if (!(err instanceof TruncatedError) || chunks.length === 1) throw err;
    // The fields we want came after a chunk boundary: rare, so copying here is fine.
    return peekRecord(Buffer.concat(chunks));
  }
}

/** Shared plumbing for the two HTTP streaming transports. */
abstract class HttpViewer implements ViewerConn {
  abstract readonly transport: Transport;
  readonly startedAt = nowMs();
  tag = 0;
  private byUs = false;
  private socket: Socket | undefined;
  private readonly req: http.ClientRequest;
  private ended = false;

  constructor(
    port: number,
    path: string,
    protected readonly sink: ViewerSink,
  ) {
    this.req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        this.sink.onError(this, new Error(`GET ${path}: HTTP ${res.statusCode}`));
        return this.end(res.statusCode ?? 0);
      }
      this.sink.onOpen(this);
      res.on('data', (chunk: Buffer) => this.onChunk(chunk));
      res.once('end', () => this.end(1000));
      res.once('error', () => this.end(1006));
      res.once('close', () => this.end(1006));
    });
    this.req.once('socket', (s) => {
      this.socket = s;
      s.setNoDelay(true);
    });
    this.req.once('error', (err) => {
      if (!this.byUs) this.sink.onError(this, err);
      this.end(1006);
    });
  }

  protected abstract onChunk(chunk: Buffer): void;

  /** HTTP has no close code: 1000 for a clean end, 1006 for a reset, the status when refused. */
  private end(code: number): void {
    if (this.ended) return;
    this.ended = true;
    this.sink.onClose(this, code, !this.byUs);
  }

  close(): void {
    this.byUs = true;
    this.req.destroy();
  }
  pause(): void {
    this.socket?.pause();
  }
  resume(): void {
    this.socket?.resume();
  }
}

const EVENT_END = Buffer.from('\n\n');
const TS_KEY = Buffer.from('"ts":');
const SEQ_KEY = Buffer.from('"seq":');
const FRAME_EVENT = Buffer.from('event: frame');
const MAX_EVENT_BYTES = 64 * 1024 * 1024;

/** Parses a JSON number starting at buf[i] without making a string of the whole event. */
function numberAt(buf: Buffer, i: number): number {
  let j = i;
  while (j < buf.length && ' -+.eE0123456789'.includes(String.fromCharCode(buf[j]!))) j++;
  return Number(buf.toString('latin1', i, j));
}

class SseViewer extends HttpViewer {
  readonly transport = 'sse';
  private buf: Buffer = Buffer.alloc(0);
  private scanned = 0;

  constructor(t: ViewerTarget, sink: ViewerSink) {
    super(t.port, `/sse?topics=${encodeURIComponent(`cam/${t.camera}/${t.variant}`)}`, sink);
  }

  protected onChunk(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let start = 0;
    for (;;) {
      const end = this.buf.indexOf(EVENT_END, Math.max(start, this.scanned - 1));
      if (end < 0) break;
      this.onEvent(this.buf.subarray(start, end));
      start = end + 2;
      this.scanned = start;
    }
    this.buf = this.buf.subarray(start);
    this.scanned = Math.max(0, this.buf.length - 1);
    if (this.buf.length > MAX_EVENT_BYTES) this.close();
  }

  private onEvent(ev: Buffer): void {
    if (ev.indexOf(FRAME_EVENT) < 0) return;
    const tsAt = ev.indexOf(TS_KEY);
    if (tsAt < 0) return;
    const seqAt = ev.indexOf(SEQ_KEY);
    const seq = seqAt < 0 ? Number.NaN : numberAt(ev, seqAt + SEQ_KEY.length);
    this.sink.onFrame(this, numberAt(ev, tsAt + TS_KEY.length), seq, ev.length);
  }
}

const HEAD_END = Buffer.from('\r\n\r\n');

class MjpegViewer extends HttpViewer {
  readonly transport = 'mjpeg';
  private head: Buffer = Buffer.alloc(0);
  private bodyLeft = 0;
  private partTs = 0;
  private partBytes = 0;

  constructor(t: ViewerTarget, sink: ViewerSink) {
    super(t.port, `/cams/${t.camera}/${t.variant}.mjpeg`, sink);
  }

  protected onChunk(chunk: Buffer): void {
    let buf = chunk;
    while (buf.length > 0) {
      if (this.bodyLeft > 0) {
        const take = Math.min(this.bodyLeft, buf.length);
        this.bodyLeft -= take;
        buf = buf.subarray(take);
        if (this.bodyLeft === 0) this.sink.onFrame(this, this.partTs, Number.NaN, this.partBytes);
        continue;
      }
      this.head = this.head.length ? Buffer.concat([this.head, buf]) : buf;
      const end = this.head.indexOf(HEAD_END);
      if (end < 0) {
        if (this.head.length > 64 * 1024) this.close();
        return;
      }
      const text = this.head.toString('latin1', 0, end);
      buf = this.head.subarray(end + 4);
      this.head = Buffer.alloc(0);
      const length = /content-length:\s*(\d+)/i.exec(text);
      if (!length) continue; // the preamble before the first boundary
      this.partBytes = Number(length[1]);
      this.partTs = Number(/x-timestamp:\s*([\d.]+)/i.exec(text)?.[1] ?? Number.NaN);
      this.bodyLeft = this.partBytes;
      if (this.bodyLeft === 0) this.sink.onFrame(this, this.partTs, Number.NaN, 0);
    }
  }
}
