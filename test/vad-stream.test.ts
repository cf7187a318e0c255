import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hub } from '../src/hub/hub.js';
import { AudioIngest } from '../src/ingest/audio-ingest.js';
import { createMetrics } from '../src/metrics/metrics.js';
import type { RunVad, VadPoolTask, VadResultRecord } from '../src/pool/tasks.js';
import { WorkerPool } from '../src/pool/worker-pool.js';
import { resolveVadConfig } from '../src/vad/config.js';
import { VadStream } from '../src/vad/stream.js';
import { decode } from '../src/wire/records.js';

// The real VadStream and AudioIngest over the real piscina pool and vad worker (from dist/, so
// `npm run build` first). Only the RunVad they are given is wrapped, to hold a chunk back or to
// make the worker itself throw on a chosen chunk.

const RATE = 16_000;
const metrics = createMetrics();
const routes = new Map<string, (r: VadResultRecord) => void>();
let pool: WorkerPool;

beforeAll(() => {
  pool = new WorkerPool({
    threads: 1,
    ringBytes: 1 << 20,
    maxQueuedFrames: 4,
    log: pino({ level: 'silent' }),
    metrics,
    onRecord: (bytes) => {
      const r = decode(bytes) as VadResultRecord;
      routes.get(r.stream.startsWith('job/') ? r.stream : 'cam')?.(r);
    },
  });
});
afterAll(async () => {
  await pool?.close();
});

/** Wraps pool.runVad: records each task's chunk and input state, holds chunks while gated, fails chosen ones. */
class Runner {
  readonly tasks: { chunk: number; state: VadPoolTask['state'] }[] = [];
  readonly failures: Error[] = [];
  done = 0;
  /** Chunk numbers whose task is sent with a corrupt (odd-length) buffer, so the worker throws. */
  readonly failChunks = new Set<number>();
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.open = resolve;
    });
  }

  release(): void {
    this.gate = undefined;
    this.open?.();
  }

  readonly run: RunVad = async (task) => {
    this.tasks.push({ chunk: task.chunk, state: task.state });
    if (this.gate) await this.gate;
    const sent = this.failChunks.has(task.chunk) ? { ...task, samples: new ArrayBuffer(3) } : task;
    try {
      const r = await pool.runVad(sent);
      this.done++;
      return r;
    } catch (err) {
      this.failures.push(err as Error);
      throw err;
    }
  };
}

/** `seconds` of 16 kHz i16: a 300 Hz tone at about -12 dBFS, or low noise. */
function audio(seconds: number, loud: boolean): Int16Array {
  const s = new Int16Array(RATE * seconds);
  for (let i = 0; i < s.length; i++)
    s[i] = loud ? Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / RATE)) : ((i * 7919) % 21) - 10;
  return s;
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The promise's outcome, or 'pending' if it has not settled within ms. */
function settled(p: Promise<unknown>, ms: number): Promise<{ ok: boolean; err?: unknown } | 'pending'> {
  return Promise.race([
    p.then(
      () => ({ ok: true }),
      (err: unknown) => ({ ok: false, err }),
    ),
    new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms)),
  ]);
}

