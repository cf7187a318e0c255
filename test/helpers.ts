import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Packr } from 'msgpackr';
import { expect } from 'vitest';
import WebSocket from 'ws';

export const root = resolve(import.meta.dirname, '..');
export const mainJs = join(root, 'dist', 'src', 'main.js');
// int64AsType: the server sends ts and other integers beyond 32 bits as uint64.
const packr = new Packr({ useRecords: false, int64AsType: 'number' });
export const pack = (v: unknown) => packr.pack(v);
export const unpack = (b: Uint8Array) => packr.unpack(b) as Record<string, unknown>;

export interface LogLine {
  msg?: string;
  [key: string]: unknown;
}

export interface RunningDaemon {
  url: string;
  wsUrl: string;
  proc: ChildProcess;
  logs: LogLine[];
  /** What the daemon wrote to stderr so far (a native crash says why there). */
  stderr(): string;
  /** Resolves with the first log line matching, waiting up to timeoutMs. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(): Promise<number | null>;
}

/** Writes a config file into a fresh temp dir and returns its path. */
export function writeConfig(config: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'framehub-test-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

/** A small, cheap test camera for suites. */
export const testCamera = (id = 'demo', fps = 15) => ({ id, source: 'test', fps, width: 640, height: 360 });

/** A small test camera with live H.264 (no audio): a keyframe every `gopSeconds`. */
export const videoTestCamera = (id: string, fps: number, gopSeconds: number) => ({
  id,
  source: 'test',
  fps,
  width: 320,
  height: 180,
  audio: false,
  video: 'transcode',
  videoGopSeconds: gopSeconds,
});

/**
 * Each daemon its own `jobs.dataDir` unless the test names one: a daemon refuses a data
 * directory another one holds, and suites run side by side.
 */
function withOwnDataDir(config: unknown, dataDir: string): unknown {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return config;
  const jobs = (config as { jobs?: Record<string, unknown> }).jobs;
  if (jobs?.dataDir !== undefined) return config;
  return { ...config, jobs: { ...jobs, dataDir } };
}

/**
 * Starts the real daemon (dist/src/main.js) on an ephemeral port and waits for its
 * `"msg":"listening"` line. Its config file (and its data, unless the test names a
 * `jobs.dataDir`) live in a temp dir removed when it exits.
 */
export async function startDaemon(
  config: unknown,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  /** `nodeArgs` go before the script (`--require` preloads); `ipc` opens a channel (`proc.send`). */
  spawnOptions: { nodeArgs?: string[]; ipc?: boolean } = {},
): Promise<RunningDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'framehub-test-'));
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(withOwnDataDir(config, join(dir, 'data'))));
  const proc = spawn(
    process.execPath,
    [...(spawnOptions.nodeArgs ?? []), mainJs, '--port', '0', '--config', configFile, ...extraArgs],
    {
      env: { ...process.env, FRAMEHUB_LOG_LEVEL: 'info', ...env },
      stdio: spawnOptions.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push({ msg: line });
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((res) =>
    proc.once('exit', (code) => {
      rmSync(dir, { recursive: true, force: true });
      res(code);
    }),
  );

  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs = 15_000) =>
    new Promise<LogLine>((res, rej) => {
      const check = () => {
        const hit = logs.find(pred);
        if (hit) {
          waiters.delete(check);
          clearTimeout(timer);
          res(hit);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        rej(new Error(`log line not seen in ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`));
      }, timeoutMs);
      waiters.add(check);
      // A daemon that exits without the line fails the wait at once, not after the timeout.
      exited.then((code) => {
        check();
        if (!waiters.has(check)) return;
        waiters.delete(check);
        clearTimeout(timer);
        rej(new Error(`daemon exited (${code}) before the log line; stderr: ${stderr.slice(-2000)}`));
      });
      check();
    });

  const listening = await waitForLog((l) => l.msg === 'listening');
  const url = listening.url as string;
  return {
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/ws`,
    proc,
    logs,
    waitForLog,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** A ws client that decodes every binary message as a msgpack record. */
export class Viewer {
  readonly records: Record<string, unknown>[] = [];
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  private listeners = new Set<() => void>();
  /** How the server closed the socket, for a wait's error message. */
  private closedAs: string | undefined;
  /** The client's own error (a frame it refused), if any. */
  private errorAs: string | undefined;

  constructor(url: string, protocols?: string | string[], options?: WebSocket.ClientOptions) {
    this.ws = new WebSocket(url, protocols, options);
    this.opened = new Promise((res, rej) => {
      this.ws.once('open', () => res());
      this.ws.once('error', rej);
    });
    this.ws.on('error', (err) => {
      this.errorAs = err.message;
    });
    this.closed = new Promise((res) =>
      this.ws.once('close', (code, reason) => {
        this.closedAs = `${code} ${reason.toString()}`;
        res({ code, reason: reason.toString() });
      }),
    );
    this.ws.on('message', (data: Buffer, isBinary) => {
      this.records.push(isBinary ? unpack(data) : { type: '__text', text: data.toString() });
      for (const l of this.listeners) l();
    });
  }

  send(record: unknown): void {
    this.ws.send(pack(record));
  }

  of(type: string): Record<string, unknown>[] {
    return this.records.filter((r) => r.type === type);
  }

  /** Waits until pred holds over the records received so far. */
  until(pred: (records: Record<string, unknown>[]) => boolean, timeoutMs = 5000): Promise<void> {
    return new Promise((res, rej) => {
      const check = () => {
        if (!pred(this.records)) return;
        this.listeners.delete(check);
        clearTimeout(timer);
        res();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        const closed = `${this.closedAs ? `; closed ${this.closedAs}` : ''}${this.errorAs ? `; error ${this.errorAs}` : ''}`;
        rej(new Error(`condition not met in ${timeoutMs} ms (${this.records.length} records${closed})`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  close(): void {
    this.ws.close();
  }
}

/** GETs a URL and returns status, headers and body text. */
export async function get(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Value of one Prometheus sample line, e.g. metric('framehub_camera_up{camera="demo"}'). */
export function metricValue(metricsText: string, series: string): number | undefined {
  const line = metricsText.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : undefined;
}

export interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/** A raw SSE reader over fetch, keeping events and comment lines as they arrive. */
export class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  readonly response: Promise<Response>;
  private readonly controller = new AbortController();
  private listeners = new Set<() => void>();

  constructor(url: string, headers: Record<string, string> = {}) {
    this.response = fetch(url, { headers, signal: this.controller.signal });
    this.response
      .then(async (res) => {
        if (!res.body || res.status !== 200) return;
        const decoder = new TextDecoder();
        let buf = '';
        for await (const chunk of res.body) {
          buf += decoder.decode(chunk as Uint8Array, { stream: true });
          let end = buf.indexOf('\n\n');
          while (end >= 0) {
            this.parse(buf.slice(0, end));
            buf = buf.slice(end + 2);
            end = buf.indexOf('\n\n');
          }
        }
      })
      .catch(() => {});
  }

  private parse(block: string): void {
    const ev: SseEvent = { event: 'message', id: undefined, data: '' };
    const lines = block.split('\n');
    for (const line of lines) {
      if (line.startsWith(':')) this.comments.push(line);
      else if (line.startsWith('event: ')) ev.event = line.slice(7);
      else if (line.startsWith('id: ')) ev.id = line.slice(4);
      else if (line.startsWith('data: ')) ev.data += line.slice(6);
    }
    if (lines.some((l) => l.startsWith('event: ') || l.startsWith('data: '))) this.events.push(ev);
    for (const l of this.listeners) l();
  }

  of(event: string): SseEvent[] {
    return this.events.filter((e) => e.event === event);
  }

  until(pred: () => boolean, timeoutMs = 5000): Promise<void> {
    return new Promise((res, rej) => {
      const check = () => {
        if (!pred()) return;
        this.listeners.delete(check);
        clearTimeout(timer);
        res();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        rej(new Error(`SSE condition not met in ${timeoutMs} ms (${this.events.length} events)`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  close(): void {
    this.controller.abort();
  }
}

/** A JPEG of noise, so its size is realistic for its dimensions (about 0.3 bytes/pixel at q=60). */
export async function noiseJpeg(width: number, height: number, quality = 60): Promise<Buffer> {
  const { default: sharp } = await import('sharp');
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (Math.random() * 256) | 0;
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality })
    .toBuffer();
}

/** Posts an operator notice (a `system` event); returns its seq. */
export async function postNotice(baseUrl: string, message: string, token?: string): Promise<number> {
  const res = await fetch(`${baseUrl}/api/v1/notices`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ message }),
  });
  if (res.status !== 202) throw new Error(`notice refused: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { seq: number }).seq;
}

