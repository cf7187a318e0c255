import { randomUUID } from 'node:crypto';
import { AudioInputError, DecoderError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RunVad, VadResultRecord } from '../pool/tasks.js';
import { resolveVadConfig, type VadConfig } from '../vad/config.js';
import type { VadSegment } from '../vad/detector.js';
import { VadStream } from '../vad/stream.js';
import {
  AUDIO_CONTAINER_NAMES,
  type DecodeHandle,
  decodeAudio,
  type PcmFormat,
  pcmSamples,
  sniffContainer,
} from './audio-input.js';
import { type Job, type JobStore, jobError } from './job-store.js';

/** Decoded files are analysed at this rate; raw PCM keeps its own. */
const DECODE_RATE = 16_000;

export interface AudioJobResult {
  segments: { start: number; end: number; peakDbfs: number }[];
  durationSeconds: number;
  sampleRate: number;
  frames: number;
  backend: string | undefined;
}

/** The `jobs.*` limits that bound one job's work (see the config schema for defaults). */
export interface AudioJobLimits {
  timeoutSeconds: number;
  maxAudioSeconds: number;
  maxUpsampleRatio: number;
}

export interface AudioJobOptions {
  store: JobStore;
  run: RunVad;
  tuning: Partial<Omit<VadConfig, 'sampleRate'>>;
  ffmpegPath: string;
  limits: AudioJobLimits;
  log: Pick<Logger, 'warn' | 'error'>;
  /** Told each finished decode's speed, in media seconds per wall second (framehub_ffmpeg_speed_ratio). */
  onSpeed?: (speed: number) => void;
}

interface Running {
  stream: VadStream;
  /** Set for raw PCM, whose length is known up front: progress is frames analysed over it. */
  progress?: { job: Job; totalFrames: number };
  segments: VadSegment[];
  frames: number;
  backend: string | undefined;
  /** Set once ffmpeg produced audio (decoded input) or at once (raw PCM). */
  job?: Job;
  decoder?: DecodeHandle;
  /** Fires `jobs.timeoutSeconds` after start(), whatever phase the job is in. */
  deadline: NodeJS.Timeout;
}

/**
 * Audio jobs: speech segments of an uploaded file or raw PCM. Input that is plainly wrong is
 * refused before a job exists (empty 400, unknown container 415, undecodable, misaligned or
 * declaring too low a rate 422), so a 202 means the audio is being analysed. Samples go to the
 * VAD in one-second chunks through the pool at job priority; at most one chunk per job is in
 * the pool at a time. Every job has a deadline from the moment decoding starts, also while it
 * waits for ffmpeg's first audio; past it, or on DELETE, shutdown or the client leaving before
 * the 202, ffmpeg's process group is killed.
 */
export class AudioJobs {
  private readonly running = new Map<string, Running>();

  constructor(private readonly opts: AudioJobOptions) {}