describe('VadStream, job kind: a failed chunk fails the stream', () => {
  function jobStream(id: string, runner: Runner) {
    const stream = new VadStream({
      stream: `job/${id}`,
      config: resolveVadConfig({ sampleRate: RATE }),
      format: 'i16',
      run: runner.run,
      maxPendingSamples: Number.POSITIVE_INFINITY,
    });
    const results: VadResultRecord[] = [];
    routes.set(`job/${id}`, (r) => stream.deliver(r, (x) => results.push(x)));
    return { stream, results };
  }

  it('end() after the failure (audio kept coming) rejects with VAD_CHUNK_FAILED, not hangs', async () => {
    const runner = new Runner();
    runner.failChunks.add(1);
    const { stream } = jobStream('late-end', runner);
    stream.push(audio(1, false));
    await until(() => runner.tasks.length === 1 && runner.failures.length === 0, 2000, 'chunk 0');
    runner.hold();
    stream.push(audio(1, false)); // chunk 1, held until chunk 0 is back, then fails in the worker
    stream.push(audio(1, true));
    runner.release();
    await until(() => runner.failures.length === 1, 5000, 'the worker to fail chunk 1');
    stream.push(audio(1, true)); // the decoder keeps producing audio after the failure
    const outcome = await settled(stream.end(), 3000);
    expect(outcome).not.toBe('pending');
    expect(outcome).toMatchObject({ ok: false, err: { code: 'VAD_CHUNK_FAILED' } });
    expect((outcome as { err: Error }).err.cause).toBe(runner.failures[0]);
    // Nothing ran after the failure: the stream stopped, it did not analyse past a hole.
    expect(runner.tasks.map((t) => t.chunk)).toEqual([0, 1]);
  });

  it('end() already waiting when a chunk fails rejects too', async () => {
    const runner = new Runner();
    runner.failChunks.add(0);
    const { stream } = jobStream('early-end', runner);
    runner.hold();
    stream.push(audio(1, false));
    const ended = stream.end();
    runner.release();
    const outcome = await settled(ended, 3000);
    expect(outcome).toMatchObject({ ok: false, err: { code: 'VAD_CHUNK_FAILED' } });
  });

  it('a stream without failures still resolves end() after its last result', async () => {
    const runner = new Runner();
    const { stream, results } = jobStream('ok', runner);
    for (const loud of [false, true, true, false]) stream.push(audio(1, loud));
    expect(await settled(stream.end(), 5000)).toEqual({ ok: true });
    expect(results.flatMap((r) => r.segments)).toHaveLength(1);
  });
});

