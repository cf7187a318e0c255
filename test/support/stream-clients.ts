import net from 'node:net';
import WebSocket from 'ws';
import { pack, unpack } from '../helpers.js';

/** What a viewer received, the same shape for every transport (frame payloads are not kept). */
export interface Received {
  kind: 'frame' | 'event' | 'variant' | 'gap';
  topic: string;
  seq?: number;
  cached?: boolean;
  /** `variant` records: the new variant. Events: the record type. */
  variant?: string;
  type?: string;
  /** SSE events: the `id:` line. */
  id?: string;
  /** The parsed body of an event, a gap or a WS hello. */
  body?: Record<string, unknown>;
}

/** How a connection ended: a WS close code, or for HTTP whether the response ended cleanly (last chunk) or was cut. */
export interface Ending {
  code?: number;
  clean: boolean;
}

/**
 * A viewer on one transport that a test can stall: it stops reading its socket (so the
 * server's writes back up, as with a viewer on a slow link) and later reads again.
 */
export interface StallableViewer {
  readonly received: Received[];
  readonly ended: Promise<Ending>;
  /** The WS `hello` reply, once it came (its `epoch` is the server's). */
  hello?: Record<string, unknown>;
  until(what: string, pred: (r: Received[]) => boolean, timeoutMs?: number): Promise<void>;
  stall(): void;
  resume(): void;
  /** WS only: sends a record (hello, sub). */
  send?(record: unknown): void;
  close(): void;
}

class Waits {
  private readonly listeners = new Set<() => void>();

  notify(): void {
    for (const l of this.listeners) l();
  }

