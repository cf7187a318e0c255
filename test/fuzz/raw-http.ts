import net from 'node:net';

/**
 * HTTP/1.1 over a bare socket, for requests fetch and node:http refuse to send: raw bytes in
 * the request target, thousands of headers, a header that arrives one byte a second. Every
 * request says `Connection: close`, so one socket is one request.
 */
export interface RawResponse {
  /** 0 when no status line came back. */
  status: number;
  /** Lower-cased header names; the last value wins. */
  headers: Record<string, string>;
  body: Buffer;
  /** The server closed the socket (after replying, or without a reply). */
  closed: boolean;
  timedOut: boolean;
}

export interface RawRequestOptions {
  body?: Buffer;
  timeoutMs?: number;
}

/** Host and port of a daemon URL. */
export const endpoint = (url: string) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
};

/** Splits what arrived into status, headers and body once the head is complete. */
function parse(data: Buffer): Omit<RawResponse, 'closed' | 'timedOut'> & { complete: boolean } {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: Buffer.alloc(0), complete: false };
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(lines[0]!.split(' ')[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const at = l.indexOf(':');
    if (at > 0) headers[l.slice(0, at).trim().toLowerCase()] = l.slice(at + 1).trim();
  }
  const body = data.subarray(end + 4);
  const length = headers['content-length'];
  // A response without a length is a stream (SSE, MJPEG): its head is all we wait for.
  const complete = length === undefined ? true : body.length >= Number(length);
  return { status, headers, body: length === undefined ? body : body.subarray(0, Number(length)), complete };
}

/**
 * Sends `head` (a whole request head, CRLFs and all, as bytes) and resolves with the
 * response once it is complete, the server closed, or `timeoutMs` passed.
 *
 * @example
 *   await rawRequest(url, Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
 */
export function rawRequest(url: string, head: Buffer, opts: RawRequestOptions = {}): Promise<RawResponse> {
  const { host, port } = endpoint(url);
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    let data = Buffer.alloc(0);
    let settled = false;
    const done = (closed: boolean, timedOut = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const { complete: _, ...r } = parse(data);
      resolve({ ...r, closed, timedOut });
    };
    const timer = setTimeout(() => done(false, true), opts.timeoutMs ?? 10_000);
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      if (parse(data).complete) done(false);
    });
    // A reset while we were still writing is a close, which is what we observe.
    socket.on('error', () => {});
    socket.on('close', () => done(true));
    socket.write(head);
    if (opts.body) socket.write(opts.body);
  });
}

/** A GET head for `target` (bytes, so raw non-ASCII survives), with extra header lines. */
export function getHead(target: Buffer | string, headers: Record<string, string> = {}): Buffer {
  const lines = Object.entries({ Host: 'fuzz', Connection: 'close', ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.concat([Buffer.from('GET '), Buffer.from(target), Buffer.from(` HTTP/1.1\r\n${lines}\r\n`)]);
}

/** The `error.code` of a JSON error body, or undefined when the body is not one. */
export function errorCode(r: RawResponse): string | undefined {
  try {
    const code = (JSON.parse(r.body.toString('utf8')) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A WebSocket upgrade over a bare socket, for a request target with raw bytes no WebSocket
 * client will send. Resolves with the HTTP status and the binary messages the server sent
 * within `waitMs` of the upgrade (or once `enough` of them came).
 */
export function rawWsMessages(
  url: string,
  target: Buffer,
  headers: Record<string, string>,
  opts: { enough?: number; waitMs?: number } = {},
): Promise<{ status: number; messages: Buffer[]; closeCode: number | undefined }> {
  const { host, port } = endpoint(url);
  const head = Buffer.concat([
    Buffer.from('GET '),
    target,
    Buffer.from(
      ' HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('') +
        '\r\n',
    ),
  ]);
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    let data = Buffer.alloc(0);
    let status = 0;
    const messages: Buffer[] = [];
    let closeCode: number | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ status, messages, closeCode });
    };
    const timer = setTimeout(done, opts.waitMs ?? 5000);
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      if (!status) {
        const end = data.indexOf('\r\n\r\n');
        if (end < 0) return;
        status = Number(data.subarray(0, end).toString('latin1').split(' ')[1]);
        data = data.subarray(end + 4);
        if (status !== 101) return done();
      }
      // Server frames are unmasked: opcode byte, 7-bit length (or 126 + 16 bits), payload.
      while (data.length >= 2) {
        const opcode = data[0]! & 0x0f;
        let len = data[1]! & 0x7f;
        let at = 2;
        if (len === 126) {
          if (data.length < 4) return;
          len = data.readUInt16BE(2);
          at = 4;
        } else if (len === 127) {
          if (data.length < 10) return;
          len = Number(data.readBigUInt64BE(2));
          at = 10;
        }
        if (data.length < at + len) return;
        const payload = data.subarray(at, at + len);
        data = data.subarray(at + len);
        if (opcode === 0x8) {
          closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
          return done();
        }
        if (opcode === 0x2) messages.push(payload);
        if (messages.length >= (opts.enough ?? Number.POSITIVE_INFINITY)) return done();
      }
    });
    socket.on('error', () => {});
    socket.on('close', done);
    socket.write(head);
  });
}
