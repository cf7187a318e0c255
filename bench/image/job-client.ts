import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { nowMs, withTimeout } from '../lib/clock.js';

const packr = new Packr({ useRecords: false });
const FINAL_STATES = new Set(['done', 'failed', 'cancelled']);
/** An image in this bench takes well under a second; a job still running after this is a hang. */
const JOB_TIMEOUT_MS = 30_000;

/** One image through framehub's job path, with where its time went (ms). */
export interface JobSample {
  bytes: number;
  /** POST: the upload, the header checks and the main thread's probe, until the 202. */
  postMs: number;
  /** From the 202 to the `done` event on `job/<id>`. */
  waitMs: number;
  /** GET of the output's bytes. */
  resultMs: number;
  /** The daemon's own clock: the job created (after the probe) to finished (outputs on disk). */
  serverJobMs: number;
  /** The worker's decode and encode of the output (`outputs[0].ms`). */
  computeMs: number;
  /** From the job's finishedAt to the client holding its `done` event (ms clocks, so ±1). */
  eventMs: number;
}

interface Response {
  status: number;
  body: Buffer;
}

/** The job's last event: the whole job, result and times included. */
interface FinalEvent {
  id: string;
  state: string;
  createdAt: string;
  finishedAt: string;
  error?: { code: string; message: string };
  result?: { outputs: { url: string; bytes: number; ms: number }[] };
}

interface Waiter {
  resolve(event: { job: FinalEvent; atMs: number }): void;
  reject(err: Error): void;
}

/**
 * One client of framehub's image jobs, as an integrator writes it: POST the image, wait for the
 * job's `done` event on one WebSocket (subscribing to `job/<id>` after the 202; the topic's
 * history replays what was missed), which carries the result's URL, GET the result. HTTP
 * requests reuse one keep-alive connection. Anything but success throws: a failed job is a
 * broken bench, not a slow sample.
 */
export class JobClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private readonly waiting = new Map<string, Waiter>();
  private failure: Error | undefined;

  private constructor(
    private readonly url: URL,
    private readonly ws: WebSocket,
  ) {
    ws.on('message', (data: Buffer) => this.onRecord(packr.unpack(data) as Record<string, unknown>));
    ws.on('close', (code, reason) => this.fail(`job events WebSocket closed: ${code} ${reason.toString()}`));
  }

  static async open(baseUrl: string, wsBase: string): Promise<JobClient> {
    const ws = new WebSocket(`${wsBase}/ws`, { perMessageDeflate: false });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      }),
      5000,
      'job events WebSocket open',
    );
    return new JobClient(new URL(baseUrl), ws);
  }

  async run(body: Buffer, query: string): Promise<JobSample> {
    if (this.failure) throw this.failure;
    const t0 = performance.now();
    const posted = await this.request('POST', `/api/v1/jobs/image?${query}`, body);
    if (posted.status !== 202) throw new Error(`POST answered ${posted.status}: ${posted.body.toString()}`);
    const { id, topic } = JSON.parse(posted.body.toString()) as { id: string; topic: string };
    const t1 = performance.now();
    const done = withTimeout(
      new Promise<{ job: FinalEvent; atMs: number }>((resolve, reject) =>
        this.waiting.set(id, { resolve, reject }),
      ),
      JOB_TIMEOUT_MS,
      `job ${id}`,
    );
    this.ws.send(packr.pack({ type: 'sub', topics: [topic] }));
    const { job, atMs } = await done;
    const t2 = performance.now();
    this.ws.send(packr.pack({ type: 'unsub', topics: [topic] }));
    const output = job.result?.outputs[0];
    if (job.state !== 'done' || !output) {
      throw new Error(`job ${id} ended ${job.state}: ${JSON.stringify(job.error ?? job.result)}`);
    }
    const result = await this.request('GET', output.url);
    if (result.status !== 200 || result.body.length !== output.bytes) {
      throw new Error(`GET ${output.url}: ${result.status}, ${result.body.length} bytes of ${output.bytes}`);
    }
    const t3 = performance.now();
    const finishedAt = Date.parse(job.finishedAt);
    return {
      bytes: result.body.length,
      postMs: t1 - t0,
      waitMs: t2 - t1,
      resultMs: t3 - t2,
      serverJobMs: finishedAt - Date.parse(job.createdAt),
      computeMs: output.ms,
      eventMs: atMs - finishedAt,
    };
  }

  close(): void {
    this.ws.close();
    this.agent.destroy();
  }

  private onRecord(record: Record<string, unknown>): void {
    if (record.type === 'error') {
      this.fail(`framehub sent an error record: ${record.code} ${record.message}`);
      return;
    }
    if (record.type !== 'job' || !FINAL_STATES.has(record.state as string)) return;
    const waiter = this.waiting.get(record.id as string);
    if (!waiter) return;
    this.waiting.delete(record.id as string);
    waiter.resolve({ job: record as unknown as FinalEvent, atMs: nowMs() });
  }

  /** A refused subscription or a closed socket ends every wait at once, and every later run. */
  private fail(message: string): void {
    this.failure ??= new Error(message);
    for (const waiter of this.waiting.values()) waiter.reject(this.failure);
    this.waiting.clear();
  }

  private request(method: string, path: string, body?: Buffer): Promise<Response> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.url.hostname,
          port: this.url.port,
          method,
          path,
          agent: this.agent,
          headers: body ? { 'content-length': body.length, 'content-type': 'application/octet-stream' } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }
}
