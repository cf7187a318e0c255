import { performance } from 'node:perf_hooks';
import { nowMs } from '../lib/clock.js';
import { Histogram } from '../lib/histogram.js';
import { peekRecord, TruncatedError } from '../lib/msgpack-peek.js';
import { WsLite } from '../lib/ws-lite.js';
import type { TopicReport, ViewersMsg, ViewersReport, ViewersSpec, WindowCmd } from './shared.js';

/**
 * A viewer process of bench:video (forked, so its CPU is not the daemon's): opens the WS
 * viewers of its spec (`/ws?topics=<topic>`), tells the parent, and counts the media records
 * (`frame` for a JPEG variant, `fragment` for `video`) stamped inside the window it is then
 * given. Per record it peeks `type`, `seq` and `ts` without decoding the `data`
 * (bench/lib/msgpack-peek.ts), as the load harness's swarm does, so the JPEG and the video
 * viewers cost the client the same per record. The swarm's viewers count `frame` records only,
 * hence this process.
 * Usage (by run.ts): fork(viewers-case.js, [JSON ViewersSpec]); send WindowCmd; get ViewersMsg.
 */
const spec = JSON.parse(process.argv[2]!) as ViewersSpec;
const MAX_ERROR_SAMPLES = 5;

interface Viewer {
  ws: WsLite;
  topic: number;
  records: number;
  lastSeq: number;
  byUs: boolean;
}

interface TopicCounts {
  bytes: number;
  seqs: Set<number>;
  seqGaps: number;
  latency: Histogram;
  serverCloses: Record<string, number>;
}

const viewers: Viewer[] = [];
const counts: TopicCounts[] = spec.topics.map(() => ({
  bytes: 0,
  seqs: new Set(),
  seqGaps: 0,
  latency: new Histogram(),
  serverCloses: {},
}));
let t0 = Number.POSITIVE_INFINITY;
let t1 = Number.POSITIVE_INFINITY;
let errors = 0;
const errorSamples: string[] = [];
let cpuAtStart = process.cpuUsage();
let wallAtStart = performance.now();
let eluAtStart = performance.eventLoopUtilization();
/** CPU, wall and ELU over the window, taken at t1 (the drain after it is not the window's). */
let windowUse = { cpuMs: 0, wallMs: 0, elu: 0 };

const send = (msg: ViewersMsg) => process.send?.(msg);

function noteError(message: string): void {
  errors++;
  if (errorSamples.length < MAX_ERROR_SAMPLES) errorSamples.push(message);
}

function peek(chunks: Buffer[]) {
  try {
    return peekRecord(chunks[0]!);
  } catch (err) {
    if (!(err instanceof TruncatedError) || chunks.length === 1) throw err;
    return peekRecord(Buffer.concat(chunks));
  }
}

function onRecord(v: Viewer, chunks: Buffer[], length: number): void {
  const record = peek(chunks);
  if (record?.type !== 'frame' && record?.type !== 'fragment') return;
  const now = nowMs();
  const c = counts[v.topic]!;
  const inWindow = record.ts >= t0 && record.ts < t1;
  if (v.lastSeq >= 0 && record.seq > v.lastSeq + 1 && inWindow) c.seqGaps += record.seq - v.lastSeq - 1;
  v.lastSeq = record.seq;
  if (!inWindow) return;
  v.records++;
  c.bytes += length;
  c.seqs.add(record.seq);
  c.latency.recordMs(now - record.ts);
}

/** Opens one viewer; resolves true once the upgrade is answered, false on failure or timeout. */
function openOne(topic: number): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ok);
    };
    const path = `/ws?topics=${encodeURIComponent(spec.topics[topic]!.topic)}`;
    const v: Viewer = { ws: undefined as unknown as WsLite, topic, records: 0, lastSeq: -1, byUs: false };
    v.ws = new WsLite(spec.port, path, {
      onOpen: () => settle(true),
      onMessage: (chunks, length, binary) => {
        if (binary) onRecord(v, chunks, length);
      },
      onClose: (code) => {
        if (!v.byUs) {
          const closes = counts[topic]!.serverCloses;
          closes[code] = (closes[code] ?? 0) + 1;
        }
        settle(false);
      },
      onError: (err) => noteError(err.message),
    });
    viewers.push(v);
    const timer = setTimeout(() => {
      noteError(`connect timed out after ${spec.connectTimeoutMs} ms`);
      v.byUs = true;
      v.ws.destroy();
      settle(false);
    }, spec.connectTimeoutMs);
  });
}

async function openAll(): Promise<void> {
  const queue = spec.topics.flatMap((t, i) => Array.from({ length: t.count }, () => i));
  let next = 0;
  let opened = 0;
  let failed = 0;
  const lane = async () => {
    // Bounded by the queue: each pass takes one viewer from it.
    while (next < queue.length) {
      if (await openOne(queue[next++]!)) opened++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, spec.concurrency) }, lane));
  send({ ev: 'opened', opened, failed, errorSamples: errorSamples.slice() });
}

function closeWindow(): void {
  const cpu = process.cpuUsage(cpuAtStart);
  windowUse = {
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - wallAtStart,
    elu: performance.eventLoopUtilization(eluAtStart).utilization,
  };
}

function report(): ViewersReport {
  const topics: TopicReport[] = spec.topics.map((t, i) => {
    const c = counts[i]!;
    const mine = viewers.filter((v) => v.topic === i);
    return {
      topic: t.topic,
      viewers: mine.length,
      perViewerRecords: mine.map((v) => v.records),
      bytes: c.bytes,
      seqs: [...c.seqs],
      seqGaps: c.seqGaps,
      latency: c.latency.toSparse(),
      serverCloses: c.serverCloses,
    };
  });
  return {
    pid: process.pid,
    topics,
    ...windowUse,
    errors,
    errorSamples: errorSamples.slice(),
  };
}

process.on('message', (cmd: WindowCmd) => {
  if (cmd.cmd !== 'window') return;
  t0 = cmd.t0;
  t1 = cmd.t1;
  setTimeout(
    () => {
      cpuAtStart = process.cpuUsage();
      wallAtStart = performance.now();
      eluAtStart = performance.eventLoopUtilization();
    },
    Math.max(0, t0 - nowMs()),
  );
  setTimeout(closeWindow, Math.max(0, t1 - nowMs()));
  setTimeout(
    () => {
      send({ ev: 'report', report: report() });
      for (const v of viewers) {
        v.byUs = true;
        v.ws.close();
      }
      // The parent disconnects once it has the report; exit in any case soon after.
      setTimeout(() => process.exit(0), 2000).unref();
    },
    Math.max(0, t1 + cmd.drainMs - nowMs()),
  );
});
// An orphaned viewer process must never keep connections open.
process.on('disconnect', () => process.exit(0));
void openAll();