/** Resident set size of a process in bytes, from /proc. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/** A minimal PCM WAV file (RIFF, mono s16le). */
export function wav(samples: Int16Array, rate: number): Buffer {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + samples.byteLength, 4);
  header.write('WAVEfmt ', 8, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(samples.byteLength, 40);
  return Buffer.concat([header, Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength)]);
}

/** What `fn` throws, synchronously; fails the test when it does not throw. */
export function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

/** Polls an observable condition (a file, /proc, an HTTP answer) until it holds; false when it never did. */
export async function pollUntil(
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/** Running, not a zombie: an orphan's zombie may never be reaped when PID 1 is not init. */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Reads multipart/x-mixed-replace parts from a fetch body until `count` JPEGs arrived. */
export async function readMjpeg(
  url: string,
  count: number,
  requestHeaders: Record<string, string> = {},
): Promise<{ headers: Record<string, string>; jpeg: Buffer }[]> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: requestHeaders, signal: controller.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('multipart/x-mixed-replace; boundary=framehubframe');
  const parts: { headers: Record<string, string>; jpeg: Buffer }[] = [];
  let buf = Buffer.alloc(0);
  for await (const chunk of res.body!) {
    buf = Buffer.concat([buf, chunk as Uint8Array]);
    for (;;) {
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) break;
      const lines = buf.subarray(0, headEnd).toString().split('\r\n');
      expect(lines[0]).toBe('--framehubframe');
      const headers = Object.fromEntries(lines.slice(1).map((l) => l.split(': ') as [string, string]));
      const length = Number(headers['Content-Length']);
      if (buf.length < headEnd + 4 + length + 2) break;
      parts.push({ headers, jpeg: Buffer.from(buf.subarray(headEnd + 4, headEnd + 4 + length)) });
      buf = buf.subarray(headEnd + 4 + length + 2);
    }
    if (parts.length >= count) break;
  }
  controller.abort();
  return parts;
}