describe('AudioIngest (live camera): failures and overruns restart the stream', () => {
  /** An ingest for one camera, and a source that pushes one second of audio per simulated second. */
  function live(camera: string, runner: Runner, clockMs: number) {
    const events: Record<string, unknown>[] = [];
    const hub = new Hub(new Set([camera]), metrics);
    hub.addSink({
      publishFrame: () => {},
      publishEvent: (e) => events.push(JSON.parse(e.json)),
      publishVideo: () => {},
    });
    const lines: string[] = [];
    const log = pino(
      { level: 'warn' },
      new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk));
          cb();
        },
      }),
    );
    const ingest = new AudioIngest(hub, metrics, runner.run, {}, log);
    routes.set('cam', (r) => ingest.deliver(r));
    let now = clockMs;
    return {
      ingest,
      events,
      lines,
      /** Pushes the next second (arriving at its end) without waiting. Returns its arrival time. */
      push(loud: boolean): number {
        now += 1000;
        ingest.push(camera, audio(1, loud), RATE, now);
        return now;
      },
      /** Pushes the next second and waits until its chunk is in the pool, as a real-time source would. */
      async second(loud: boolean): Promise<number> {
        const before = runner.tasks.length;
        const at = this.push(loud);
        await until(() => runner.tasks.length > before, 2000, 'the chunk to start');
        return at;
      },
    };
  }

  const count = async (
    c: { get(): Promise<{ values: { labels: { camera?: unknown }; value: number }[] }> },
    camera: string,
  ) => (await c.get()).values.find((v) => v.labels.camera === camera)?.value;

  /** 1 s quiet, 2 s tone, 2 s quiet: returns when the tone started and stopped, by the source's clock. */
  async function toneBurst(cam: { second(loud: boolean): Promise<number> }) {
    const at: number[] = [];
    for (const loud of [false, true, true, false, false]) at.push(await cam.second(loud));
    return { on: at[0]!, off: at[2]! };
  }

  /** Events at the tone's edges (pre-roll and hangover are 100 ms), and none in the future. */
  function expectOnClock(events: Record<string, unknown>[], tone: { on: number; off: number }) {
    const vad = events.filter((e) => e.type === 'vad');
    expect(vad.map((e) => e.state)).toEqual(['speech', 'silence']);
    expect(Math.abs((vad[0]!.ts as number) - tone.on)).toBeLessThanOrEqual(200);
    expect(Math.abs((vad[1]!.ts as number) - tone.off)).toBeLessThanOrEqual(200);
    for (const e of events) expect(e.ts as number).toBeLessThan(Date.now() + 2000);
  }

  it('keeps producing vad events after a chunk fails in the worker', async () => {
    const runner = new Runner();
    const cam = live('failing', runner, Date.now() - 10_000);
    await cam.second(false);
    runner.failChunks.add(1);
    await cam.second(false);
    await until(() => runner.failures.length === 1, 5000, 'the worker to fail chunk 1');
    const tone = await toneBurst(cam);
    await until(() => cam.events.some((e) => e.type === 'segment'), 5000, 'a segment after the failure');
    // The chunk after the failure started from a fresh state at sample 0, anchored anew.
    expect(runner.tasks.find((t) => t.chunk === 2)?.state).toBeNull();
    expectOnClock(cam.events, tone);
    expect(await count(metrics.vadChunkFailures, 'failing')).toBe(1);
    expect(cam.lines.join('')).toContain('VAD_CHUNK_FAILED');
  });

  it('closes open speech with a silence record (reason restart) when a chunk fails mid-speech', async () => {
    const runner = new Runner();
    const cam = live('midspeech', runner, Date.now() - 10_000);
    for (const loud of [false, true, true]) await cam.second(loud);
    await until(() => cam.events.some((e) => e.state === 'speech'), 5000, 'speech');
    expect(await count(metrics.vadSpeechActive, 'midspeech')).toBe(1);
    runner.failChunks.add(runner.tasks.at(-1)!.chunk + 1);
    await cam.second(true);
    await until(() => runner.failures.length === 1, 5000, 'the worker to fail the chunk');
    const vad = cam.events.filter((e) => e.type === 'vad');
    expect(vad.map((e) => e.state)).toEqual(['speech', 'silence']);
    expect(vad[1]).toMatchObject({ reason: 'restart', dbfs: null, floor: null, topic: 'cam/midspeech/vad' });
    expect(Math.abs((vad[1]!.ts as number) - Date.now())).toBeLessThan(2000);
    expect(await count(metrics.vadSpeechActive, 'midspeech')).toBe(0);
  });

  it('analyses one 6 s message that finds the stream idle as one task, not as an overrun', async () => {
    const runner = new Runner();
    const cam = live('longmsg', runner, Date.now() - 10_000);
    const long = new Int16Array(6 * RATE);
    long.set(audio(1, false), 0);
    long.set(audio(2, true), RATE);
    long.set(audio(3, false), 3 * RATE);
    cam.ingest.push('longmsg', long, RATE);
    await until(() => cam.events.some((e) => e.type === 'segment'), 5000, 'the segment in the long message');
    expect(await count(metrics.vadOverruns, 'longmsg')).toBeUndefined();
    expect(runner.tasks).toHaveLength(1);
    expect(cam.events.filter((e) => e.type === 'vad').map((e) => e.state)).toEqual(['speech', 'silence']);
  });

  it('ends open speech with a restart silence record when the audio rate changes mid-speech', async () => {
    const runner = new Runner();
    const cam = live('ratechange', runner, Date.now() - 10_000);
    for (const loud of [false, true, true]) await cam.second(loud);
    await until(() => cam.events.some((e) => e.state === 'speech'), 5000, 'speech');
    cam.ingest.push('ratechange', new Int16Array(8000), 8000);
    const vad = cam.events.filter((e) => e.type === 'vad');
    expect(vad.map((e) => e.state)).toEqual(['speech', 'silence']);
    expect(vad[1]).toMatchObject({ reason: 'restart', dbfs: null, floor: null });
  });

  it('after an overrun, the next chunk starts from a fresh state and timestamps follow the clock', async () => {
    const runner = new Runner();
    // A camera up for a minute before the pool stalls.
    const cam = live('overrun', runner, Date.now() - 70_000);
    for (let i = 0; i < 55; i++) await cam.second(false);
    runner.hold();
    await cam.second(false);
    for (let i = 0; i < 6; i++) cam.push(false);
    expect(await count(metrics.vadOverruns, 'overrun')).toBe(6 * RATE);
    // The stalled chunk finishes after the overrun, carrying the old stream's state and positions.
    runner.release();
    await until(() => runner.done === runner.tasks.length, 2000, 'the stalled chunk');
    const fromHere = runner.tasks.length;
    const tone = await toneBurst(cam);
    await until(() => cam.events.some((e) => e.type === 'segment'), 5000, 'a segment after the overrun');
    expect(runner.tasks[fromHere]?.state).toBeNull();
    // Before the fix these were a minute (the stream's age) ahead of the clock.
    expectOnClock(cam.events, tone);
    const seg = cam.events.find((e) => e.type === 'segment')!;
    expect(Math.abs((seg.end as number) - tone.off)).toBeLessThanOrEqual(200);
  }, 20_000);
});
