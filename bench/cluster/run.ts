import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { sleep } from '../lib/clock.js';
import { makeJpeg } from '../lib/frames.js';
import { machineLine } from '../lib/results.js';

// Cross-node delivery against local delivery (issue 13's bench), in one run: a private
// redis-server and 2 framehub nodes on this machine. A publisher pushes frames of a push camera
// to node A; the same number of WS viewers watch it on node A (local) and on node B (through
// Redis). Reported: the latency each group sees (receipt − capture ts, on one client clock),
// the p99 Redis adds, Redis CPU and bytes per frame, and Redis PUBLISH calls per frame (one per
// frame per watched topic is the target: node B's 200 viewers cost one message, not 200).
// Usage: node dist-bench/bench/cluster/run.js [--viewers 200] [--fps 10] [--frame-kb 40]
//        [--seconds 20] [--warmup 3] [--topic low]

const { values: args } = parseArgs({
  options: {
    viewers: { type: 'string', default: '200' },
    fps: { type: 'string', default: '10' },
    'frame-kb': { type: 'string', default: '40' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    topic: { type: 'string', default: 'low' },
  },
});
const viewers = Number(args.viewers);
const fps = Number(args.fps);
const seconds = Number(args.seconds);
const topic = `cam/p/${args.topic}`;
const TARGET_ADDED_P99_MS = 5;
const root = join(import.meta.dirname, '..', '..', '..');
const mainJs = join(root, 'dist', 'src', 'main.js');
const packr = new Packr({ useRecords: false, int64AsType: 'number' });

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const { port } = server.address() as { port: number };
  await new Promise((res) => server.close(res));
  return port;
}

async function startRedis(): Promise<{ proc: ChildProcess; url: string }> {
  const port = await freePort();
  const proc = spawn(
    '/usr/bin/redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    const ok = await probe.connect().then(
      () => true,
      () => false,
    );
    probe.disconnect();
    if (ok) return { proc, url };
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}

async function startNode(id: string, redisUrl: string): Promise<{ proc: ChildProcess; url: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'framehub-bench-cluster-'));
  const config = join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({ cameras: [{ id: 'p', source: 'push', fps }], pool: { threads: 1 } }),
  );
  const proc = spawn(
    process.execPath,
    [mainJs, '--port', '0', '--config', config, '--redis-url', redisUrl, '--node-id', id],
    { env: { ...process.env, FRAMEHUB_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((res, rej) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"listening"')) res((JSON.parse(line) as { url: string }).url);
    });
    proc.once('exit', (code) => rej(new Error(`node ${id} exited (${code})`)));
  });
  return { proc, url };
}

/** utime + stime of a process, in ms (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function redisCounters(redis: Redis): Promise<{ publish: number; netIn: number; netOut: number }> {
  const stats = await redis.info('stats');
  const commands = await redis.info('commandstats');
  const num = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return {
    publish: num(commands, /^cmdstat_publish:calls=(\d+)/m),
    netIn: num(stats, /^total_net_input_bytes:(\d+)/m),
    netOut: num(stats, /^total_net_output_bytes:(\d+)/m),
  };
}

interface Group {
  latencies: number[];
  lastSeq: number;
  frames: number;
  sockets: WebSocket[];
}

function watch(url: string, count: number): Group {
  const group: Group = { latencies: [], lastSeq: 0, frames: 0, sockets: [] };
  for (let i = 0; i < count; i++) {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?topics=${topic}`);
    ws.on('message', (data: Buffer) => {
      const now = Date.now();
      const r = packr.unpack(data) as { type: string; seq: number; ts: number; cached?: boolean };
      if (r.type !== 'frame' || r.cached) return;
      group.latencies.push(now - r.ts);
      group.frames++;
      if (i === 0) group.lastSeq = Math.max(group.lastSeq, r.seq);
    });
    ws.on('error', () => {});
    group.sockets.push(ws);
  }
  return group;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const summary = (g: Group) => {
  const sorted = [...g.latencies].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
  };
};

console.log(`System: ${machineLine()}`);
console.log(
  `cluster bench: 2 nodes + redis-server on this machine; push camera at ${fps} fps, ${args['frame-kb']} KB frames; ${viewers} WS viewers of ${topic} on each node`,
);
const redisServer = await startRedis();
const a = await startNode('a', redisServer.url);
const b = await startNode('b', redisServer.url);
const redis = new Redis(redisServer.url);
try {
  const jpeg = await makeJpeg(1280, 720, Number(args['frame-kb']) * 1024);
  const publisher = new WebSocket(`${a.url.replace(/^http/, 'ws')}/publish`);
  await new Promise((res, rej) => publisher.once('open', res).once('error', rej));
  const timer = setInterval(
    () => publisher.send(packr.pack({ type: 'frame', camera: 'p', ts: Date.now(), data: jpeg })),
    1000 / fps,
  );
  const local = watch(a.url, viewers);
  const remote = watch(b.url, viewers);
  await sleep(Number(args.warmup) * 1000);
  for (const g of [local, remote]) {
    g.latencies.length = 0;
    g.frames = 0;
  }
  await redis.config('RESETSTAT');
  const before = await redisCounters(redis);
  const cpuBefore = cpuMs(redisServer.proc.pid!);
  const seqBefore = remote.lastSeq;
  await sleep(seconds * 1000);
  const cpuAfter = cpuMs(redisServer.proc.pid!);
  const after = await redisCounters(redis);
  const framesMade = remote.lastSeq - seqBefore;
  clearInterval(timer);
  const l = summary(local);
  const r = summary(remote);
  const publishes = after.publish - before.publish;
  const rows = [
    ['local (node A)', l.n, l.p50, l.p99, l.max],
    ['remote (node B, via Redis)', r.n, r.p50, r.p99, r.max],
  ];
  console.log('\n| viewers | frames received | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  const added = r.p99 - l.p99;
  console.log(
    `\nadded p99 latency: ${added} ms (target ≤ ${TARGET_ADDED_P99_MS} ms): ${added <= TARGET_ADDED_P99_MS ? 'met' : 'MISSED'}`,
  );
  console.log(`frames made on ${topic} in ${seconds} s: ${framesMade}`);
  console.log(
    `Redis PUBLISH calls: ${publishes} (${(publishes / Math.max(1, framesMade)).toFixed(2)} per frame; target 1 per frame per topic per subscribing node)`,
  );
  console.log(
    `Redis CPU: ${((cpuAfter - cpuBefore) / Math.max(1, framesMade)).toFixed(3)} ms per frame (${(((cpuAfter - cpuBefore) / (seconds * 1000)) * 100).toFixed(1)} % of a core)`,
  );
  console.log(
    `Redis bytes per frame: ${Math.round((after.netIn - before.netIn) / Math.max(1, framesMade))} in, ${Math.round((after.netOut - before.netOut) / Math.max(1, framesMade))} out (latest-frame SETs and GETs included)`,
  );
  for (const g of [local, remote]) for (const s of g.sockets) s.terminate();
  publisher.terminate();
} finally {
  redis.disconnect();
  for (const p of [a.proc, b.proc]) p.kill('SIGTERM');
  redisServer.proc.kill('SIGTERM');
}
