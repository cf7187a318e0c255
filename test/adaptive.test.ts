import type net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { get, metricValue, noiseJpeg, pack, type RunningDaemon, startDaemon, Viewer } from './helpers.js';

let daemon: RunningDaemon | undefined;
let timer: NodeJS.Timeout | undefined;
afterAll(async () => {
  clearInterval(timer);
  await daemon?.stop();
});

describe('adaptive quality (variant=auto)', () => {
  it('moves a throttled viewer down with a variant record, and back up once it keeps up', async () => {
    daemon = await startDaemon({
      cameras: [{ id: 'yard', source: 'push', fps: 30 }],
      viewers: { softBufferBytes: 64 * 1024, adaptiveDownMs: 500, adaptiveUpMs: 2500, slowCloseMs: 60_000 },
    });
    const jpeg = await noiseJpeg(1280, 720);
    const pub = new Viewer(`${daemon.url.replace('http', 'ws')}/publish`);
    await pub.opened;
    timer = setInterval(
      () => pub.ws.send(pack({ type: 'frame', camera: 'yard', ts: Date.now(), data: jpeg })),
      33,
    );

    const v = new Viewer(`${daemon.wsUrl}?topics=cam/yard/auto`);
    await v.until((r) => r.some((x) => x.type === 'frame'));
    expect(v.of('variant')[0]).toEqual({ type: 'variant', topic: 'cam/yard/auto', variant: 'medium' });
    expect(v.of('frame').at(-1)!.topic).toBe('cam/yard/medium');

    const socket = (v.ws as unknown as { _socket: net.Socket })._socket;
    socket.pause();
    await new Promise((r) => setTimeout(r, 6000));
    socket.resume();

    await v.until((r) => r.some((x) => x.type === 'variant' && x.variant === 'low'), 10_000);
    const down = v.records.findIndex((x) => x.type === 'variant' && x.variant === 'low');
    await v.until((r) => r.slice(down).some((x) => x.type === 'frame' && x.topic === 'cam/yard/low'), 5000);
    await v.until((r) => r.slice(down).some((x) => x.type === 'variant' && x.variant === 'medium'), 15_000);
    const up = v.records.findIndex((x, i) => i > down && x.type === 'variant' && x.variant === 'medium');
    await v.until((r) => r.slice(up).some((x) => x.type === 'frame' && x.topic === 'cam/yard/medium'), 5000);

    const { text } = await get(`${daemon.url}/metrics`);
    expect(metricValue(text, 'framehub_variant_switches_total{transport="ws"}')).toBeGreaterThanOrEqual(2);
    v.close();
    pub.close();
  }, 45_000);
});
