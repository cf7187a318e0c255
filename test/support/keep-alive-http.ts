import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  /** Header names lowercased; a repeated header keeps its last value. */
  headers: Record<string, string>;
  /** How many times each header name appeared (a doubled Content-Length must show). */
  headerCounts: Record<string, number>;
  body: Buffer;
}

/**
 * One keep-alive HTTP/1.1 connection over a plain socket, reading responses byte-exactly: a
 * response's body is exactly its Content-Length (none for HEAD), so any stray byte a server
 * leaves after an answer makes the next response fail to parse. fetch() cannot show this: it
 * hides the connection and drops a HEAD response's body; test/fuzz/raw-http.ts sends one
 * request per socket.
 *
 * @example
 *   const conn = await KeepAliveHttp.open(url);
 *   await conn.request('HEAD', '/healthz');
 *   await conn.request('GET', '/healthz'); // throws if the HEAD left bytes behind
 */
export class KeepAliveHttp {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  /** Resolves when the server (or close()) ends the connection. */
  readonly whenClosed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    this.whenClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  static open(url: string): Promise<KeepAliveHttp> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => resolve(new KeepAliveHttp(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends one request and reads exactly one response. */
  async request(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    timeoutMs = 10_000,
  ): Promise<RawResponse> {
    const lines = [`${method} ${path} HTTP/1.1`, 'Host: framehub.test'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    this.socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    const deadline = Date.now() + timeoutMs;
    const headEnd = await this.until(() => this.buffered.indexOf('\r\n\r\n'), deadline);
    const head = this.buffered.subarray(0, headEnd).toString('latin1');
    this.buffered = this.buffered.subarray(headEnd + 4);
    const [statusLine, ...fields] = head.split('\r\n');
    const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? '');
    if (!match) throw new Error(`not a response: ${JSON.stringify(head.slice(0, 80))}`);
    const response: RawResponse = {
      status: Number(match[1]),
      headers: {},
      headerCounts: {},
      body: Buffer.alloc(0),
    };
    for (const field of fields) {
      const colon = field.indexOf(':');
      const name = field.slice(0, colon).trim().toLowerCase();
      response.headers[name] = field.slice(colon + 1).trim();
      response.headerCounts[name] = (response.headerCounts[name] ?? 0) + 1;
    }
    if (method === 'HEAD' || response.status === 304) return response;
    const length = Number(response.headers['content-length']);
    if (!Number.isInteger(length)) throw new Error(`${method} ${path}: no Content-Length to read by`);
    await this.until(() => (this.buffered.length >= length ? length : -1), deadline);
    response.body = this.buffered.subarray(0, length);
    this.buffered = this.buffered.subarray(length);
    return response;
  }

  /** Bytes received and not yet read as part of a response. */
  get unread(): number {
    return this.buffered.length;
  }

  get closed(): boolean {
    return this.ended;
  }

  close(): void {
    this.socket.destroy();
  }

  /** Waits until `found()` returns an index >= 0 (re-checked on every chunk). */
  private until(found: () => number, deadline: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const at = found();
        if (at >= 0) {
          clearTimeout(timer);
          this.wake = undefined;
          resolve(at);
        } else if (this.ended) {
          clearTimeout(timer);
          this.wake = undefined;
          reject(new Error('connection closed before a whole response'));
        }
      };
      const timer = setTimeout(() => {
        this.wake = undefined;
        reject(new Error('no whole response in time'));
      }, deadline - Date.now());
      this.wake = check;
      check();
    });
  }
}
