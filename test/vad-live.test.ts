import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, metricValue, pack, type RunningDaemon, startDaemon, testCamera, Viewer } from './helpers.js';

let daemon: RunningDaemon;
beforeAll(async () => {
  daemon = await startDaemon({ cameras: [testCamera('demo', 5), { id: 'mic', source: 'push' }] });
});
afterAll(async () => {
  await daemon?.stop();
});

// src/vad/config.ts defaults: a segment reaches 100 ms before the tone and 100 ms after it.
const PRE_ROLL = 100;
const HANGOVER = 100;

describe('live VAD on the test camera (440 Hz tone, 2 s on / 2 s off)', () => {
  it('publishes speech/silence transitions that follow the tone, and segments', async () => {
    const v = new Viewer(`${daemon.wsUrl}?topics=cam/demo/vad`);
    await v.until((r) => r.filter((x) => x.type === 'vad').length >= 5, 16_000);
    const vad = v.of('vad');
    for (const e of vad) {
      expect(e.topic).toBe('cam/demo/vad');
      expect(e.dbfs).toEqual(expect.any(Number));
      expect(e.floor).toEqual(expect.any(Number));
    }
    // States alternate, and each speech span is the 2 s tone plus pre-roll and hangover.
    for (let i = 1; i < vad.length; i++) expect(vad[i]!.state).not.toBe(vad[i - 1]!.state);
    for (let i = 1; i < vad.length; i++) {
      const span = (vad[i]!.ts as number) - (vad[i - 1]!.ts as number);
      const expected =
        vad[i - 1]!.state === 'speech' ? 2000 + PRE_ROLL + HANGOVER : 2000 - PRE_ROLL - HANGOVER;
      expect(Math.abs(span - expected)).toBeLessThanOrEqual(HANGOVER);
    }
    const speech = vad.find((e) => e.state === 'speech')!;
    expect(speech.dbfs as number).toBeGreaterThan(-20);
    expect(speech.floor as number).toBeLessThan(-50);
    await v.until((r) => r.some((x) => x.type === 'segment'));
    const seg = v.of('segment')[0]!;
    expect(
      Math.abs((seg.end as number) - (seg.start as number) - (2000 + PRE_ROLL + HANGOVER)),
    ).toBeLessThanOrEqual(HANGOVER);
    expect(seg.peakDbfs as number).toBeGreaterThan(-20);
    v.close();

    const { text } = await get(`${daemon.url}/metrics`);
    expect(metricValue(text, 'framehub_vad_segments_total{camera="demo"}')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/framehub_vad_frames_total\{backend="(native|js)"\} \d+/);
    expect(text).toMatch(/framehub_vad_backend_info\{backend="(native|js)"\} 1/);
    expect(text).toMatch(/framehub_pool_task_duration_seconds_count\{task="vad"\} [1-9]/);
  }, 25_000);
});

describe('publisher audio', () => {
  /** One second of 16 kHz s16le: a 300 Hz tone (or silence), as publishers send it. */
  const second = (loud: boolean) => {
    const s = new Int16Array(16_000);
    for (let i = 0; i < s.length; i++)
      s[i] = loud ? Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / 16_000)) : ((i * 7919) % 21) - 10;
    return new Uint8Array(s.buffer);
  };

  it('runs pushed PCM through the VAD onto cam/<id>/vad', async () => {
    const v = new Viewer(`${daemon.wsUrl}?topics=cam/mic/vad`);
    await v.opened;
    const pub = new Viewer(`${daemon.url.replace('http', 'ws')}/publish`);
    await pub.opened;
    for (const loud of [false, false, true, true, false, false]) {
      pub.send({ type: 'audio', camera: 'mic', rate: 16_000, format: 's16le', data: second(loud) });
    }
    await v.until(
      (r) => r.filter((x) => x.type === 'vad').length >= 2 && r.some((x) => x.type === 'segment'),
      8000,
    );
    expect(v.of('vad').map((e) => e.state)).toEqual(['speech', 'silence']);
    const seg = v.of('segment')[0]!;
    expect(Math.abs((seg.end as number) - (seg.start as number) - 2200)).toBeLessThanOrEqual(120);
    v.close();
    pub.close();
  });

  it('answers bad audio records with error codes', async () => {
    const pub = new Viewer(`${daemon.url.replace('http', 'ws')}/publish`);
    await pub.opened;
    const odd = new Uint8Array(1001);
    pub.send({ type: 'audio', camera: 'mic', rate: 16_000, format: 's16le', data: odd });
    pub.send({ type: 'audio', camera: 'mic', rate: 16_000, format: 'mp3', data: second(true) });
    pub.send({ type: 'audio', camera: 'mic', rate: 5, format: 's16le', data: second(true) });
    pub.send({ type: 'audio', camera: 'mic', rate: 16_000, format: 'f32le', data: new Uint8Array(6) });
    pub.send({ type: 'audio', camera: 'demo', rate: 16_000, format: 's16le', data: second(true) });
    pub.send({ type: 'audio', camera: 'nope', rate: 16_000, format: 's16le', data: second(true) });
    pub.send({ type: 'frame', camera: 'mic', data: new Uint8Array([1, 2, 3, 4]) });
    pub.ws.send(pack({ type: 'ping', id: 'end' }));
    await pub.until((r) => r.some((x) => x.type === 'pong'));
    expect(pub.of('error').map((e) => e.code)).toEqual([
      'BAD_MESSAGE',
      'BAD_MESSAGE',
      'BAD_MESSAGE',
      'BAD_MESSAGE',
      'NOT_PUSH_CAMERA',
      'UNKNOWN_TOPIC',
      'BAD_MESSAGE',
    ]);
    pub.close();
  });
});