  until(
    received: Received[],
    what: string,
    pred: (r: Received[]) => boolean,
    timeoutMs: number,
  ): Promise<void> {
    return new Promise((res, rej) => {
      const check = () => {
        if (!pred(received)) return;
        this.listeners.delete(check);
        clearTimeout(timer);
        res();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        rej(new Error(`${what}: not seen in ${timeoutMs} ms (${received.length} records)`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }
}

/** A `/ws` viewer on the `ws` library; stalling pauses its TCP socket. */
export class WsStallable implements StallableViewer {
  readonly received: Received[] = [];
  readonly ended: Promise<Ending>;
  readonly opened: Promise<void>;
  hello?: Record<string, unknown>;
  private readonly ws: WebSocket;
  private readonly waits = new Waits();

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.opened = new Promise((res, rej) => this.ws.once('open', () => res()).once('error', rej));
    this.ended = new Promise((res) => this.ws.once('close', (code) => res({ code, clean: true })));
    this.ws.on('error', () => {});
    this.ws.on('message', (data: Buffer) => {
      const r = unpack(data);
      const topic = String(r.topic ?? '');
      if (r.type === 'frame')
        this.received.push({ kind: 'frame', topic, seq: r.seq as number, cached: r.cached === true });
      else if (r.type === 'variant')
        this.received.push({ kind: 'variant', topic, variant: String(r.variant) });
      else if (r.type === 'gap') this.received.push({ kind: 'gap', topic, body: r });
      else if (r.type === 'hello') this.hello = r;
      else if (typeof r.seq === 'number')
        this.received.push({ kind: 'event', topic, seq: r.seq, type: String(r.type), body: r });
      this.waits.notify();
    });
  }

  until(what: string, pred: (r: Received[]) => boolean, timeoutMs = 15_000): Promise<void> {
    return this.waits.until(this.received, what, pred, timeoutMs);
  }

  send(record: unknown): void {
    this.ws.send(pack(record));
  }

  stall(): void {
    (this.ws as unknown as { _socket: net.Socket })._socket.pause();
  }

  resume(): void {
    (this.ws as unknown as { _socket: net.Socket })._socket.resume();
  }

  close(): void {
    this.ws.terminate();
  }
}

/**
 * An SSE or MJPEG viewer on a raw TCP socket: it sends the GET, then parses the chunked
 * response incrementally (no copy of a whole backlog), so stalling is just not reading.
 */
export class HttpStallable implements StallableViewer {
  readonly received: Received[] = [];
  readonly ended: Promise<Ending>;
  /** Resolves with the status once the response headers are in. */
  readonly responded: Promise<number>;
  private readonly socket: net.Socket;
  private onHead: (status: number) => void = () => {};
  private readonly waits = new Waits();
  private head = '';
  private inBody = false;
  /** Chunked transfer decoding: bytes left in the current chunk, and the size line being read. */
  private chunkLeft = 0;
  private sizeLine = '';
  private skipCrlf = 0;
  private cleanEnd = false;
  private readonly body: (bytes: Buffer) => void;

  constructor(port: number, path: string, format: 'sse' | 'mjpeg', headers: Record<string, string> = {}) {
    this.responded = new Promise((res) => {
      this.onHead = res;
    });
    this.body = format === 'sse' ? sseParser((r) => this.push(r)) : mjpegParser((r) => this.push(r));
    this.socket = net.connect(port, '127.0.0.1');
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`);
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', () => {});
    this.ended = new Promise((res) => this.socket.once('close', () => res({ clean: this.cleanEnd })));
  }

  until(what: string, pred: (r: Received[]) => boolean, timeoutMs = 15_000): Promise<void> {
    return this.waits.until(this.received, what, pred, timeoutMs);
  }

  stall(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }

  private push(r: Received): void {
    this.received.push(r);
    this.waits.notify();
  }

  private onData(d: Buffer): void {
    let at = 0;
    if (!this.inBody) {
      this.head += d.toString('latin1');
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.onHead(Number(this.head.split(' ')[1]));
      at = d.length - (this.head.length - end - 4);
      this.inBody = true;
    }
    while (at < d.length) {
      if (this.skipCrlf > 0) {
        const n = Math.min(this.skipCrlf, d.length - at);
        this.skipCrlf -= n;
        at += n;
      } else if (this.chunkLeft > 0) {
        const n = Math.min(this.chunkLeft, d.length - at);
        this.body(d.subarray(at, at + n));
        this.chunkLeft -= n;
        at += n;
        if (this.chunkLeft === 0) this.skipCrlf = 2;
      } else {
        const nl = d.indexOf(10, at);
        if (nl < 0) {
          this.sizeLine += d.toString('latin1', at);
          return;
        }
        this.sizeLine += d.toString('latin1', at, nl);
        at = nl + 1;
        const size = Number.parseInt(this.sizeLine.trim(), 16);
        this.sizeLine = '';
        if (size === 0) {
          this.cleanEnd = true;
          return;
        }
        this.chunkLeft = size;
      }
    }
  }
}

/** SSE blocks into Received records; a frame's JSON is read for its topic, seq and `cached` only. */
function sseParser(emit: (r: Received) => void): (bytes: Buffer) => void {
  let text = '';
  return (bytes) => {
    text += bytes.toString('utf8');
    for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      let event = 'message';
      let id: string | undefined;
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (!data) continue;
      const body = JSON.parse(data) as Record<string, unknown>;
      const topic = String(body.topic ?? '');
      if (event === 'frame')
        emit({ kind: 'frame', topic, seq: body.seq as number, cached: body.cached === true });
      else if (event === 'variant') emit({ kind: 'variant', topic, variant: String(body.variant) });
      else if (event === 'gap') emit({ kind: 'gap', topic, body });
      else emit({ kind: 'event', topic, seq: body.seq as number, type: event, id, body });
    }
  };
}

/** multipart/x-mixed-replace parts into frame records (X-Topic, X-Seq); the JPEG bytes are skipped. */
function mjpegParser(emit: (r: Received) => void): (bytes: Buffer) => void {
  let head = '';
  let skip = 0;
  return (bytes) => {
    let at = 0;
    while (at < bytes.length) {
      if (skip > 0) {
        const n = Math.min(skip, bytes.length - at);
        skip -= n;
        at += n;
        continue;
      }
      const before = head.length;
      head += bytes.toString('latin1', at);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      at += end + 4 - before;
      const headers = Object.fromEntries(
        head
          .slice(0, end)
          .split('\r\n')
          .filter((l) => l.includes(': '))
          .map((l) => l.split(': ') as [string, string]),
      );
      head = '';
      emit({ kind: 'frame', topic: headers['X-Topic'] ?? '', seq: Number(headers['X-Seq']) });
      skip = Number(headers['Content-Length']) + 2; // the JPEG, then CRLF
    }
  };
}
