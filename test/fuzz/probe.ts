import { Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { validPingId } from '../../src/wire/protocol.js';
import { pack } from '../helpers.js';
import { readAsRecord } from './hostile-msgpack.js';

/**
 * A WebSocket client for fuzzing: it sends a case, then a ping sentinel, and judges what came
 * back against what the README documents.
 */

/** Close codes the README documents for a client that sent something wrong. */
export const DOCUMENTED_CLOSE = new Set([1009, 4001, 1008, 1013]);
/** Server records that are pushes (a subscription's traffic), not answers to a message. */
const PUSHES = new Set(['frame', 'variant', 'vad', 'segment', 'system', 'job']);

interface Answer {
  type: string;
  code?: unknown;
  message?: unknown;
  id?: unknown;
}

export interface ProbeResult {
  answers: Answer[];
  closed: { code: number; reason: string } | undefined;
  timedOut: boolean;
}

const serverRecords = new Unpackr({ mapsAsObjects: true, int64AsType: 'number' });

/**
 * One WebSocket that sends a case and then a ping sentinel, and collects what came back in
 * between: messages are handled in order, so everything before the sentinel's pong answers the
 * case. A close ends the probe instead (the caller opens a new one).
 */
export class Probe {
  private readonly ws: WebSocket;
  private answers: Answer[] = [];
  closed: { code: number; reason: string } | undefined;
  private wake: (() => void) | undefined;
  private next = 0;
  private failure: string | undefined;

  private constructor(url: string, headers: Record<string, string>) {
    this.ws = new WebSocket(url, { headers, maxPayload: 64 * 1024 * 1024 });
    // A refused upgrade (an HTTP status instead of 101) or a socket error ends in close 1006;
    // what it was goes into the close reason, for the report.
    this.ws.on('unexpected-response', (_req, res) => {
      this.failure = `HTTP ${res.statusCode} to the upgrade`;
      res.resume();
      this.ws.terminate();
    });
    this.ws.on('error', (err) => {
      this.failure ??= err.message;
    });
    this.ws.on('message', (data: Buffer) => {
      let r: Answer;
      try {
        r = serverRecords.unpack(data) as Answer;
      } catch {
        r = { type: '__undecodable' };
      }
      if (!PUSHES.has(r?.type)) this.answers.push(r);
      this.wake?.();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() || (this.failure ?? '') };
      this.wake?.();
    });
  }

  /** Opens and waits for the upgrade; a socket refused at open comes back already closed. */
  static async open(url: string, token?: string): Promise<Probe> {
    const p = new Probe(url, token ? { authorization: `Bearer ${token}` } : {});
    await new Promise<void>((resolve) => {
      p.ws.once('open', () => resolve());
      p.ws.once('close', () => resolve());
    });
    return p;
  }

  /**
   * Sends `bytes` and waits for its answers. `needsAnswer`: the sentinel alone does not mark
   * the end (a `hello` with a token is answered once the token is verified, asynchronously).
   */
  async send(bytes: Uint8Array, needsAnswer: boolean, timeoutMs = 10_000): Promise<ProbeResult> {
    const id = `sentinel-${this.next++}`;
    // Answers that came since the last case (those sent at open included) count for this one.
    if (!this.closed) {
      this.ws.send(bytes, { binary: true });
      this.ws.send(pack({ type: 'ping', id }), { binary: true });
    }
    const isSentinel = (a: Answer) => a.type === 'pong' && a.id === id;
    const done = () =>
      this.closed !== undefined ||
      (this.answers.some(isSentinel) && (!needsAnswer || this.answers.some((a) => !isSentinel(a))));
    let timedOut = false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timedOut = true;
        resolve();
      }, timeoutMs);
      this.wake = () => {
        if (!done()) return;
        clearTimeout(timer);
        resolve();
      };
      this.wake();
    });
    this.wake = undefined;
    const answers = this.answers.filter((a) => !isSentinel(a));
    this.answers = [];
    return { answers, closed: this.closed, timedOut };
  }

  close(): void {
    this.ws.close();
  }
}

export interface Verdict {
  outcome: string;
  problem?: string;
}

/**
 * Whether what came back is one of the documented answers to `bytes`: error records with a
 * code, a documented close code, a pong with a valid id, a hello, or (only for a record of a
 * type that is answered by silence when accepted) nothing at all.
 */
export function judge(
  result: ProbeResult,
  bytes: Uint8Array,
  silentTypes: ReadonlySet<string>,
  alive: boolean,
): Verdict {
  if (!alive) return { outcome: 'daemon-exit', problem: 'the daemon exited' };
  if (result.closed && !DOCUMENTED_CLOSE.has(result.closed.code)) {
    const { code, reason } = result.closed;
    return { outcome: `close:${code}`, problem: `closed with undocumented code ${code} (${reason})` };
  }
  const errors = result.answers.filter((a) => a.type === 'error');
  for (const e of errors) {
    if (typeof e.code !== 'string' || !/^[A-Z][A-Z_]+$/.test(e.code) || typeof e.message !== 'string')
      return { outcome: 'malformed error', problem: `error record without a code: ${JSON.stringify(e)}` };
  }
  for (const a of result.answers) {
    if (a.type === 'pong' && !validPingId(a.id))
      return {
        outcome: 'echoed id',
        problem: `pong echoed an id that is not a short string or safe integer`,
      };
    if (!['error', 'pong', 'hello'].includes(a.type))
      return {
        outcome: `answer:${String(a.type).slice(0, 20)}`,
        problem: `unexpected answer ${JSON.stringify(a).slice(0, 200)}`,
      };
  }
  if (errors.length) return { outcome: `error:${errors[0]!.code}` };
  if (result.answers.length) return { outcome: result.answers[0]!.type };
  if (result.closed) return { outcome: `close:${result.closed.code}` };
  if (result.timedOut)
    return { outcome: 'no answer', problem: 'neither an answer nor the sentinel pong came back' };
  const type = readAsRecord(bytes)?.type;
  return typeof type === 'string' && silentTypes.has(type)
    ? { outcome: 'accepted' }
    : { outcome: 'silent', problem: 'no error record for a message that is not an accepted record' };
}

/** Whether a message is a `hello` carrying a string token: answered only once it is verified. */
export function helloWithToken(bytes: Uint8Array): boolean {
  const r = readAsRecord(bytes);
  return r?.type === 'hello' && typeof r.token === 'string';
}
