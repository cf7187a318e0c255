import { randomUUID } from 'node:crypto';
import { type RunVad, type VadResultRecord, VadStream } from '../pool/vad-stream.js';
import { resolveVadConfig, type VadConfig } from '../vad/config.js';
import type { VadSegment } from '../vad/detector.js';
import { AudioInputError, decodeAudio, type PcmFormat, pcmSamples, sniffContainer } from './audio-input.js';
import type { Job, JobStore } from './job-store.js';

/** Decoded files are analysed at this rate; raw PCM keeps its own. */
const DECODE_RATE = 16_000;

export interface AudioJobResult {
  segments: { start: number; end: number; peakDbfs: number }[];
  durationSeconds: number;
  sampleRate: number;
  frames: number;
  backend: string | undefined;
}

export interface AudioJobOptions {
  store: JobStore;
  run: RunVad;
  tuning: Partial<Omit<VadConfig, 'sampleRate'>>;
  ffmpegPath: string;
}

interface Running {
  stream: VadStream;
  /** Set for raw PCM, whose length is known up front: progress is frames analysed over it. */
  progress?: { job: Job; totalFrames: number };
  segments: VadSegment[];
  frames: number;
  backend: string | undefined;
}

/**
 * Audio jobs: speech segments of an uploaded file or raw PCM. Input that is plainly wrong is
 * refused before a job exists (empty 400, unknown container 415, undecodable or misaligned
 * 422), so a 202 means the audio is being analysed. Samples go to the VAD in one-second
 * chunks through the pool at job priority; at most one chunk per job is in the pool at a time.
 */
export class AudioJobs {
  private readonly running = new Map<string, Running>();

  constructor(private readonly opts: AudioJobOptions) {}

  async start(body: Buffer, pcm: PcmFormat | undefined): Promise<Job> {
    if (body.length === 0) throw new AudioInputError('EMPTY_BODY', 'the request body is empty', 400);
    const id = randomUUID();
    if (pcm) {
      const samples = pcmSamples(body, pcm);
      const run = this.open(id, pcm.rate, samples instanceof Int16Array ? 'i16' : 'f32');
      const job = this.opts.store.create('audio', id);
      run.progress = { job, totalFrames: Math.max(1, samples.length / (pcm.rate * 0.02)) };
      this.feed(job, run, samples, pcm.rate);
      return job;
    }
    if (!sniffContainer(body)) {
      throw new AudioInputError(
        'UNSUPPORTED_MEDIA_TYPE',
        'not a recognised audio container (wav, aiff, ogg, flac, mp3, mp4/m4a, webm, caf, au); for raw PCM add ?format=s16le|f32le&rate=N',
        415,
      );
    }
    const run = this.open(id, DECODE_RATE, 'i16');
    let job: Job | undefined;
    let decodedSamples = 0;
    const decoder = decodeAudio(
      this.opts.ffmpegPath,
      body,
      DECODE_RATE,
      (s) => {
        decodedSamples += s.length;
        run.stream.push(s);
      },
      (fraction) => job && this.opts.store.progress(job, fraction * 0.95),
    );
    try {
      await decoder.started;
    } catch (err) {
      this.running.delete(id);
      throw err;
    }
    job = this.opts.store.create('audio', id);
    const started = job;
    started.abort.signal.addEventListener('abort', () => decoder.kill());
    decoder.done
      .then(() => this.complete(started, run, decodedSamples, DECODE_RATE))
      .catch((err: AudioInputError) => this.fail(started, err));
    return started;
  }

  /** Routes a vad_result ring record of a job stream (`job/<id>`). */
  deliver(record: VadResultRecord): void {
    const run = this.running.get(record.stream.slice(4));
    run?.stream.deliver(record, (r) => {
      run.segments.push(...r.segments);
      run.frames += r.frames;
      run.backend = r.backend;
      if (run.progress) this.opts.store.progress(run.progress.job, run.frames / run.progress.totalFrames);
    });
  }

  private open(id: string, rate: number, format: 'i16' | 'f32'): Running {
    const run: Running = {
      stream: new VadStream({
        stream: `job/${id}`,
        config: resolveVadConfig({ ...this.opts.tuning, sampleRate: rate }),
        format,
        run: this.opts.run,
        // A job's audio is all there: it must never be dropped, whatever the backlog.
        maxPendingSamples: Number.POSITIVE_INFINITY,
      }),
      segments: [],
      frames: 0,
      backend: undefined,
    };
    this.running.set(id, run);
    return run;
  }

  private feed(job: Job, run: Running, samples: Int16Array | Float32Array, rate: number): void {
    for (let at = 0; at < samples.length && !job.abort.signal.aborted; at += rate) {
      run.stream.push(samples.slice(at, at + rate));
    }
    void this.complete(job, run, samples.length, rate);
  }

  private async complete(job: Job, run: Running, totalSamples: number, rate: number): Promise<void> {
    try {
      await run.stream.end();
    } catch (err) {
      return this.fail(job, err as Error);
    } finally {
      this.running.delete(job.id);
    }
    if (job.abort.signal.aborted) return;
    const result: AudioJobResult = {
      segments: run.segments.map((s) => ({
        start: s.startSample / rate,
        end: s.endSample / rate,
        peakDbfs: Math.round(s.peakDbfs * 10) / 10,
      })),
      durationSeconds: totalSamples / rate,
      sampleRate: rate,
      frames: run.frames,
      backend: run.backend,
    };
    this.opts.store.finish(job, { result });
  }

  private fail(job: Job, err: Error & { code?: string }): void {
    this.running.delete(job.id);
    if (job.abort.signal.aborted) return;
    this.opts.store.finish(job, { error: { code: err.code ?? 'INTERNAL', message: err.message } });
  }
}