  /** `cancelled` fires when the client went away before the job was accepted. */
  async start(body: Buffer, pcm: PcmFormat | undefined, cancelled?: AbortSignal): Promise<Job> {
    if (body.length === 0) throw new AudioInputError('EMPTY_BODY', 'the request body is empty', 400);
    const id = randomUUID();
    if (pcm) {
      const samples = pcmSamples(body, pcm);
      const run = this.open(id, pcm.rate, samples instanceof Int16Array ? 'i16' : 'f32');
      const job = this.accept(run, id);
      run.progress = { job, totalFrames: Math.max(1, samples.length / (pcm.rate * 0.02)) };
      this.feed(job, run, samples, pcm.rate);
      return job;
    }
    const container = sniffContainer(body);
    if (!container) {
      throw new AudioInputError(
        'UNSUPPORTED_MEDIA_TYPE',
        `not a recognised audio container (${AUDIO_CONTAINER_NAMES}); for raw PCM add ?format=s16le|f32le&rate=N`,
        415,
      );
    }
    this.refuseLowRate(container.declaredRate?.(body));
    const run = this.open(id, DECODE_RATE, 'i16');
    let decodedSamples = 0;
    const decodeStarted = performance.now();
    const decoder = decodeAudio({
      ffmpegPath: this.opts.ffmpegPath,
      body,
      container,
      rate: DECODE_RATE,
      maxSeconds: this.opts.limits.maxAudioSeconds,
      onSamples: (s) => {
        decodedSamples += s.length;
        run.stream.push(s);
      },
      onProgress: (fraction) => run.job && this.opts.store.progress(run.job, fraction * 0.95),
    });
    run.decoder = decoder;
    decoder.done.catch((err: Error) => this.logFailure(id, err));
    const leave = () => decoder.stop(new AudioInputError('ABORTED', 'the client went away', 400));
    cancelled?.addEventListener('abort', leave, { once: true });
    if (cancelled?.aborted) leave();
    try {
      await decoder.started;
    } catch (err) {
      this.release(id);
      throw err;
    } finally {
      cancelled?.removeEventListener('abort', leave);
    }
    const job = this.accept(run, id);
    decoder.done
      .then(() => {
        const wallSeconds = (performance.now() - decodeStarted) / 1000;
        this.opts.onSpeed?.(decodedSamples / DECODE_RATE / wallSeconds);
        this.complete(job, run, decodedSamples, DECODE_RATE);
      })
      .catch((err: AudioInputError) => this.fail(job, err));
    return job;
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

  /** Kills every job's ffmpeg and fails the jobs; for shutdown. Returns how many were running. */
  stopAll(): number {
    const n = this.running.size;
    const reason = new AudioInputError('ABORTED', 'the daemon is shutting down', 503);
    for (const id of [...this.running.keys()]) this.abandon(id, reason);
    return n;
  }

  /** 16 kHz from a header declaring 1 Hz would turn a 20 KB upload into hours of samples. */
  private refuseLowRate(declared: number | undefined): void {
    const ratio = this.opts.limits.maxUpsampleRatio;
    // A float rate (CAF) may be NaN, zero or negative: only a positive rate within the ratio passes.
    if (declared === undefined || (declared > 0 && DECODE_RATE / declared <= ratio)) return;
    throw new AudioInputError(
      'SAMPLE_RATE_TOO_LOW',
      `the header declares ${declared} Hz; the lowest rate accepted is ${Math.ceil(DECODE_RATE / ratio)} Hz (jobs.maxUpsampleRatio)`,
      422,
    );
  }

  private open(id: string, rate: number, format: 'i16' | 'f32'): Running {
    const seconds = this.opts.limits.timeoutSeconds;
    const deadline = setTimeout(() => {
      const message = `the job ran past its ${seconds} s deadline (jobs.timeoutSeconds)`;
      this.abandon(id, new AudioInputError('JOB_TIMEOUT', message, 504));
    }, seconds * 1000);
    deadline.unref();
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
      deadline,
    };
    this.running.set(id, run);
    return run;
  }

  /** Creates the job record; DELETE then kills the decoder and forgets the run. */
  private accept(run: Running, id: string): Job {
    const job = this.opts.store.create('audio', id);
    run.job = job;
    job.abort.signal.addEventListener('abort', () =>
      this.abandon(id, new AudioInputError('ABORTED', 'the job was cancelled', 400)),
    );
    return job;
  }

  /**
   * Stops a job wherever it is: kills ffmpeg (a pending start() then rejects with `reason`) and
   * fails the job. Chunks already in the pool finish, and their results are ignored.
   */
  private abandon(id: string, reason: AudioInputError): void {
    const run = this.running.get(id);
    if (!run) return;
    run.decoder?.stop(reason);
    if (run.job) this.fail(run.job, reason);
    else if (!run.decoder) this.release(id);
  }

  private release(id: string): void {
    const run = this.running.get(id);
    if (!run) return;
    clearTimeout(run.deadline);
    this.running.delete(id);
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
      this.release(job.id);
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

  private fail(job: Job, err: Error): void {
    this.release(job.id);
    if (job.abort.signal.aborted) return;
    const { error, internal } = jobError(err);
    if (internal) this.opts.log.error({ job: job.id, err }, 'audio job failed');
    this.opts.store.finish(job, { error });
  }

  /** What went wrong in ffmpeg goes to the log, never to the client; a cancel is not news. */
  private logFailure(id: string, err: Error & { code?: string }): void {
    if (err.code === 'ABORTED') return;
    const detail = err instanceof DecoderError ? err.detail : undefined;
    this.opts.log.warn({ job: id, code: err.code, detail }, 'audio decode failed');
  }
}
