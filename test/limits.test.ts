import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionLimits } from '../src/server/limits.js';
import { get, metricValue, type RunningDaemon, startDaemon, testCamera, Viewer } from './helpers.js';

let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

const limits = (viewers: Record<string, number>) =>
  startDaemon({ cameras: [testCamera('demo', 5)], viewers });
const openWs = async (url: string) => {
  const v = new Viewer(url);
  await v.opened;
  return v;
};

describe('connection limits (each one over)', () => {
  it('maxConnections: the next WS is closed 1013, the next SSE gets 503 with Retry-After', async () => {
    daemon = await limits({ maxConnections: 2 });
    const open = [await openWs(daemon.wsUrl), await openWs(daemon.wsUrl)];
    const over = new Viewer(daemon.wsUrl);
    const closed = await over.closed;
    expect(closed.code).toBe(1013);
    expect(closed.reason).toMatch(/TOO_MANY_CONNECTIONS/);
    const sse = await get(`${daemon.url}/sse?topics=system`);
    expect(sse.status).toBe(503);
    expect(sse.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(JSON.parse(sse.text).error.code).toBe('TOO_MANY_CONNECTIONS');
    const metrics = await get(`${daemon.url}/metrics`);
    expect(metricValue(metrics.text, 'framehub_limit_rejections_total{limit="connections"}')).toBe(2);
    for (const v of open) v.close();
  });

  it('maxConnectionsPerIp: the next one gets 429 / 1013', async () => {
    daemon = await limits({ maxConnectionsPerIp: 1 });
    const first = await openWs(daemon.wsUrl);
    expect((await new Viewer(daemon.wsUrl).closed).code).toBe(1013);
    const mjpeg = await get(`${daemon.url}/cams/demo/low.mjpeg`);
    expect(mjpeg.status).toBe(429);
    expect(JSON.parse(mjpeg.text).error.code).toBe('TOO_MANY_CONNECTIONS');
    first.close();
    await first.closed;
    const again = await openWs(daemon.wsUrl);
    again.close();
  });

  it('connectRatePerIp: a burst one over is refused with RATE_LIMITED and Retry-After', async () => {
    daemon = await limits({ connectBurstPerIp: 3, connectRatePerIp: 0.2 });
    const ok = [await openWs(daemon.wsUrl), await openWs(daemon.wsUrl), await openWs(daemon.wsUrl)];
    const over = await get(`${daemon.url}/sse?topics=system`);
    expect(over.status).toBe(429);
    expect(JSON.parse(over.text).error.code).toBe('RATE_LIMITED');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const metrics = await get(`${daemon.url}/metrics`);
    expect(metricValue(metrics.text, 'framehub_limit_rejections_total{limit="connect_rate"}')).toBe(1);
    for (const v of ok) v.close();
  });

  it('maxTopicsPerConnection: one topic over gets TOO_MANY_TOPICS', async () => {
    daemon = await limits({ maxTopicsPerConnection: 2 });
    const v = await openWs(daemon.wsUrl);
    v.send({ type: 'sub', topics: ['cam/demo/low', 'cam/demo/medium'] });
    v.send({ type: 'sub', topics: ['cam/demo/high'] });
    await v.until((r) => r.some((x) => x.type === 'error'));
    expect(v.of('error')[0]).toMatchObject({ code: 'TOO_MANY_TOPICS', topic: 'cam/demo/high' });
    v.close();
    const sse = await get(`${daemon.url}/sse?topics=cam/demo/low,cam/demo/medium,cam/demo/high`);
    expect(sse.status).toBe(400);
    expect(JSON.parse(sse.text).error.code).toBe('TOO_MANY_TOPICS');
  });
});

describe('idle timeout', () => {
  it('reaps a dead peer (handshake, then silence) within twice the idle timeout', async () => {
    daemon = await startDaemon({ cameras: [], ws: { idleTimeoutSeconds: 8 } });
    const { port } = new URL(daemon.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    await new Promise<void>((res) => socket.once('connect', () => res()));
    socket.write(
      'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    const t0 = Date.now();
    // Never answer the server's pings: a dead peer that still holds its TCP connection.
    socket.on('data', () => {});
    await new Promise<void>((res) => socket.once('close', () => res()));
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(16_000);
    expect(elapsed).toBeGreaterThan(3_000);
  }, 25_000);
});

describe('connect-rate token bucket', () => {
  it('keeps its tokens when the clock goes back an hour', () => {
    const limits = new ConnectionLimits({
      maxConnections: 100,
      maxConnectionsPerIp: 100,
      connectRatePerIp: 1,
      connectBurstPerIp: 3,
    });
    const t = 1_000_000;
    expect(limits.admit('10.0.0.1', t).ok).toBe(true);
    const back = t - 3_600_000;
    expect(limits.admit('10.0.0.1', back).ok).toBe(true);
    expect(limits.admit('10.0.0.1', back).ok).toBe(true);
    // The burst of 3 is spent; the fourth waits for the next refill, a second, not an hour.
    const refused = limits.admit('10.0.0.1', back);
    expect(refused).toMatchObject({ ok: false, limit: 'connect_rate' });
    expect((refused as { retryAfterSeconds: number }).retryAfterSeconds).toBeLessThanOrEqual(1);
  });
});
