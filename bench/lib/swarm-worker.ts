import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { nowMs, sleep } from './clock.js';
import { Histogram } from './histogram.js';
import type {
  ChurnCmd,
  ChurnResult,
  ClassStats,
  OpenCmd,
  OpenResult,
  ProbeCmd,
  SwarmCmd,
  Tick,
  WorkerMsg,
  WorkerReport,
} from './swarm-protocol.js';
import { openViewer, type ViewerConn, type ViewerSink } from './viewers.js';

/**
 * One swarm process: opens the viewers it is told to, counts what they receive, and reports.
 * Everything per frame is a few array writes and a histogram increment; a process that
 * spends its time anywhere else would measure itself rather than the server.
 */
const MAX_ERROR_SAMPLES = 5;

interface ViewerState {
  conn: ViewerConn;
  slow: boolean;
  camera: number;
  gotFirst: boolean;
  open: boolean;
  windowFrames: number;
  lastSeq: number;
  seqGaps: number;
  throttled: boolean;
  /** Bytes a throttled viewer may still read in this 100 ms tick; negative is overdraft. */
  budget: number;
}

const viewers: ViewerState[] = [];
const latency = [new Histogram(), new Histogram()];
const serverCloses: Record<string, number>[] = [{}, {}];
const ttff = new Histogram();
const connectHist = new Histogram();
const probeTtff = new Histogram();
let probeErrors = 0;
let errors = 0;
const errorSamples: string[] = [];
let windowStart = Number.POSITIVE_INFINITY;
let framesTotal = 0;
let bytesTotal = 0;
const windowFrames = [0, 0];
const windowBytes = [0, 0];
let conns = 0;
let throttleBytesPerTick = 0;
let windowCpu = process.cpuUsage();
let windowWall = performance.now();
let windowElu = performance.eventLoopUtilization();
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
let probing = false;
let churnResult: ChurnResult | undefined;

function noteError(err: Error | string): void {
  errors++;
  if (errorSamples.length < MAX_ERROR_SAMPLES)
    errorSamples.push(String(err instanceof Error ? err.message : err));
}

const sink: ViewerSink = {
  onOpen(conn) {
    const v = viewers[conn.tag]!;
    v.open = true;
    conns++;
    connectHist.recordMs(nowMs() - conn.startedAt);
  },
  onFrame(conn, ts, seq, bytes) {
    const now = nowMs();
    const v = viewers[conn.tag]!;
    framesTotal++;
    bytesTotal += bytes;
    if (!v.gotFirst) {
      v.gotFirst = true;
      ttff.recordMs(now - conn.startedAt);
    }
    if (!Number.isNaN(seq)) {
      if (v.lastSeq >= 0 && seq > v.lastSeq + 1 && ts >= windowStart) v.seqGaps += seq - v.lastSeq - 1;
      v.lastSeq = seq;
    }
    if (ts >= windowStart) {
      const cls = v.slow ? 1 : 0;
      v.windowFrames++;
      windowFrames[cls]!++;
      windowBytes[cls]! += bytes;
      latency[cls]!.recordMs(now - ts);
      if (v.throttled) {
        v.budget -= bytes;
        if (v.budget <= 0) conn.pause();
      }
    }
  },
  onClose(conn, code, byServer) {
    const v = viewers[conn.tag]!;
    if (v.open) conns--;
    v.open = false;
    if (byServer) {
      const counts = serverCloses[v.slow ? 1 : 0]!;
      counts[code] = (counts[code] ?? 0) + 1;
    }
    pendingOpen.get(conn.tag)?.(false);
  },
  onError(_conn, err) {
    noteError(err);
  },
};

/** Resolvers of viewers still connecting, keyed by tag: true on open, false on failure. */
const pendingOpen = new Map<number, (ok: boolean) => void>();

