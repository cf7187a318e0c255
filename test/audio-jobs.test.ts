import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { background, missingAudioTools, mix, RATE, speechTrack } from './fixtures/vad-audio.js';
import { get, type RunningDaemon, startDaemon, Viewer, wav } from './helpers.js';

let daemon: RunningDaemon;
beforeAll(async () => {
  daemon = await startDaemon({ cameras: [] });
});
afterAll(async () => {
  await daemon?.stop();
});

const post = (body: Uint8Array, query = '', type = 'application/octet-stream') =>
  fetch(`${daemon.url}/api/v1/jobs/audio${query}`, {
    method: 'POST',
    headers: { 'content-type': type },
    body,
  });

async function waitForJob(id: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = JSON.parse((await get(`${daemon.url}/api/v1/jobs/${id}`)).text);
    if (['done', 'failed', 'cancelled'].includes(job.state) || Date.now() > deadline) return job;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('audio jobs', () => {
  it('finds the speech in a WAV with known labels (espeak-ng speech in white noise at 20 dB)', async () => {
    expect(missingAudioTools(), 'install espeak-ng and sox').toEqual([]);
    const track = speechTrack();
    const pcm = mix(track, background('white', track.clean.length / RATE + 1), 20);
    const res = await post(wav(pcm, RATE), '', 'audio/wav');
    expect(res.status).toBe(202);
    const { id, topic } = (await res.json()) as { id: string; topic: string };
    expect(res.headers.get('location')).toBe(`/api/v1/jobs/${id}`);
    expect(topic).toBe(`job/${id}`);

    const job = await waitForJob(id);
    expect(job).toMatchObject({ id, kind: 'audio', state: 'done', progress: 1 });
    const segments = job.result.segments as { start: number; end: number; peakDbfs: number }[];
    const labels = track.utterances.map((u) => ({ start: u.start / RATE, end: u.end / RATE }));
    expect(segments).toHaveLength(labels.length);
    const errors = labels.flatMap((l, i) => [
      Math.abs(segments[i]!.start - l.start),
      Math.abs(segments[i]!.end - l.end),
    ]);
    const meanErrorMs = (errors.reduce((a, b) => a + b, 0) / errors.length) * 1000;
    console.log(`audio job: ${segments.length} segments, mean boundary error ${meanErrorMs.toFixed(0)} ms`);
    expect(meanErrorMs).toBeLessThan(150);
    expect(job.result.durationSeconds).toBeCloseTo(pcm.length / RATE, 2);
    expect(['native', 'js']).toContain(job.result.backend);
  }, 60_000);

  it('takes raw PCM with ?format=&rate= and reports progress on job/<id>', async () => {
    const rate = 8000;
    const samples = new Int16Array(rate * 6);
    for (let i = 2 * rate; i < 4 * rate; i++)
      samples[i] = Math.round(9000 * Math.sin((2 * Math.PI * 250 * i) / rate));
    const res = await post(new Uint8Array(samples.buffer), `?format=s16le&rate=${rate}`);
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.state).toBe('done');
    expect(job.result.segments).toHaveLength(1);
    expect(job.result.segments[0].start).toBeCloseTo(2 - 0.1, 1);
    expect(job.result.segments[0].end).toBeCloseTo(4 + 0.1, 1);

    // The job topic replays its history to a late subscriber that resumes from seq 0.
    const v = new Viewer(daemon.wsUrl);
    await v.opened;
    v.send({ type: 'hello', resume: { [`job/${id}`]: 0 } });
    v.send({ type: 'sub', topics: [`job/${id}`] });
    await v.until((r) => r.some((x) => x.type === 'job' && x.state === 'done'));
    const states = v.of('job').map((j) => j.state);
    expect(states[0]).toBe('queued');
    expect(states.at(-1)).toBe('done');
    v.close();
  });

  it('answers bad input with the right status and code', async () => {
    const cases: [Promise<Response>, number, string][] = [
      [post(new Uint8Array(0)), 400, 'EMPTY_BODY'],
      [
        post(new Uint8Array(Array.from({ length: 4096 }, (_, i) => (i * 37) % 251))),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
      [post(new Uint8Array(1001), '?format=s16le&rate=16000'), 422, 'BAD_PCM_LENGTH'],
      [post(new Uint8Array(1002), '?format=f32le&rate=16000'), 422, 'BAD_PCM_LENGTH'],
      [post(new Uint8Array(1000), '?format=mp3&rate=16000'), 400, 'INVALID_FIELD'],
      [post(new Uint8Array(1000), '?format=s16le&rate=12'), 400, 'INVALID_FIELD'],
      // A WAV header in front of garbage: recognised as WAV, but ffmpeg cannot decode it.
      [
        post(Buffer.concat([Buffer.from('RIFF\0\0\0\0WAVEjunk'), Buffer.alloc(3000, 0x5a)])),
        422,
        'DECODE_FAILED',
      ],
    ];
    for (const [pending, status, code] of cases) {
      const res = await pending;
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect({ status: res.status, code: body.error.code }).toEqual({ status, code });
      expect(body.error.message.length).toBeGreaterThan(10);
    }
    expect((await get(`${daemon.url}/api/v1/jobs/not-a-job`)).status).toBe(404);
  });

  it('cancels with DELETE', async () => {
    const samples = new Int16Array(16_000 * 120);
    const res = await post(new Uint8Array(samples.buffer), '?format=s16le&rate=16000');
    const { id } = (await res.json()) as { id: string };
    const del = await fetch(`${daemon.url}/api/v1/jobs/${id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    const job = await waitForJob(id);
    expect(job.state).toMatch(/cancelled|done/);
  });
});
