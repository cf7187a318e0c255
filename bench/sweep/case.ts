import net from 'node:net';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import type { SweepCase, SweepResult } from './shared.js';

/**
 * One sweep-churn case, in a fresh process started with --expose-gc and semi-spaces large
 * enough that no scavenge runs in the window: the heap grows by exactly what the main thread
 * allocated. It loads the WS endpoint of the tree under test (its dist/, so an old build runs
 * unchanged), opens `viewers` idle viewers on one frame topic over loopback sockets, waits
 * for them, then measures the heap over `sweeps` sweeps of the endpoint's 100 ms timer.
 */

const spec = JSON.parse(process.argv[2]!) as SweepCase;
const mod = async <T>(path: string): Promise<T> =>
  (await import(pathToFileURL(join(spec.root, 'dist', 'src', path)).href)) as T;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

// biome-ignore lint/suspicious/noExplicitAny: modules of two trees, loaded by path at run time
type Any = Record<string, any>;
const { default: uWS } = (await import('uWebSockets.js')) as Any;
const { createWsEndpoint } = await mod<Any>('server/ws.js');
const { Hub } = await mod<Any>('hub/hub.js');
const { createMetrics } = await mod<Any>('metrics/metrics.js');
const { ConnectionLimits, ConnectionBudget } = await mod<Any>('server/limits.js');
const { createAuthenticator } = await mod<Any>('server/auth.js');
const { log } = await mod<Any>('log.js');
log.level = 'silent';

const metrics = createMetrics();
const many = { maxConnections: 1e6, maxConnectionsPerIp: 1e6, connectRatePerIp: 1e9, connectBurstPerIp: 1e6 };
// Every field a ServerContext has had in either tree; a tree reads the ones it knows.
const ctx = {
  hub: new Hub(new Set(['bench0']), metrics),
  metrics,
  log,
  auth: await createAuthenticator(undefined),
  limits: new ConnectionLimits(many),
  slow: { softBytes: 256 * 1024, hardBytes: 4 * 1024 * 1024, slowCloseMs: 10_000 },
  adaptive: { downAfterMs: 2000, upAfterMs: 15_000 },
  maxTopicsPerConnection: 64,
  sseHeartbeatMs: 15_000,
  unauthenticated: new ConnectionBudget(1e6, 1e6),
};
const app = uWS.App();
const ws = createWsEndpoint(app, ctx, {
  maxPayloadBytes: 64 * 1024,
  // No automatic pings inside the window: an idle viewer really is idle.
  idleTimeoutSeconds: 960,
  authTimeoutMs: 10_000,
  sweepIntervalMs: 100,
  subscribeRatePerSecond: 100,
  subscribeBurst: 100,
});
const port = await new Promise<number>((resolve, reject) =>
  app.listen('127.0.0.1', 0, (s: unknown) =>
    s ? resolve(uWS.us_socket_local_port(s)) : reject(new Error('listen')),
  ),
);

const request =
  `GET /ws?topics=${encodeURIComponent('cam/bench0/raw')} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
  'Sec-WebSocket-Version: 13\r\n\r\n';
const sockets: net.Socket[] = [];
const open = (): Promise<void> =>
  new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(request));
    s.once('data', () => resolve());
    s.once('error', reject);
    sockets.push(s);
  });
for (let i = 0; i < spec.viewers; i += 200) {
  await Promise.all(Array.from({ length: Math.min(200, spec.viewers - i) }, open));
}
while (ws.census().total < spec.viewers) await new Promise((r) => setTimeout(r, 50));

let gcs = 0;
new PerformanceObserver((list) => {
  gcs += list.getEntries().length;
}).observe({ entryTypes: ['gc'] });
const settle = () => new Promise((r) => setTimeout(r, 300));
// Two seconds of sweeps first, so the window measures the sweep, not V8 compiling it.
await new Promise((r) => setTimeout(r, 2000));
gc();
gc();
await settle();
const used = () => v8.getHeapStatistics().used_heap_size;
gcs = 0;
const before = used();
const started = performance.now();
await new Promise((r) => setTimeout(r, spec.sweeps * 100));
const after = used();
const windowMs = performance.now() - started;
const result: SweepResult = {
  ...spec,
  sweepsRun: Math.floor(windowMs / 100),
  heapDeltaBytes: after - before,
  gcsInWindow: gcs,
};
process.send!(result);
for (const s of sockets) s.destroy();
ws.closeAll();
setTimeout(() => process.exit(0), 200);