async function open(cmd: OpenCmd): Promise<OpenResult> {
  throttleBytesPerTick = (cmd.throttleKiBps * 1024) / 10;
  const queue: { transport: OpenCmd['groups'][number]['transport']; camera: number; slow: boolean }[] = [];
  for (const g of cmd.groups) {
    for (let i = 0; i < g.count; i++)
      queue.push({ transport: g.transport, camera: g.camera, slow: !!g.slow });
  }
  const result: OpenResult = { opened: 0, failed: 0, firstStart: nowMs(), lastOpen: 0, errorSamples: [] };
  const openSink: ViewerSink = {
    ...sink,
    onOpen(conn) {
      sink.onOpen(conn);
      pendingOpen.get(conn.tag)?.(true);
    },
  };
  let next = 0;
  const one = async (): Promise<void> => {
    // Bounded by the queue length: each iteration takes one spec.
    while (next < queue.length) {
      const spec = queue[next++]!;
      const tag = viewers.length;
      const ok = await new Promise<boolean>((resolve) => {
        let done = false;
        let timer: NodeJS.Timeout | undefined;
        const finish = (v: boolean) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          pendingOpen.delete(tag);
          resolve(v);
        };
        pendingOpen.set(tag, finish);
        const target = { port: cmd.port, camera: cmd.cameras[spec.camera]!, variant: cmd.variant };
        const conn = openViewer(spec.transport, target, openSink);
        conn.tag = tag;
        viewers.push({
          conn,
          slow: spec.slow,
          camera: spec.camera,
          gotFirst: false,
          open: false,
          windowFrames: 0,
          lastSeq: -1,
          seqGaps: 0,
          throttled: false,
          budget: 0,
        });
        timer = setTimeout(() => {
          noteError(`connect timed out after ${cmd.connectTimeoutMs} ms`);
          conn.close();
          finish(false);
        }, cmd.connectTimeoutMs);
      });
      if (ok) {
        result.opened++;
        result.lastOpen = nowMs();
      } else result.failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, cmd.concurrency) }, one));
  result.errorSamples = errorSamples.slice();
  return result;
}

function measure(t0: number): void {
  windowStart = t0;
  setTimeout(
    () => {
      windowCpu = process.cpuUsage();
      windowWall = performance.now();
      windowElu = performance.eventLoopUtilization();
      loopDelay.reset();
      loopDelay.enable();
      for (const v of viewers) if (v.slow) startSlow(v);
    },
    Math.max(0, t0 - nowMs()),
  );
}

let throttled: ViewerState[] = [];
let throttleTimer: NodeJS.Timeout | undefined;

function startSlow(v: ViewerState): void {
  if (throttleBytesPerTick <= 0) {
    v.conn.pause(); // stall: never read again
    return;
  }
  v.budget = throttleBytesPerTick;
  v.throttled = true;
  throttled.push(v);
  throttleTimer ??= setInterval(() => {
    // Overdraft carries over, so the average rate is the throttle even though whole
    // frames are read at a time.
    for (const t of throttled) {
      t.budget = Math.min(throttleBytesPerTick, t.budget + throttleBytesPerTick);
      if (t.budget > 0) t.conn.resume();
    }
  }, 100);
}

async function probe(cmd: ProbeCmd): Promise<void> {
  probing = true;
  // Bounded by count and by probing, which report clears.
  for (let i = 0; i < cmd.count && probing; i++) {
    const t = performance.now();
    const ok = await probeOnce(cmd);
    if (!ok) probeErrors++;
    await sleep(Math.max(0, cmd.intervalMs - (performance.now() - t)));
  }
}

function probeOnce(
  cmd: ProbeCmd | ChurnCmd,
  onOpen?: (ms: number) => void,
  timeoutMs = 5000,
): Promise<boolean> {
  return new Promise((resolve) => {
    let finished = false;
    let conn: ViewerConn | undefined;
    const timer = setTimeout(() => finish(false, 'first frame timed out'), timeoutMs);
    const finish = (ok: boolean, err?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (err) noteError(err);
      conn?.close();
      resolve(ok);
    };
    const probeSink: ViewerSink = {
      onOpen: (c) => onOpen?.(nowMs() - c.startedAt),
      onFrame: (c) => {
        (cmd.cmd === 'churn' ? churnFirst : probeTtff).recordMs(nowMs() - c.startedAt);
        finish(true);
      },
      onClose: (_c, code, byServer) =>
        finish(false, byServer ? `closed by server (${code}) before a frame` : undefined),
      onError: (_c, err) => finish(false, err.message),
    };
    conn = openViewer(cmd.transport, { port: cmd.port, camera: cmd.camera, variant: cmd.variant }, probeSink);
  });
}

let churnConnect = new Histogram();
let churnFirst = new Histogram();

async function churn(cmd: ChurnCmd): Promise<ChurnResult> {
  const deadline = performance.now() + cmd.durationMs;
  churnConnect = new Histogram();
  churnFirst = new Histogram();
  let cycles = 0;
  let failures = 0;
  const loop = async () => {
    // Bounded by the deadline and by maxCycles.
    while (performance.now() < deadline && cycles + failures < cmd.maxCycles) {
      const ok = await probeOnce(cmd, (ms) => churnConnect.recordMs(ms), cmd.firstFrameTimeoutMs);
      if (ok) cycles++;
      else failures++;
    }
  };
  await Promise.all(Array.from({ length: cmd.concurrency }, loop));
  churnResult = {
    cycles,
    errors: failures,
    connect: churnConnect.toSparse(),
    firstFrame: churnFirst.toSparse(),
    errorSamples: errorSamples.slice(),
  };
  return churnResult;
}

function classStats(slow: boolean): ClassStats {
  const cls = slow ? 1 : 0;
  const members = viewers.filter((v) => v.slow === slow);
  const perCamera: number[] = [];
  for (const v of members) perCamera[v.camera] = (perCamera[v.camera] ?? 0) + 1;
  return {
    viewers: members.length,
    viewersPerCamera: Array.from(perCamera, (n) => n ?? 0),
    frames: windowFrames[cls]!,
    bytes: windowBytes[cls]!,
    latency: latency[cls]!.toSparse(),
    seqGaps: members.reduce((a, v) => a + v.seqGaps, 0),
    perViewerFrames: members.map((v) => v.windowFrames),
    serverCloses: serverCloses[cls]!,
  };
}

function report(): WorkerReport {
  probing = false;
  const cpu = process.cpuUsage(windowCpu);
  const started = Number.isFinite(windowStart);
  return {
    pid: process.pid,
    healthy: classStats(false),
    slow: classStats(true),
    ttff: ttff.toSparse(),
    connect: connectHist.toSparse(),
    probeTtff: probeTtff.toSparse(),
    probeErrors,
    errors,
    errorSamples: errorSamples.slice(),
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - windowWall,
    elu: performance.eventLoopUtilization(windowElu).utilization,
    eventLoopDelayP99Ms: started ? loopDelay.percentile(99) / 1e6 : 0,
    rssBytes: process.memoryUsage.rss(),
    open: conns,
    ...(churnResult ? { churn: churnResult } : {}),
  };
}

async function closeAll(): Promise<void> {
  clearInterval(throttleTimer);
  throttled = [];
  for (const v of viewers) {
    v.conn.resume();
    v.conn.close();
  }
  // Give close handshakes a moment; the process exits right after either way.
  const deadline = performance.now() + 2000;
  while (conns > 0 && performance.now() < deadline) await sleep(20);
}

const send = (msg: WorkerMsg) => process.send?.(msg);

const tick = setInterval(() => {
  const cpu = process.cpuUsage();
  const msg: Tick = {
    ev: 'tick',
    frames: framesTotal,
    bytes: bytesTotal,
    conns,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
  send(msg);
}, 1000);

process.on('message', async (raw: SwarmCmd & { id: number }) => {
  try {
    let data: unknown;
    switch (raw.cmd) {
      case 'open':
        data = await open(raw);
        break;
      case 'measure':
        measure(raw.t0);
        break;
      case 'probe':
        void probe(raw);
        break;
      case 'churn':
        data = await churn(raw);
        break;
      case 'report':
        data = report();
        break;
      case 'close':
        await closeAll();
        clearInterval(tick);
        send({ ev: 'reply', id: raw.id, ok: true });
        process.disconnect();
        return;
    }
    send({ ev: 'reply', id: raw.id, ok: true, data });
  } catch (err) {
    send({ ev: 'reply', id: raw.id, ok: false, error: (err as Error).stack ?? String(err) });
  }
});
// An orphaned swarm process must never keep connections open.
process.on('disconnect', () => process.exit(0));
